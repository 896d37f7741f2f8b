"""jno-plugin-hessian: the Hessian eigenspectrum (sharpness) tracker,
``jno.trackers.hessian_spectrum``, by Lanczos with full reorthogonalisation.

Installing this distribution registers the tracker through the ``jno`` entry point group
(``jno.trackers.hessian_spectrum`` and ``jno.callbacks.hessian_spectrum`` are the same factory).
"""

from __future__ import annotations

from typing import Callable

from jno_core.api import hookimpl

from ._lanczos import lanczos_tridiagonal, tridiagonal_eigvals
from ._tracker import SEED, HessianSpectrum, hessian_spectrum

__all__ = [
    "HessianSpectrum",
    "hessian_spectrum",
    "lanczos_tridiagonal",
    "tridiagonal_eigvals",
    "SEED",
    "jno_register_trackers",
]


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register ``hessian_spectrum``."""
    register("hessian_spectrum", hessian_spectrum)
