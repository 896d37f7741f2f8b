"""The spec's script-09 configuration (1-D Poisson, nine callbacks at the spec's intervals,
2,000 epochs) with and without diagnostics and sinks, ratios measured in one run.

    .venv/bin/python -m benchmarks.bench_diagnostics [--epochs 2000] [--rounds 2] [--solves 5]
        [--problem script09|poisson2d] [--overlap]

``--problem poisson2d`` runs the same callbacks on a 2-D Poisson problem ~13x costlier per
epoch (:func:`poisson2d_problem`), where the sinks' per-step cost is a smaller share.

Configurations, each in its own subprocess (in a temporary working directory):
``plain`` (no callbacks, no sinks), ``nine`` (the nine callbacks, no sinks), ``nine+csv``,
``nine+tensorboard``, ``nine+wandb`` (``WANDB_MODE=offline``). Steady state = the median
of ``--solves`` ``solve(epochs)`` calls on the same solver after a first one that compiles
everything and a second one that is discarded (the first solve after compilation runs
~25 % slower in the ``nine`` configurations: first executions on the diagnostics thread,
the checkpoint writer finishing the previous solve's final save), pooled over ``--rounds``
rounds of all configurations (each round a fresh subprocess per configuration, the rounds
interleaved so that slow phases of a shared 2-core machine hit every configuration).
Targets: nine >= 0.75x plain (issue #4), nine+sink >= 0.7x plain (issue #5), all
``on_solve_begin`` compilation < 3 s.

``--overlap`` (issue #15) compares the two mechanisms that overlap host work with the device,
without sinks: the diagnostics thread (fires run on another thread,
``JNO_CONCURRENT_DIAGNOSTICS``) and one chunk ahead (the next chunk is dispatched before the
current one's results are read, ``SolveLoop.start_ahead``), each alone, both (the default)
and neither, for ``plain`` and ``nine``.

A second table gives the CPU time per timed solve: this process's (``time.process_time``:
every thread, XLA's included) and its child processes' (the W&B service, from ``/proc``), and
how many cores that keeps busy. On a machine with few cores it shows the floor of each
configuration: a solve cannot take less wall time than its CPU time divided by the cores.
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

CONFIGS = ("plain", "nine", "nine+csv", "nine+tensorboard", "nine+wandb")
#: --overlap: "<callbacks>/<mechanisms>", mechanisms = both | thread | ahead | neither
OVERLAP_CONFIGS = ("plain/both", "plain/thread", "nine/both", "nine/thread", "nine/ahead", "nine/neither")


def _callbacks(u, u_net, x):
    import jno

    return [
        jno.callbacks.gradient_norms(interval=50),
        jno.callbacks.cos_similarity(interval=50),
        jno.callbacks.gradient_alignment(interval=50),
        jno.callbacks.loss_landscape(interval=200, n_grid=11, alpha_range=0.5),
        jno.callbacks.residual_stats(interval=50),
        jno.callbacks.input_sensitivity(u.d(x), interval=50),
        jno.callbacks.ntk_spectrum(u.grad(u_net), n_points=32, top_k=5, interval=200),
        jno.callbacks.hessian_spectrum(k=5, n_iter=15, interval=400),
        jno.callbacks.checkpoint(directory=os.path.join(os.getcwd(), "ckpt"), save_interval_epochs=500,
                                 max_to_keep=3, best_fn=lambda m: m["total_loss"]),
    ]


def script09_problem() -> tuple:
    """Script 09's solver (1-D Poisson, MLP 32x3, Adam with exponential decay;
    ``problems.poisson1d``): ``(crux, u, u_net, x)``, the last three as :func:`_callbacks`
    needs them."""
    import jno

    from . import problems

    constraints, u, u_net, x = problems.poisson1d_parts()
    return jno.core(constraints), u, u_net, x


def _children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's live child processes (the
    W&B service), read from ``/proc``; 0 where there is no ``/proc``."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # field 4 of /proc/<pid>/stat: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def poisson2d_problem() -> tuple:
    """A 2-D Poisson solver of a size closer to real use (``problems.poisson2d(mesh_size=0.1)``:
    MLP 2-64x4-1, Adam 1e-3, ~0.6 ms per epoch on 2 CPU cores, ~13x script 09's step):
    ``(crux, u, u_net, x)`` with ``x`` the interior's first coordinate."""
    import jno

    from . import problems

    constraints, u, u_net, x = problems.poisson2d_parts(mesh_size=0.1)
    return jno.core(constraints), u, u_net, x


PROBLEMS = {"script09": script09_problem, "poisson2d": poisson2d_problem}


def _one(config: str, epochs: int, solves: int = 5, problem: str = "script09") -> dict:
    import jno

    label = config
    config, _, mechanisms = config.partition("/")
    if mechanisms in ("thread", "neither"):  # no chunk dispatched ahead
        from jno_core.loop import SolveLoop

        SolveLoop.start_ahead = lambda self, e, state: None
    if mechanisms in ("ahead", "neither"):  # fires inline, on the training thread
        os.environ["JNO_CONCURRENT_DIAGNOSTICS"] = "0"
    sinks = config.split("+")[1] if "+" in config else "none"
    jno.setup(os.path.join(os.getcwd(), "bench09.py"), sinks=[sinks], progress=False)
    crux, u, u_net, x = PROBLEMS[problem]()
    cbs = _callbacks(u, u_net, x) if config != "plain" else []
    t0 = time.perf_counter()
    h1 = crux.solve(epochs, callbacks=cbs)
    first = time.perf_counter() - t0
    chunk_compile = h1.compile_time  # chunk compile + every on_solve_begin
    for cb in cbs:
        if hasattr(cb, "fire_times_ms"):
            cb.fire_times_ms.clear()
    crux.solve(epochs, callbacks=cbs)  # discarded (see the module docstring)
    for cb in cbs:
        if hasattr(cb, "fire_times_ms"):
            cb.fire_times_ms.clear()
    times = []
    cpu0, kids0 = time.process_time(), _children_cpu_s()
    for _ in range(solves):
        t0 = time.perf_counter()
        crux.solve(epochs, callbacks=cbs)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / solves
    kids = (_children_cpu_s() - kids0) / solves
    from jno_core import run as jrun

    current = jrun.current_run()
    bus = getattr(current, "bus", None)
    failed = {label: f"{type(exc).__name__}: {exc}" for label, exc in (getattr(bus, "_failed", None) or {}).items()}
    jno.finish()
    per_fire = {getattr(cb, "name", type(cb).__name__): (sum(cb.fire_times_ms) / len(cb.fire_times_ms)
                                                         if getattr(cb, "fire_times_ms", None) else None)
                for cb in cbs}
    return {"config": label, "solve_s": times, "first_solve_s": first, "failed_sinks": failed,
            "cpu_ms_per_solve": cpu * 1e3, "child_cpu_ms_per_solve": kids * 1e3,
            "setup_compile_s": chunk_compile, "ms_per_fire": per_fire}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--solves", type=int, default=5)
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="script09",
                    help="script09 (the spec's, default) or poisson2d (a 2-D Poisson ~13x costlier per epoch)")
    ap.add_argument("--overlap", action="store_true",
                    help="compare the diagnostics thread and one-chunk-ahead, alone and together")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), int(args.one[2]), args.one[3])))
        return
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", JNO_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    configs = OVERLAP_CONFIGS if args.overlap else CONFIGS
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for r in range(args.rounds):
        for config in (configs if r % 2 == 0 else configs[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, "-m", "benchmarks.bench_diagnostics", "--one", config,
                                      str(args.epochs), str(args.solves), args.problem], capture_output=True, text=True,
                                     env=env, cwd=tmp)
            if out.returncode != 0:
                print(f"{config}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if r.get("failed_sinks"):  # a sink switched off mid-run would flatter its figure
                print(f"{config}: sink failure, round not counted: {r['failed_sinks']}")
                continue
            runs[config].append(r)
    results = {}
    for config, rs in runs.items():
        if not rs:
            continue
        times = [t for r in rs for t in r["solve_s"]]
        per_fire: dict[str, list[float]] = {}
        for r in rs:
            for name, ms in r["ms_per_fire"].items():
                if ms is not None:
                    per_fire.setdefault(name, []).append(ms)
        results[config] = {"epochs_per_s": args.epochs / statistics.median(times),
                           "setup_compile_s": statistics.median(r["setup_compile_s"] for r in rs),
                           "per_round": [args.epochs / statistics.median(r["solve_s"]) for r in rs],
                           "wall_ms": statistics.median(times) * 1e3,
                           "cpu_ms": statistics.median(r["cpu_ms_per_solve"] for r in rs),
                           "child_cpu_ms": statistics.median(r["child_cpu_ms_per_solve"] for r in rs),
                           "ms_per_fire": {k: (statistics.median(v) if v else None) for k, v in per_fire.items()}}
    base = results["plain" if "plain" in results else "plain/both"]["epochs_per_s"]
    print(f"{'config':18s} {'epochs/s':>9s} {'ratio':>6s} {'setup+compile s':>15s}  ratio per round")
    for c, r in results.items():
        rounds = " ".join(f"{x / base:.2f}" for x in r["per_round"])
        print(f"{c:18s} {r['epochs_per_s']:9.0f} {r['epochs_per_s'] / base:6.2f} {r['setup_compile_s']:15.2f}  {rounds}")
    print("\nCPU per solve (mean over the timed solves, median over rounds; the machine has "
          f"{os.cpu_count()} cores):")
    print(f"{'config':18s} {'wall ms':>8s} {'process CPU ms':>15s} {'children CPU ms':>16s} {'cores busy':>11s}")
    for c, r in results.items():
        busy = (r["cpu_ms"] + r["child_cpu_ms"]) / r["wall_ms"]
        print(f"{c:18s} {r['wall_ms']:8.1f} {r['cpu_ms']:15.1f} {r['child_cpu_ms']:16.1f} {busy:11.2f}")
    if "nine" in results:
        print("\nms per fire (steady state, 'nine'):")
        for name, ms in results["nine"]["ms_per_fire"].items():
            print(f"  {name:22s} {'-' if ms is None else f'{ms:8.2f}'}")


if __name__ == "__main__":
    main()
