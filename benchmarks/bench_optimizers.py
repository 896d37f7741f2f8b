"""Optimizers in jno's compiled chunk: epochs/s of L-BFGS (``optax.lbfgs()``, zoom line search)
against Adam on the same problem, and the Adam -> L-BFGS recipe's test error on Burgers.

    .venv/bin/python -m benchmarks.bench_optimizers speed [--epochs 2000] [--problems poisson1d burgers]
    .venv/bin/python -m benchmarks.bench_optimizers burgers [--adam 10000] [--lbfgs 1000]

``speed``: for each problem, Adam's steady-state epochs/s (a second solve of ``--epochs``,
after the compiling one), then ``net.optimizer(optax.lbfgs())`` and L-BFGS's (one compiling
solve of ``--epochs // 4`` steps, then a timed one of as many); the ratio is measured in one
process. ``burgers``: ``examples/burgers.py``'s problem, Adam for ``--adam`` epochs then L-BFGS
for ``--lbfgs`` steps, the relative L2 error against Cole-Hopf after each phase (the issue's
goal: below 1e-2 after L-BFGS). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _burgers() -> tuple[Any, Any, dict]:
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import burgers  # examples/burgers.py

    p = burgers.build()
    return p["crux"], p["net"], p


def _poisson1d() -> tuple[Any, Any, dict]:
    import jno

    from benchmarks import problems

    constraints, _, net, _ = problems.poisson1d_parts()
    return jno.core(constraints), net, {}


def _timed(crux: Any, epochs: int) -> float:
    crux.solve(epochs, progress=False)  # compiles (and warms up)
    t0 = time.perf_counter()
    crux.solve(epochs, progress=False)
    return epochs / (time.perf_counter() - t0)


def speed(problem: str, epochs: int) -> dict[str, float]:
    crux, net, _ = {"poisson1d": _poisson1d, "burgers": _burgers}[problem]()
    adam = _timed(crux, epochs)
    net.optimizer(optax.lbfgs())
    lbfgs = _timed(crux, max(epochs // 4, 1))
    return {"adam_epochs_per_s": adam, "lbfgs_epochs_per_s": lbfgs, "lbfgs_over_adam": lbfgs / adam}


def burgers_recipe(adam_epochs: int, lbfgs_epochs: int) -> dict[str, float]:
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import burgers

    import jno

    jno.setup(None, sinks="none", root="/tmp/jno-bench-optimizers")
    p = burgers.build(epochs=adam_epochs)
    t0 = time.perf_counter()
    p["crux"].solve(adam_epochs, progress=False)
    t_adam = time.perf_counter() - t0
    err_adam = burgers.test_error(p)
    p["net"].optimizer(optax.lbfgs())
    t0 = time.perf_counter()
    p["crux"].solve(lbfgs_epochs, progress=False)
    t_lbfgs = time.perf_counter() - t0
    out = {"adam_epochs": adam_epochs, "lbfgs_steps": lbfgs_epochs, "l2_rel_after_adam": err_adam,
           "l2_rel_after_lbfgs": burgers.test_error(p), "adam_wall_s": t_adam, "lbfgs_wall_s": t_lbfgs}
    jno.finish()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--epochs", type=int, default=2000)
    s.add_argument("--problems", nargs="+", default=["poisson1d", "burgers"])
    b = sub.add_parser("burgers")
    b.add_argument("--adam", type=int, default=10000)
    b.add_argument("--lbfgs", type=int, default=1000)
    args = ap.parse_args()
    if args.what == "speed":
        out = {pr: speed(pr, args.epochs) for pr in args.problems}
    else:
        out = burgers_recipe(args.adam, args.lbfgs)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
