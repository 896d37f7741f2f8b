"""The three strategies as pure, traceable device functions (no solver involved), so each
formula is testable on its own.

* random: fresh uniform points;
* RAD, residual-based adaptive distribution (Wu, Zhu, Tan, Kartha, Lu 2023, "A comprehensive
  study of non-adaptive and residual-based adaptive sampling for physics-informed neural
  networks", CMAME 403, Sec. 2.3, Eq. (2)): over a uniform candidate pool ``S_0``,
  ``p(x) ∝ |r(x)|^k / E[|r|^k] + c``; draw the new points from ``S_0`` with probabilities
  ``p``;
* R3, retain-resample-release (Daw, Bu, Wang, Perdikaris, Karpatne 2023, "Mitigating
  propagation failures in physics-informed neural networks using retain-resample-release
  (R3) sampling", ICML, Sec. 4, Algorithm 1): keep the points whose ``|r|`` is above the
  mean ``|r|`` of the current points, replace the others with fresh uniform points.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["residual_magnitude", "rad_probabilities", "rad_select", "r3_retain_mask", "r3_update"]


def residual_magnitude(r: jax.Array, n: int) -> jax.Array:
    """``|r(x)|`` ``(n,)`` of a residual field ``(n,)`` or ``(n, ...)`` (the Euclidean norm
    over the trailing components of a vector-valued residual)."""
    r = jnp.reshape(r, (n, -1)).astype(jnp.float32)
    return jnp.sqrt(jnp.sum(r * r, axis=1)) if r.shape[1] > 1 else jnp.abs(r[:, 0])


def rad_probabilities(abs_r: jax.Array, k: float, c: float) -> jax.Array:
    """RAD's sampling probabilities ``(M,)`` over a pool from ``|r|`` ``(M,)``:
    ``w = |r|^k / mean(|r|^k) + c``, ``p = w / sum(w)`` (Wu et al. 2023, Eq. (2)). A pool
    whose residual is zero everywhere gives uniform probabilities."""
    rk = abs_r.astype(jnp.float32) ** k
    mean = jnp.mean(rk)
    ratio = jnp.where(mean > 0, rk / jnp.where(mean > 0, mean, 1.0), jnp.ones_like(rk))
    w = ratio + c
    return w / jnp.sum(w)


def rad_select(key: jax.Array, abs_r: jax.Array, n: int, k: float, c: float, replace: bool = False) -> jax.Array:
    """``n`` pool indices ``(n,)`` drawn with RAD's probabilities. ``replace=False``
    (default, as the authors' DeepXDE code, ``np.random.choice(..., replace=False, p=p)``):
    successive sampling without replacement (draw index ``i`` with probability ``p_i``, remove
    it, renormalise, repeat), done at once by the Gumbel-top-``n`` trick (the ``n`` largest
    ``log p_i + G_i``, ``G_i`` i.i.d. standard Gumbel), so there are no duplicate points.
    ``replace=True``: ``n`` independent draws from ``p``."""
    p = rad_probabilities(abs_r, k, c)
    logp = jnp.log(p)
    if replace:
        return jax.random.categorical(key, logp, shape=(n,))
    g = logp + jax.random.gumbel(key, logp.shape, jnp.float32)
    return jax.lax.top_k(g, n)[1]


def r3_retain_mask(abs_r: jax.Array) -> jax.Array:
    """R3's retained points ``(N,)`` bool: ``|r| > mean(|r|)`` (Daw et al. 2023, Alg. 1)."""
    return abs_r > jnp.mean(abs_r)


def r3_update(points: jax.Array, abs_r: jax.Array, fresh: jax.Array) -> tuple[jax.Array, jax.Array]:
    """R3's new points ``(N, C)``: row ``i`` of ``points`` where it is retained, else row ``i``
    of ``fresh`` (uniform points); and the retained mask ``(N,)``."""
    keep = r3_retain_mask(abs_r)
    return jnp.where(keep[:, None], points, fresh.astype(points.dtype)), keep
