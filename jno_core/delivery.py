"""Off-thread metrics delivery.

The training thread puts ``(step, metrics)`` records on a bounded queue (a chunk's records as
one item: :meth:`MetricsBus.put_many`); one daemon thread
hands them to every sink in order. Each time it wakes up it takes everything queued so far and
delivers the consecutive records in one go: a sink implementing ``log_metrics_batch`` gets them
in one call (it writes and flushes once per batch), any other sink gets one ``log_metrics`` call
per record. ``save_checkpoint``, ``flush_metrics`` and ``close_run`` keep their place in the
order (a checkpoint between two records splits the batch there). A sink that raises is reported
once (naming the plugin) and skipped for the rest of the run; the other sinks still get
everything. In strict mode the first sink error is re-raised on the training thread at the
next ``put``/``flush``.

The delivery thread shares the GIL (and, on a small machine, a core) with the training
thread; batching keeps its Python work per step small (one call, one write and one flush per
batch rather than per step), and it releases the GIL between sinks (``time.sleep(0)``), a
point where a training thread that asked for it gets it without waiting out the interpreter's
switch interval.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Mapping, Sequence

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
        self._registered: list[Any] = []

    # ------------------------------------------------------------------ set-up
    def add_sink(self, sink: Any, label: str) -> None:
        """Feed ``sink`` (registered with the plugin manager if it is not: pluggy calls it)."""
        from .plugins import get_plugin_manager, register_plugin

        if not get_plugin_manager().is_registered(sink):
            register_plugin(sink)
            self._registered.append(sink)
        self._sinks.append((sink, label))

    def remove_sink(self, sink: Any) -> None:
        """Stop feeding ``sink`` (and unregister it if :meth:`add_sink` registered it)."""
        from .plugins import unregister_plugin

        self._sinks = [(s, label) for s, label in self._sinks if s is not sink]
        if any(s is sink for s in self._registered):
            self._registered = [s for s in self._registered if s is not sink]
            unregister_plugin(sink)

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
        """Queue one record (blocks only when the queue is full). In strict mode a pending
        sink error is raised after the record was queued, so the other sinks still get it."""
        self.put_many(((step, metrics),))

    def put_many(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Queue several records as one item (the delivery thread wakes once for all of them:
        the training loop hands over a chunk's records this way); otherwise as :meth:`put`."""
        if not self._closed and self._sinks and records:
            self._ensure_thread()
            self._q.put(("logs", [(step, dict(metrics)) for step, metrics in records]))
        self._raise_pending()

    def put_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> threading.Event | None:
        """Queue the ``save_checkpoint`` hook of the checkpoint at ``path``; returns an event
        set once every sink has run it (the files must stay until then: the checkpoint
        callback does not prune them before), or None when no sink will read them."""
        done = None
        if not self._closed and self._sinks:
            self._ensure_thread()
            done = threading.Event()
            self._q.put(("ckpt", path, epoch, dict(metadata), done))
        self._raise_pending()
        return done

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
        for sink in list(self._registered):
            self.remove_sink(sink)

    def _raise_pending(self) -> None:
        if self._error is not None and self.strict:
            err, self._error = self._error, None
            raise err

    # ------------------------------------------------------------------ delivery thread
    def _report(self, label: str, method: str, exc: BaseException) -> None:
        self._failed[label] = exc
        msg = (
            f"jno sink {label} failed in {method} and is skipped for the rest of this "
            f"run; the other sinks keep receiving metrics. {type(exc).__name__}: {exc}"
        )
        if self.strict:
            if self._error is None:
                self._error = JnoPluginError(msg)
                self._error.__cause__ = exc
        else:
            warnings.warn(msg, RuntimeWarning, stacklevel=1)
            print(msg, file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr, limit=3)

    def _live(self) -> list[Any]:
        return [sink for sink, label in self._sinks if label not in self._failed]

    def _label(self, plugin: Any) -> str:
        for sink, label in self._sinks:
            if sink is plugin:
                return label
        from .plugins import plugin_name

        return plugin_name(plugin)

    def _call(self, method: str, keep: Sequence[Any] | None = None, **kwargs: Any) -> None:
        """``pm.hook.<method>(**kwargs)`` for this bus's live sinks (``keep``: a subset of
        them) and every wrapper, through pluggy. A sink that raises is reported (and skipped
        from then on); the sinks pluggy had not reached yet in that call get the call again
        (wrappers then see it twice)."""
        from .dispatch import failing_impl, subset
        from .plugins import get_plugin_manager

        pm = get_plugin_manager()
        todo = list(self._live() if keep is None else keep)
        while True:
            caller = subset(pm, method, todo)
            impls = caller.get_hookimpls()
            if not impls:
                return
            try:
                caller(**kwargs)
                return
            except BaseException as exc:  # noqa: BLE001 - isolate every sink
                impl = failing_impl(impls, exc)
                if impl is None or impl.wrapper or impl.hookwrapper:
                    who = self._label(impl.plugin) if impl is not None else f"(a {method} hook wrapper)"
                    self._report(who, method, exc)
                    return
                self._report(self._label(impl.plugin), method, exc)
                # pluggy calls the implementations from the end of the list: those after the
                # failing one have run, those before it have not
                plain = [i for i in impls if not (i.wrapper or i.hookwrapper)]
                pos = next(k for k, i in enumerate(plain) if i is impl)
                todo = [i.plugin for i in plain[:pos]]

    def _deliver(self, records: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Hand ``records`` to every sink: the sinks implementing ``log_metrics_batch`` get
        them in one call, the others one ``log_metrics`` call per record (wrappers of
        ``log_metrics`` see every record)."""
        records = tuple(records)
        live = self._live()
        batch = [s for s in live if hasattr(s, "log_metrics_batch")]
        if batch:
            self._call("log_metrics_batch", batch, records=records)
        single = [s for s in self._live() if not hasattr(s, "log_metrics_batch")]
        from .plugins import get_plugin_manager

        if single or get_plugin_manager().hook.log_metrics.get_hookimpls():
            for step, metrics in records:
                self._call("log_metrics", single, step=step, metrics=metrics)
                single = [s for s in single if self._label(s) not in self._failed]
        time.sleep(0)  # let a waiting training thread take the GIL
        self.delivered_steps.extend(step for step, _ in records)

    def _process(self, items: list[Any]) -> bool:
        """Deliver ``items`` (taken off the queue in order); ``True`` when told to stop."""
        batch: list[tuple[int, dict[str, Any]]] = []
        for item in items:
            if item is not _STOP and item[0] == "logs":
                batch.extend(item[1])
                continue
            if batch:
                self._deliver(batch)
                batch = []
            if item is _STOP:
                return True
            kind = item[0]
            if kind == "ckpt":
                _, path, epoch, meta, done = item
                try:
                    self._call("save_checkpoint", path=path, epoch=epoch, metadata=meta)
                finally:
                    done.set()
            elif kind == "flush":
                self._call("flush_metrics")
                item[1].set()
            elif kind == "close":
                self._call("flush_metrics")
                self._call("close_run")
                item[1].set()
        if batch:
            self._deliver(batch)
        return False

    def _worker(self) -> None:
        while True:
            items = [self._q.get()]
            while True:  # everything queued so far, in order
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            if self._process(items):
                return
