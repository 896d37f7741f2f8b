"""The ``tensorboard`` sink: one TensorBoard event file per run, written with tensorboardX.

Events are built with ``tensorboardX.summary`` and written synchronously with
``tensorboardX.event_file_writer.EventsWriter`` on the metrics delivery thread (jno's
delivery thread is already off the training loop). ``SummaryWriter`` is not used: its
``flush()`` does not wait for its background thread, so events could still be missing from
disk after a flush; here every ``log_metrics`` call ends with the file flushed, so a killed
run keeps what it logged.

How each metric type is rendered:

* :class:`~jno_core.metrics.Scalar` -> a scalar event (``nan``/``inf`` kept), as
  ``SummaryWriter.add_scalar`` writes it;
* :class:`~jno_core.metrics.Heatmap` -> an RGB image (as ``add_image(..., dataformats="HWC")``):
  the values colour-mapped by :func:`jno_core.colormap.heatmap_to_rgb` (minimum dark purple,
  maximum yellow, non-finite cells magenta, small arrays enlarged by pixel repetition);
* :class:`~jno_core.metrics.Histogram` -> a histogram with ``metric.bins`` bins
  (as ``add_histogram``);
* :class:`~jno_core.metrics.Array` -> a histogram of the flattened values with
  ``min(64, size)`` bins. Arrays are *not* split into one scalar per index (a 100-eigenvalue
  spectrum would create 100 tags); the exact values are kept by the ``csv`` sink.

Histograms drop non-finite values (TensorBoard cannot bin them); a value with no finite entry
is skipped with a warning.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jno_core.colormap import heatmap_to_rgb
from jno_core.hookspecs import hookimpl
from jno_core.metrics import as_metric

__all__ = ["TensorBoardSink", "import_tensorboardx", "ARRAY_MAX_BINS", "OPTIONS"]

#: the most bins of an :class:`~jno_core.metrics.Array` rendered as a histogram
ARRAY_MAX_BINS = 64
#: the options the sink accepts
OPTIONS = ("logdir", "filename_suffix")


def import_tensorboardx() -> tuple[Any, Any, Any]:
    """``(tensorboardX.summary, EventsWriter, Event)``, or an ImportError that says how to
    install them."""
    try:
        from tensorboardX import summary
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
    except ImportError as exc:
        raise ImportError(
            "the jno 'tensorboard' sink (distribution jno-plugin-tensorboard, "
            "plugins/jno-plugin-tensorboard) needs the tensorboardX package, which could not be "
            f"imported ({exc}). Fix: pip install tensorboardX pillow (or pip install -e "
            "plugins/jno-plugin-tensorboard), or drop 'tensorboard' from the run's sinks."
        ) from exc
    return summary, EventsWriter, Event


class TensorBoardSink:
    """Write a run's metrics as TensorBoard events under ``<run.dir>/tensorboard``.

    :param run: the :class:`jno_core.run.Run`.
    Options (``jno.setup(tensorboard={...})`` or ``[sink_options.tensorboard]`` in
    ``jno.toml``): ``logdir`` (default ``"tensorboard"``, relative to the run directory) and
    ``filename_suffix`` (appended to the event file's name; default a unique
    ``.<pid>-<random>`` so two writers never share a file).
    :ivar path: the event file.
    """

    plugin_name = "tensorboard"

    def __init__(self, run: Any) -> None:
        summary, events_writer, event_cls = import_tensorboardx()
        opts = dict((getattr(run, "sink_options", None) or {}).get("tensorboard", {}) or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise TypeError(
                f"the tensorboard sink received unknown option(s) {unknown}; expected only "
                f"{list(OPTIONS)}. Fix the tensorboard={{...}} options of jno.setup or the "
                "[sink_options.tensorboard] table of jno.toml."
            )
        logdir = Path(opts.get("logdir", "tensorboard"))
        self.logdir = logdir if logdir.is_absolute() else Path(run.dir) / logdir
        self.logdir.mkdir(parents=True, exist_ok=True)
        suffix = str(opts.get("filename_suffix", f".{os.getpid()}-{uuid.uuid4().hex[:8]}"))
        self._summary = summary
        self._event = event_cls
        self._writer = events_writer(str(self.logdir / "events"), suffix)
        self.path = Path(self._writer._file_name) if hasattr(self._writer, "_file_name") else self.logdir
        self._lock = threading.Lock()
        self._closed = False
        self._skipped: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def _emit(self, summary: Any, step: int) -> None:
        self._writer.write_event(self._event(wall_time=time.time(), step=step, summary=summary))

    def _histogram(self, key: str, values: Any, step: int, bins: int) -> Any:
        flat = np.asarray(values, dtype=np.float64).ravel()
        finite = flat[np.isfinite(flat)]
        if finite.size == 0:
            if key not in self._skipped:
                self._skipped.add(key)
                warnings.warn(
                    f"tensorboard sink: {key!r} at step {step} has no finite values "
                    f"({flat.size} entries); its histogram is skipped (further skips of this key "
                    "are silent).",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return None
        return self._summary.histogram(key, finite, bins=int(max(1, bins)))

    def _render(self, key: str, raw: Any, step: int) -> Any:
        value = as_metric(raw, key=key, source="tensorboard sink")
        kind = getattr(value, "kind", "array")
        if kind == "scalar":
            return self._summary.scalar(key, float(value.value))
        if kind == "heatmap":
            img, _, _ = heatmap_to_rgb(value.values)
            return self._summary.image(key, img, dataformats="HWC")
        if kind == "histogram":
            return self._histogram(key, value.values, step, value.bins)
        n = int(np.size(value.values))
        return self._histogram(key, value.values, step, min(ARRAY_MAX_BINS, max(1, n)))

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write each metric as a scalar, image or histogram event at ``step``, then flush."""
        with self._lock:
            if self._closed:
                raise RuntimeError(
                    f"the tensorboard sink of {self.logdir} was closed (close_run) and received "
                    "more metrics; expected no calls after close_run. Open a new run with "
                    "jno.setup()."
                )
            step = int(step)
            for key, raw in metrics.items():
                summary = self._render(key, raw, step)
                if summary is not None:
                    self._emit(summary, step)
            self._writer.flush()

    @hookimpl
    def flush_metrics(self) -> None:
        """Write buffered events to disk."""
        with self._lock:
            if not self._closed:
                self._writer.flush()

    @hookimpl
    def close_run(self) -> None:
        """Flush and close the event file (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.logdir)!r})"
