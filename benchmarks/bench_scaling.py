"""Strong and weak scaling of the 2-D Poisson over 1, 2 and 4 forced CPU devices.

    .venv/bin/python -m benchmarks.bench_scaling [--epochs 100]

Each configuration runs in its own subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``. Strong scaling: a fixed problem
(rect mesh 1/65: 64^2 = 4096 interior points) on 1, 2, 4
devices. Weak scaling: the interior point count grows with the device count. This machine has
2 cores, so 4 "devices" share 2 cores: expect no speed-up past 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _one(n_dev: int, mesh_n: int, epochs: int) -> dict[str, float]:
    import jax
    import optax

    import jno

    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=1.0 / mesh_n)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=64, num_layers=4, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
    crux = jno.core([pde.mse, ub.mse])
    h = crux.solve(5, devices=n_dev, progress=False)
    t0 = time.perf_counter()
    crux.solve(epochs, progress=False)
    dt = time.perf_counter() - t0
    return {"devices": n_dev, "points": (mesh_n - 1) ** 2, "epochs_per_s": epochs / dt,
            "compile_s": h.compile_time}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one)))
        return
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JNO_NO_PROGRESS="1")
    # interior points (mesh_n - 1)^2 divisible by 4 => mesh_n odd
    configs = {
        "strong": [(1, 65), (2, 65), (4, 65)],
        "weak": [(1, 33), (2, 47), (4, 65)],  # ~1024, ~2116, 4096 interior points
    }
    for kind, cfgs in configs.items():
        print(f"\n{kind} scaling ({args.epochs} epochs)")
        print(f"{'devices':>7s} {'points':>7s} {'epochs/s':>9s} {'speed-up':>8s} {'compile s':>9s}")
        base = None
        for n_dev, mesh_n in cfgs:
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scaling", "--one", str(n_dev), str(mesh_n),
                                  str(args.epochs)], capture_output=True, text=True, env=env, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            base = base or r["epochs_per_s"]
            print(f"{r['devices']:7d} {r['points']:7d} {r['epochs_per_s']:9.1f} {r['epochs_per_s'] / base:8.2f} "
                  f"{r['compile_s']:9.2f}")


if __name__ == "__main__":
    main()
