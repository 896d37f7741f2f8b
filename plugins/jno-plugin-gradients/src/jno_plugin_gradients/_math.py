"""The three gradient statistics as plain NumPy functions of the gradient matrix.

``G`` has shape ``(N, P)``: row ``i`` is the gradient of the (unweighted) loss of constraint
``i`` with respect to the ``P`` selected parameters. Everything is computed in float64 on the
host (``G`` is already there: :meth:`SolveContext.gradient_matrix` returns a NumPy array) and
returned as float32. No JAX call is made, so nothing here can trigger an XLA compilation.

Zero gradients. A constraint whose gradient is exactly zero has no direction. Its unit vector
is taken as the zero vector (we divide by ``1`` instead of ``0``), so it has cosine similarity
``0`` with every other constraint, contributes nothing to the alignment's mean, and never
produces a NaN. The diagonal of the cosine matrix is always ``1`` (the spec's convention), also
for such a constraint. Non-finite gradients (a diverged loss) are not hidden: they propagate as
NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gradient_norms_of", "unit_rows", "cosine_matrix", "alignment_of"]


def _as_matrix(G: np.ndarray) -> np.ndarray:
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2:
        raise ValueError(
            f"expected a gradient matrix of shape (N constraints, P parameters), received shape "
            f"{G.shape}."
        )
    return G


def gradient_norms_of(G: np.ndarray) -> np.ndarray:
    """``||g_i||_2`` for every row of ``G`` ``(N, P)``; returns ``(N,)`` float32."""
    return np.linalg.norm(_as_matrix(G), axis=1).astype(np.float32)


def unit_rows(G: np.ndarray) -> np.ndarray:
    """``g_i / ||g_i||`` for every row of ``G`` ``(N, P)`` (float64); a zero row stays zero."""
    G = _as_matrix(G)
    norms = np.linalg.norm(G, axis=1, keepdims=True)
    return G / np.where(norms == 0.0, 1.0, norms)


def cosine_matrix(G: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity ``sim_ij = g_i . g_j / (||g_i|| ||g_j||)`` ``(N, N)`` float32.

    The diagonal is 1, values are clipped to ``[-1, 1]`` (rounding), and a zero gradient has
    similarity 0 with the others (see the module docstring). Conflicting gradients
    (``sim_ij < 0``) are the signal of Yu et al., *Gradient Surgery for Multi-Task Learning*
    (arXiv:2001.06782), Sec. 2.
    """
    U = unit_rows(G)
    C = np.clip(U @ U.T, -1.0, 1.0)
    np.fill_diagonal(C, 1.0)
    return C.astype(np.float32)


def alignment_of(G: np.ndarray) -> np.float32:
    """Total gradient alignment (Eq. 3.1 of arXiv:2502.00604)::

        alignment = 2 * || (1/N) sum_i g_i / ||g_i|| ||^2 - 1      in [-1, 1]

    ``+1``: every gradient points the same way; ``-1``: they cancel. For ``N = 2`` it equals
    the cosine similarity of the two gradients, for ``N = 1`` it is 1. Returns a float32 scalar.
    """
    U = unit_rows(G)
    if U.shape[0] == 0:
        return np.float32(np.nan)
    m = U.mean(axis=0)
    return np.float32(np.clip(2.0 * float(m @ m) - 1.0, -1.0, 1.0))
