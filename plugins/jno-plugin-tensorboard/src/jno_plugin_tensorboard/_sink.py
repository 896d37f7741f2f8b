"""The ``tensorboard`` sink: one TensorBoard event file per run.

Events are TensorBoard's ``Event``/``Summary`` protocol buffers (the classes tensorboardX
ships), written by this module as TFRecords (length, masked CRC-32C, payload, masked CRC-32C;
the checksum computed by ``google-crc32c``'s C code, or by tensorboardX's own when that is
missing: its pure-Python fallback cost more than the training loop) on the metrics delivery
thread, off the training loop. ``SummaryWriter`` is not used:
its ``flush()`` does not wait for its background thread, so events could still be missing from
disk after a flush. Every delivery (a ``log_metrics`` call, or a ``log_metrics_batch`` call with
everything the delivery thread had queued) writes one event per record, holding all of that
record's values in one ``Summary``, with one ``write`` and ends with the file flushed to the
operating system, so a killed run keeps what it logged; ``close_run`` also ``fsync``s it.

How each metric type is rendered:

* :class:`~jno_core.metrics.Scalar` -> a scalar value (``simple_value``; ``nan``/``inf`` kept),
  as ``SummaryWriter.add_scalar`` writes it;
* :class:`~jno_core.metrics.Heatmap` -> an RGB PNG image (as ``add_image(...,
  dataformats="HWC")``): the values colour-mapped by :func:`jno_core.colormap.heatmap_to_rgb`
  (minimum dark purple, maximum yellow, non-finite cells magenta, small arrays enlarged by pixel
  repetition) and encoded by :func:`jno_core.colormap.encode_png`;
* :class:`~jno_core.metrics.Histogram` -> a histogram with ``metric.bins`` bins
  (as ``add_histogram``: empty outer buckets trimmed, one empty bucket on the left);
* :class:`~jno_core.metrics.Array` -> a histogram of the flattened values with
  ``min(64, size)`` bins. Arrays are *not* split into one scalar per index (a 100-eigenvalue
  spectrum would create 100 tags); the exact values are kept by the ``csv`` sink.

Tags are cleaned as tensorboardX cleans them (characters other than letters, digits, ``-``,
``_``, ``.`` and ``/`` become ``_``; leading ``/`` dropped). Histograms drop non-finite values
(TensorBoard cannot bin them); a value with no finite entry is skipped with a warning.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jno_core.api import SMALL, finite_values, histogram_lists, histogram_of_list
from jno_core.api import encode_png, heatmap_to_rgb
from jno_core.api import hookimpl
from jno_core.api import Array, Heatmap, Histogram, Scalar, as_metric

__all__ = [
    "TensorBoardSink",
    "import_tensorboardx",
    "masked_crc32c_function",
    "histogram_proto",
    "ARRAY_MAX_BINS",
    "OPTIONS",
    "confined_logdir",
]

#: the most bins of an :class:`~jno_core.metrics.Array` rendered as a histogram
ARRAY_MAX_BINS = 64
#: the options the sink accepts
OPTIONS = ("logdir", "filename_suffix", "sync")
#: the suffix of the event file ``jno sync`` writes (one per logdir: a new sync replaces it)
SYNC_SUFFIX = ".jno-sync"
_INVALID_TAG_CHARACTERS = re.compile(r"[^-/\w\.]")
_METRIC_TYPES = (Scalar, Heatmap, Histogram, Array)


def confined_logdir(run_dir: Path, logdir: Any) -> Path:
    """``run_dir / logdir``, which must stay inside the run directory (no absolute path, no
    ``..`` leading out, no symbolic link pointing out)."""
    if not isinstance(logdir, (str, os.PathLike)) or not str(logdir).strip():
        raise ValueError(f"the tensorboard sink's logdir option must be a folder name, received {logdir!r}; "
                         "e.g. logdir = \"tensorboard\".")
    target = (run_dir / Path(logdir)).resolve()
    root = run_dir.resolve()
    if target != root and root not in target.parents:
        raise ValueError(
            f"the tensorboard sink's logdir {str(logdir)!r} points outside the run directory {root} (to {target}); "
            "expected a folder inside it, e.g. logdir = \"tensorboard\". Point TensorBoard at the runs folder "
            "instead (tensorboard --logdir runs) to see several runs together."
        )
    return target


def import_tensorboardx() -> tuple[Any, Any, Any, Any]:
    """``(Summary, HistogramProto, Event, masked_crc32c)`` from tensorboardX, or an ImportError
    that says how to install it."""
    try:
        import tensorboardX  # noqa: F401 - the package itself, before its cached submodules
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import HistogramProto, Summary
        from tensorboardX.record_writer import masked_crc32c
    except ImportError as exc:
        raise ImportError(
            "the jno 'tensorboard' sink (distribution jno-plugin-tensorboard, "
            "plugins/jno-plugin-tensorboard) needs the tensorboardX package, which could not be "
            f"imported ({exc}). Fix: pip install tensorboardX (or pip install -e "
            "plugins/jno-plugin-tensorboard), or drop 'tensorboard' from the run's sinks."
        ) from exc
    return Summary, HistogramProto, Event, masked_crc32c


def masked_crc32c_function() -> Callable[[bytes], int]:
    """The TFRecord checksum: CRC-32C of the data, rotated right by 15 bits plus
    ``0xA282EAD8`` (mod 2**32). Uses ``google_crc32c``'s C implementation when installed, else
    tensorboardX's (native with the ``crc32c`` package, pure Python otherwise)."""
    try:
        import google_crc32c

        value = google_crc32c.value if getattr(google_crc32c, "implementation", "c") == "c" else None
    except ImportError:
        value = None
    if value is None:
        return import_tensorboardx()[3]

    def masked(data: bytes) -> int:
        x = value(data)
        return (((x >> 15) | ((x << 17) & 0xFFFFFFFF)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked


def histogram_proto(proto_cls: Any, values: np.ndarray, bins: int) -> Any:
    """A ``HistogramProto`` of the finite ``values`` (non-empty, float64, flat) with ``bins``
    equal-width bins (:func:`jno_core.binning.histogram`, i.e. ``np.histogram``), built as
    tensorboardX's ``make_histogram`` builds it: TensorBoard keeps
    only right bucket limits, so the buckets from the first to the last non-empty one are kept,
    plus one bucket to their left (an empty one when the first bucket is not empty)."""
    if values.size + bins <= SMALL:  # all in plain Python: a few dozen values
        a = values.tolist()
        counts, limits = histogram_of_list(a, bins)
        vmin, vmax, total, squares = min(a), max(a), sum(a), sum(x * x for x in a)
    else:
        counts, limits = histogram_lists(values, bins)
        vmin, vmax = float(values.min()), float(values.max())
        total, squares = float(values.sum()), float(values.dot(values))
    start = next(i for i, c in enumerate(counts) if c)
    end = len(counts) - next(i for i, c in enumerate(reversed(counts)) if c)
    counts = counts[start - 1 : end] if start > 0 else [0] + counts[:end]
    return proto_cls(min=vmin, max=vmax, num=int(values.size), sum=total, sum_squares=squares,
                     bucket_limit=limits[start : end + 1], bucket=counts)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class TensorBoardSink:
    """Write a run's metrics as TensorBoard events under ``<run.dir>/tensorboard``.

    :param run: the :class:`jno_core.run.Run`.
    Options (``jno.setup(tensorboard={...})`` or ``[sink_options.tensorboard]`` in
    ``jno.toml``): ``logdir`` (default ``"tensorboard"``, relative to the run directory) and
    ``filename_suffix`` (appended to the event file's name; default a unique
    ``.<pid>-<random>`` so two writers never share a file). ``logdir`` must stay inside the
    run directory. ``sync`` (set by ``jno sync``, see :attr:`replay_options`): the events go
    to one ``*.jno-sync`` file per logdir, which a later sync replaces (written aside and
    renamed at ``close_run``), so syncing a run twice does not double its events.
    :ivar path: the event file (``events.out.tfevents.<unix time>.<host><suffix>``).
    """

    plugin_name = "tensorboard"
    #: options ``jno sync`` passes this sink (under the user's own)
    replay_options = {"sync": True}

    def __init__(self, run: Any) -> None:
        summary_cls, histogram_cls, event_cls, _ = import_tensorboardx()
        masked_crc = masked_crc32c_function()
        opts = dict((getattr(run, "sink_options", None) or {}).get("tensorboard", {}) or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise TypeError(
                f"the tensorboard sink received unknown option(s) {unknown}; expected only "
                f"{list(OPTIONS)}. Fix the tensorboard={{...}} options of jno.setup or the "
                "[sink_options.tensorboard] table of jno.toml."
            )
        self.logdir = confined_logdir(Path(run.dir), opts.get("logdir", "tensorboard"))
        self.logdir.mkdir(parents=True, exist_ok=True)
        suffix = str(opts.get("filename_suffix", f".{os.getpid()}-{uuid.uuid4().hex[:8]}"))
        if os.sep in suffix or (os.altsep and os.altsep in suffix):
            raise ValueError(f"the tensorboard sink's filename_suffix {suffix!r} contains a path separator; "
                             "expected a plain suffix such as '.v2'.")
        self.sync = bool(opts.get("sync", False))
        if self.sync:  # jno sync: written aside, renamed over the previous sync's file at close_run
            suffix = SYNC_SUFFIX
        self._summary = summary_cls
        self._value = summary_cls.Value
        self._image = summary_cls.Image
        self._histo = histogram_cls
        self._event = event_cls
        self._crc = masked_crc
        self.path = self.logdir / f"events.out.tfevents.{str(time.time())[:10]}.{socket.gethostname()}{suffix}"
        self._write_path = self.logdir / f".partial-{os.getpid()}{SYNC_SUFFIX}" if self.sync else self.path
        self._fh = open(os.open(self._write_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                                0o644), "ab")
        self._lock = threading.Lock()
        self._closed = False
        self._skipped: set[str] = set()
        self._tags: dict[str, str] = {}
        self._fh.write(self._record(event_cls(wall_time=time.time(), file_version="brain.Event:2")))
        self._session_end = self._write_hparams(getattr(run, "config", None) or {})
        self._fh.flush()

    def _write_hparams(self, config: Mapping[str, Any]) -> Any:
        """The run's hyperparameters (``config["user"]``: ``jno.setup(config=...)``, a sweep
        trial's values) for TensorBoard's HParams dashboard: the experiment and session-start
        summaries now (as ``SummaryWriter.add_hparams`` builds them, with
        ``tensorboardX.summary.hparams``), the session-end one at ``close_run``. Nested values
        are dotted (``optimizer.lr``); lists and other values become JSON strings. The metrics
        column is the sweep's metric (when a sweep runs the script) and ``loss/total``."""
        user = config.get("user") or {}
        if not user:
            return None
        from tensorboardX.summary import hparams

        flat = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v, default=str))
                for k, v in _flatten(user).items() if v is not None}
        metrics = ["loss/total"]
        sweep_metric = (config.get("sweep") or {}).get("metric")
        if isinstance(sweep_metric, str) and sweep_metric not in metrics:
            metrics.insert(0, sweep_metric)
        exp, ssi, sei = hparams(flat, {self._tag(m): 0.0 for m in metrics})
        now = time.time()
        for summary in (exp, ssi):
            self._fh.write(self._record(self._event(wall_time=now, step=0, summary=summary)))
        return sei

    # ------------------------------------------------------------------ helpers
    def _record(self, event: Any) -> bytes:
        """``event`` framed as a TFRecord: length, its masked CRC-32C, payload, its CRC."""
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        crc = self._crc
        return b"".join((header, struct.pack("<I", crc(header)), data, struct.pack("<I", crc(data))))

    def _tag(self, key: str) -> str:
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = _INVALID_TAG_CHARACTERS.sub("_", key).lstrip("/")
        return tag

    def _histogram(self, key: str, values: Any, step: int, bins: int) -> Any:
        finite = finite_values(values)
        if finite.size == 0:
            if key not in self._skipped:
                self._skipped.add(key)
                warnings.warn(
                    f"tensorboard sink: {key!r} at step {step} has no finite values "
                    f"({np.size(values)} entries); its histogram is skipped (further skips of this key "
                    "are silent).",
                    RuntimeWarning,
                    stacklevel=5,
                )
            return None
        return self._value(tag=self._tag(key), histo=histogram_proto(self._histo, finite, int(max(1, bins))))

    def _render(self, key: str, raw: Any, step: int) -> Any:
        """One ``Summary.Value`` for ``raw`` (``None`` when there is nothing to show)."""
        value = raw if type(raw) in _METRIC_TYPES else as_metric(raw, key=key, source="tensorboard sink")
        kind = value.kind
        if kind == "scalar":
            return self._value(tag=self._tag(key), simple_value=float(value.value))
        if kind == "heatmap":
            img, _, _ = heatmap_to_rgb(value.values)
            h, w, c = img.shape
            return self._value(tag=self._tag(key), image=self._image(
                height=h, width=w, colorspace=c, encoded_image_string=encode_png(img)))
        if kind == "histogram":
            return self._histogram(key, value.values, step, value.bins)
        n = int(np.size(value.values))
        return self._histogram(key, value.values, step, min(ARRAY_MAX_BINS, max(1, n)))

    def _write(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        if self._closed:
            raise RuntimeError(
                f"the tensorboard sink of {self.logdir} was closed (close_run) and received "
                "more metrics; expected no calls after close_run. Open a new run with "
                "jno.setup()."
            )
        out: list[bytes] = []
        now = time.time()
        for step, metrics in records:
            step = int(step)
            values = [v for v in (self._render(k, raw, step) for k, raw in metrics.items()) if v is not None]
            if values:
                out.append(self._record(self._event(wall_time=now, step=step,
                                                    summary=self._summary(value=values))))
        if out:
            self._fh.write(b"".join(out))
            self._fh.flush()

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write one event at ``step`` holding every metric (scalar, image or histogram), then
        flush."""
        with self._lock:
            self._write(((step, metrics),))

    @hookimpl
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Like :meth:`log_metrics` for every record, with one write and one flush."""
        with self._lock:
            self._write(records)

    @hookimpl
    def flush_metrics(self) -> None:
        """Write buffered events to the operating system."""
        with self._lock:
            if not self._closed:
                self._fh.flush()

    @hookimpl
    def close_run(self) -> None:
        """Flush, ``fsync`` and close the event file (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._session_end is not None:
                    self._fh.write(self._record(self._event(wall_time=time.time(), summary=self._session_end)))
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                if self.sync:  # one synced copy per logdir: syncing again does not double the events
                    for old in self.logdir.glob(f"events.out.tfevents.*{SYNC_SUFFIX}"):
                        old.unlink()
                    os.replace(self._write_path, self.path)

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.logdir)!r})"
