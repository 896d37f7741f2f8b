"""A one-line progress display (epoch, loss, epochs/s) for long solves, and the compile
notice before it (:class:`CompileNotice`).

On by default only when stderr is a terminal and neither ``CI`` nor ``JNO_NO_PROGRESS`` is
set; ``solve(progress=False)`` or ``jno.setup(progress=False)`` turns it off."""

from __future__ import annotations

import logging
import os
import sys
import time

__all__ = ["Progress", "CompileNotice", "default_enabled"]

logger = logging.getLogger("jno")


def default_enabled() -> bool:
    """Whether the display is on when nobody chose: stderr is a terminal, and neither ``CI``
    nor ``JNO_NO_PROGRESS`` is set."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("JNO_NO_PROGRESS")


class Progress:
    def __init__(self, total: int, enabled: bool | None = None, min_interval: float = 0.5) -> None:
        if enabled is None:
            enabled = default_enabled()
        self.enabled = bool(enabled)
        self.total = total
        self.min_interval = min_interval
        self._last = 0.0
        self._shown = False

    def update(self, done: int, loss: float, epochs_per_s: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.min_interval and done < self.total:
            return
        self._last = now
        sys.stderr.write(
            f"\repoch {done:>8d}/{self.total}  loss {loss:.4e}  {epochs_per_s:,.0f} epochs/s   "
        )
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


class CompileNotice:
    """Tells the user that a solve is compiling and, once done, how long it took.

    :meth:`start` (before the train step compiles) shows ``jno: compiling ...`` on the
    progress line (when the display is on); :meth:`finish` (after every plugin's
    ``on_solve_begin``) replaces it with
    ``jno: compiled in 2.4 s (31 XLA programs, 27 read from the compilation cache)`` and logs
    the same at INFO level on the ``"jno"`` logger (also when the display is off). Nothing is
    shown or logged when nothing compiled (a repeated solve of the same solver).
    :attr:`message` holds the last message; :meth:`close` ends the counting (idempotent)."""

    def __init__(self, enabled: bool | None = None) -> None:
        from .compile_cache import CompileStats

        self.enabled = default_enabled() if enabled is None else bool(enabled)
        self.stats = CompileStats()
        self.message: str | None = None
        self._t0 = 0.0
        self._open = False
        self._shown = False

    def start(self, what: str = "the train step and diagnostics") -> "CompileNotice":
        self._t0 = time.perf_counter()
        self.stats.__enter__()
        self._open = True
        if self.enabled:
            self._write(f"jno: compiling {what} ...")
        return self

    def _write(self, text: str) -> None:
        sys.stderr.write(f"\r{text}{' ' * 10}")
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> str | None:
        """End the notice: the message (None when nothing compiled; the ``compiling``
        line is then erased)."""
        self.close()
        s = self.stats
        if s.compiles == 0:
            if self._shown:
                sys.stderr.write("\r" + " " * 80 + "\r")
                sys.stderr.flush()
            return None
        dt = time.perf_counter() - self._t0
        cached = f", {s.cache_hits} read from the compilation cache" if s.cache_lookups else ""
        self.message = f"jno: compiled in {dt:.1f} s ({s.compiles} XLA programs{cached})"
        logger.info(self.message)
        if self.enabled:
            self._write(self.message)
            sys.stderr.write("\n")
            sys.stderr.flush()
        return self.message

    def close(self) -> None:
        """Stop counting compilations (idempotent)."""
        if self._open:
            self._open = False
            self.stats.__exit__()
