"""The loss-landscape tracker (:class:`LossLandscape`), after Li et al. 2018 (arXiv 1712.09913).

At each fire the training loss is evaluated on a 2-D grid around the current parameters,

    landscapes[s, i, j] = L(theta + a_i * d1 + a_j * d2),
    a = linspace(-alpha_range, alpha_range, n_grid)   (a[n_grid // 2] = 0 exactly when odd),

where ``theta`` are the selected parameters (``mask``; the others stay at their current
values) and ``d1``, ``d2`` are filter-normalised random directions (see
:mod:`jno_plugin_landscape._directions`). A filter-normalised direction has the norm of the
parameters it perturbs, ``||d|| = ||theta_selected||`` (each filter ``||d_f|| = ||theta_f||``),
so ``a`` is measured in units of ``||theta_selected||``: the grid point ``(a_i, 0)`` moves the
parameters by exactly ``|a_i| * ||theta_selected||``; no further scale factor enters. With
``ignore_bias=True`` the bias directions are zero and the unit is the norm of the selected
weight matrices instead.

Directions: the Gaussian draws come from a fixed key (``PRNGKey(seed)``), so every fire of a
solve (and every solve) uses the same raw directions; they are filter-normalised against the
parameters of the fire being plotted. ``redraw=True`` draws new ones at each fire
(``fold_in(PRNGKey(seed), epoch)``: the tracker's device function then takes the epoch,
``needs = ("epoch",)``).

The ``n_grid^2`` losses are the tracker's device function (``lax.map`` over the grid in batches
of ``batch_size`` points, each batch vectorised with ``vmap``), which the core compiles when the
solve starts (:meth:`LossLandscape.fire_fn`). The
default batch is :func:`default_batch_size`: the whole grid at once for small problems (script
09: 121 grid points x 21 collocation points, faster per fire than row by row; see
benchmarks/README.md), one grid row (``n_grid`` evaluations) at a time once the collocation
points are many. The centre value (``n_grid`` odd) is the training loss at ``theta``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import Env, evaluate
from jno_core.api import Heatmap
from jno_core.api import Tracker

from ._directions import random_directions

__all__ = ["LossLandscape", "loss_landscape", "grid_coordinates", "default_batch_size", "BATCH_POINT_BUDGET"]

#: collocation-point evaluations per vectorised batch that :func:`default_batch_size` allows
BATCH_POINT_BUDGET = 1 << 15


def grid_coordinates(n_grid: int, alpha_range: float) -> np.ndarray:
    """``linspace(-alpha_range, alpha_range, n_grid)`` (float64) with the centre set to exactly
    0 when ``n_grid`` is odd (``linspace`` can leave ~1e-9 there in float32)."""
    a = np.linspace(-alpha_range, alpha_range, n_grid)
    if n_grid % 2 == 1:
        a[n_grid // 2] = 0.0
    return a


def default_batch_size(n_grid: int, n_points: int) -> int:
    """Grid points per vectorised batch when ``batch_size`` is not given: as many as keep a
    batch under :data:`BATCH_POINT_BUDGET` collocation-point evaluations (``n_points`` is the
    number of collocation points over all point sets), at least one grid row (``n_grid``) and
    at most the whole grid (``n_grid ** 2``)."""
    return int(max(n_grid, min(n_grid * n_grid, BATCH_POINT_BUDGET // max(int(n_points), 1))))


def _check_int(value: Any, what: str, example: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"loss_landscape: {what} must be an integer >= {minimum}, received {value!r}; e.g. {example}."
        )
    return int(value)


class LossLandscape(Tracker):
    """The training loss on a filter-normalised 2-D perturbation grid (module docstring).

    :param interval: fire every ``interval`` epochs (each fire costs ``n_grid^2`` loss
        evaluations).
    :param mask: bool pytree: only these parameters are perturbed (``None``: all trained).
    :param n_grid: grid points per axis (odd puts the current parameters at the centre).
    :param alpha_range: the grid spans ``[-alpha_range, alpha_range]`` in units of
        ``||theta_selected||`` along each direction.
    :param redraw: draw new random directions at every fire instead of once.
    :param seed: seed of the directions' key.
    :param ignore_bias: zero direction for 1-D leaves (biases) instead of per-leaf scaling.
    :param batch_size: grid points evaluated together (vectorised); default
        :func:`default_batch_size` (the whole grid for small problems, one row for large).

    ``result``: ``epochs`` ``(S,)``, ``landscapes`` ``(S, n_grid, n_grid)`` (axis 1: ``d1``
    coefficient, axis 2: ``d2``), ``alphas`` ``(n_grid,)`` the grid coordinates.
    ``directions`` holds the last fire's ``(d1, d2)``, each ``(P,)`` flattened like
    ``ctx.selector(mask).flatten`` (NumPy arrays).
    """

    name = "loss_landscape"
    result_keys = ("landscapes",)
    batch_fires = False  # an expensive fire, rarely: one call per fire, not per chunk

    def __init__(self, interval: int = 500, mask: Any = None, n_grid: int = 15, alpha_range: float = 1.0,
                 redraw: bool = False, *, seed: int = 0, ignore_bias: bool = False,
                 batch_size: int | None = None) -> None:
        super().__init__(interval)
        self.mask = mask
        self.n_grid = _check_int(n_grid, "n_grid", "n_grid=15", minimum=2)
        if isinstance(alpha_range, bool) or not isinstance(alpha_range, (int, float, np.number)) or not (
                np.isfinite(alpha_range) and alpha_range > 0):
            raise ValueError(
                f"loss_landscape: alpha_range must be a positive number, received {alpha_range!r}; "
                "e.g. alpha_range=1.0 (in units of ||theta_selected||)."
            )
        self.alpha_range = float(alpha_range)
        self.redraw = bool(redraw)
        self.seed = int(seed)
        self.ignore_bias = bool(ignore_bias)
        self.batch_size = (None if batch_size is None
                           else _check_int(batch_size, "batch_size", "batch_size=15"))
        self.alphas = grid_coordinates(self.n_grid, self.alpha_range)
        self.directions: tuple[jax.Array, jax.Array] | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("epoch",) if self.redraw else ()

    def fire_fn(self, ctx: Any) -> Any:
        """Resolve the parameter selection; the fire: the loss over the grid."""
        sel = ctx.selector(self.mask)
        terms = list(ctx.constraints)
        n = self.n_grid
        alphas = self.alphas
        coords = np.stack(np.meshgrid(alphas, alphas, indexing="ij"), axis=-1).reshape(n * n, 2)
        batch = self.batch_size or default_batch_size(n, sum(int(v.shape[0]) for v in ctx.points.values()))
        seed, ignore_bias = self.seed, self.ignore_bias
        self.static_result = {"alphas": alphas.astype(np.float32)}

        def fire(params: Any, points: Any, inputs: Any, weights: Any, epoch: Any = 0) -> tuple[jax.Array, ...]:
            theta0 = sel.flatten(params)
            key = jax.random.fold_in(jax.random.PRNGKey(seed), epoch)
            d1, d2 = random_directions(params, sel, key, 2, ignore_bias)
            ab = jnp.asarray(coords, theta0.dtype)

            def loss_at(c: jax.Array) -> jax.Array:
                p = sel.unflatten(params, theta0 + c[0] * d1 + c[1] * d2)
                env = Env(p, points, weights, inputs, unweighted=False)
                return jnp.sum(jnp.stack([evaluate(t, env) for t in terms]))  # as in the train step

            grid = jax.lax.map(loss_at, ab, batch_size=batch)
            return grid.reshape(n, n), d1, d2

        return fire

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        grid, d1, d2 = out
        self.directions = (d1, d2)
        return {"landscapes": grid}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"explainability/loss_landscape": Heatmap(value["landscapes"])}


def loss_landscape(interval: int = 500, mask: Any = None, n_grid: int = 15, alpha_range: float = 1.0,
                   redraw: bool = False, **options: Any) -> LossLandscape:
    """``jno.trackers.loss_landscape(interval=500, mask=None, n_grid=15, alpha_range=1.0,
    redraw=False)``: the loss-landscape tracker (see :class:`LossLandscape`; keyword-only
    ``seed``, ``ignore_bias``, ``batch_size``)."""
    return LossLandscape(interval=interval, mask=mask, n_grid=n_grid, alpha_range=alpha_range,
                         redraw=redraw, **options)
