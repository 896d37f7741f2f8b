"""Diagnostics off the training thread: :class:`DiagnosticsWorker`.

A tracker's fire is a pure function of the parameters at its epoch, so the core does not
have to wait for it: the tracker hands the work (with a frozen snapshot of the context,
see :meth:`jno_core.context.SolveContext.snapshot`) to one background thread and the next
device chunk starts at once. On a CPU the two then run on different cores (an XLA
computation runs on the thread that calls it and releases the GIL while it runs); on an
accelerator the fire is queued behind the chunk without the host waiting for either.

Ordering and consistency (what callers may rely on):

* jobs run one at a time in submission order (so per-epoch memoised quantities such as the
  shared gradient matrix are computed once, and a tracker's history stays in epoch order);
* :meth:`DiagnosticsWorker.wait` returns when every submitted job has finished; the core
  calls it before any plugin that is not marked ``concurrent = True`` runs (checkpointing,
  user callbacks that read trackers' ``.value``), before ``on_solve_end`` and before
  ``solve()`` returns, so such plugins see exactly what they would in a serial loop;
* metrics logged by a job are held back until every earlier step is complete (see
  :meth:`pending_from`), so sinks still receive steps in increasing order;
* a job that raises is reported as :class:`~jno_core.errors.JnoPluginError` naming the
  plugin and epoch, at the next fire or at the end of the solve.

Not used (jobs run inline, exactly as before) with several processes or a multi-device
mesh (collectives issued from two threads could interleave differently per process), when
the loss weights are computed on the host from trackers (the next chunk needs their
values), or with ``JNO_CONCURRENT_DIAGNOSTICS=0``.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Callable

from .errors import JnoPluginError

__all__ = ["DiagnosticsWorker", "concurrency_enabled"]

_STOP = object()


def concurrency_enabled() -> bool:
    """``False`` when ``JNO_CONCURRENT_DIAGNOSTICS`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("JNO_CONCURRENT_DIAGNOSTICS", "1").strip().lower() not in {"0", "false", "no", "off"}


class DiagnosticsWorker:
    """One daemon thread running submitted jobs in order.

    :param max_pending: bound on queued jobs; :meth:`submit` blocks beyond it (back-pressure
        when diagnostics are slower than training, instead of unbounded snapshots).
    """

    def __init__(self, max_pending: int = 64) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: list[int] = []  # epochs of submitted, unfinished jobs (in order)
        self._error: JnoPluginError | None = None
        self._thread = threading.Thread(target=self._run, name="jno-diagnostics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side
    def submit(self, epoch: int, label: str, job: Callable[[], None]) -> None:
        """Queue ``job`` (fire of plugin ``label`` at ``epoch``); from the worker thread itself
        (a fire submitting more work) it runs at once."""
        if threading.current_thread() is self._thread:
            job()
            return
        with self._lock:
            self._pending.append(int(epoch))
        self._q.put((int(epoch), label, job))

    def pending_from(self) -> int | None:
        """The earliest epoch whose job has not finished (None when idle)."""
        with self._lock:
            return min(self._pending) if self._pending else None

    def check(self) -> None:
        """Raise the first job failure, if any (non-blocking)."""
        with self._lock:
            err, self._error = self._error, None
        if err is not None:
            raise err

    def wait(self) -> None:
        """Block until every submitted job has finished, then :meth:`check`."""
        with self._idle:
            while self._pending:
                self._idle.wait()
        self.check()

    def close(self) -> None:
        """Finish the queued jobs and stop the thread (failures are left for :meth:`check`)."""
        self._q.put(_STOP)
        self._thread.join()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            epoch, label, job = item
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - reported on the training thread
                err = JnoPluginError(
                    f"plugin {label!r} failed in on_epoch at epoch {epoch}: {type(exc).__name__}: {exc}"
                )
                err.__cause__ = exc
                with self._lock:
                    if self._error is None:
                        self._error = err
            finally:
                with self._idle:
                    self._pending.remove(epoch)
                    self._idle.notify_all()
