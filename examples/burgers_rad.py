"""Burgers (``examples/burgers.py``'s problem) with adaptive collocation points: RAD (Wu et al.
2023), R3 (Daw et al. 2023) or fresh uniform points every ``--every`` epochs, against the fixed
Sobol points, at the same number of epochs.

The resampler is a callback: it reads the PDE residual on the device every ``--every`` epochs,
replaces the interior points (same count, so nothing recompiles) and logs
``resample/kept_fraction`` and ``resample/mean_residual``::

    rad = jno.resampling.rad(pde, domain=dom, every=1000, k=1.0, c=1.0, pool_factor=4, seed=0)
    crux.solve(10_000, callbacks=[rad, validation])

    .venv/bin/python examples/burgers_rad.py [--method rad|r3|random|none] [--epochs 10000] [--every 1000]
                                             [--start 5000]

With this problem's learning-rate schedule (peak 1e-2), resampling from the start made the
test error worse on the two seeds measured (the loss jumps at each resample); ``--start 5000``
(resample once the rate has decayed) helped on one seed and hurt on the other (see
``benchmarks/results_resampling.md``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jno  # noqa: E402
from burgers import build  # noqa: E402


def make_resampler(method: str, problem: dict, every: int, seed: int = 0, start: int = 0):
    """The resampler of ``method`` for the Burgers problem's PDE residual (None for
    ``"none"``). ``problem["crux"].loss_terms[0]`` is ``pde.mse``; the resampler reads its
    field ``pde`` and resamples its point set, the interior of ``problem["domain"]``."""
    if method == "none":
        return None
    pde_loss = problem["crux"].loss_terms[0]
    if method == "rad":
        return jno.resampling.rad(pde_loss, domain=problem["domain"], every=every, k=1.0, c=1.0, pool_factor=4,
                                  seed=seed, start=start)
    return getattr(jno.resampling, method)(pde_loss, domain=problem["domain"], every=every, seed=seed, start=start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["rad", "r3", "random", "none"], default="rad")
    ap.add_argument("--epochs", type=int, default=10000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0, help="first epoch that may resample (e.g. 5000)")
    args = ap.parse_args()
    jno.setup(__file__, seed=0)
    p = build(epochs=args.epochs)
    res = make_resampler(args.method, p, args.every, start=args.start)
    hist = p["crux"].solve(args.epochs, callbacks=[p["validation"]] + ([res] if res is not None else []))
    pred = p["crux"].eval(p["u"], domain=p["test"])
    ref = p["reference"].ravel()
    l2 = np.linalg.norm(pred - ref) / np.linalg.norm(ref)
    print(f"{args.method}: relative L2 error vs Cole-Hopf after {args.epochs} epochs: {l2:.3e} "
          f"({args.epochs / hist.wall_time:.0f} epochs/s)")
    for rec in (res.records if res is not None else []):
        print(f"  epoch {rec['epoch']:6d}: kept {rec['kept_fraction']:.2f}, mean |r| before {rec['mean_residual']:.3e}")


if __name__ == "__main__":
    main()
