"""Helmholtz equation on the unit disk with a Neumann condition through outward normals:

    -lap u - k^2 u = f  in the disk |p| < 1,   grad u . n = g  on the circle,

with ``k = 1.5`` and ``f``, ``g`` from the exact solution ``u = sin(k x) sin(k y)`` (so
``f = k^2 u``). Sobol points inside the disk, Halton points on the circle with their outward
unit normals (``variable("boundary", normals=True)``), and the test error on a 2,000-point
uniform test set (``jno.trackers.validation``).

    .venv/bin/python examples/helmholtz_disk.py [--epochs 4000]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

import jno

#: k^2 = 2.25 lies between the disk's Neumann eigenvalues 0 and j'_{1,1}^2 = 3.39, so the
#: Neumann problem is well posed (k = pi would sit next to j'_{2,1}^2 = 9.33: nearly resonant)
K = 1.5


def exact(p: np.ndarray) -> np.ndarray:
    return np.sin(K * p[:, 0]) * np.sin(K * p[:, 1])


def build(seed: int = 0, epochs: int = 4000) -> dict:
    """``{"crux", "u", "test", "validation"}``."""
    dom = jno.domain.disk((0.0, 0.0), 1.0, seed=seed)
    x, y, _ = dom.variable("interior", sample=(1500, "sobol"))
    xb, yb, nx, ny, _ = dom.variable("boundary", sample=(300, "halton"), normals=True)

    net = jno.nn.wrap(jno.nn.mlp(2, 1, 32, 3, key=jax.random.PRNGKey(seed), init="glorot_normal"), name="u")
    net.optimizer(optax.adam(optax.exponential_decay(3e-3, epochs // 3, 0.3)))
    u, ub = net(x, y), net(xb, yb)
    s = jno.np.sin
    c = jno.np.cos
    pde = -(u.d2(x) + u.d2(y)) - K**2 * u - K**2 * s(K * x) * s(K * y)
    g = K * c(K * xb) * s(K * yb) * nx + K * s(K * xb) * c(K * yb) * ny
    neumann = ub.d(xb) * nx + ub.d(yb) * ny - g
    crux = jno.core([pde.mse, neumann.mse])

    test_pts = jno.domain.disk((0.0, 0.0), 1.0, seed=seed + 1).variable("interior", sample=(2000, "uniform"))[-1].points
    test = jno.domain.from_array({"interior": test_pts})
    val = jno.trackers.validation(u, domain=test, reference=exact, interval=500)
    return {"crux": crux, "u": u, "test": test, "validation": val}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4000)
    args = ap.parse_args()
    jno.setup(__file__, seed=0)
    p = build(epochs=args.epochs)
    p["crux"].solve(args.epochs, callbacks=[p["validation"]])
    print(f"relative L2 test error: {p['validation'].result['l2_rel'][-1]:.3e}")


if __name__ == "__main__":
    main()
