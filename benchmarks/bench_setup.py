"""Start-up cost: the first solve of a fresh process, cold (empty persistent compilation
cache) and warm (a second process on the same cache), and what the diagnostics add to it.

    .venv/bin/python -m benchmarks.bench_setup [--repeat 1] [--configs plain eight nine plain2d nine2d]
        [--modes cold warm off] [--epochs 10]
    .venv/bin/python -m benchmarks.bench_setup --hooks [--repeat 3] [--threads 0 2]

Configurations (each run is a fresh subprocess in a temporary working directory):
``plain`` (script 09's 1-D Poisson, no callbacks), ``eight`` (script 09's eight trackers,
:func:`benchmarks.bench_diagnostics._callbacks` without the checkpoint), ``nine`` (the nine
callbacks), ``plain2d`` / ``nine2d`` (the 2-D Poisson of
:func:`benchmarks.bench_diagnostics.poisson2d_problem`, without / with the nine callbacks).
Modes: ``cold`` (``JNO_COMPILATION_CACHE`` = a new empty folder), ``warm`` (a second process
on the folder the cold run filled), ``off`` (``JNO_COMPILATION_CACHE=off``: no persistent
cache), and with ``--baseline DIR`` ``base`` (the jno exported to ``DIR``, e.g. the commit
before issue #20, run in the same rounds). Per run: the wall time of the first ``solve(epochs)`` (compilation included), its
compile part (``History.compile_time``), XLA's compile time (``backend_compile_duration``
events summed over threads), cache hits, and the compile time of each tracker's executables
(measured on the compile pool's threads, warm-up run excluded). "extra" = ``eight`` minus
``plain`` in the same mode and round (issue #20's target: <= 3 s cold).

``--hooks`` prints each plugin's ``on_solve_begin`` time instead (issue #4), per
``JNO_COMPILE_THREADS`` value of ``--threads``.
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

CONFIGS = ("plain", "eight", "nine", "plain2d", "nine2d")
MODES = ("cold", "warm", "off")


def _compile_times() -> dict[str, float]:
    """Wrap the compile pool's worker so that each executable's compile time (without the
    warm-up run) is recorded under its cache name, the name's prefix up to ``:``."""
    from jno_core import compile_pool

    times: dict[str, float] = {}
    orig = compile_pool._compile_and_warm

    class _TimedLowered:
        def __init__(self, lowered, name):
            self._l, self._name = lowered, name

        def compile(self, *a, **kw):
            t0 = time.perf_counter()
            try:
                return self._l.compile(*a, **kw)
            finally:
                times[self._name] = times.get(self._name, 0.0) + time.perf_counter() - t0

    def timed(lowered, warm_args, store, key, compiler_options=None):
        parts = str(key[1]).split(":")  # "ntk_spectrum:<id>", "slot_batch:residual_stats:(0, 1)"
        name = ":".join(parts[:2]) if parts[0] == "slot_batch" else parts[0]
        return orig(_TimedLowered(lowered, name), warm_args, store, key, compiler_options)

    compile_pool._compile_and_warm = timed
    return times


class _Stats:
    """Backend compilations (count, seconds) while active; no cache counts (the baseline)."""

    cache_hits = 0

    def __init__(self) -> None:
        self.compiles, self.compile_s = 0, 0.0

    def _on(self, event: str, duration: float, **kw) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            self.compiles += 1
            self.compile_s += duration

    def __enter__(self) -> "_Stats":
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._on)
        return self

    def __exit__(self, *exc) -> None:
        import jax

        jax.monitoring.unregister_event_duration_listener(self._on)


def _first_solve(config: str, epochs: int) -> dict:
    import jax

    import jno

    try:
        from jno_core.compile_cache import CompileStats
    except ImportError:  # --baseline: a jno from before the compilation cache
        CompileStats = _Stats
    from .bench_diagnostics import _callbacks, poisson2d_problem, script09_problem

    times = _compile_times()
    t_chunk: list[float] = []
    from jno_core.core import Core

    orig_chunk = Core._compile_chunk

    def timed_chunk(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return orig_chunk(self, *a, **kw)
        finally:
            t_chunk.append(time.perf_counter() - t0)

    Core._compile_chunk = timed_chunk
    jno.setup(os.path.join(os.getcwd(), "bench_setup.py"), sinks=["none"], progress=False)
    problem = poisson2d_problem if config.endswith("2d") else script09_problem
    with CompileStats() as cs:
        crux, u, u_net, x = problem()
        cbs = [] if config.startswith("plain") else _callbacks(u, u_net, x)
        if config == "eight":
            cbs = cbs[:8]
        t0 = time.perf_counter()
        hist = crux.solve(epochs, callbacks=cbs)
        jax.block_until_ready(crux._state)
        solve_s = time.perf_counter() - t0
    jno.finish()
    return {"solve_s": solve_s, "compile_s": hist.compile_time, "chunk_s": sum(t_chunk),
            "xla_compile_s": cs.compile_s, "compiles": cs.compiles, "cache_hits": cs.cache_hits,
            "tracker_compile_s": times}


def _run(config: str, epochs: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_setup", "--one", config, "--epochs", str(epochs)],
                             capture_output=True, text=True, env=env, cwd=tmp)
    if out.returncode != 0:
        sys.exit(f"{config}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_warm(configs: list[str], modes: list[str], repeat: int, epochs: int, baseline: str | None = None) -> None:
    env = dict(os.environ, JNO_NO_PROGRESS="1")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    if baseline:
        modes = [*modes, "base"]
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(repeat):
        for config in configs:  # cold then warm on the same folder, then off
            with tempfile.TemporaryDirectory() as cache:
                for mode in modes:
                    e = dict(env, JNO_COMPILATION_CACHE="off" if mode == "off" else cache)
                    if mode == "base":  # the jno in --baseline (its jno, jno_core first on the path)
                        e["PYTHONPATH"] = os.pathsep.join([baseline, env["PYTHONPATH"]])
                    if mode == "warm" and "cold" not in modes:
                        _run(config, epochs, e)  # fill the cache first
                    runs.setdefault((config, mode), []).append(_run(config, epochs, e))
    med = {k: {f: statistics.median(r[f] for r in rs) for f in ("solve_s", "compile_s", "chunk_s", "xla_compile_s",
                                                                   "compiles", "cache_hits")}
           for k, rs in runs.items()}
    print(f"first solve({epochs}) in a fresh process, median of {repeat} run(s); seconds")
    print(f"  {'config':8s} {'mode':5s} {'solve':>7s} {'compile':>8s} {'chunk':>7s} {'XLA':>7s} {'progs':>6s} {'hits':>5s}")
    for (config, mode), m in med.items():
        print(f"  {config:8s} {mode:5s} {m['solve_s']:7.2f} {m['compile_s']:8.2f} {m['chunk_s']:7.2f} "
              f"{m['xla_compile_s']:7.2f} {m['compiles']:6.0f} {m['cache_hits']:5.0f}")
    for mode in modes:
        if ("eight", mode) in runs and ("plain", mode) in runs:
            extra = [a["solve_s"] - b["solve_s"] for a, b in zip(runs[("eight", mode)], runs[("plain", mode)])]
            print(f"  eight trackers add ({mode}): {statistics.median(extra):.2f} s   runs: "
                  f"{' '.join(f'{v:.2f}' for v in extra)}")
    for (config, mode), rs in runs.items():
        if config in ("eight", "nine") and mode in ("cold", "off", "base"):
            names = sorted({n for r in rs for n in r["tracker_compile_s"]})
            print(f"  tracker executables' compile time, {config} {mode} (s, median):")
            for n in names:
                print(f"    {n:40s} {statistics.median(r['tracker_compile_s'].get(n, 0.0) for r in rs):6.2f}")
    if ("nine", "cold") in med and ("nine", "warm") in med:
        c, w = med[("nine", "cold")], med[("nine", "warm")]
        print(f"  script 09 (nine): warm XLA compile = {w['xla_compile_s'] / max(c['xla_compile_s'], 1e-9):.1%} of cold")


def _hooks_one() -> dict:
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


def hooks(threads: list, repeat: int) -> None:
    env = dict(os.environ, JNO_NO_PROGRESS="1", JNO_COMPILATION_CACHE="off")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    runs: dict[str, list[dict]] = {str(t): [] for t in threads}
    for _ in range(repeat):
        for t in threads:
            e = dict(env)
            if t is not None:
                e["JNO_COMPILE_THREADS"] = str(t)
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, "-m", "benchmarks.bench_setup", "--one", "hooks"],
                                     capture_output=True, text=True, env=e, cwd=tmp)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--baseline", help="a folder with another version's jno/ and jno_core/ (e.g. `git archive "
                                       "<commit> jno jno_core | tar -x -C DIR`): adds a mode 'base' run with it")
    ap.add_argument("--hooks", action="store_true", help="per-plugin on_solve_begin times instead")
    ap.add_argument("--threads", nargs="*", default=[None], help="with --hooks: JNO_COMPILE_THREADS values")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one == "hooks":
        print(json.dumps(_hooks_one()))
    elif args.one:
        print(json.dumps(_first_solve(args.one, args.epochs)))
    elif args.hooks:
        hooks(args.threads, args.repeat)
    else:
        cold_warm(args.configs, args.modes, args.repeat, args.epochs, args.baseline)


if __name__ == "__main__":
    main()
