"""Adaptive resampling on Burgers (``examples/burgers.py``'s problem: 2,540 Sobol interior
points, MLP 2-32x3-1, Adam with warm-up/cosine schedule; ``examples/burgers_rad.py``).

* the cost of one resample (ms): the compiled device function (residual on the current points
  and, for RAD, on the 4 x 2,540 candidate pool, selection) plus ``set_points``, median of
  ``--calls`` calls, blocking on the result;
* epochs/s with RAD every 1000 epochs vs no resampling, the same solver alternating in one
  process (``--speed-epochs`` per solve, ``--repeats`` rounds; best of the rounds);
* the relative L2 test error against Cole-Hopf (256 x 100 grid) after ``--epochs`` epochs,
  fixed Sobol points vs random / RAD / R3 every ``--every`` epochs, per ``--seeds`` seed
  (network initialisation and resampling seed).

    .venv/bin/python -m benchmarks.bench_resampling [--epochs 10000] [--every 1000] [--seeds 0]
        [--skip cost speed] [--methods none rad] [--start 5000] [--rad-k 2 --rad-c 0] [--pool-factor 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import jno  # noqa: E402
from burgers import build  # noqa: E402
from burgers_rad import make_resampler  # noqa: E402


def l2_error(p: dict) -> float:
    pred = p["crux"].eval(p["u"], domain=p["test"])
    ref = p["reference"].ravel()
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


def resample_cost(calls: int, every: int) -> dict:
    """Median ms of one RAD and one R3 resample (device function + set_points)."""
    out = {}
    for method in ("rad", "r3"):
        jno.finish()
        p = build(epochs=every + 1000)
        r = make_resampler(method, p, every)
        crux = p["crux"]
        crux.solve(every + 1, callbacks=[r], progress=False)  # compiles, resamples once
        args = (crux.params, crux.points, crux.current_inputs(), crux.weights())
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            new, kept, mean = r._fn(*args, r.base_key, np.int32(every * (i + 2)))
            crux.set_points(r.key, new)
            jax.block_until_ready((crux.points[r.key], kept, mean))
            times.append((time.perf_counter() - t0) * 1e3)
        out[method] = float(np.median(times))
    return out


def speed(epochs: int, every: int, repeats: int) -> dict:
    """Best epochs/s of solves without and with RAD every ``every`` epochs (alternating)."""
    jno.finish()
    p = build(epochs=10 * epochs * repeats + 2000)
    crux = p["crux"]
    rad = make_resampler("rad", p, every)
    crux.solve(epochs, progress=False)  # compile (plain)
    crux.solve(every, callbacks=[rad], progress=False)  # compile (with the resampler)
    best = {"none": 0.0, "rad": 0.0}
    for _ in range(repeats):
        for name, cbs in (("none", []), ("rad", [rad])):
            h = crux.solve(epochs, callbacks=cbs, progress=False)
            best[name] = max(best[name], epochs / h.wall_time)
    return best


def _resampler(method: str, p: dict, every: int, seed: int, start: int, rad: dict | None) -> object:
    """``make_resampler``'s resampler, or with ``rad`` (``{"k", "c", "pool_factor"}``) a RAD
    with those settings."""
    if method == "rad" and rad is not None:
        return jno.resampling.rad(p["crux"].loss_terms[0], domain=p["domain"], every=every, seed=seed, start=start,
                                  **rad)
    return make_resampler(method, p, every, seed=seed, start=start)


def accuracy(epochs: int, every: int, seeds: list[int], methods: tuple[str, ...] = ("none", "random", "rad", "r3"),
             start: int = 0, rad: dict | None = None) -> dict:
    """Relative L2 error after ``epochs`` epochs per method and seed (resampling every
    ``every`` epochs from epoch ``start``; ``rad``: RAD's ``k``, ``c``, ``pool_factor``)."""
    out: dict = {}
    for seed in seeds:
        for method in methods:
            jno.finish()
            p = build(seed=seed, epochs=epochs)
            r = _resampler(method, p, every, seed, start, rad)
            t0 = time.perf_counter()
            p["crux"].solve(epochs, callbacks=[r] if r is not None else [], progress=False)
            err = l2_error(p)
            out.setdefault(method, []).append(err)
            print(f"seed {seed} {method:6s}: L2 rel {err:.3e} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--speed-epochs", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--skip", nargs="*", default=[], choices=["cost", "speed", "accuracy"])
    ap.add_argument("--methods", nargs="+", default=["none", "random", "rad", "r3"],
                    choices=["none", "random", "rad", "r3"], help="accuracy: the point strategies to train with")
    ap.add_argument("--start", type=int, default=0, help="accuracy: the first epoch that may resample")
    ap.add_argument("--rad-k", type=float, default=1.0, help="accuracy: RAD's exponent k")
    ap.add_argument("--rad-c", type=float, default=1.0, help="accuracy: RAD's constant c")
    ap.add_argument("--pool-factor", type=int, default=4, help="accuracy: RAD's candidate pool, times N")
    args = ap.parse_args()
    os.environ.setdefault("JNO_NO_PROGRESS", "1")
    res: dict = {}
    if "cost" not in args.skip:
        res["resample_ms"] = resample_cost(args.calls, args.every)
        print("resample cost (ms, median):", res["resample_ms"], flush=True)
    if "speed" not in args.skip:
        res["epochs_per_s"] = speed(args.speed_epochs, args.every, args.repeats)
        s = res["epochs_per_s"]
        print(f"epochs/s none {s['none']:.1f}, RAD every {args.every} {s['rad']:.1f}, "
              f"ratio {s['rad'] / s['none']:.3f}", flush=True)
    if "accuracy" not in args.skip:
        rad = {"k": args.rad_k, "c": args.rad_c, "pool_factor": args.pool_factor}
        res["l2_rel"] = accuracy(args.epochs, args.every, args.seeds, tuple(args.methods), args.start, rad)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
