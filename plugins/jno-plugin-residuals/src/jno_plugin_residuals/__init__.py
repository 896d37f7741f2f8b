"""jno-plugin-residuals: pointwise residual statistics for jno.

Installs ``jno.trackers.residual_stats`` (the same object as ``jno.callbacks.residual_stats``)
through the entry point ``residuals = "jno_plugin_residuals"`` of the group ``"jno"``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from jno_core.api import hookimpl

from ._tracker import ResidualStats, residual_statistics

__all__ = ["residual_stats", "ResidualStats", "residual_statistics", "jno_register_trackers"]


def residual_stats(interval: int = 100, constraints: Sequence[Any] | None = None) -> ResidualStats:
    """``jno.trackers.residual_stats``: mean, std, max and 99th percentile of each constraint's
    pointwise residual (for ``pde.mse``: the values of ``pde``) every ``interval`` epochs.
    ``result``: ``epochs`` ``(S,)``, ``means`` / ``stds`` / ``maxes`` / ``p99`` ``(S, K)``,
    ``indices`` ``(K,)``. See :class:`ResidualStats`."""
    return ResidualStats(interval=interval, constraints=constraints)


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``residual_stats``."""
    register("residual_stats", residual_stats)
