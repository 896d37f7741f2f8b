"""The ``csv`` sink: append-only, crash-safe files in the run directory.

The layout is defined in :mod:`jno_core.replay` (which also reads it back). Every
``log_metrics`` call ends with the rows flushed and ``fsync``-ed, and array files are written
to a temporary name and renamed, so a killed process keeps everything it logged and never
leaves a half-written array file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Mapping

import numpy as np

from jno_core.hookspecs import hookimpl
from jno_core.metrics import as_metric
from jno_core.replay import (
    ARRAYS_DIR,
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
    ``fsync`` (default ``True``): ``os.fsync`` the files after every ``log_metrics`` call;
    ``False`` only flushes Python's buffer (faster on slow network file systems, but a power
    loss may lose the last rows; a killed process loses nothing either way).
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
        self.fsync = bool(opts.get("fsync", True))
        self.dir = Path(run.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / METRICS_FILE
        self.arrays_dir = self.dir / ARRAYS_DIR
        self.checkpoints_path = self.dir / CHECKPOINTS_FILE
        self._lock = threading.Lock()
        self._metrics: IO[str] | None = _open_append(self.metrics_path, METRICS_HEADER)
        self._writer = csv.writer(self._metrics, lineterminator="\n")
        self._checkpoints: IO[str] | None = None
        self._sync(self._metrics)

    # ------------------------------------------------------------------ helpers
    def _sync(self, fh: IO[str] | None) -> None:
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

    def _write_array(self, key: str, step: int, kind: str, values: Any, bins: int | None) -> None:
        folder = self.arrays_dir / array_dirname(key)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{int(step):08d}.npz"
        payload: dict[str, Any] = {
            "values": np.asarray(values),
            "kind": np.asarray(kind),
            "key": np.asarray(key),
            "step": np.asarray(int(step), dtype=np.int64),
        }
        if bins is not None:
            payload["bins"] = np.asarray(int(bins), dtype=np.int64)
        buf = io.BytesIO()
        np.savez_compressed(buf, **payload)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append scalars to ``metrics.csv`` and save other values as ``.npz`` files, then
        flush (and ``fsync``). ``nan``/``inf`` are written as ``nan``/``inf``."""
        with self._lock:
            self._require_open()
            step = int(step)
            for key, raw in metrics.items():
                value = as_metric(raw, key=key, source="csv sink")
                kind = getattr(value, "kind", "array")
                if kind == "scalar":
                    v = float(value.value)
                    self._writer.writerow((step, key, repr(v)))
                else:
                    self._write_array(key, step, kind, value.values, getattr(value, "bins", None))
            self._sync(self._metrics)

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
        """Flush and ``fsync`` the open files."""
        with self._lock:
            self._sync(self._metrics)
            self._sync(self._checkpoints)

    @hookimpl
    def close_run(self) -> None:
        """Flush and close the files (idempotent)."""
        with self._lock:
            for fh in (self._metrics, self._checkpoints):
                if fh is not None and not fh.closed:
                    self._sync(fh)
                    fh.close()
            self._metrics = None
            self._checkpoints = None

    def __repr__(self) -> str:
        return f"CsvSink({str(self.dir)!r})"
