"""Sweep costs: a trial's overhead beyond its own training, and ``--workers 2`` against 1.

    .venv/bin/python -m benchmarks.bench_sweep [--trials 8] [--epochs 300]

Runs ``examples/sweep_train_poisson.py`` (the 1-D Poisson; it logs ``time/solve_s`` = the
solve's compile + training time) as a grid sweep of ``--trials`` points (lr x width), first
with one agent, then with two (``run_agents(workers=...)``, the code ``jno sweep run`` uses),
in the same process so both see the same machine load. Reports per configuration the wall
time, and per trial the agent-measured trial time, the solve time the script logged and the
difference (the overhead: process start, imports, ``jno.setup``, sinks, problem set-up, the
agent's bookkeeping). Also times ``python -c "import jno"`` alone, the largest part.

Measured (2-core CPU machine shared with ~5 other engineers, load average ~15 during the run;
8 trials, 300 epochs each):

* workers=1: 8 trials in 214.8 s; per trial median 27.2 s, of which the solve (compile +
  train) 12.0 s and the overhead 15.5 s; ``python -c "import jno"`` alone took 7.5 s.
* workers=2: 8 trials in 174.7 s (1.23x faster); per trial median 38.1 s (the two trials
  share what the other users leave of the 2 cores).

With the machine this loaded, two workers cannot get two cores; the speed-up is bounded by
the CPU left over, not by the agents (they only poll a small file every 50 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "sweep_train_poisson.py"


def _sweep(parent: Path, trials: int, epochs: int, workers: int) -> dict:
    from jno_core.replay import read_metrics
    from jno_core.sweep import create_sweep, parse_sweep_config, run_agents

    lrs = [1e-3, 3e-3, 1e-2, 3e-2][: max(1, trials // 2)]
    widths = [16, 32][: -(-trials // len(lrs))]
    cfg = parse_sweep_config({"method": "grid", "run_cap": trials, "metric": {"name": "val/l2_rel"},
                              "parameters": {"lr": {"values": lrs}, "width": {"values": widths},
                                             "epochs": {"value": epochs}}})
    sweep = create_sweep(cfg, parent / f"w{workers}")
    t0 = time.perf_counter()
    outcomes, _ = run_agents(sweep, [sys.executable, str(SCRIPT)], workers=workers, log=lambda m: None,
                             handle_signals=False)
    wall = time.perf_counter() - t0
    rows = []
    for o in outcomes:
        solve = float(read_metrics(sweep.dir / "runs" / o.name)["time/solve_s"]["values"][-1])
        rows.append({"trial": o.name, "state": o.state, "seconds": o.seconds, "solve_s": solve,
                     "overhead_s": o.seconds - solve})
    return {"workers": workers, "trials": len(outcomes), "wall_s": wall, "rows": rows,
            "median_trial_s": statistics.median(r["seconds"] for r in rows),
            "median_solve_s": statistics.median(r["solve_s"] for r in rows),
            "median_overhead_s": statistics.median(r["overhead_s"] for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=300)
    args = ap.parse_args()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jno"], check=True)
    import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep(Path(tmp), args.trials, args.epochs, 1)
        two = _sweep(Path(tmp), args.trials, args.epochs, 2)
    out = {"import_jno_s": import_s, "workers_1": one, "workers_2": two, "speedup": one["wall_s"] / two["wall_s"]}
    for r in (one, two):
        print(f"workers={r['workers']}: {r['trials']} trials in {r['wall_s']:.1f} s; per trial median "
              f"{r['median_trial_s']:.2f} s, of which solve (compile + train) {r['median_solve_s']:.2f} s, "
              f"overhead {r['median_overhead_s']:.2f} s")
    print(f"python -c 'import jno': {import_s:.2f} s; speedup workers 2 vs 1: {out['speedup']:.2f}x")
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
