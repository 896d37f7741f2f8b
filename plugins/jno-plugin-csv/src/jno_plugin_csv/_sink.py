"""The ``csv`` sink: crash-safe files in the run directory.

The layout is defined in :mod:`jno_core.replay` (which also reads it back): scalars are rows
appended to ``metrics.csv``; heatmaps, histograms and arrays go to compressed files
``arrays/<key>/<first step>-<last step>.npz``, one per key and delivery
(:mod:`jno_core.arrayfile`). Every delivery (a
``log_metrics`` call, or a ``log_metrics_batch`` call with everything the delivery thread had
queued) writes ``metrics.csv`` with one ``write`` and ends with the files flushed to the
operating system, so a killed process keeps everything it logged: readers ignore a killed
writer's incomplete last line (reopening the run cuts it off), and array files get their name
only when complete. ``fsync`` (off by default) also makes each delivery durable against a
power loss.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import numpy as np

from jno_core.api import TMP_PREFIX, ArrayRecord, encode_array_file, file_name, parse_name, read_array_file
from jno_core.api import hookimpl
from jno_core.api import Array, Heatmap, Histogram, Scalar, as_metric
from jno_core.api import (
    ARRAYS_DIR,
    CHECKPOINTS_FILE,
    CHECKPOINTS_HEADER,
    METRICS_FILE,
    METRICS_HEADER,
    array_dirname,
)

__all__ = ["CsvSink"]


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_run_file(path: Path, flags: int) -> int:
    """A descriptor of the run file ``path``, never through a symbolic link and only for a
    regular file: a reused run directory whose ``metrics.csv`` links elsewhere must not make the
    sink truncate or append to the link's target."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise PermissionError(
                f"the csv sink refuses to write {path}: it is a symbolic link (to {os.readlink(path)!r}) and run "
                "files are never written through links. Remove the link or use a new run directory."
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PermissionError(f"the csv sink refuses to write {path}: it is not a regular file. Remove it or use a "
                              "new run directory.")
    return fd


def _drop_partial_line(path: Path) -> int:
    """Cut a killed writer's unterminated last line off ``path``; return the new size."""
    with open(_open_run_file(path, os.O_RDWR), "r+b") as raw:
        size = raw.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            raw.seek(start)
            chunk = raw.read(end - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            end = start
        else:
            keep = 0
        if keep != size:
            raw.truncate(keep)
        return keep


def _open_append(path: Path, header: tuple[str, ...]) -> IO[str]:
    """Open ``path`` for appending (not through a symbolic link); write ``header`` if the file
    is new or empty. A partial last line (left by a killed writer; readers ignore it) is
    removed first."""
    size = _drop_partial_line(path) if (path.exists() or path.is_symlink()) else 0
    fh = open(_open_run_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", encoding="utf-8", newline="")
    if size == 0:
        csv.writer(fh, lineterminator="\n").writerow(header)
    return fh


def _csv_field(text: str) -> str:
    """``text`` as ``csv.writer`` writes a field (quoted when it holds ``,``, ``"`` or a line
    break)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow((text,))
    return buf.getvalue()[:-1]


_METRIC_TYPES = (Scalar, Heatmap, Histogram, Array)
#: ``close_run`` fsyncs up to this many array files one by one, and calls ``os.sync`` beyond
#: (each fsync costs time and a long run writes thousands of files; see benchmarks/README.md)
MAX_FSYNC_AT_CLOSE = 256


def _fsync_path(path: Path) -> None:
    """``fsync`` a file, or a directory (which makes the names made in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy/JAX scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001
        return str(value)
    if arr.dtype.kind in "biuf":
        return arr.tolist()
    return str(value)


class CsvSink:
    """Write a run's metrics to ``metrics.csv`` and ``arrays/``, checkpoints to
    ``checkpoints.csv``.

    :param run: the :class:`jno_core.run.Run`; files go to ``run.dir``.
    Options (``run.sink_options["csv"]``, e.g. ``[sink_options.csv]`` in ``jno.toml``):
    ``fsync`` (default ``False``): also ``os.fsync`` the files written by every delivery, so a
    power loss or an operating-system crash cannot lose them either (a killed process loses
    nothing either way: every delivery is flushed). An ``fsync`` costs milliseconds on many
    disks, more than a delivery's own work.
    """

    plugin_name = "csv"

    def __init__(self, run: Any) -> None:
        opts = dict((getattr(run, "sink_options", None) or {}).get("csv", {}) or {})
        unknown = sorted(set(opts) - {"fsync"})
        if unknown:
            raise TypeError(
                f"the csv sink received unknown option(s) {unknown}; expected only 'fsync'. "
                "Fix the [sink_options.csv] table of jno.toml."
            )
        self.fsync = bool(opts.get("fsync", False))
        self.dir = Path(run.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / METRICS_FILE
        self.arrays_dir = self.dir / ARRAYS_DIR
        if self.arrays_dir.is_symlink():
            raise PermissionError(f"the csv sink refuses to write into {self.arrays_dir}: it is a symbolic link. "
                                  "Remove the link or use a new run directory.")
        self.checkpoints_path = self.dir / CHECKPOINTS_FILE
        self._lock = threading.Lock()
        self._metrics: IO[str] | None = _open_append(self.metrics_path, METRICS_HEADER)
        self._checkpoints: IO[str] | None = None
        self._fields: dict[str, str] = {}  # key -> its CSV field
        self._array_dirs: dict[str, tuple[Path, set[str]]] = {}  # key -> folder, its file names
        self._unsynced: list[Path] = []  # array files close_run makes durable (at most MAX_...)
        self._n_unsynced = 0
        self._sync(self._metrics)

    # ------------------------------------------------------------------ helpers
    def _sync(self, fh: IO[Any] | None) -> None:
        if fh is None or fh.closed:
            return
        fh.flush()
        if self.fsync:
            os.fsync(fh.fileno())

    def _require_open(self) -> IO[str]:
        if self._metrics is None:
            raise RuntimeError(
                f"the csv sink of {self.dir} was closed (close_run) and received more metrics; "
                "expected no calls after close_run. Open a new run with jno.setup()."
            )
        return self._metrics

    def _field(self, key: str) -> str:
        f = self._fields.get(key)
        if f is None:
            f = self._fields[key] = _csv_field(key)
        return f

    def _array_dir(self, key: str) -> tuple[Path, set[str]]:
        """The folder of ``key`` and the names of its files: ``arrays/<name>``, or
        ``<name>~<n>`` when another key owns that name. An existing folder of ``key`` (a
        resumed run) is scanned once, and a killed writer's temporary files are removed."""
        found = self._array_dirs.get(key)
        if found is not None:
            return found
        base, n = array_dirname(key), 1
        taken = {d for d, _ in self._array_dirs.values()}
        while True:
            folder = self.arrays_dir / (base if n == 1 else f"{base}~{n}")
            n += 1
            if folder in taken:
                continue
            names: set[str] = set()
            owner = None
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.name.startswith(TMP_PREFIX):
                        os.unlink(entry.path)
                        continue
                    if parse_name(entry.name) is None:
                        continue
                    names.add(entry.name)
                    if owner is None:
                        try:
                            owner = read_array_file(entry.path)[0]
                        except Exception:  # noqa: BLE001 - a damaged file says nothing of its owner
                            pass
            if owner is None or owner == key:
                folder.mkdir(parents=True, exist_ok=True)
                break
        found = self._array_dirs[key] = (folder, names)
        return found

    def _write_array(self, key: str, records: list[ArrayRecord]) -> Path:
        """Write one key's records of a delivery to one file: under a temporary name, then
        hard-linked to its name, which never replaces an existing file (a name another
        process took meanwhile gets the next ``~<n>``)."""
        data = encode_array_file(key, records)
        folder, names = self._array_dir(key)
        steps = [r[0] for r in records]
        first, last, n = min(steps), max(steps), 1
        while (name := file_name(first, last, n)) in names:
            n += 1
        tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)  # a full disk: leave no partial file taking space
            raise
        os.close(fd)
        while True:
            names.add(name)
            target = folder / name
            try:
                os.link(tmp, target)
                os.unlink(tmp)
                break
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: rename, after a last look
                if not target.exists():
                    os.replace(tmp, target)
                    break
            while (name := file_name(first, last, n)) in names:
                n += 1
        if not self.fsync:
            self._n_unsynced += 1
            if self._n_unsynced <= MAX_FSYNC_AT_CLOSE:
                self._unsynced.append(folder / name)
        return folder

    def _write(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Write ``records``: the scalars with one ``write`` of ``metrics.csv``, flushed (and
        ``fsync``-ed), then each key's array values to one file."""
        metrics_fh = self._require_open()
        lines: list[str] = []
        arrays: dict[str, list[ArrayRecord]] = {}
        for step, metrics in records:
            step = int(step)
            for key, raw in metrics.items():
                value = raw if type(raw) in _METRIC_TYPES else as_metric(raw, key=key, source="csv sink")
                kind = value.kind
                if kind == "scalar":
                    lines.append(f"{step},{self._field(key)},{float(value.value)!r}\n")
                else:
                    arrays.setdefault(key, []).append((step, kind, value.values, getattr(value, "bins", None)))
        if lines:
            metrics_fh.write("".join(lines))
            self._sync(metrics_fh)
        folders = {self._write_array(key, recs) for key, recs in arrays.items()}
        if self.fsync:
            for folder in folders:  # the new names
                _fsync_path(folder)

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append scalars to ``metrics.csv`` (flushed, and ``fsync``-ed with the ``fsync``
        option) and write other values to ``arrays/<key>/<step>.npz`` files.
        ``nan``/``inf`` are written as ``nan``/``inf``."""
        with self._lock:
            self._write(((step, metrics),))

    @hookimpl
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Like :meth:`log_metrics` for every ``(step, metrics)`` record, with one write and one
        flush of ``metrics.csv`` and one array file per key for the whole batch."""
        with self._lock:
            self._write(records)

    @hookimpl
    def save_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> None:
        """Append ``epoch,path,timestamp,metadata-as-JSON`` to ``checkpoints.csv``."""
        with self._lock:
            self._require_open()
            if self._checkpoints is None:
                self._checkpoints = _open_append(self.checkpoints_path, CHECKPOINTS_HEADER)
            meta = _jsonable(dict(metadata))
            ts = meta.get("timestamp") if isinstance(meta.get("timestamp"), (int, float)) else time.time()
            csv.writer(self._checkpoints, lineterminator="\n").writerow(
                (int(epoch), str(path), repr(float(ts)), json.dumps(meta, sort_keys=True))
            )
            self._sync(self._checkpoints)

    @hookimpl
    def flush_metrics(self) -> None:
        """Flush (and with the ``fsync`` option ``fsync``) the open files (array files are
        complete when they appear)."""
        with self._lock:
            for fh in (self._metrics, self._checkpoints):
                self._sync(fh)

    @hookimpl
    def close_run(self) -> None:
        """Flush, ``fsync`` and close the files; ``fsync`` the array files written since the
        sink opened and their folders (``os.sync`` when there are more than
        :data:`MAX_FSYNC_AT_CLOSE`) (idempotent)."""
        with self._lock:
            for fh in (self._metrics, self._checkpoints):
                if fh is not None and not fh.closed:
                    fh.flush()
                    os.fsync(fh.fileno())
                    fh.close()
            if self._metrics is not None:
                if self._n_unsynced > MAX_FSYNC_AT_CLOSE:
                    os.sync()
                else:
                    for path in self._unsynced:
                        _fsync_path(path)
                    for folder in {d for d, _ in self._array_dirs.values()}:
                        _fsync_path(folder)
                self._unsynced.clear()
                self._n_unsynced = 0
            self._metrics = None
            self._checkpoints = None

    def __repr__(self) -> str:
        return f"CsvSink({str(self.dir)!r})"
