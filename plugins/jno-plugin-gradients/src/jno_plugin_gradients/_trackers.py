"""The gradient trackers: ``gradient_norms``, ``cos_similarity`` and ``gradient_alignment``.

All three read the same per-constraint gradient matrix ``G`` ``(N, P)`` of the *unweighted*
constraint losses (weighting-scheme weights set to 1) with respect to the parameters selected by
``mask``: their device function asks the core for it (``needs = ("gradient_matrix",)``) and
returns it; the three share one compiled function and one call per chunk (same
:meth:`~GradientTracker.fire_key`), so running them together costs one ``jacrev`` per fired
epoch, not three. The statistics themselves are NumPy on the host (:mod:`._math`, float64).
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np

from jno_core.api import Heatmap
from jno_core.api import Tracker

from ._math import alignment_of, cosine_matrix, gradient_norms_of

__all__ = ["GradientTracker", "GradientNorms", "CosSimilarity", "GradientAlignment"]


def _the_gradient_matrix(params: Any, points: Any, inputs: Any, weights: Any, gradient_matrix: Any) -> Any:
    """The device function of every gradient tracker: ``G`` ``(N, P)`` itself."""
    return gradient_matrix


class GradientTracker(Tracker):
    """Base of the trackers that read the per-constraint gradient matrix.

    :param interval: fire every ``interval`` epochs (``epoch % interval == 0``).
    :param mask: ``None`` (every trained parameter) or a bool pytree matching one network's
        ``params`` (e.g. built with ``jax.tree_util.tree_map(lambda _: False, net.params)`` and
        ``eqx.tree_at``); only the selected arrays are differentiated. A mask that matches no
        trained network raises :class:`jno_core.errors.MaskError` (naming the differing leaves)
        when the solve starts.
    """

    needs = ("gradient_matrix",)

    def __init__(self, interval: int = 100, mask: Any = None) -> None:
        super().__init__(interval)
        self.mask = mask
        #: number of selected parameters ``P`` (known after the solve starts)
        self.n_params: int | None = None

    def fire_fn(self, ctx: Any) -> Callable[..., Any]:
        self.n_params = ctx.selector(self.mask).size  # a mask that matches nothing raises here
        return _the_gradient_matrix

    def fire_key(self, ctx: Any) -> Hashable:
        return ("gradient_matrix", id(ctx.selector(self.mask)))

    def statistic(self, G: np.ndarray) -> dict[str, Any]:
        """This tracker's value from ``G`` ``(N, P)``."""
        raise NotImplementedError

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        return self.statistic(np.asarray(out))


class GradientNorms(GradientTracker):
    """``||grad_theta L_i||_2`` for every constraint ``i``.

    A constraint whose norm is orders of magnitude above the others dominates the update
    whatever its loss value: the gradient-pathology diagnostic of Wang, Teng & Perdikaris,
    *Understanding and mitigating gradient pathologies in PINNs* (arXiv:2001.04536), Sec. 2.4.

    ``value`` / ``result`` keys: ``norms`` ``(N,)`` per fire, ``(S, N)`` float32 in ``result``.
    Metrics: ``explainability/gradient_norm/constraint_{i}``.
    """

    name = "gradient_norms"
    result_keys = ("norms",)

    def statistic(self, G: np.ndarray) -> dict[str, Any]:
        return {"norms": gradient_norms_of(G)}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            f"explainability/gradient_norm/constraint_{i}": float(v)
            for i, v in enumerate(value["norms"])
        }


class CosSimilarity(GradientTracker):
    """The ``(N, N)`` pairwise cosine similarity of the constraint gradients
    (see :func:`jno_plugin_gradients._math.cosine_matrix`; diagonal 1, zero gradients give 0).

    ``value`` / ``result`` keys: ``cos_sim_matrix`` ``(N, N)`` per fire, ``(S, N, N)`` float32.
    Metrics: ``explainability/cos_sim/{i}_{j}`` for ``i < j`` and
    ``explainability/cos_sim_matrix`` (a :class:`jno_core.metrics.Heatmap`).
    """

    name = "cos_similarity"
    result_keys = ("cos_sim_matrix",)

    def statistic(self, G: np.ndarray) -> dict[str, Any]:
        return {"cos_sim_matrix": cosine_matrix(G)}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        C = value["cos_sim_matrix"]
        n = C.shape[0]
        out: dict[str, Any] = {
            f"explainability/cos_sim/{i}_{j}": float(C[i, j]) for i in range(n) for j in range(i + 1, n)
        }
        out["explainability/cos_sim_matrix"] = Heatmap(C)
        return out


class GradientAlignment(GradientTracker):
    """Total gradient alignment ``2 ||mean_i g_i/||g_i|| ||^2 - 1`` (Eq. 3.1 of
    arXiv:2502.00604), in ``[-1, 1]``; equals the cosine similarity when ``N = 2``.

    ``value`` / ``result`` keys: ``alignment`` ``()`` per fire, ``(S,)`` float32 in ``result``.
    Metric: ``explainability/gradient_alignment``.
    """

    name = "gradient_alignment"
    result_keys = ("alignment",)

    def statistic(self, G: np.ndarray) -> dict[str, Any]:
        return {"alignment": alignment_of(G)}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"explainability/gradient_alignment": float(value["alignment"])}
