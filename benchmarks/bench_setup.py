"""Solve set-up cost of the spec's script-09 configuration: each plugin's ``on_solve_begin``
time (tracker compilation), their total, and the process CPU time spent meanwhile.

    .venv/bin/python -m benchmarks.bench_setup [--repeat 3] [--threads 0 2]

Each run is a fresh subprocess (nothing cached) doing one 1-epoch solve with the nine
callbacks of :mod:`benchmarks.bench_diagnostics`; ``--threads`` runs each configuration with
``JNO_COMPILE_THREADS`` set (0: trackers compile on the calling thread, as before
:mod:`jno_core.compile_pool`), interleaved so that both see the same machine load. Prints
the median over ``--repeat`` runs. Target (issue #4): all ``on_solve_begin`` < 3 s.
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


def _one() -> dict:
    import jno
    import jno_core.plugins as P

    from .bench_diagnostics import _callbacks, script09_problem

    per: dict[str, float] = {}
    total: dict[str, float] = {}
    call_hook = P.call_hook

    def timed_call_hook(pm, hook_name, **kw):  # time each plugin's on_solve_begin
        if hook_name != "on_solve_begin":
            return call_hook(pm, hook_name, **kw)
        out = []
        c0, w0 = time.process_time(), time.perf_counter()
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            t0 = time.perf_counter()
            out.append(impl.function(**{k: kw[k] for k in impl.argnames}))
            name = P.plugin_name(impl.plugin)
            per[name] = per.get(name, 0.0) + time.perf_counter() - t0
        total["wall"] = time.perf_counter() - w0
        total["cpu"] = time.process_time() - c0
        return out

    P.call_hook = timed_call_hook
    jno.setup(os.path.join(os.getcwd(), "bench_setup.py"), sinks=["none"], progress=False)
    crux, u, u_net, x = script09_problem()
    hist = crux.solve(1, callbacks=_callbacks(u, u_net, x))
    jno.finish()
    return {"per_plugin_s": per, "on_solve_begin_s": total["wall"], "cpu_s": total["cpu"],
            "setup_compile_s": hist.compile_time}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", nargs="*", default=[None], help="JNO_COMPILE_THREADS values to compare")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one()))
        return
    env = dict(os.environ, JNO_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    runs: dict[str, list[dict]] = {str(t): [] for t in args.threads}
    for _ in range(args.repeat):
        for t in args.threads:
            e = dict(env)
            if t is not None:
                e["JNO_COMPILE_THREADS"] = str(t)
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, "-m", "benchmarks.bench_setup", "--one"], capture_output=True,
                                     text=True, env=e, cwd=tmp)
            if out.returncode != 0:
                sys.exit(f"threads={t}: failed\n{out.stderr[-2000:]}")
            runs[str(t)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for t, rs in runs.items():
        label = "default" if t == "None" else t
        print(f"JNO_COMPILE_THREADS={label}: median of {len(rs)} runs (ms)")
        for name in rs[0]["per_plugin_s"]:
            print(f"  {name:22s} {statistics.median(r['per_plugin_s'].get(name, 0.0) for r in rs) * 1e3:8.0f}")
        for key, what in (("on_solve_begin_s", "on_solve_begin total"), ("cpu_s", "  process CPU meanwhile"),
                          ("setup_compile_s", "setup+compile (chunk too)")):
            vals = [r[key] for r in rs]
            print(f"  {what:26s} {statistics.median(vals) * 1e3:8.0f}   runs: {' '.join(f'{v * 1e3:.0f}' for v in vals)}")


if __name__ == "__main__":
    main()
