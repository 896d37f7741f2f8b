"""Optimizers in jno's compiled chunk: epochs/s of L-BFGS (``optax.lbfgs()``, zoom line search)
against Adam on the same problem, and the Adam -> L-BFGS recipe's test error on Burgers.

    .venv/bin/python -m benchmarks.bench_optimizers speed [--epochs 2000] [--problems poisson1d burgers]
    .venv/bin/python -m benchmarks.bench_optimizers burgers [--adam 10000] [--lbfgs 1000]

``speed``: for each problem, Adam's steady-state epochs/s (a second solve of ``--epochs``,
after the compiling one), then ``net.optimizer(optax.lbfgs())`` and L-BFGS's (one compiling
solve of ``--epochs // 4`` steps, then a timed one of as many); the ratio is measured in one
process. Then a hand-written ``lax.scan`` of the same ``optax.lbfgs()`` on the solver's own
loss runs the same L-BFGS steps from the same state (a line search's cost depends on where it
starts: near convergence it takes more iterations), in the same process. ``burgers``: ``examples/burgers.py``'s problem, Adam for ``--adam`` epochs then L-BFGS
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


def hand_written(crux: Any, state: Any, steps: int) -> float:
    """Steps/s of a hand-written ``lax.scan`` of the solver's optimizer (``value``, ``grad``
    and ``value_fn`` passed as jno passes them) on the solver's own loss
    (``crux.loss_fn(...).sum()``), from the same parameters and optimizer state ``state``:
    the same computation as jno's chunk without jno's loop. Second call of the compiled scan."""
    import jax
    import jax.numpy as jnp

    (k,) = crux.trained_keys
    tx = crux.trainables[k].tx
    inputs, weights = crux.current_inputs(), crux.weights(state)

    def run(params: Any, opt: Any, points: Any) -> Any:
        def loss(q: Any) -> Any:
            return jnp.sum(crux.loss_fn({**state.params, k: q}, points, inputs, weights))

        def body(c: Any, _: Any) -> Any:
            params, st = c
            v, g = jax.value_and_grad(loss)(params)
            u, st = tx.update(g, st, params, value=v, grad=g, value_fn=loss)
            return (optax.apply_updates(params, u), st), v

        return jax.lax.scan(body, (params, opt), None, length=steps)

    f = jax.jit(run)
    args = (state.params[k], state.opt_states[k], crux.points)
    jax.block_until_ready(f(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    return steps / (time.perf_counter() - t0)


def speed(problem: str, epochs: int) -> dict[str, float]:
    crux, net, _ = {"poisson1d": _poisson1d, "burgers": _burgers}[problem]()
    adam = _timed(crux, epochs)
    net.optimizer(optax.lbfgs())
    n = max(epochs // 4, 1)
    crux.solve(n, progress=False)  # compiles
    start = crux.state
    t0 = time.perf_counter()
    crux.solve(n, progress=False)
    lbfgs = n / (time.perf_counter() - t0)
    hand = hand_written(crux, start, n)  # the same n steps from the same state, by hand
    return {"adam_epochs_per_s": adam, "lbfgs_epochs_per_s": lbfgs, "lbfgs_over_adam": lbfgs / adam,
            "hand_lbfgs_steps_per_s": hand, "jno_over_hand_lbfgs": lbfgs / hand}


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
