"""Memory of one ntk_spectrum fire versus the number of collocation points.

A 2-D Poisson problem on rect(mesh_size=h) for several h (up to ~3,000 interior points, the
size at which building the full (N, P) Jacobian first runs out of memory in the reference),
NTK of the PDE residual pde.grad(net) with n_points=256. Prints XLA's memory analysis of the
compiled fire (arguments, temporaries) next to that of the full-Jacobian function
(the same expression on all N points), and the time per fire.

Run: .venv/bin/python plugins/jno-plugin-ntk/benchmarks/bench_ntk_memory.py
"""

import time

import jax
import numpy as np
import optax

import jno
from jno_core.compile import Env, evaluate

MB = 1024 ** 2


def main():
    for mesh in (0.1, 0.05, 0.025, 0.018):
        domain = jno.domain.rect(mesh_size=mesh)
        x, y, _ = domain.variable("interior")
        xb, yb, _ = domain.variable("boundary")
        net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=64, num_layers=3, key=jax.random.PRNGKey(0)))
        net.optimizer(optax.adam(1e-3))
        u = net(x, y)
        pde = -(u.d2(x) + u.d2(y)) - 1.0
        crux = jno.core([pde.mse, net(xb, yb).mse])
        cb = jno.trackers.ntk_spectrum(pde.grad(net), n_points=256, top_k=5, interval=1)
        crux.solve(11, callbacks=[cb])
        ma = cb.compiled.memory_analysis()
        full = jax.jit(lambda p, pts: evaluate(pde.grad(net), Env(p, pts))).lower(
            crux._state[0], crux._points).compile().memory_analysis()
        n = domain.points("interior").shape[0]
        P = net.n_params()
        print(f"N={n:5d} P={P}: ntk fire args {ma.argument_size_in_bytes / MB:6.2f} MB temp "
              f"{ma.temp_size_in_bytes / MB:6.2f} MB, {np.median(cb.fire_times_ms[1:]):7.1f} ms/fire "
              f"(min {np.min(cb.fire_times_ms[1:]):.1f}) | "
              f"full (N, P) Jacobian: output {full.output_size_in_bytes / MB:7.1f} MB temp "
              f"{full.temp_size_in_bytes / MB:8.1f} MB")


if __name__ == "__main__":
    main()
