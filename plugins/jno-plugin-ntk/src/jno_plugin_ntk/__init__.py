"""jno-plugin-ntk: the empirical NTK spectrum tracker, ``jno.trackers.ntk_spectrum``.

Installing this distribution registers the tracker through the ``jno`` entry point group
(``jno.trackers.ntk_spectrum`` and ``jno.callbacks.ntk_spectrum`` are the same factory).
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._tracker import SEED, NtkSpectrum, floor_of, ntk_spectrum, subsample_indices

__all__ = ["NtkSpectrum", "ntk_spectrum", "subsample_indices", "floor_of", "SEED", "jno_register_trackers"]


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``ntk_spectrum``."""
    register("ntk_spectrum", ntk_spectrum)
