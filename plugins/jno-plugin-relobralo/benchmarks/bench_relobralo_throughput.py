"""ReLoBRaLo-weighted vs unweighted training throughput (epochs/s) on the spec's 1-D Poisson.

    python plugins/jno-plugin-relobralo/benchmarks/bench_relobralo_throughput.py [--reps 40]

Solvers are built once and warmed up; each repetition runs ``solve(epochs)`` on every
configuration in turn (interleaved, so load changes hit all alike) and the best epochs/s per
configuration is reported (``hist.wall_time``: the device loop, without compilation).
"""

from __future__ import annotations

import argparse

import jax
import optax

import jno

PI = jno.np.pi


def problem(hidden: int, layers: int, weighting: str | None):
    domain = jno.domain.line(mesh_size=0.05)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(in_features=1, hidden_dims=hidden, num_layers=layers, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(PI * x)
    if weighting is None:
        return jno.core([pde.mse, ub.mse])
    w_pde, w_bc = jno.fn.adaptive.relobralo([pde.mse, ub.mse], lookback=weighting)
    return jno.core([w_pde * pde.mse, w_bc * ub.mse])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=2000)
    args = ap.parse_args()
    for hidden, layers in [(32, 3), (16, 2)]:
        cfg = {"unweighted": problem(hidden, layers, None), "relobralo": problem(hidden, layers, "bernoulli"),
               "relobralo(expected)": problem(hidden, layers, "expected")}
        for c in cfg.values():
            c.solve(200)
        best = {k: 0.0 for k in cfg}
        for _ in range(args.reps):
            for k, c in cfg.items():
                best[k] = max(best[k], args.epochs / c.solve(args.epochs).wall_time)
        base = best["unweighted"]
        print(f"MLP {hidden}x{layers}: " + ", ".join(f"{k} {v:,.0f} ep/s ({v / base:.3f}x)" for k, v in best.items()))


if __name__ == "__main__":
    main()
