"""Per-fire cost and set-up (on_solve_begin) time of the explainability trackers of
jno-plugin-ntk, jno-plugin-hessian and jno-plugin-landscape on the spec's script-09 problem
(1-D Poisson, foundax.mlp(in_features=1, hidden_dims=32, num_layers=3), line(mesh_size=0.05),
2,000 epochs): ntk n_points=32 top_k=5 interval=200; hessian k=5 n_iter=15 interval=400;
landscape n_grid=11 alpha_range=0.5 interval=200.

Run: .venv/bin/python plugins/jno-plugin-ntk/benchmarks/bench_script09.py
"""

import time

import foundax
import jax
import numpy as np
import optax

import jno


def build():
    π = jno.np.pi
    domain = jno.domain.line(mesh_size=0.05)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    u_net = jno.nn.wrap(foundax.mlp(in_features=1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    u_net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)))
    u = u_net(x)
    pde = -u.d2(x) - jno.np.sin(π * x)
    crux = jno.core([pde.mse, u_net(xb).mse])
    return crux, u, u_net


def timed_prepare(cb, out):
    orig = cb.prepare

    def prepare(ctx):
        t0 = time.perf_counter()
        orig(ctx)
        out[cb.name] = (time.perf_counter() - t0) * 1e3

    cb.prepare = prepare


def main():
    crux, _, _ = build()
    t0 = time.perf_counter()
    h0 = crux.solve(2_000)
    base = time.perf_counter() - t0
    print(f"no trackers: solve(2000) {base:.2f} s (compile {h0.compile_time:.2f} s)")
    for which in ("ntk_spectrum", "hessian_spectrum", "loss_landscape"):
        crux, u, u_net = build()
        cb = {
            "ntk_spectrum": lambda: jno.trackers.ntk_spectrum(u.grad(u_net), n_points=32, top_k=5, interval=200),
            "hessian_spectrum": lambda: jno.trackers.hessian_spectrum(k=5, n_iter=15, interval=400),
            "loss_landscape": lambda: jno.trackers.loss_landscape(interval=200, n_grid=11, alpha_range=0.5),
        }[which]()
        prep: dict[str, float] = {}
        timed_prepare(cb, prep)
        t0 = time.perf_counter()
        crux.solve(2_000, callbacks=[cb])
        wall = time.perf_counter() - t0
        ft = np.asarray(cb.fire_times_ms)
        print(f"{which:17s} on_solve_begin {prep[which]:7.1f} ms | per fire median {np.median(ft):6.2f} ms "
              f"(min {ft.min():.2f}, first {ft[0]:.2f}, {len(ft)} fires) | solve wall {wall:.2f} s")


if __name__ == "__main__":
    main()
