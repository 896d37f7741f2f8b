"""The Hessian eigenspectrum (sharpness) tracker (:class:`HessianSpectrum`).

The top-``k`` eigenvalues of the training-loss Hessian ``d^2 L / d theta^2`` over the
selected parameters come from ``n_iter`` Lanczos steps with full reorthogonalisation
(Sec. 3.1-3.2 of Yao et al., arXiv 1912.07145), each step one Hessian-vector product by
forward-over-reverse differentiation, ``H v = jvp(grad(L), (theta,), (v,))``. The largest
eigenvalue is the sharpness of the loss surface at the current iterate (Sec. 2.2 of
Keskar et al., arXiv 1609.04836). The whole fire (``n_iter`` HVPs in one ``lax.fori_loop``,
the tridiagonal eigen-solve) is the tracker's device function (:meth:`HessianSpectrum.fire_fn`),
compiled by the core when the solve starts. Memory: the
``(n_iter + 1, P)`` Krylov basis plus one HVP.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import expr as E
from jno_core.api import Env, evaluate
from jno_core.api import Tracker

from ._lanczos import lanczos_tridiagonal, tridiagonal_eigvals

__all__ = ["HessianSpectrum", "hessian_spectrum", "SEED"]

#: seed of the Lanczos start vector (``numpy.random.default_rng(SEED).standard_normal(P)``)
SEED = 0


def _check_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"hessian_spectrum: {what} must be a positive integer, received {value!r}; e.g. {example}."
        )
    return int(value)


def _loss_fn(terms: Sequence[E.Placeholder], indices: Sequence[int] | None) -> Callable[..., jax.Array]:
    """Traceable ``L(params, points, inputs, weights)``: the training loss (the weighted sum
    of the constraints, as in the train step) or, with ``indices``, the mean of those
    constraints' unweighted losses."""
    if indices is None:
        def total(params: Any, points: Any, inputs: Any, weights: Any) -> jax.Array:
            env = Env(params, points, weights, inputs, unweighted=False)
            return jnp.sum(jnp.stack([evaluate(c, env) for c in terms]))

        return total
    chosen = [terms[i] for i in indices]

    def scoped(params: Any, points: Any, inputs: Any, weights: Any) -> jax.Array:
        env = Env(params, points, weights, inputs, unweighted=True)
        return jnp.mean(jnp.stack([evaluate(c, env) for c in chosen]))

    return scoped


class HessianSpectrum(Tracker):
    """Top-``k`` eigenvalues of the loss Hessian by Lanczos (see the module docstring).

    :param k: number of largest (algebraic, i.e. most positive) eigenvalues reported.
    :param n_iter: Lanczos steps (one Hessian-vector product each).
    :param interval: fire every ``interval`` epochs.
    :param mask: bool pytree selecting the differentiated parameters (``None``: all trained).
    :param constraints: ``None`` for the training loss (weighted as in training), or a list
        of the solver's constraint expressions (the objects passed to ``jno.core``; matched
        by identity, else structurally): the Hessian is then that of the *mean of their
        unweighted losses*.

    Clipping: with ``P`` selected parameters the run uses ``n_iter_eff = min(n_iter, P)``
    steps (a Krylov space has at most ``P`` dimensions) and reports
    ``k_eff = min(k, n_iter_eff)`` eigenvalues; ``value["n_iter"]`` is ``n_iter_eff``. With
    ``n_iter_eff = P`` the Ritz values are all of the Hessian's eigenvalues; with fewer steps
    the largest converge first (use ``n_iter`` of about ``3 k`` or more for ``k`` accurate
    values). The start vector is ``N(0, I)`` from ``numpy.random.default_rng(SEED)``, drawn
    once in ``on_solve_begin`` and the same at every fire.

    ``result``: ``epochs`` ``(S,)``, ``eigvals`` ``(S, k_eff)`` descending, ``sharpness``
    ``(S,)`` (the largest eigenvalue).
    """

    name = "hessian_spectrum"
    result_keys = ("eigvals", "sharpness")
    batch_fires = False  # an expensive fire, rarely: one call per fire, not per chunk

    def __init__(self, k: int = 10, n_iter: int = 30, interval: int = 500, mask: Any = None,
                 constraints: Sequence[Any] | None = None) -> None:
        super().__init__(interval)
        self.k = _check_int(k, "k", "k=10")
        self.n_iter = _check_int(n_iter, "n_iter", "n_iter=30")
        self.mask = mask
        if constraints is not None:
            if isinstance(constraints, E.Placeholder):
                constraints = [constraints]
            if not isinstance(constraints, (list, tuple)) or not constraints or not all(
                    isinstance(c, E.Placeholder) for c in constraints):
                raise TypeError(
                    "hessian_spectrum: constraints must be a non-empty list of the constraint "
                    "expressions passed to jno.core([...]) (assign them to variables first), or "
                    f"None for the training loss; received {constraints!r}."
                )
            constraints = list(constraints)
        self.constraints = constraints
        self.n_iter_eff: int | None = None
        self.k_eff: int | None = None
        self.indices: list[int] | None = None
        self._v0: jax.Array | None = None

    # ------------------------------------------------------------------ set-up
    def fire_fn(self, ctx: Any) -> Any:
        """Resolve the scope and the parameter selection; the fire: Lanczos on the device."""
        sel = ctx.selector(self.mask)
        self.indices = (None if self.constraints is None
                        else [ctx.constraint_index(c) for c in self.constraints])
        if self.indices is not None:
            self.static_result = {"constraint_indices": np.asarray(self.indices, np.int64)}
        m = min(self.n_iter, sel.size)
        k = min(self.k, m)
        self.n_iter_eff, self.k_eff = m, k
        loss = _loss_fn(ctx.constraints, self.indices)

        v0 = self._v0 = jnp.asarray(np.random.default_rng(SEED).standard_normal(sel.size), jnp.float32)

        def fire(params: Any, points: Any, inputs: Any, weights: Any) -> dict[str, jax.Array]:
            theta0 = sel.flatten(params)

            def f(theta: jax.Array) -> jax.Array:
                return loss(sel.unflatten(params, theta), points, inputs, weights)

            grad_f = jax.grad(f)

            def hvp(v: jax.Array) -> jax.Array:  # forward-over-reverse
                return jax.jvp(grad_f, (theta0,), (v,))[1]

            alpha, beta = lanczos_tridiagonal(hvp, v0.astype(theta0.dtype), m)
            ev = tridiagonal_eigvals(alpha, beta)[::-1]
            return {"eigvals": ev[:k], "sharpness": ev[0]}

        return fire

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        out = dict(out)
        out["n_iter"] = self.n_iter_eff
        return out

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        m: dict[str, Any] = {
            f"explainability/hessian/eigval_{i}": float(v) for i, v in enumerate(np.ravel(value["eigvals"]))
        }
        m["explainability/hessian/sharpness"] = float(value["sharpness"])
        m["explainability/hessian/n_iter"] = int(value["n_iter"])
        return m


def hessian_spectrum(k: int = 10, n_iter: int = 30, interval: int = 500, mask: Any = None,
                     constraints: Sequence[Any] | None = None) -> HessianSpectrum:
    """``jno.trackers.hessian_spectrum(k=10, n_iter=30, interval=500, mask=None,
    constraints=None)``: the Hessian eigenspectrum tracker (see :class:`HessianSpectrum`)."""
    return HessianSpectrum(k=k, n_iter=n_iter, interval=interval, mask=mask, constraints=constraints)
