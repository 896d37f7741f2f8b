"""Off-thread metrics delivery.

The training thread puts ``(step, metrics)`` batches on a bounded queue; one daemon thread
hands them to every sink's ``log_metrics`` in order. A sink that raises is reported once
(naming the plugin) and skipped for the rest of the run; the other sinks still get everything.
In strict mode the first sink error is re-raised on the training thread at the next
``put``/``flush``.
"""

from __future__ import annotations

import queue
import sys
import threading
import traceback
import warnings
from typing import Any, Mapping

from .errors import JnoPluginError

__all__ = ["MetricsBus"]

_STOP = object()


class MetricsBus:
    """A bounded queue and a delivery thread feeding a list of sinks."""

    def __init__(self, *, strict: bool = False, maxsize: int = 1024) -> None:
        self.strict = strict
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._sinks: list[tuple[Any, str]] = []
        self._failed: dict[str, BaseException] = {}
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.delivered_steps: list[int] = []

    # ------------------------------------------------------------------ set-up
    def add_sink(self, sink: Any, label: str) -> None:
        self._sinks.append((sink, label))

    @property
    def sinks(self) -> list[tuple[Any, str]]:
        return list(self._sinks)

    @property
    def failed(self) -> dict[str, BaseException]:
        """``label -> exception`` for sinks that raised (and were then skipped)."""
        return dict(self._failed)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._worker, name="jno-metrics", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ training thread
    def put(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Queue one batch (blocks only when the queue is full). In strict mode a pending
        sink error is raised after the batch was queued, so the other sinks still get it."""
        if not self._closed and self._sinks:
            self._ensure_thread()
            self._q.put(("log", step, dict(metrics)))
        self._raise_pending()

    def put_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> None:
        if not self._closed and self._sinks:
            self._ensure_thread()
            self._q.put(("ckpt", path, epoch, dict(metadata)))
        self._raise_pending()

    def flush(self) -> None:
        """Wait until everything queued was delivered and every sink flushed."""
        if self._sinks and not self._closed:
            self._ensure_thread()
            done = threading.Event()
            self._q.put(("flush", done))
            done.wait()
        self._raise_pending()

    def close(self) -> None:
        if self._closed:
            return
        if self._sinks:
            self._ensure_thread()
            done = threading.Event()
            self._q.put(("close", done))
            done.wait()
            self._q.put(_STOP)
        self._closed = True

    def _raise_pending(self) -> None:
        if self._error is not None and self.strict:
            err, self._error = self._error, None
            raise err

    # ------------------------------------------------------------------ delivery thread
    def _call(self, method: str, *args: Any) -> None:
        for sink, label in self._sinks:
            if label in self._failed:
                continue
            fn = getattr(sink, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - isolate every sink
                self._failed[label] = exc
                msg = (
                    f"jno sink {label} failed in {method} and is skipped for the rest of this "
                    f"run; the other sinks keep receiving metrics. {type(exc).__name__}: {exc}"
                )
                if self.strict:
                    self._error = JnoPluginError(msg)
                    self._error.__cause__ = exc
                else:
                    warnings.warn(msg, RuntimeWarning, stacklevel=1)
                    print(msg, file=sys.stderr)
                    traceback.print_exception(exc, file=sys.stderr, limit=3)

    def _worker(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            kind = item[0]
            if kind == "log":
                _, step, metrics = item
                self._call("log_metrics", step, metrics)
                self.delivered_steps.append(step)
            elif kind == "ckpt":
                _, path, epoch, meta = item
                self._call("save_checkpoint", path, epoch, meta)
            elif kind == "flush":
                self._call("flush_metrics")
                item[1].set()
            elif kind == "close":
                self._call("flush_metrics")
                self._call("close_run")
                item[1].set()
