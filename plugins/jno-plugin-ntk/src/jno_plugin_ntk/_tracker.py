"""The empirical NTK spectrum tracker (:class:`NtkSpectrum`).

For a scalar field ``u`` evaluated at points ``x_1..x_N`` and the (masked) parameters
``theta`` of a network, the empirical neural tangent kernel is

    K_ij = <d u(x_i)/d theta, d u(x_j)/d theta>,   K = J J^T,   J in R^{n x P}

(Sec. 3-4 of Wang, Wang & Perdikaris, "When and why PINNs fail to train: a neural tangent
kernel perspective", arXiv 2007.14527). A wide spread between its largest and smallest
eigenvalues is the canonical diagnostic of spectral bias.

Cost. The rows are subsampled *before* the Jacobian is formed: ``n = min(n_points, N)``
points of the field's point set are picked once per solve with a fixed seed
(:func:`subsample_indices`), the ``grad_expr`` is evaluated on a points dict in which that
point set is replaced by the subset, and only the ``(n, P)`` Jacobian is ever built. The
whole fire (Jacobian, ``K = J J^T``, ``eigvalsh``) is the tracker's device function
(:meth:`NtkSpectrum.fire_fn`), compiled by the core when the solve starts; nothing in it
depends on ``N``. The subset is taken from the points in use at each fire (a resampler's
new points included).

Two ways to get the rows (``NtkSpectrum.strategy``):

* ``"per_point"`` (when :func:`is_pointwise`: each point's value depends only on that point,
  true for networks, coordinate derivatives and elementwise algebra): ``jax.vmap`` over the
  ``n`` points of the expression on a one-point set; memory ``O(n P)``, the Jacobian costs
  ``O(n)`` gradient evaluations and ``K = J J^T`` ``O(n^2 P)``.
* ``"field"`` (otherwise, e.g. ``(u - jno.np.mean(u)).grad(net)`` or a ``jno.np.function``
  of the field): the core evaluates ``jacrev`` of the whole ``n``-point field, ``O(n^2)``
  memory and time in the network width. Such a field then sees the *subset's* reduction
  (``u - mean over the n subsampled points``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import expr as E
from jno_core.api import trainable_key
from jno_core.api import Histogram
from jno_core.api import TrainableParameter
from jno_core.api import Tracker

__all__ = ["NtkSpectrum", "ntk_spectrum", "subsample_indices", "SEED", "floor_of", "is_pointwise"]

#: seed of the fixed point subset (``numpy.random.default_rng(SEED)``)
SEED = 0


def subsample_indices(n_total: int, n_points: int, seed: int = SEED) -> np.ndarray:
    """The rows of the kernel: ``arange(n_total)`` when ``n_total <= n_points``, else
    ``sorted(numpy.random.default_rng(seed).choice(n_total, n_points, replace=False))``.

    :returns: int64 array of shape ``(min(n_total, n_points),)``.
    """
    if n_total <= n_points:
        return np.arange(n_total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n_points, replace=False)).astype(np.int64)


def floor_of(lambda_max: Any, n: int, dtype: Any = np.float32) -> Any:
    """The documented floor of ``lambda_min``: ``eps(dtype) * lambda_max * n``.

    The eigenvalues of a float kernel ``K = J J^T`` carry an absolute error of about
    ``eps * ||K||_2 * n``; eigenvalues below that are float noise, so ``lambda_min`` is
    reported as ``max(lambda_min, floor)`` and the condition number as
    ``lambda_max / max(lambda_min, floor)`` (at most ``1 / (eps n)``, about ``8.4e6 / n`` in
    float32, which then reads "numerically singular").
    """
    return np.finfo(dtype).eps * lambda_max * n


def is_pointwise(node: E.Placeholder, point_set: Any) -> bool:
    """Whether each point's value of the field ``node`` depends only on that point of
    ``point_set``: no node reduces or mixes that point set (a global node with a child on it:
    ``mean``, ``mse``, ``@``, a non-``...`` index, a transpose), and no ``jno.np.function`` or
    extension node acts on it (those may mix points). Then the Jacobian rows can be computed
    point by point (``vmap`` over one-point sets), which costs ``O(n P)`` instead of the
    ``O(n^2 P)`` of reverse-mode over the whole ``n``-point field."""
    for n in E.walk([node]):
        on_set = any(c.point_set == point_set for c in n.children)
        if n.point_set is None and on_set:
            return False
        if on_set and (isinstance(n, E.FunctionNode) or getattr(n, "jno_evaluate", None) is not None):
            return False
    return True


def _check_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"ntk_spectrum: {what} must be a positive integer, received {value!r}; e.g. {example}."
        )
    return int(value)


def _spectrum(J: jax.Array, k: int) -> dict[str, jax.Array]:
    """Traceable: the clipped, descending spectrum of ``K = J J^T`` for ``J`` ``(n, P)``."""
    n = J.shape[0]
    K = jnp.matmul(J, J.T, precision=jax.lax.Precision.HIGHEST)
    K = 0.5 * (K + K.T)
    ev = jnp.maximum(jnp.linalg.eigvalsh(K)[::-1], 0.0)  # PSD: negative values are float noise
    lam_max = ev[0]
    floor = jnp.finfo(K.dtype).eps * lam_max * n
    lam_min = jnp.maximum(ev[-1], floor)
    cond = jnp.where(lam_max > 0, lam_max / jnp.where(lam_min > 0, lam_min, 1.0), jnp.nan)
    return {
        "eigvals_topk": ev[:k],
        "lambda_min": lam_min,
        "lambda_max": lam_max,
        "condition_number": cond,
        "all_eigvals": ev,
        "trace": jnp.trace(K),
    }


class NtkSpectrum(Tracker):
    """Eigenvalue spectrum of the empirical NTK ``K = J J^T`` of ``grad_expr`` on a fixed
    subset of ``n = min(n_points, N)`` points.

    :param grad_expr: a :class:`~jno_core.expr.NetworkGradient`, ``u.grad(u_net)`` or
        ``u.grad(u_net.mask(m))``, of a *scalar* field ``u`` (per-point value ``()``).
    :param n_points: cap on the kernel rows; the subset is drawn once per solve with
        :func:`subsample_indices` (seed :data:`SEED`).
    :param top_k: number of largest eigenvalues kept in ``eigvals_topk`` (clipped to ``n``).
    :param interval: fire every ``interval`` epochs.

    ``result``: ``epochs`` ``(S,)``; ``eigvals_topk`` ``(S, top_k)`` descending;
    ``lambda_min``, ``lambda_max``, ``condition_number``, ``trace`` ``(S,)``;
    ``all_eigvals`` ``(S, n)`` descending, clipped at 0 (``K`` is PSD); ``indices`` ``(n,)``,
    the subsampled rows. ``lambda_min`` is floored at :func:`floor_of` and
    ``condition_number = lambda_max / lambda_min``. ``value["trace"]`` is ``tr(K)``, read by
    NTK loss balancing (Wang, Yu & Perdikaris 2022, Sec. 3 of arXiv 2007.14527).
    """

    name = "ntk_spectrum"
    result_keys = ("eigvals_topk", "lambda_min", "lambda_max", "condition_number", "all_eigvals", "trace")
    batch_fires = False  # an expensive fire, rarely: one call per fire, not per chunk

    def __init__(self, grad_expr: Any, n_points: int = 256, top_k: int = 10, interval: int = 500) -> None:
        super().__init__(interval)
        if not isinstance(grad_expr, E.NetworkGradient):
            raise TypeError(
                "ntk_spectrum: expected a NetworkGradient placeholder built with expr.grad(net), "
                f"e.g. u.grad(u_net) or u.grad(u_net.mask(mask)); received {type(grad_expr).__name__}."
            )
        if grad_expr.point_set is None:
            raise ValueError(
                f"ntk_spectrum: the NTK needs a per-point field, but {grad_expr.children[0].describe()} "
                "is a global value (e.g. pde.mse). Pass the field itself: pde.grad(net), not "
                "pde.mse.grad(net)."
            )
        self.grad_expr = grad_expr
        self.n_points = _check_int(n_points, "n_points", "n_points=256")
        self.top_k = _check_int(top_k, "top_k", "top_k=10")
        self.indices: np.ndarray | None = None
        self._points: dict[str, jax.Array] = {}
        self._param_keys: list[str] = []
        self.strategy: str | None = None

    # ------------------------------------------------------------------ set-up
    def fire_fn(self, ctx: Any) -> Any:
        """Pick the point subset; the fire: Jacobian, kernel and spectrum on the device."""
        from jno_core.api import point_set

        nodes = E.walk([self.grad_expr])
        target = self.grad_expr.point_set
        sets = sorted({n.point_set for n in nodes if isinstance(n, E.Variable)} | {target})
        full = {s: (ctx.points[s] if s in ctx.points else jnp.asarray(point_set(s).points)) for s in sets}
        idx = subsample_indices(int(full[target].shape[0]), self.n_points)
        self.indices = idx
        self.static_result = {"indices": idx}
        # point sets the solver does not use: from their domain (constants of the function)
        self._points = {s: a for s, a in full.items() if s not in ctx.points}
        fixed_points = self._points

        nets = [n.net for n in nodes if isinstance(n, (E.NetworkCall, E.NetworkGradient))]
        nets += [n for n in nodes if isinstance(n, TrainableParameter)]
        keys = list(dict.fromkeys(trainable_key(t) for t in nets))
        missing = [k for k in keys if k not in ctx.params]
        if missing:
            raise ValueError(
                f"ntk_spectrum: grad_expr uses {', '.join(repr(m.split('#')[0]) for m in missing)}, "
                "which is not part of this solve. Build grad_expr from a network the constraints "
                f"of jno.core([...]) use (this solve has {', '.join(k.split('#')[0] for k in ctx.params)})."
            )
        self._param_keys = keys
        f_expr = ctx.expr_fn([self.grad_expr])
        k = min(self.top_k, len(idx))
        child = self.grad_expr.children[0]
        strategy = self.strategy = "per_point" if is_pointwise(child, target) else "field"

        def as_rows(J: jax.Array) -> jax.Array:
            """``(m, *value_shape, P)`` -> ``(m, P)`` for a scalar (one-element) value."""
            value_shape = tuple(J.shape[1:-1])
            if J.ndim < 2 or int(np.prod(value_shape)) != 1:
                raise ValueError(
                    f"ntk_spectrum: scalar output only. The parameter Jacobian of "
                    f"{child.describe()} has shape {(len(idx),) + tuple(J.shape[1:])} (points, "
                    f"*value_shape, P) with per-point value shape {value_shape}; expected one "
                    "value per point. For a vector-valued network project first, e.g. "
                    "u[..., 0].grad(net)."
                )
            return J.reshape(J.shape[0], J.shape[-1])

        def jacobian(params: dict[str, Any], points: dict[str, jax.Array], inputs: dict[str, jax.Array],
                     weights: dict[str, jax.Array]) -> jax.Array:
            if strategy == "field":
                return as_rows(f_expr(params, points, inputs, weights)[0])

            def row(pt: jax.Array) -> jax.Array:  # the expression on a one-point set
                return as_rows(f_expr(params, {**points, target: pt[None]}, inputs, weights)[0])[0]

            return jax.vmap(row)(points[target])

        param_keys = keys
        rows = jnp.asarray(idx)

        def fire(params: dict[str, Any], points: dict[str, jax.Array], inputs: dict[str, jax.Array],
                 weights: dict[str, jax.Array]) -> dict[str, jax.Array]:
            pts = {s: (fixed_points[s] if s in fixed_points else points[s]) for s in sets}
            pts[target] = pts[target][rows]
            return _spectrum(jacobian({n: params[n] for n in param_keys}, pts, inputs, weights), k)

        return fire

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        m: dict[str, Any] = {
            f"explainability/ntk/eigval_{i}": float(v) for i, v in enumerate(np.ravel(value["eigvals_topk"]))
        }
        for key in ("lambda_max", "lambda_min", "condition_number", "trace"):
            m[f"explainability/ntk/{key}"] = float(value[key])
        m["explainability/ntk/spectrum_hist"] = Histogram(value["all_eigvals"])
        return m


def ntk_spectrum(grad_expr: Any, n_points: int = 256, top_k: int = 10, interval: int = 500) -> NtkSpectrum:
    """``jno.trackers.ntk_spectrum(u.grad(u_net), n_points=256, top_k=10, interval=500)``:
    the empirical NTK spectrum tracker (see :class:`NtkSpectrum`)."""
    return NtkSpectrum(grad_expr, n_points=n_points, top_k=top_k, interval=interval)
