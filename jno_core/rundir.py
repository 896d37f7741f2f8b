"""Run directories: created atomically, locked while a run writes to them, files replaced
atomically.

* :func:`make_run_dir` creates ``<base>/<stem>/<timestamp>`` with ``mkdir`` (no
  ``exist_ok``): two processes started in the same second never share a directory, the second
  gets ``<timestamp>-1`` (then ``-2``, ...). A directory named by the user (``name=``) may
  already exist (a resumed run) and is reused.
* :class:`RunLock` takes an exclusive ``flock`` on ``<run dir>/.jno.lock`` for the life of the
  run; a second process opening the same directory gets a clear error naming the holder's pid
  instead of mixing two runs' metrics, configs and checkpoints. The lock goes away with the
  process (also on ``kill -9``).
* :func:`atomic_write_text` writes a file under a temporary name (never through a symbolic
  link), ``fsync``-s it and renames it over the target; on failure (a full disk) the temporary
  file is removed and the error returned, so the caller decides whether it is fatal.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import ConfigError

__all__ = ["make_run_dir", "RunLock", "atomic_write_text", "LOCK_FILE"]

LOCK_FILE = ".jno.lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def make_run_dir(base: Path, stem: str, name: str | None, timestamp: str) -> tuple[Path, bool]:
    """``(run dir, created)``: ``base/stem/name`` (created if missing), or a new
    ``base/stem/<timestamp>[-n]`` made atomically when ``name`` is None."""
    group = base / stem
    group.mkdir(parents=True, exist_ok=True)
    if name is not None:
        d = group / name
        try:
            d.mkdir()
            return d, True
        except FileExistsError:
            if not d.is_dir() or d.is_symlink():
                raise ConfigError(f"run directory {d} exists and is not a directory jno can use (a file or a "
                                  "symbolic link); choose another name= or remove it.") from None
            return d, False
    for i in range(0, 10_000):
        d = group / (timestamp if i == 0 else f"{timestamp}-{i}")
        try:
            d.mkdir()
            return d, True
        except FileExistsError:
            continue
    raise ConfigError(f"could not create a new run directory under {group} (10,000 names taken); pass name=.")


class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` or process exit."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        self.path = Path(run_dir) / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            except OSError:
                holder = "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"run directory {run_dir} is in use by another jno process (pid {holder}); two runs in one "
                    "directory would mix their metrics, config and checkpoints. Choose another name= (or none: "
                    "each run then gets its own timestamped directory), or wait for that run to finish."
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def atomic_write_text(path: Path, text: str, fsync: bool = True) -> OSError | None:
    """Replace ``path`` with ``text`` atomically; ``None`` on success, else the error (the
    temporary file removed, ``path`` left as it was)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            data = text.encode("utf-8")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return exc
    return None
