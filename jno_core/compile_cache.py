"""JAX's persistent compilation cache, on by default (:func:`configure`), and compile
statistics (:class:`CompileStats`) for the solve's compile log line.

A rerun of an unchanged script compiles nothing: every XLA executable jno builds (the train
chunk, the trackers' functions, ``crux.eval``) is written to a per-user folder and read back
by the next process that builds the same program. What is reused is only XLA's compilation
(the slow part on CPU); tracing and lowering to StableHLO still run in every process, and a
program that differs in any way (network width, mesh size, number of points, optimizer,
compiler options, JAX version, device) has another key and compiles anew.

Where the cache lives (the first rule that applies):

* the user set JAX's own option (environment ``JAX_COMPILATION_CACHE_DIR``, or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before or after ``import jno``):
  JAX's setting is used as it is, jno changes nothing;
* ``JNO_COMPILATION_CACHE=off`` (or ``0``, ``false``, ``no``, ``none``): no persistent cache;
* ``JNO_COMPILATION_CACHE=/some/path``: that folder;
* else ``compilation-cache`` in jno's cache folder: ``$JNO_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/jno``, else ``~/.cache/jno`` (:func:`cache_root`).

jno creates the folder readable and writable by the user only (mode ``0700``): JAX's
documentation warns that whoever can write to a compilation cache can make the processes
that read it run arbitrary code. An existing folder writable by others is refused (with a
warning; the cache stays off). JAX only writes an entry whose compilation took at least
``jax_persistent_cache_min_compile_time_secs`` (JAX's default: 1 s, which would skip most of a
PINN's executables); unless the user set that option (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``)
jno lowers it to :data:`MIN_COMPILE_TIME_S`.

Several processes may share the folder (JAX writes each entry once, by file name = key; a
process that reads an entry while another is still writing it sees a damaged entry, JAX warns
and compiles it itself). ``run.config["compilation_cache"]`` (``config.json``) records what
was used (:func:`describe`). Delete the folder to empty the cache.
"""

from __future__ import annotations

import os
import stat
import threading
import warnings
from pathlib import Path
from typing import Any

__all__ = ["ENV", "MIN_COMPILE_TIME_S", "configure", "describe", "cache_root", "default_dir", "CompileStats"]

#: the environment variable that turns the cache off or moves it
ENV = "JNO_COMPILATION_CACHE"
#: entries whose compilation took less than this many seconds are not written (JAX's option
#: ``jax_persistent_cache_min_compile_time_secs``, unless the user set it). Executables that
#: compile faster than reading an entry back (a few ms) are not worth a file.
MIN_COMPILE_TIME_S = 0.02
_OFF = {"off", "0", "false", "no", "none"}

_lock = threading.Lock()
_configured: dict[str, Any] | None = None


def cache_root() -> Path:
    """jno's per-user cache folder: ``$JNO_CACHE_DIR``, else ``$XDG_CACHE_HOME/jno``, else
    ``~/.cache/jno``."""
    own = os.environ.get("JNO_CACHE_DIR", "").strip()
    if own:
        return Path(own).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "jno"


def default_dir() -> Path:
    """``<cache root>/compilation-cache`` (:func:`cache_root`)."""
    return cache_root() / "compilation-cache"


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; refuse a folder that users other
    than its owner may write to, or that belongs to someone else."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{path} is not a folder")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise OSError(f"{path} belongs to another user (uid {st.st_uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def configure() -> dict[str, Any]:
    """Turn JAX's persistent compilation cache on as the module docstring says (once per
    process; later calls return the first result). Returns what was decided: ``{"source":
    "jno" | "JNO_COMPILATION_CACHE" | "jax" | "off" | "error", "dir": str | None}``."""
    global _configured
    with _lock:
        if _configured is not None:
            return dict(_configured)
        _configured = _decide()
        return dict(_configured)


def _decide() -> dict[str, Any]:
    import jax

    raw = os.environ.get(ENV, "").strip()
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return {"source": "jax", "dir": jax.config.jax_compilation_cache_dir}
    if raw.lower() in _OFF:
        return {"source": "off", "dir": None}
    path = Path(raw).expanduser() if raw else default_dir()
    try:
        _private_dir(path)
    except OSError as exc:
        warnings.warn(
            f"jno: the compilation cache folder {str(path)!r} cannot be used ({exc}); compiling "
            f"without a persistent cache. Set {ENV} to a folder of your own, or {ENV}=off.",
            RuntimeWarning,
            stacklevel=3,
        )
        return {"source": "error", "dir": None, "error": str(exc)}
    jax.config.update("jax_compilation_cache_dir", str(path))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS") and \
            jax.config.jax_persistent_cache_min_compile_time_secs == 1.0:  # JAX's default
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return {"source": ENV if raw else "jno", "dir": str(path)}


def describe() -> dict[str, Any]:
    """What the process uses now, for ``config.json``: ``enabled``, ``dir``, ``source``
    (``"jax"`` when the user's JAX settings replaced jno's after :func:`configure`) and
    ``min_compile_time_s``."""
    import jax

    decided = configure()
    current = jax.config.jax_compilation_cache_dir
    source = decided["source"]
    if current != decided.get("dir"):
        source = "jax"
    enabled = bool(current) and bool(jax.config.jax_enable_compilation_cache)
    out = {"enabled": enabled, "dir": current, "source": source if enabled or source != "jax" else "jax",
           "min_compile_time_s": jax.config.jax_persistent_cache_min_compile_time_secs}
    if "error" in decided:
        out["error"] = decided["error"]
    return out


class CompileStats:
    """Counts XLA compilations while active (a context manager), from ``jax.monitoring``
    events, whatever thread compiles: ``compiles`` (executables built or read back from the
    persistent cache), ``compile_s`` (their wall time, summed over threads),
    ``cache_lookups`` / ``cache_hits`` / :attr:`cache_misses` (persistent-cache look-ups; all
    0 without a persistent cache) and ``cache_writes`` (entries written)."""

    _BACKEND = "/jax/core/compile/backend_compile_duration"
    _LOOKUP = "/jax/compilation_cache/compile_requests_use_cache"
    _HIT = "/jax/compilation_cache/cache_hits"
    _WRITE = "/jax/compilation_cache/cache_misses"  # JAX records it when it writes an entry

    def __init__(self) -> None:
        self.compiles = 0
        self.compile_s = 0.0
        self.cache_lookups = 0
        self.cache_hits = 0
        self.cache_writes = 0
        self._lock = threading.Lock()

    @property
    def cache_misses(self) -> int:
        """Look-ups that found no entry (the executable was compiled)."""
        return self.cache_lookups - self.cache_hits

    def _on_duration(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == self._BACKEND:
            with self._lock:
                self.compiles += 1
                self.compile_s += duration

    def _on_event(self, event: str, **kwargs: Any) -> None:
        attr = {self._LOOKUP: "cache_lookups", self._HIT: "cache_hits", self._WRITE: "cache_writes"}.get(event)
        if attr is not None:
            with self._lock:
                setattr(self, attr, getattr(self, attr) + 1)

    def __enter__(self) -> "CompileStats":
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        import jax

        jax.monitoring.unregister_event_duration_listener(self._on_duration)
        jax.monitoring.unregister_event_listener(self._on_event)
