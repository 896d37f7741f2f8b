"""ReLoBRaLo (Relative Loss Balancing with Random Lookback) as a pure ``init``/``update`` pair.

Reference: R. Bischof and M. A. Kraus, *Multi-Objective Loss Balancing for Physics-Informed
Deep Learning*, arXiv:2110.09813 (2021), Sec. 3 ("ReLoBRaLo"), Eqs. (11)-(13). With ``K`` loss
terms ``L_i``, temperature ``tau``, decay ``alpha`` and a Bernoulli "look-back" variable
``rho`` with ``E[rho] = beta``:

    bal_i(t, t')  = K * softmax_i( L_i(t) / (tau * L_i(t')) )               (Eq. 11)
    hist_i(t)     = rho * lam_i(t-1) + (1 - rho) * bal_i(t, 0)              (Eq. 12)
    lam_i(t)      = alpha * hist_i(t) + (1 - alpha) * bal_i(t, t-1)         (Eq. 13)

Every ``bal`` sums to ``K`` and ``lam(0) = 1``, so ``lam(t)`` (a convex combination) sums to
``K`` at every step.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jno_core.api import WeightingScheme

__all__ = ["ReLoBRaLo", "relobralo_step", "lookback_uniform", "ALPHA", "BETA", "TAU"]

#: defaults of the reference implementation listed with the paper (arXiv:2110.09813)
ALPHA = 0.999
BETA = 0.99
TAU = 0.1

_LOOKBACKS = ("bernoulli", "expected")


def _check_unit(value: Any, what: str, example: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"relobralo: {what} must be a number in [0, 1], received {value!r}; e.g. {example}.") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"relobralo: {what} must be in [0, 1], received {v!r}; e.g. {example}.")
    return v


def _fmix32(h: Any) -> Any:
    """MurmurHash3's 32-bit finalizer (a bijective integer mix) on uint32 arrays."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _seed_mix(seed: int) -> int:
    """The per-seed offset of the counter-based draws (``fmix32(seed mod 2**32)``), in Python."""
    h = seed & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def lookback_uniform(epoch: Any, seed: int) -> jax.Array:
    """The uniform number ``u(epoch) in [0, 1)`` behind the look-back draw of ``epoch``:
    ``fmix32(epoch * 0x9E3779B9 + fmix32(seed)) >> 8`` scaled by ``2**-24`` (uint32 wrap-around
    arithmetic). ``rho(epoch) = 1 if u(epoch) < beta else 0``."""
    e = jnp.asarray(epoch).astype(jnp.uint32)
    h = _fmix32(e * jnp.uint32(0x9E3779B9) + jnp.uint32(_seed_mix(int(seed))))
    return (h >> 8).astype(jnp.float32) * jnp.float32(1.0 / (1 << 24))


def _softmax(z: jax.Array) -> jax.Array:
    """Softmax over the last axis; for a small static ``K`` written out element by element,
    which XLA fuses into one kernel (``jax.nn.softmax``'s reductions are separate kernels
    that cost more than the rest of the update in a tiny PINN step)."""
    k = z.shape[-1]
    if k > 16:
        return jax.nn.softmax(z, axis=-1)
    m = z[..., 0]
    for i in range(1, k):
        m = jnp.maximum(m, z[..., i])
    e = jnp.exp(z - m[..., None])
    total = e[..., 0]
    for i in range(1, k):
        total = total + e[..., i]
    return e / total[..., None]


def relobralo_step(lam: jax.Array, losses: jax.Array, l_prev: jax.Array, l0: jax.Array, rho: jax.Array | float,
                   alpha: float, tau: float, eps: float = 1e-12) -> jax.Array:
    """One ReLoBRaLo update, Eqs. (11)-(13) of arXiv:2110.09813.

    :param lam: the weights ``lam(t-1)`` ``(K,)``.
    :param losses: the unweighted losses ``L(t)`` ``(K,)``.
    :param l_prev: ``L(t-1)`` ``(K,)``; :param l0: ``L(0)`` ``(K,)``.
    :param rho: the look-back draw (0 or 1), or its expectation ``beta``.
    :returns: ``lam(t)`` ``(K,)``, summing to ``K``.
    """
    k = losses.shape[0]
    bal = k * _softmax(losses[None, :] / (tau * jnp.stack([l_prev, l0]) + eps))
    hist = rho * lam + (1.0 - rho) * bal[1]
    return alpha * hist + (1.0 - alpha) * bal[0]


class ReLoBRaLo(WeightingScheme):
    """ReLoBRaLo weights, state on the device (Bischof & Kraus 2021, arXiv:2110.09813, Sec. 3).

    :param losses: the ``K`` loss expressions to balance (e.g. ``[pde.mse, bc.mse]``); they are
        evaluated unweighted inside every training step (the same expressions in the
        constraints are computed once).
    :param alpha: exponential decay of the weights' history (paper's ``alpha``; default 0.999).
        ``alpha = 0`` uses only the last step's relative progress.
    :param beta: ``E[rho]``, the expected value of the Bernoulli look-back variable (the paper's
        "saudade"; default 0.99). With probability ``1 - beta`` a step looks back to the losses
        at the start of training instead of the previous weights.
    :param tau: the softmax temperature ``T`` (default 0.1).
    :param lookback: ``"bernoulli"`` (default, as in the paper) draws ``rho ~ Bernoulli(beta)``
        every step as ``u(epoch) < beta`` with the counter-based uniform of
        :func:`lookback_uniform` (a 32-bit integer hash of the seed and the global epoch): the
        draw depends only on ``seed`` and the epoch, so no key is carried in the state and a
        resumed run draws the same values as an uninterrupted one. (``jax.random``'s threefry
        costs a third of a small CPU step; the hash costs nothing measurable.)
        ``"expected"`` uses ``rho = beta`` deterministically (the expectation of Eq. 12 given
        ``lam(t-1)``).
    :param seed: the seed of the look-back draws.
    :param eps: added to ``tau * L_i(t')`` so a zero loss does not divide by zero.

    State: one flat float32 array ``(4K + 1,)`` holding the *inputs* of the update,
    ``[lam(t-1), L(t-1), L(t), L(0), rho(t)]``; :meth:`weights` evaluates Eqs. (11)-(13) on them
    (giving ``lam(t)``) and :meth:`update` only shifts the window (storing ``weights(state)`` as
    the new ``lam(t-1)``; XLA computes it once). ``init`` stores ``[1, L(0), L(0), L(0), 1]``,
    whose weights are exactly 1. The weights are the paper's either way; the layout is chosen for
    speed on XLA:CPU, measured on the spec's 1-D Poisson: with the update evaluated at the end of
    the step, or the state split into several buffers, the weighted step ran noticeably slower
    than the unweighted one; with this layout about as fast (figures in benchmarks/README.md).

    Timing: a step uses the weights computed after the previous step (``weights(state)`` is read
    before the forward pass), i.e. ``lam(t-1)`` multiplies ``L(t)``; the paper's listing
    computes ``lam(t)`` from ``L(t)`` and applies it in the same step. The one-step lag keeps
    the step a single forward/backward pass; for the slowly varying weights of
    ``alpha`` close to 1 the difference is one step of smoothing.
    """

    name = "relobralo"

    def __init__(
        self,
        losses: Sequence[Any],
        alpha: float = ALPHA,
        beta: float = BETA,
        tau: float = TAU,
        *,
        lookback: str = "bernoulli",
        seed: int = 0,
        eps: float = 1e-12,
    ) -> None:
        if isinstance(losses, (str, bytes)) or not isinstance(losses, (list, tuple)):
            raise TypeError(
                "relobralo expects a list of loss expressions, e.g. "
                f"jno.fn.adaptive.relobralo([pde.mse, bc.mse]); received {type(losses).__name__}."
            )
        super().__init__(losses)
        self.alpha = _check_unit(alpha, "alpha", "alpha=0.999")
        self.beta = _check_unit(beta, "beta (the expected look-back E[rho])", "beta=0.99")
        try:
            self.tau = float(tau)
        except (TypeError, ValueError):
            self.tau = float("nan")
        if not self.tau > 0:
            raise ValueError(f"relobralo: tau (temperature) must be a positive number, received {tau!r}; e.g. tau=0.1.")
        if lookback not in _LOOKBACKS:
            raise ValueError(f"relobralo: lookback must be one of {_LOOKBACKS}, received {lookback!r}.")
        self.lookback = lookback
        self.seed = int(seed)
        self.eps = float(eps)

    def init(self, losses: jax.Array) -> jax.Array:
        """The state ``(4K + 1,)`` float32 from the initial losses ``L(0)`` ``(K,)``:
        ``[lam, L_prev, L, L0, rho] = [1, L(0), L(0), L(0), 1]``, whose weights are 1."""
        l0 = jnp.asarray(losses, jnp.float32).reshape(self.n)
        return jnp.concatenate([jnp.ones((self.n,), jnp.float32), l0, l0, l0, jnp.ones((1,), jnp.float32)])

    def weights(self, state: jax.Array) -> jax.Array:
        """The weights ``(K,)`` the next training step multiplies into the losses: Eqs. (11)-(13)
        evaluated on the stored ``lam(t-1)``, ``L(t-1)``, ``L(t)``, ``L(0)`` and ``rho(t)``."""
        k = self.n
        return relobralo_step(state[:k], state[2 * k : 3 * k], state[k : 2 * k], state[3 * k : 4 * k],
                              state[4 * k], self.alpha, self.tau, self.eps)

    def rho(self, epoch: jax.Array) -> jax.Array:
        """The look-back variable of the step at ``epoch`` (float32 scalar)."""
        if self.lookback == "expected":
            return jnp.asarray(self.beta, jnp.float32)
        return (lookback_uniform(epoch, self.seed) < self.beta).astype(jnp.float32)

    def update(self, state: jax.Array, losses: jax.Array, epoch: jax.Array) -> jax.Array:
        """The state after the step at ``epoch`` with unweighted losses ``L(t)`` ``(K,)``:
        ``[lam(t-1), L(t-1), L(t), L(0), rho(t)]``, where ``lam(t-1)`` is the weights of
        ``state``."""
        k = self.n
        l = jnp.asarray(losses, jnp.float32).reshape(k)
        return jnp.concatenate([self.weights(state).astype(jnp.float32), state[2 * k : 3 * k], l,
                                state[3 * k : 4 * k], self.rho(epoch).reshape(1)])

    def __repr__(self) -> str:
        return (f"<ReLoBRaLo K={self.n} alpha={self.alpha} beta={self.beta} tau={self.tau} "
                f"lookback={self.lookback!r}>")
