"""Diagnostics off the training thread: :class:`DiagnosticsWorker`.

A tracker's fire is a pure function of the parameters at its epoch, so the core does not
have to wait for it: the tracker hands the work (with a frozen snapshot of the context,
see :meth:`jno_core.context.SolveContext.snapshot`) to one background thread and the next
device chunk starts at once. On a CPU the two then run on different cores (an XLA
computation runs on the thread that calls it and releases the GIL while it runs); on an
accelerator the fire is queued behind the chunk without the host waiting for either. A
thread that has to wait for the fires (the training thread at the end of a solve) runs
queued fires itself meanwhile, so the tail after the last chunk uses both cores.

Ordering and consistency (what callers may rely on):

* the jobs of one plugin run one at a time in submission order (a tracker's history stays in
  epoch order); jobs of different plugins may run at the same time on the worker thread and
  a waiting thread (quantities shared by the fires of one epoch, such as the gradient
  matrix, are memoised under a lock and computed once);
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
import threading
from collections import deque
from typing import Callable

from .errors import JnoPluginError

__all__ = ["DiagnosticsWorker", "concurrency_enabled"]

def concurrency_enabled() -> bool:
    """``False`` when ``JNO_CONCURRENT_DIAGNOSTICS`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("JNO_CONCURRENT_DIAGNOSTICS", "1").strip().lower() not in {"0", "false", "no", "off"}


class DiagnosticsWorker:
    """One daemon thread running submitted jobs (and threads in :meth:`wait` helping it).

    :param max_pending: bound on queued jobs; :meth:`submit` blocks beyond it (back-pressure
        when diagnostics are slower than training, instead of unbounded snapshots).
    """

    def __init__(self, max_pending: int = 64) -> None:
        self._max = int(max_pending)
        self._cv = threading.Condition(threading.Lock())
        self._jobs: deque[tuple[int, str, Callable[[], None]]] = deque()
        self._running: set[str] = set()  # labels of the jobs running now
        self._pending: list[int] = []  # epochs of submitted, unfinished jobs (in order)
        self._error: JnoPluginError | None = None
        self._stop = False
        self._local = threading.local()  # .in_job: this thread is running a job
        self._thread = threading.Thread(target=self._run, name="jno-diagnostics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ producer side
    def submit(self, epoch: int, label: str, job: Callable[[], None]) -> None:
        """Queue ``job`` (fire of plugin ``label`` at ``epoch``); from inside a job (a fire
        submitting more work) it runs at once."""
        if getattr(self._local, "in_job", False):
            job()
            return
        with self._cv:
            while len(self._jobs) >= self._max:
                self._cv.wait()
            self._pending.append(int(epoch))
            self._jobs.append((int(epoch), label, job))
            self._cv.notify_all()

    def pending_from(self) -> int | None:
        """The earliest epoch whose job has not finished (None when idle)."""
        with self._cv:
            return min(self._pending) if self._pending else None

    def check(self) -> None:
        """Raise the first job failure, if any (non-blocking)."""
        with self._cv:
            err, self._error = self._error, None
        if err is not None:
            raise err

    def wait(self) -> None:
        """Block until every submitted job has finished, running queued jobs on the calling
        thread meanwhile (those whose plugin has no job running or queued before them),
        then :meth:`check`."""
        while True:
            with self._cv:
                if not self._pending:
                    break
                item = self._take()
                if item is None:
                    self._cv.wait()
                    continue
            self._execute(item)
        self.check()

    def close(self) -> None:
        """Finish the queued jobs and stop the thread (failures are left for :meth:`check`)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join()

    # ------------------------------------------------------------------ running jobs
    def _take(self) -> tuple[int, str, Callable[[], None]] | None:
        """The first queued job whose plugin has no job running or queued before it, removed
        from the queue and marked running (call with the lock held)."""
        blocked: set[str] = set(self._running)
        for i, item in enumerate(self._jobs):
            label = item[1]
            if label not in blocked:
                del self._jobs[i]
                self._running.add(label)
                self._cv.notify_all()  # a submitter may be waiting for room
                return item
            blocked.add(label)
        return None

    def _execute(self, item: tuple[int, str, Callable[[], None]]) -> None:
        epoch, label, job = item
        self._local.in_job = True
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported on the training thread
            err = JnoPluginError(
                f"plugin {label!r} failed in on_epoch at epoch {epoch}: {type(exc).__name__}: {exc}"
            )
            err.__cause__ = exc
            with self._cv:
                if self._error is None:
                    self._error = err
        finally:
            self._local.in_job = False
            with self._cv:
                self._running.discard(label)
                self._pending.remove(epoch)
                self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    item = self._take()
                    if item is not None:
                        break
                    if self._stop and not self._jobs:
                        return
                    self._cv.wait()
            self._execute(item)
