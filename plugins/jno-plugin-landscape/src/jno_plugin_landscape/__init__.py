"""jno-plugin-landscape: the loss-landscape tracker, ``jno.trackers.loss_landscape``
(filter-normalised 2-D perturbation grid, Li et al. 2018, arXiv 1712.09913).

Installing this distribution registers the tracker through the ``jno`` entry point group
(``jno.trackers.loss_landscape`` and ``jno.callbacks.loss_landscape`` are the same factory).
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._directions import filter_normalise, random_directions, selected_arrays
from ._tracker import LossLandscape, grid_coordinates, loss_landscape

__all__ = [
    "LossLandscape",
    "loss_landscape",
    "grid_coordinates",
    "filter_normalise",
    "random_directions",
    "selected_arrays",
    "jno_register_trackers",
]


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``loss_landscape``."""
    register("loss_landscape", loss_landscape)
