"""jno's solve loop against the hand-written JAX baseline, side by side in one run.

    .venv/bin/python -m benchmarks.bench_core [--epochs1d 10000] [--epochs2d 300]

For each problem: steady-state epochs/s (a second solve of the same length, after the
compiling one), compile time, and peak RSS (each measurement in its own subprocess so peak
memory is not shared). Targets (issue #2): jno >= 0.9x the scan-fused baseline's epochs/s and
compile time <= 1.5x it. ``burgers`` (issue #16): DeepXDE's Burgers set-up (2,540 Sobol interior,
80 boundary, 160 initial points, MLP 2-20x3-1, Adam) against the hand-written JAX loop of
:mod:`benchmarks.baseline_burgers` on the same points and initial network (>= 0.9x).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks import baseline


def _jno(problem: str, epochs: int) -> dict[str, float]:
    from benchmarks import problems

    crux = getattr(problems, problem)()
    h = crux.solve(epochs, progress=False)
    compile_s = h.compile_time
    t0 = time.perf_counter()
    h2 = crux.solve(epochs, progress=False)
    dt = time.perf_counter() - t0
    return {"epochs_per_s": epochs / dt, "compile_s": compile_s, "final_loss": h2.final_loss,
            "peak_rss_mb": baseline.peak_rss_mb()}


def _burgers_baseline(epochs: int) -> dict[str, float]:
    """The hand-written JAX Burgers loop on the very points and initial network of jno's."""
    from benchmarks import baseline_burgers, problems

    _, _, net, dom = problems.burgers_parts()
    pts = {tag: dom.variable(tag, sample=(n, "sobol"))[-1].points
           for tag, n in (("interior", 2540), ("boundary", 80), ("initial", 160))}
    t0 = time.perf_counter()
    out = baseline_burgers.run_scan(net.module, pts, epochs)
    out["compile_s"] = time.perf_counter() - t0 - epochs / out["epochs_per_s"]
    return out


def _one(impl: str, problem: str, epochs: int) -> dict[str, float]:
    if impl == "jno":
        return _jno(problem, epochs)
    if problem == "burgers":
        out = _burgers_baseline(epochs)
        out["peak_rss_mb"] = baseline.peak_rss_mb()
        return out
    fn = baseline.run_scan if impl == "scan" else baseline.run_jitted
    out = dict(fn(problem, epochs))
    if impl == "scan":
        # compile time alone: lower+compile of the fused loop without running it
        out["compile_s"] = _baseline_compile_only(problem, epochs)
    out["peak_rss_mb"] = baseline.peak_rss_mb()
    return out


def _baseline_compile_only(problem: str, epochs: int) -> float:
    import jax

    p = baseline.make_problem(problem)
    opt_state = p.optimizer.init(p.params)

    def run(params, opt_state):
        def body(carry, _):
            params, opt_state = carry
            loss, g = jax.value_and_grad(p.loss_fn)(params, p.points)
            upd, opt_state = p.optimizer.update(g, opt_state, params)
            import optax

            return (optax.apply_updates(params, upd), opt_state), loss

        return jax.lax.scan(body, (params, opt_state), None, length=epochs)

    t0 = time.perf_counter()
    jax.jit(run).lower(p.params, opt_state).compile()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs1d", type=int, default=10000)
    ap.add_argument("--epochs2d", type=int, default=300)
    ap.add_argument("--epochs-burgers", type=int, default=2000)
    ap.add_argument("--problems", default="poisson1d,poisson2d,burgers")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        impl, problem, epochs = args.one
        print(json.dumps(_one(impl, problem, int(epochs))))
        return
    rows = []
    budget = {"poisson1d": args.epochs1d, "poisson2d": args.epochs2d, "burgers": args.epochs_burgers}
    for problem in args.problems.split(","):
        epochs = budget[problem]
        res = {}
        for impl in (("scan", "jno") if problem == "burgers" else ("scan", "jitted", "jno")):
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_core", "--one", impl, problem, str(epochs)],
                                 capture_output=True, text=True, check=True)
            res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((problem, epochs, res))
    print(f"{'problem':10s} {'impl':7s} {'epochs/s':>10s} {'ratio':>6s} {'compile s':>9s} {'ratio':>6s} {'peak MB':>8s}")
    for problem, epochs, res in rows:
        base = res["scan"]
        for impl in res:
            r = res[impl]
            print(f"{problem:10s} {impl:7s} {r['epochs_per_s']:10.1f} {r['epochs_per_s'] / base['epochs_per_s']:6.2f} "
                  f"{r['compile_s']:9.2f} {r['compile_s'] / base['compile_s']:6.2f} {r['peak_rss_mb']:8.0f}")


if __name__ == "__main__":
    main()
