"""Sampled point sets must not slow the loop: the 2-D Poisson of :func:`problems.poisson2d`
(MLP 2-64x4-1, Adam) on the 64 x 64 interior grid (4,096 points, 260 boundary points) against
4,096 Sobol interior and 260 Sobol boundary points, alternating in one process.

    .venv/bin/python -m benchmarks.bench_sampling [--epochs 200] [--repeats 3]

Target (issue #16): Sobol >= 0.95x the grid's epochs/s.
"""

from __future__ import annotations

import argparse
import time

from benchmarks import problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    solvers = {s: problems.poisson2d_sampled(sampler=s) for s in ("grid", "sobol")}
    for s, c in solvers.items():
        c.solve(args.epochs, progress=False)  # compile + warm-up
        print(s, {k: list(v.shape) for k, v in c._points.items()})
    best = {s: 0.0 for s in solvers}
    for _ in range(args.repeats):
        for s, c in solvers.items():
            t0 = time.perf_counter()
            c.solve(args.epochs, progress=False)
            best[s] = max(best[s], args.epochs / (time.perf_counter() - t0))
    print(f"grid  {best['grid']:8.1f} epochs/s\nsobol {best['sobol']:8.1f} epochs/s\n"
          f"ratio sobol/grid {best['sobol'] / best['grid']:.3f}")


if __name__ == "__main__":
    main()
