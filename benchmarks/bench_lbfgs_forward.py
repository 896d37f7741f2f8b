"""What the L-BFGS step still pays besides the line search: the forward pass of the loss terms
(the history's per-constraint losses, and the check that the line search's stored value is
this step's loss; :func:`jno_core.optim.reuse_value_and_grad`) against a full
``jax.value_and_grad``, on the problems of :mod:`benchmarks.bench_accuracy`.

    .venv/bin/python -m benchmarks.bench_lbfgs_forward [--calls 200] [--rounds 3]

Both functions are jitted from the solver's public ``crux.loss_fn`` at the initial
parameters; each figure is the best of ``--rounds`` rounds of ``--calls`` calls (ms/call).
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

import jax
import jax.numpy as jnp

from benchmarks import accuracy_problems as AP


def measure(problem: str, calls: int, rounds: int) -> tuple[float, float]:
    """``(forward ms, value_and_grad ms)`` per call on ``problem``."""
    crux = AP.build_jno(problem, 100).crux
    params, pts, inp, w = crux.params, crux.points, crux.current_inputs(), crux.weights()
    (k,) = crux.trained_keys
    fwd = jax.jit(lambda q: crux.loss_fn({**params, k: q}, pts, inp, w))
    vg = jax.jit(jax.value_and_grad(lambda q: jnp.sum(crux.loss_fn({**params, k: q}, pts, inp, w))))
    q = params[k]
    jax.block_until_ready((fwd(q), vg(q)))
    best = {"fwd": float("inf"), "vg": float("inf")}
    for _ in range(rounds):
        for name, f in (("fwd", fwd), ("vg", vg)):
            t0 = time.perf_counter()
            for _ in range(calls):
                out = f(q)
            jax.block_until_ready(out)
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e3)
    return best["fwd"], best["vg"]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", nargs="+", choices=AP.PROBLEMS, default=["poisson2d", "burgers"])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    for problem in args.problem:
        f, g = measure(problem, args.calls, args.rounds)
        print(f"{problem}: forward {f:.3f} ms, value_and_grad {g:.3f} ms, ratio {f / g:.2f}", flush=True)


if __name__ == "__main__":
    main()
