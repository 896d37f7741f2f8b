"""The time axis of a time-dependent domain: ``time=(t0, t1, nt)``.

A domain with a time axis has coordinates ``(space..., t)``: ``x, t, _ =
dom.variable("interior")`` on a line, ``x, y, t, _`` on a 2-D shape. Its grid tags are

* ``"interior"``: the spatial interior grid at the ``nt - 1`` times after ``t0``;
* each spatial boundary tag (``"boundary"``, ``"left"``, ...): that side's points at all
  ``nt`` times (``t0`` included);
* ``"initial"``: the spatial grid, interior and boundary, at ``t = t0``.

Sampled tags (``sample=(n, sampler)``) draw the time coordinate with the space coordinates
from one ``(d + 1)``-dimensional unit sample: ``t = t0 + (t1 - t0) u_t``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TimeAxis", "with_time"]


class TimeAxis:
    """``(t0, t1, nt)``: ``nt`` grid times from ``t0`` to ``t1`` (``t1 > t0``, ``nt >= 2``)."""

    def __init__(self, spec: Any) -> None:
        try:
            t0, t1, nt = spec
        except (TypeError, ValueError):
            raise ValueError(
                f"time must be a triple (t0, t1, nt), received {spec!r}; e.g. time=(0.0, 1.0, 101)."
            ) from None
        t0, t1 = float(t0), float(t1)
        if not (np.isfinite(t0) and np.isfinite(t1)) or not t1 > t0:
            raise ValueError(f"time range must have t1 > t0, received t0={t0}, t1={t1}; e.g. time=(0.0, 1.0, 101).")
        if isinstance(nt, bool) or int(nt) != nt or int(nt) < 2:
            raise ValueError(f"time=(t0, t1, nt) needs an integer nt >= 2 grid times, received nt={nt!r}.")
        self.t0, self.t1, self.nt = t0, t1, int(nt)

    @property
    def grid(self) -> np.ndarray:
        return np.linspace(self.t0, self.t1, self.nt)

    def scale(self, u: np.ndarray) -> np.ndarray:
        """Unit samples ``(m,)`` -> times."""
        return self.t0 + (self.t1 - self.t0) * u

    def describe(self) -> list[float]:
        return [self.t0, self.t1, self.nt]


def with_time(points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Every point at every time: ``(N, d)`` x ``(T,)`` -> ``(N * T, d + 1)``, time-major (all
    points at ``times[0]`` first)."""
    n, t = len(points), len(times)
    return np.concatenate([np.tile(points, (t, 1)), np.repeat(times, n)[:, None]], axis=1)
