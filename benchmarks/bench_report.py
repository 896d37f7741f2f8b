"""Size and write time of ``jno report`` for script 09's run (issue 19's budget: < ~5 MB, < 3 s on
2 cores), and for a large synthetic run (which the report downsamples).

    .venv/bin/python -m benchmarks.bench_report [--run-dir DIR] [--repeats 5] [--no-large]

Script 09's run: ``examples/spec_09_wandb_explainability.py`` run unchanged in a temporary
directory (2,000 epochs, the nine callbacks; csv sink, ``WANDB_MODE=disabled`` so its
``wandb=True`` logs nowhere), unless ``--run-dir`` names an existing run. Timed:

- ``write_report`` in this process: the first call (reads BokehJS from disk) and the median of
  ``--repeats`` more;
- ``jno report RUN_DIR`` as a user runs it (a new process: interpreter start, imports, writing),
  median of 3.

The large run (``--no-large`` skips it) is written with the csv sink directly: 50,000 steps of
6 scalars, 500 steps of a 64x64 heatmap and of a 2,000-value histogram.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def script09_run(workdir: Path) -> Path:
    env = dict(os.environ, WANDB_MODE="disabled", WANDB_SILENT="true", JNO_NO_PROGRESS="1")
    env.pop("JNO_REPORT", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "examples" / "spec_09_wandb_explainability.py")], cwd=workdir,
                   env=env, check=True, capture_output=True)
    print(f"script 09 ran in {time.perf_counter() - t0:.1f} s")
    (run,) = (workdir / "runs" / "spec_09_wandb_explainability").iterdir()
    return run


def large_run(workdir: Path) -> Path:
    import numpy as np
    from jno_plugin_csv import CsvSink

    from jno_core.metrics import Heatmap, Histogram, Scalar

    d = workdir / "large"
    d.mkdir()
    sink = CsvSink(SimpleNamespace(dir=d, sink_options={}))
    rng = np.random.default_rng(0)
    batch = []
    for step in range(50_000):
        loss = 1.0 / (1 + step) + 1e-3 * rng.random()
        m = {"loss/total": Scalar(loss), "loss/constraint_0": Scalar(0.6 * loss), "loss/constraint_1": Scalar(0.4 * loss),
             "train/grad_norm": Scalar(rng.random()), "train/param_norm": Scalar(10 + rng.random()),
             "lr/net0": Scalar(1e-3)}
        if step % 100 == 0:
            m["explainability/loss_landscape"] = Heatmap(rng.random((64, 64)) + step / 1e4)
            m["explainability/residual/constraint_0/histogram"] = Histogram(rng.normal(size=2000), bins=64)
        batch.append((step, m))
        if len(batch) == 1000:
            sink.log_metrics_batch(records=batch)
            batch = []
    sink.close_run()
    return d


def measure(run: Path, out_dir: Path, repeats: int) -> dict:
    from jno_core.report import write_report

    out = out_dir / f"{run.name}.html"
    t0 = time.perf_counter()
    res = write_report([run], out)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        write_report([run], out)
        times.append(time.perf_counter() - t0)
    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jno_core.cli", "report", str(run), "-o", str(out)], check=True,
                       capture_output=True)
        cli.append(time.perf_counter() - t0)
    return {"run": str(run), "size_mb": res.size / 1e6, "first_s": first, "median_s": statistics.median(times),
            "cli_median_s": statistics.median(cli), "problems": list(res.problems)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, help="an existing script-09 run (default: run the script)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-large", action="store_true", help="skip the large synthetic run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = {"script09": measure(args.run_dir or script09_run(tmp), tmp, args.repeats)}
        if not args.no_large:
            rows["large"] = measure(large_run(tmp), tmp, max(1, args.repeats // 2))
    print(f"{'run':10s} {'size MB':>8s} {'first s':>8s} {'median s':>9s} {'jno report s':>13s}")
    for name, r in rows.items():
        print(f"{name:10s} {r['size_mb']:8.2f} {r['first_s']:8.2f} {r['median_s']:9.2f} {r['cli_median_s']:13.2f}")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
