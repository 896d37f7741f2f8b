"""The gradient trackers: ``gradient_norms``, ``cos_similarity`` and ``gradient_alignment``.

All three read the same per-constraint gradient matrix ``G`` ``(N, P)`` of the *unweighted*
constraint losses (weighting-scheme weights set to 1) with respect to the parameters selected by
``mask``, from :meth:`jno_core.context.SolveContext.gradient_matrix`. The core memoises ``G``
per fired epoch and mask, so running the three trackers together costs one ``jacrev``
evaluation per epoch, not three. The ``jacrev`` function is AOT-compiled in
:meth:`~GradientTracker.prepare` (``on_solve_begin``, on the background compile pool of
:mod:`jno_core.compile_pool`), so the first fire runs a warm kernel; the
statistics themselves are NumPy on the host (:mod:`._math`), which never compiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jno_core.api import compile_pool
from jno_core.api import Heatmap
from jno_core.api import Tracker

from ._math import alignment_of, cosine_matrix, gradient_norms_of

__all__ = ["GradientTracker", "GradientNorms", "CosSimilarity", "GradientAlignment"]


class GradientTracker(Tracker):
    """Base of the trackers that read the per-constraint gradient matrix (the solve computes
    it on the device at their fire epochs: ``needs_gradient_matrix``).

    :param interval: fire every ``interval`` epochs (``epoch % interval == 0``).
    :param mask: ``None`` (every trained parameter) or a bool pytree matching one network's
        ``params`` (e.g. built with ``jax.tree_util.tree_map(lambda _: False, net.params)`` and
        ``eqx.tree_at``); only the selected arrays are differentiated. A mask that matches no
        trained network raises :class:`jno_core.errors.MaskError` (naming the differing leaves)
        when the solve starts.
    """

    needs_gradient_matrix = True
    #: ``prepare`` compiles on :mod:`jno_core.compile_pool` (see ``compile_pool.settle``)
    compiles_in_background = True

    def __init__(self, interval: int = 100, mask: Any = None) -> None:
        super().__init__(interval)
        self.mask = mask
        #: number of selected parameters ``P`` (known after :meth:`prepare`)
        self.n_params: int | None = None

    def prepare(self, ctx: Any) -> None:
        """Validate the mask, AOT-compile the shared gradient-matrix function and run it once
        (an XLA executable's first call pays one-off set-up, ~20 ms here; this keeps it out of
        the first fire). The warm-up value is memoised for the start epoch and shared by the
        other gradient trackers; the core clears that memo before the first fire. Both run on
        the compile pool, once per mask, while the next plugins trace their functions. Skipped
        when the core computes ``G`` for every fire on the device
        (``ctx.gradient_matrix_on_device``)."""
        sel = ctx.selector(self.mask)  # here: a mask that matches nothing raises now
        self.n_params = sel.size
        mask = self.mask
        on_device = getattr(ctx, "gradient_matrix_on_device", None)
        if on_device is not None and on_device(mask):
            return  # every fire reads G computed with the chunk's snapshots: nothing to compile

        def compile_and_warm() -> None:
            ctx.prepare_gradient_matrix(mask)
            ctx.gradient_matrix(mask)

        compile_pool.run_async(ctx, ("gradient_matrix", id(sel)), compile_and_warm, owner=self.name)
        compile_pool.settle(ctx, self)

    def still_prepared(self, ctx: Any) -> bool:
        """Also: ``G`` comes from the device chunk in this solve, or the standalone function
        was compiled (a later solve of the same solver may need it where an earlier did not)."""
        if not super().still_prepared(ctx):
            return False
        on_device = getattr(ctx, "gradient_matrix_on_device", None)
        if on_device is not None and on_device(self.mask):
            return True
        return id(ctx.selector(self.mask)) in getattr(ctx, "_g_fns", {})

    def gradient_matrix(self, ctx: Any) -> np.ndarray:
        """``G`` ``(N, P)`` at ``ctx.epoch`` (shared with the other gradient trackers)."""
        return ctx.gradient_matrix(self.mask)


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

    def compute(self, ctx: Any, epoch: int) -> dict[str, Any]:
        return {"norms": gradient_norms_of(self.gradient_matrix(ctx))}

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

    def compute(self, ctx: Any, epoch: int) -> dict[str, Any]:
        return {"cos_sim_matrix": cosine_matrix(self.gradient_matrix(ctx))}

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

    def compute(self, ctx: Any, epoch: int) -> dict[str, Any]:
        return {"alignment": alignment_of(self.gradient_matrix(ctx))}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"explainability/gradient_alignment": float(value["alignment"])}
