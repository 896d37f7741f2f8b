"""A one-line progress display (epoch, loss, epochs/s) for long solves.

On by default only when stderr is a terminal and neither ``CI`` nor ``JNO_NO_PROGRESS`` is
set; ``solve(progress=False)`` or ``jno.setup(progress=False)`` turns it off."""

from __future__ import annotations

import os
import sys
import time

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, enabled: bool | None = None, min_interval: float = 0.5) -> None:
        if enabled is None:
            enabled = (
                sys.stderr.isatty()
                and not os.environ.get("CI")
                and not os.environ.get("JNO_NO_PROGRESS")
            )
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
