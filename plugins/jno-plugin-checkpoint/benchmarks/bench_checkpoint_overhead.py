"""Overhead of checkpointing every 500 epochs on a 2,000-epoch solve of the spec's 1-D Poisson
(script 09's network: MLP 32x3, Adam with exponential decay).

    python plugins/jno-plugin-checkpoint/benchmarks/bench_checkpoint_overhead.py [--reps 30]

Each repetition times ``crux.solve(2000)`` end to end (``time.perf_counter`` around the call, so
set-up, the final save's hand-off and all hooks count) without and with the checkpoint callback,
interleaved; medians and minima are reported. Every solve with the callback writes 4
checkpoints (3 at multiples of 500 and the final one) with fsync, keeping 3.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import jax
import numpy as np
import optax

import jno

PI = jno.np.pi


def problem():
    domain = jno.domain.line(mesh_size=0.05)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(in_features=1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(PI * x)
    return jno.core([pde.mse, ub.mse])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="jno-ckpt-bench-")
    try:
        plain, ck = problem(), problem()
        cb = jno.callbacks.checkpoint(directory=tmp, save_interval_epochs=500, max_to_keep=3)
        plain.solve(100)
        ck.solve(100, callbacks=[cb])
        t_plain, t_ck = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            plain.solve(2000)
            t_plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            ck.solve(2000, callbacks=[cb])
            t_ck.append(time.perf_counter() - t)
            time.sleep(0.05)  # let the last write finish before the next pair
        cb.close()
        a, b = np.asarray(t_plain), np.asarray(t_ck)
        print(f"2000-epoch solve: plain median {np.median(a) * 1e3:.1f} ms (min {a.min() * 1e3:.1f}), "
              f"checkpoint every 500 median {np.median(b) * 1e3:.1f} ms (min {b.min() * 1e3:.1f}); "
              f"overhead median {np.median(b) / np.median(a) - 1:+.1%}, min {b.min() / a.min() - 1:+.1%}")
        print(f"training-thread time per save: median {np.median(cb.save_times_ms):.3f} ms over "
              f"{len(cb.save_times_ms)} saves; kept {cb.all_steps}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
