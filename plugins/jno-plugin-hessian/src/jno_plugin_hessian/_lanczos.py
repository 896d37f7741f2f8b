"""Lanczos with full reorthogonalisation for the extreme eigenvalues of a symmetric operator
given only as matrix-vector products (Sec. 3.1-3.2 of Yao, Gholami, Keutzer & Mahoney,
"PyHessian: Neural Networks Through the Lens of the Hessian", arXiv 1912.07145).

After ``m`` steps the ``m x m`` tridiagonal ``T = V^T A V`` (``V`` the orthonormal Krylov
basis) has eigenvalues (Ritz values) that approximate the extreme eigenvalues of ``A``; with
``m = dim(A)`` they are all of ``A``'s eigenvalues. Every new basis vector is projected
against *all* previous ones, twice (classical Gram-Schmidt twice, "twice is enough"), so the
float32 basis stays orthogonal and no spurious copies of converged Ritz values appear.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["lanczos_tridiagonal", "tridiagonal_eigvals"]


def lanczos_tridiagonal(
    matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, m: int
) -> tuple[jax.Array, jax.Array]:
    """Run ``m`` Lanczos steps from ``v0`` (traceable; one ``lax.fori_loop``).

    :param matvec: ``v -> A v`` for a symmetric ``A`` of size ``(P, P)``; ``v`` is ``(P,)``.
    :param v0: start vector ``(P,)`` (normalised here), e.g. a Gaussian draw; ``m <= P``.
        After a breakdown (an invariant subspace was found: the new residual is numerically
        zero) the run restarts with ``roll(v0, i + 1)`` (a permutation of the random start
        vector, so no PRNG runs on the device) orthogonalised against the basis, and an
        off-diagonal entry of 0, which keeps ``T``'s eigenvalues eigenvalues of ``A``.
    :returns: ``(alpha, beta)``: the diagonal ``(m,)`` and the off-diagonal ``(m - 1,)`` of ``T``.
    """
    P = v0.shape[0]
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    V = jnp.zeros((m + 1, P), dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    rows = jnp.arange(m + 1)

    hi = jax.lax.Precision.HIGHEST

    def project_out(B: jax.Array, w: jax.Array) -> jax.Array:
        for _ in range(2):
            w = w - jnp.matmul(jnp.matmul(B, w, precision=hi), B, precision=hi)
        return w

    Carry = tuple[jax.Array, jax.Array, jax.Array]

    def body(i: jax.Array, carry: Carry) -> Carry:
        V, alpha, beta = carry
        v = V[i]
        w = matvec(v)
        a = jnp.dot(v, w, precision=hi)
        B = jnp.where((rows <= i)[:, None], V, 0.0)  # the basis so far, v_0..v_i
        w_norm = jnp.linalg.norm(w)
        w = project_out(B, w)  # full reorthogonalisation (includes the a v_i, b v_{i-1} terms)
        b = jnp.linalg.norm(w)
        broke = b <= 100 * eps * w_norm
        r = project_out(B, jnp.roll(v0, i + 1))
        nxt = jnp.where(broke, r / jnp.maximum(jnp.linalg.norm(r), tiny), w / jnp.where(broke, 1.0, b))
        V = V.at[i + 1].set(nxt)
        return V, alpha.at[i].set(a), beta.at[i].set(jnp.where(broke, 0.0, b))

    init = (V, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype))
    _, alpha, beta = jax.lax.fori_loop(0, m, body, init)
    return alpha, beta[: m - 1]


def tridiagonal_eigvals(alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """Eigenvalues (ascending) of the symmetric tridiagonal matrix with diagonal ``alpha``
    ``(m,)`` and off-diagonal ``beta`` ``(m - 1,)`` (``jnp.linalg.eigvalsh``)."""
    T = jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)
    return jnp.linalg.eigvalsh(T)
