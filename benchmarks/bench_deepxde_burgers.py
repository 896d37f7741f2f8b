"""Burgers: jno against DeepXDE (TensorFlow backend) on the same points, network and optimizer.

DeepXDE is never a dependency of jno: install it in its own environment, e.g.

    python3 -m venv /tmp/dde && /tmp/dde/bin/pip install deepxde tensorflow-cpu tensorflow-probability tf-keras
    .venv/bin/python -m benchmarks.bench_deepxde_burgers --dde-python /tmp/dde/bin/python

The jno side writes its Sobol points (2,540 interior, 80 boundary, 160 initial: DeepXDE's
Burgers example's counts) to a temporary ``.npz``; the DeepXDE side trains on exactly those
points (interior as ``anchors``, boundary and initial as ``PointSetBC``), MLP 2-20x3-1 tanh with
Glorot-normal weights, Adam 1e-3. Both report steady-state steps/s of ``--steps`` steps after a
warm-up (compilation) of 200 steps, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DDE_SIDE = r'''
import json, sys, time, os
os.environ.setdefault("DDE_BACKEND", "tensorflow")
import numpy as np
import deepxde as dde
from deepxde.backend import tf
path, steps = sys.argv[1], int(sys.argv[2])
pts = np.load(path)
nu = 0.01 / np.pi
def pde(x, y):
    dy_x = dde.grad.jacobian(y, x, i=0, j=0)
    dy_t = dde.grad.jacobian(y, x, i=0, j=1)
    dy_xx = dde.grad.hessian(y, x, i=0, j=0)
    return dy_t + y * dy_x - nu * dy_xx
geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 0.99))
bc = dde.icbc.PointSetBC(pts["boundary"], np.zeros((len(pts["boundary"]), 1)))
ic = dde.icbc.PointSetBC(pts["initial"], -np.sin(np.pi * pts["initial"][:, :1]))
data = dde.data.TimePDE(geom, pde, [bc, ic], num_domain=0, num_boundary=0, num_initial=0,
                        anchors=pts["interior"])
net = dde.nn.FNN([2] + [20] * 3 + [1], "tanh", "Glorot normal")
model = dde.Model(data, net)
model.compile("adam", lr=1e-3)
model.train(iterations=200, display_every=10**9, verbose=0)
t0 = time.perf_counter()
model.train(iterations=steps, display_every=10**9, verbose=0)
dt = time.perf_counter() - t0
print(json.dumps({"steps_per_s": steps / dt, "n_train": int(len(data.train_x))}))
'''


def jno_side(steps: int, path: str) -> dict:
    import numpy as np

    from benchmarks import problems

    cons, _, _, dom = problems.burgers_parts()
    pts = {tag: dom.variable(tag, sample=(n, "sobol"))[-1].points
           for tag, n in (("interior", 2540), ("boundary", 80), ("initial", 160))}
    np.savez(path, **pts)
    import jno

    crux = jno.core(cons)
    crux.solve(200, progress=False)
    t0 = time.perf_counter()
    crux.solve(steps, progress=False)
    return {"steps_per_s": steps / (time.perf_counter() - t0), "n_train": int(sum(len(p) for p in pts.values()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dde-python", required=True, help="python of an environment with deepxde")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "points.npz")
        rows = []
        for _ in range(args.repeats):
            j = jno_side(args.steps, path)
            out = subprocess.run([args.dde_python, "-c", DDE_SIDE, path, str(args.steps)], capture_output=True,
                                 text=True, check=True)
            x = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((j, x))
            print(f"jno {j['steps_per_s']:8.1f} steps/s   deepxde {x['steps_per_s']:8.1f} steps/s   "
                  f"ratio {j['steps_per_s'] / x['steps_per_s']:.2f}   points {j['n_train']} / {x['n_train']}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
