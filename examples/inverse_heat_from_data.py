"""Inverse problem from noisy data: recover the diffusion coefficient of the heat equation

    u_t = kappa u_xx,  x in [0, 1], t in [0, 1],  u(x, 0) = sin(pi x),  u(0, t) = u(1, t) = 0,

from 200 noisy observations of u (1 % Gaussian noise) at scattered points. The exact solution
``exp(-kappa pi^2 t) sin(pi x)`` with ``kappa = 0.1`` makes the data; ``kappa`` starts at 0.5 and
is trained with the network (a ``jno.np.parameter``). The observations are a
``jno.domain.from_array`` point cloud with values, used in the constraint
``(u_net(xo, to) - u_obs).mse``.

    .venv/bin/python examples/inverse_heat_from_data.py [--epochs 6000]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

import jno

KAPPA = 0.1


def exact(x: np.ndarray, t: np.ndarray, kappa: float = KAPPA) -> np.ndarray:
    return np.exp(-kappa * np.pi**2 * t) * np.sin(np.pi * x)


def build(seed: int = 0, n_obs: int = 200, noise: float = 0.01, epochs: int = 6000) -> dict:
    """``{"crux", "kappa", "u", "domain"}``."""
    π = jno.np.pi
    dom = jno.domain.line(x_range=(0.0, 1.0), time=(0.0, 1.0, 50), seed=seed)
    x, t, _ = dom.variable("interior", sample=(1000, "sobol"))
    xb, tb, _ = dom.variable("boundary", sample=(100, "sobol"))
    x0, t0, _ = dom.variable("initial", sample=(100, "sobol"))

    rng = np.random.default_rng(seed)
    pts = rng.random((n_obs, 2))  # columns (x, t), as variable() returns them
    u_meas = exact(pts[:, 0], pts[:, 1])
    u_meas = u_meas + noise * np.std(u_meas) * rng.standard_normal(n_obs)
    obs = jno.domain.from_array({"obs": pts}, values={"obs": u_meas}, names=("x", "t"))
    xo, to, _ = obs.variable("obs")
    u_obs = obs.values("obs")

    net = jno.nn.wrap(jno.nn.mlp(2, 1, 32, 3, key=jax.random.PRNGKey(seed), init="glorot_normal"), name="u")
    net.optimizer(optax.adam(optax.exponential_decay(3e-3, epochs // 3, 0.3)))
    kappa = jno.np.parameter((1,), name="kappa", init=0.5)
    kappa.optimizer(optax.adam(optax.exponential_decay(1e-2, epochs // 3, 0.3)))

    u = net(x, t)
    pde = u.d(t) - kappa * u.d2(x)
    data = net(xo, to) - u_obs
    crux = jno.core([pde.mse, net(xb, tb).mse, (net(x0, t0) - jno.np.sin(π * x0)).mse, 10.0 * data.mse,
                     kappa.tracker(500, name="kappa")])
    return {"crux": crux, "kappa": kappa, "u": u, "domain": dom}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6000)
    args = ap.parse_args()
    jno.setup(__file__, seed=0)
    p = build(epochs=args.epochs)
    p["crux"].solve(args.epochs)
    (k,) = p["crux"].eval([p["kappa"]])
    print(f"recovered kappa = {float(k[0]):.4f} (true {KAPPA}); relative error {abs(k[0] - KAPPA) / KAPPA:.2%}")


if __name__ == "__main__":
    main()
