"""Reference solution of the viscous Burgers benchmark by the Cole-Hopf transformation.

``u_t + u u_x = nu u_xx`` on ``[-1, 1]``, ``u(x, 0) = -sin(pi x)``, ``u(+-1, t) = 0``,
``nu = 0.01 / pi``. With ``f(y) = exp(-cos(pi y) / (2 pi nu))`` (Cole 1951, Hopf 1950; the
closed form of Basdevant et al. 1986, Eq. 3):

    u(x, t) = - int sin(pi (x - eta)) f(x - eta) exp(-eta^2 / (4 nu t)) d eta
              / int f(x - eta) exp(-eta^2 / (4 nu t)) d eta,

computed with Gauss-Hermite quadrature (``eta = sqrt(4 nu t) z``; the common factor of the
two integrals cancels, and the exponent's maximum is subtracted for floating-point range).
Used by ``examples/burgers.py`` and its test.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NU", "burgers_exact", "reference_grid"]

NU = 0.01 / np.pi


def burgers_exact(x: np.ndarray, t: np.ndarray, n_nodes: int = 250, nu: float = NU) -> np.ndarray:
    """``u(x, t)`` at points ``x``, ``t`` (same shape; ``t >= 0``), float64."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    xb, tb = np.broadcast_arrays(x, t)
    z, w = np.polynomial.hermite.hermgauss(n_nodes)
    xf, tf = xb.reshape(-1, 1), tb.reshape(-1, 1)
    eta = np.sqrt(4 * nu * np.maximum(tf, 0.0)) * z[None, :]
    y = xf - eta
    e = -np.cos(np.pi * y) / (2 * np.pi * nu)
    e -= e.max(axis=1, keepdims=True)
    fw = w[None, :] * np.exp(e)
    u = -np.sum(np.sin(np.pi * y) * fw, axis=1) / np.sum(fw, axis=1)
    u = np.where(tf[:, 0] > 0, u, -np.sin(np.pi * xf[:, 0]))
    return u.reshape(xb.shape)


def reference_grid(nx: int = 256, nt: int = 100, t1: float = 0.99) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, T, U)`` on the ``nx x nt`` grid of ``[-1, 1] x [0, t1]`` (``indexing="ij"``)."""
    X, T = np.meshgrid(np.linspace(-1.0, 1.0, nx), np.linspace(0.0, t1, nt), indexing="ij")
    return X, T, burgers_exact(X, T)
