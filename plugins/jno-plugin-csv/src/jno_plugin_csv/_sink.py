"""The ``csv`` sink: append-only, crash-safe files in the run directory.

The layout is defined in :mod:`jno_core.replay` (which also reads it back): scalars are rows of
``metrics.csv``, heatmaps, histograms and arrays are appended to one ``arrays/<key>.npys``
file per key. Every delivery (a ``log_metrics`` call, or a ``log_metrics_batch`` call with
everything the delivery thread had queued) is written with one ``write`` per file and ends with
the files flushed to the operating system, so a killed process keeps everything it logged;
readers ignore a killed writer's incomplete last line or array record, and reopening the run
cuts it off. ``fsync`` (off by default) also makes each delivery durable against a power loss.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import numpy as np

from jno_core._arrayfile import encode_key, encode_record, read_array_file
from jno_core.hookspecs import hookimpl
from jno_core.metrics import Array, Heatmap, Histogram, Scalar, as_metric
from jno_core.replay import (
    ARRAYS_DIR,
    ARRAY_SUFFIX,
    CHECKPOINTS_FILE,
    CHECKPOINTS_HEADER,
    METRICS_FILE,
    METRICS_HEADER,
    array_dirname,
)

__all__ = ["CsvSink"]


def _drop_partial_line(path: Path) -> int:
    """Cut a killed writer's unterminated last line off ``path``; return the new size."""
    with open(path, "r+b") as raw:
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
    """Open ``path`` for appending; write ``header`` if the file is new or empty. A partial
    last line (left by a killed writer; readers ignore it) is removed first."""
    size = _drop_partial_line(path) if path.exists() else 0
    fh = open(path, "a", encoding="utf-8", newline="")
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
#: the most array files kept open at once (the least recently opened is closed beyond it)
MAX_OPEN_ARRAY_FILES = 128


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
        self.checkpoints_path = self.dir / CHECKPOINTS_FILE
        self._lock = threading.Lock()
        self._metrics: IO[str] | None = _open_append(self.metrics_path, METRICS_HEADER)
        self._checkpoints: IO[str] | None = None
        self._fields: dict[str, str] = {}  # key -> its CSV field
        self._array_paths: dict[str, Path] = {}  # key -> its file (checked or created here)
        self._array_files: dict[str, IO[bytes]] = {}  # key -> open handle (at most MAX_OPEN_...)
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

    def _array_path(self, key: str) -> Path:
        """The file of ``key``: ``arrays/<name>.npys``, or ``<name>~<n>.npys`` when another
        key already owns that name. An existing file of ``key`` (a resumed run) loses a killed
        writer's incomplete last record."""
        path = self._array_paths.get(key)
        if path is not None:
            return path
        self.arrays_dir.mkdir(parents=True, exist_ok=True)
        base, n = array_dirname(key), 1
        taken = {p for k, p in self._array_paths.items()}
        while True:
            path = self.arrays_dir / (base + ARRAY_SUFFIX if n == 1 else f"{base}~{n}{ARRAY_SUFFIX}")
            n += 1
            if path in taken:
                continue
            if not path.exists() or path.stat().st_size == 0:
                with open(path, "wb") as fh:
                    fh.write(encode_key(key))
                break
            owner, _, end = read_array_file(path)
            if owner is None:  # not even the key was written: start it again
                with open(path, "wb") as fh:
                    fh.write(encode_key(key))
                break
            if owner == key:
                if end != path.stat().st_size:
                    os.truncate(path, end)
                break
        self._array_paths[key] = path
        return path

    def _array_file(self, key: str) -> IO[bytes]:
        fh = self._array_files.get(key)
        if fh is None:
            if len(self._array_files) >= MAX_OPEN_ARRAY_FILES:
                oldest = next(iter(self._array_files))
                self._array_files.pop(oldest).close()
            fh = self._array_files[key] = open(self._array_path(key), "ab")
        return fh

    def _write(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Write ``records`` with one ``write`` per file, then flush (and ``fsync``)."""
        metrics_fh = self._require_open()
        lines: list[str] = []
        arrays: dict[str, list[bytes]] = {}
        for step, metrics in records:
            step = int(step)
            for key, raw in metrics.items():
                value = raw if type(raw) in _METRIC_TYPES else as_metric(raw, key=key, source="csv sink")
                kind = value.kind
                if kind == "scalar":
                    lines.append(f"{step},{self._field(key)},{float(value.value)!r}\n")
                else:
                    arrays.setdefault(key, []).append(
                        encode_record(step, kind, value.values, getattr(value, "bins", None)))
        touched: list[IO[Any]] = []
        for key, parts in arrays.items():
            fh = self._array_file(key)
            fh.write(b"".join(parts))
            touched.append(fh)
        if lines:
            metrics_fh.write("".join(lines))
            touched.append(metrics_fh)
        for fh in touched:
            self._sync(fh)

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append scalars to ``metrics.csv`` and other values to their ``arrays/<key>.npys``
        files, then flush (and ``fsync`` with the ``fsync`` option). ``nan``/``inf`` are written
        as ``nan``/``inf``."""
        with self._lock:
            self._write(((step, metrics),))

    @hookimpl
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Like :meth:`log_metrics` for every ``(step, metrics)`` record, with one write and one
        flush per file for the whole batch."""
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
        """Flush (and with the ``fsync`` option ``fsync``) the open files."""
        with self._lock:
            for fh in (self._metrics, self._checkpoints, *self._array_files.values()):
                self._sync(fh)

    @hookimpl
    def close_run(self) -> None:
        """Flush, ``fsync`` and close the files (idempotent)."""
        with self._lock:
            for fh in (self._metrics, self._checkpoints, *self._array_files.values()):
                if fh is not None and not fh.closed:
                    fh.flush()
                    os.fsync(fh.fileno())
                    fh.close()
            self._metrics = None
            self._checkpoints = None
            self._array_files.clear()

    def __repr__(self) -> str:
        return f"CsvSink({str(self.dir)!r})"
