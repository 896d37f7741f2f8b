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
The handlers (SIGTERM, and SIGINT's replacement for Python's default one) are installed only in
the main thread and only when the program has not installed its own; they are removed when the
loop ends.

:func:`deferred_interrupts` marks a critical section (e.g. a plugin handing a written checkpoint
to the sinks): an interrupt arriving inside it is raised when the section ends, so bookkeeping
that must happen together (a job leaves a list and is delivered) never stops half-way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["interruptible", "deferred_interrupts", "check_interrupt", "SolveTerminated", "SIGTERM_EXIT_STATUS"]

#: the exit status after SIGTERM ended a solve (128 + signal number, as shells report it)
SIGTERM_EXIT_STATUS = 128 + int(signal.SIGTERM)


class SolveTerminated(BaseException):
    """SIGTERM arrived during a solve (raised by the handler :class:`interruptible` installs;
    ``solve()`` turns it into ``SystemExit(143)`` after cleaning up)."""


#: critical-section depth of the main thread, and the interrupt that arrived during the solve
#: and has not reached :class:`interruptible` yet
_critical: dict[str, Any] = {"depth": 0, "pending": None}


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM -> :class:`SolveTerminated`, SIGINT -> ``KeyboardInterrupt``. The interrupt is
    also recorded until :class:`interruptible` catches it: Python drops an exception raised
    while it runs a garbage-collector callback or a ``__del__`` (JAX registers one), and
    :func:`check_interrupt`, called once per chunk, raises such a lost one again. Inside a
    :func:`deferred_interrupts` section the first interrupt waits for the section's end; a
    second one is raised at once (the user insists)."""
    exc: BaseException = (SolveTerminated(f"signal {signal.Signals(signum).name}") if signum == signal.SIGTERM
                          else KeyboardInterrupt())
    first = _critical["pending"] is None
    if first:
        _critical["pending"] = exc
    if _critical["depth"] > 0 and first:
        return
    raise exc


def check_interrupt() -> None:
    """Raise the interrupt that arrived during this solve and was lost on its way (see
    :func:`_on_signal`); nothing when there is none. Called by the loop between chunks."""
    if _critical["pending"] is not None and _critical["depth"] == 0:
        raise _critical["pending"]


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """A critical section of the training (main) thread: Ctrl-C or SIGTERM arriving inside it
    (during a solve, where jno's handlers are installed) is raised when the section ends.
    Sections nest; in other threads, and outside a solve, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _critical["depth"] += 1
    try:
        yield
    finally:
        _critical["depth"] -= 1
        check_interrupt()


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
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "interruptible":
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
            for sig, default in defaults.items():
                try:
                    if signal.getsignal(sig) is default:
                        self._previous[sig] = signal.signal(sig, _on_signal)
                except (ValueError, OSError):  # no signals here (embedded interpreter)
                    pass
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        lost, _critical["pending"] = _critical["pending"], None
        if exc is None and lost is not None:  # dropped by Python, and the loop ended before it checked
            exc = lost
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
