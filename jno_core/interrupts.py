"""Ending a solve cleanly on Ctrl-C (SIGINT) and SIGTERM.

``solve()`` runs its loop inside :class:`interruptible`. While it runs, SIGTERM (what batch
schedulers, ``kill`` and container runtimes send) is turned into an exception like Ctrl-C's
``KeyboardInterrupt``; either one, raised in the loop, is caught there and the solve then ends
the way an early stop does:

* the chunk in flight is dropped: the train state, the epoch counter and the history are those
  of the last completed epoch (the history keeps every epoch whose loss was recorded);
* ``on_solve_end`` runs (the checkpoint callback writes its final checkpoint there, retention
  applies), the pending metrics are flushed to the sinks, and the history is merged;
* then the interrupt continues: ``KeyboardInterrupt`` is raised again (an uncaught one ends
  Python with the usual Ctrl-C status), and SIGTERM becomes ``SystemExit(143)`` (the status a
  shell reports for a process ended by SIGTERM, 128 + 15; ``atexit`` handlers still run, so
  checkpoint writers and sinks finish).

A second Ctrl-C or SIGTERM during that cleanup is not caught: it ends the process at once.
The SIGTERM handler is installed only in the main thread and only when the program has not
installed one of its own; it is removed when the loop ends.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["interruptible", "SolveTerminated", "SIGTERM_EXIT_STATUS"]

#: the exit status after SIGTERM ended a solve (128 + signal number, as shells report it)
SIGTERM_EXIT_STATUS = 128 + int(signal.SIGTERM)


class SolveTerminated(BaseException):
    """SIGTERM arrived during a solve (raised by the handler :class:`interruptible` installs;
    ``solve()`` turns it into ``SystemExit(143)`` after cleaning up)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise SolveTerminated(f"signal {signal.Signals(signum).name}")


class interruptible:
    """Context manager around the solve loop of ``crux`` writing into ``hist``.

    On ``KeyboardInterrupt`` or SIGTERM inside the block it rolls the solver's bookkeeping back
    to the last completed epoch, records ``hist.stopped`` and suppresses the exception, so the
    caller finishes the solve as after an early stop; the caller then calls :meth:`reraise`
    once the solve's cleanup is done.
    """

    def __init__(self, crux: Any, hist: Any) -> None:
        self.crux = crux
        self.hist = hist
        self.caught: BaseException | None = None
        self._previous: Any = None

    def __enter__(self) -> "interruptible":
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                    self._previous = signal.signal(signal.SIGTERM, _raise_terminated)
            except (ValueError, OSError):  # no signals here (embedded interpreter)
                self._previous = None
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        if exc is None or not isinstance(exc, (KeyboardInterrupt, SolveTerminated)):
            return False
        self.caught = exc
        epoch = roll_back(self.crux, self.hist)
        what = "SIGTERM" if isinstance(exc, SolveTerminated) else "KeyboardInterrupt (Ctrl-C)"
        self.hist.stopped = (f"interrupted by {what}: training stopped at epoch {epoch}, the last completed "
                             "epoch; the chunk in flight was dropped.")
        return True

    def reraise(self) -> None:
        """Continue the interrupt caught in the block (nothing when there was none)."""
        exc, self.caught = self.caught, None
        if exc is None:
            return
        if isinstance(exc, SolveTerminated):
            raise SystemExit(SIGTERM_EXIT_STATUS)
        raise exc


def roll_back(crux: Any, hist: Any) -> int:
    """Make the epoch counter that of the train state (the last completed epoch) and drop
    history rows and tracker values recorded beyond it; returns that epoch."""
    state = getattr(crux, "_state", None)
    epoch = int(np.asarray(state[3])) if state is not None else int(crux.epoch)
    crux.epoch = epoch
    epochs, rows = hist._epochs, hist._rows
    for i in range(len(epochs)):
        keep = epochs[i] < epoch
        if not keep.all():
            epochs[i], rows[i] = epochs[i][keep], rows[i][keep]
    for th in hist.trackers.values():
        kept = [(e, v) for e, v in zip(th.epochs, th._values) if e <= epoch]
        th.epochs[:] = [e for e, _ in kept]
        th._values[:] = [v for _, v in kept]
    return epoch
