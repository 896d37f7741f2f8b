"""jno-plugin-gradients: per-constraint gradient diagnostics for jno.

Installs ``jno.trackers.gradient_norms``, ``jno.trackers.cos_similarity`` and
``jno.trackers.gradient_alignment`` (also reachable as ``jno.callbacks.<name>``, the same
objects), found through the entry point ``gradients = "jno_plugin_gradients"`` of the group
``"jno"``.
"""

from __future__ import annotations

from typing import Any, Callable

from jno_core.api import hookimpl

from ._math import alignment_of, cosine_matrix, gradient_norms_of, unit_rows
from ._trackers import CosSimilarity, GradientAlignment, GradientNorms, GradientTracker

__all__ = [
    "gradient_norms",
    "cos_similarity",
    "gradient_alignment",
    "GradientTracker",
    "GradientNorms",
    "CosSimilarity",
    "GradientAlignment",
    "gradient_norms_of",
    "cosine_matrix",
    "alignment_of",
    "unit_rows",
    "jno_register_trackers",
]


def gradient_norms(interval: int = 100, mask: Any = None) -> GradientNorms:
    """``jno.trackers.gradient_norms``: per-constraint gradient L2 norms every ``interval``
    epochs. ``result``: ``epochs`` ``(S,)``, ``norms`` ``(S, N)``. See :class:`GradientNorms`."""
    return GradientNorms(interval=interval, mask=mask)


def cos_similarity(interval: int = 100, mask: Any = None) -> CosSimilarity:
    """``jno.trackers.cos_similarity``: the pairwise cosine-similarity matrix of the constraint
    gradients. ``result``: ``epochs`` ``(S,)``, ``cos_sim_matrix`` ``(S, N, N)``.
    See :class:`CosSimilarity`."""
    return CosSimilarity(interval=interval, mask=mask)


def gradient_alignment(interval: int = 100, mask: Any = None) -> GradientAlignment:
    """``jno.trackers.gradient_alignment``: total gradient alignment (Eq. 3.1 of
    arXiv:2502.00604). ``result``: ``epochs`` ``(S,)``, ``alignment`` ``(S,)``.
    See :class:`GradientAlignment`."""
    return GradientAlignment(interval=interval, mask=mask)


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Register the three gradient trackers by name."""
    register("gradient_norms", gradient_norms)
    register("cos_similarity", cos_similarity)
    register("gradient_alignment", gradient_alignment)
