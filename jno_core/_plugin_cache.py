"""``jno plugins`` without importing the plugins: their description
(:func:`jno_core.plugins.describe_plugins`) kept in ``<jno cache>/plugins.json`` and reused
while nothing it depends on changed.

Describing the plugins means importing them, and they import JAX (about a second of CPU).
The stored description is valid for a fingerprint of: the Python environment
(``sys.prefix``), the jno-core version and its plugin contract files, the environment
variables that select plugins (``JNO_LOAD_PLUGINS``, ``JNO_DISABLE_PLUGINS``), and for each
entry point of the group ``"jno"`` its name, target, distribution and version and the size
and modification time of every ``.py`` file of its top-level package (found without
importing it), so an edited editable install is described anew. A description made while a
plugin failed (a warning) is not stored. The folder is ``$JNO_CACHE_DIR`` (default
``$XDG_CACHE_HOME/jno``, else ``~/.cache/jno``), created user-only."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["describe_cached", "fingerprint", "cache_file"]

_CONTRACT_FILES = ("hookspecs.py", "plugins.py", "_plugin_cache.py")


def cache_file() -> Path:
    """``<jno cache root>/plugins.json`` (see :func:`jno_core.compile_cache.cache_root`)."""
    from .compile_cache import cache_root

    return cache_root() / "plugins.json"


def _files(top: str) -> list[tuple[str, int, int]]:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return [(top, -1, -1)]
    if spec is None:
        return [(top, -1, -1)]
    paths: list[str] = []
    if spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            for dirpath, _, names in os.walk(root):
                paths += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
    elif spec.origin:
        paths.append(spec.origin)
    out = []
    for p in sorted(paths):
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((p, -1, -1))
    return out


def fingerprint() -> str:
    """A hash of everything the plugin description depends on (module docstring)."""
    from . import __version__

    here = Path(__file__).parent
    parts: list[Any] = [sys.prefix, __version__, os.environ.get("JNO_LOAD_PLUGINS"),
                        os.environ.get("JNO_DISABLE_PLUGINS")]
    parts += [_files_of(here / f) for f in _CONTRACT_FILES]
    for ep in sorted(metadata.entry_points(group="jno"), key=lambda e: (e.name, e.value)):
        dist = ep.dist
        top = ep.value.split(":")[0].split(".")[0].strip()
        parts.append([ep.name, ep.value, dist.name if dist else None, dist.version if dist else None, _files(top)])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _files_of(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
        return (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(path), -1, -1)


def describe_cached() -> list[dict[str, Any]]:
    """:func:`jno_core.plugins.describe_plugins`, from ``plugins.json`` when its fingerprint
    matches, else computed (importing the plugins) and stored."""
    key = fingerprint()
    path = cache_file()
    try:
        data = json.loads(path.read_text())
        if data.get("key") == key and isinstance(data.get("records"), list):
            return data["records"]
    except (OSError, ValueError):
        pass
    from . import plugins

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = plugins.describe_plugins()
    for w in caught:  # shown as they would have been, and nothing is stored
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not caught:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "records": records}))
            os.replace(tmp, path)
        except OSError:  # a read-only home: describe every time
            pass
    return records
