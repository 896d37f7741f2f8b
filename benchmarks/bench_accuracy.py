"""Time-to-accuracy: jno against a hand-written JAX + optax loop on the same problems (issue 17).

    .venv/bin/python -m benchmarks.bench_accuracy [--quick] [--problem burgers] [--variant adam lbfgs rad]
                                                  [--json out.json]

Problems (:mod:`benchmarks.accuracy_problems`): the 1-D Poisson, a 2-D Poisson with an exact
solution, Burgers against its Cole-Hopf solution. Variants:

* ``adam``: Adam for the problem's epoch budget;
* ``lbfgs``: that Adam phase, then ``optax.lbfgs()`` (zoom line search) from the Adam
  parameters. jno: ``net.optimizer(optax.lbfgs()); crux.solve(n)``; hand-written: one
  ``optax.lbfgs`` step per epoch with ``optax.value_and_grad_from_state``, as optax documents;
* ``rad``: Adam with RAD (Wu et al. 2023, Sec. 2.3: a uniform candidate pool of
  ``pool_factor * N`` points, ``N`` of them kept with probability ``|r|^k / mean|r|^k + c``,
  ``k = c = 1``) every ``rad_every`` epochs. jno: ``jno.resampling.rad(pde, domain=dom, ...)``;
  hand-written: ``jax.random.choice(..., replace=False, p=p)`` over a pool uniform in the box.

Both sides start from the same network (the jno network's initial equinox module), the same
points, the same loss (Burgers: initial condition weighted 10) and the same optax
transformation, and run epochs in jitted ``lax.scan`` chunks (the hand-written loop: one chunk
of ``eval_every`` epochs per call). On the Poisson problems their errors agree to ~3 digits
along the whole Adam phase; Burgers (learning rate up to 1e-2) is chaotic in float32 and the
two trajectories separate after a few hundred epochs.

**Timing.** Every ``eval_every`` epochs each side stops, stamps its training time and copies
the parameters to the host (inside the clock, a few microseconds); the relative L2 errors on
the test grid are computed from those copies after training, so evaluation is *excluded* on
both sides (a device evaluation inside jno's hook would queue behind the chunk jno may already
have dispatched, hiding training time in it). Compilation is *excluded* too and reported
separately: the hand-written chunks are compiled ahead of time (``jit(...).lower(...)
.compile()``); jno's clock runs from the ``on_solve_begin`` hook (after jno compiled the train
step and the plugins compiled theirs) to ``on_solve_end``, so jno's per-solve set-up outside
the loop is excluded as well (its ``compile_time`` is reported; jno's persistent compilation
cache is turned off unless ``JNO_COMPILATION_CACHE`` is set, so both columns are cold
compiles). RAD's resampling is inside the clock on both sides. ``t(eps)`` is the training time
until the first evaluation with error ``<= eps``. With both ``adam`` and ``lbfgs`` asked for,
the ``adam`` row is the Adam phase of the ``lbfgs`` run. Figures: ``benchmarks/results_issue17.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# cold compile figures on both sides: jno's persistent XLA cache would also serve the
# hand-written loop's executables across runs (set JNO_COMPILATION_CACHE to override)
os.environ.setdefault("JNO_COMPILATION_CACHE", "off")
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jno_core.api import hookimpl

from benchmarks import accuracy_problems as AP

VARIANTS: tuple[str, ...] = ("adam", "lbfgs", "rad")


@dataclass(frozen=True)
class Budget:
    """Epoch budget of one problem: ``adam`` Adam epochs (evaluated every ``eval_every``),
    ``lbfgs`` L-BFGS steps after them (evaluated every ``lbfgs_eval_every``), RAD every
    ``rad_every`` epochs (``0``: RAD not offered on this problem), the error thresholds."""

    adam: int
    eval_every: int
    lbfgs: int
    lbfgs_eval_every: int
    rad_every: int
    thresholds: tuple[float, ...] = (5e-2, 1e-2)


FULL: dict[str, Budget] = {
    "poisson1d": Budget(adam=5000, eval_every=250, lbfgs=500, lbfgs_eval_every=50, rad_every=0,
                        thresholds=(5e-2, 1e-2, 1e-3)),
    "poisson2d": Budget(adam=3000, eval_every=250, lbfgs=500, lbfgs_eval_every=50, rad_every=500),
    "burgers": Budget(adam=6000, eval_every=500, lbfgs=3000, lbfgs_eval_every=100, rad_every=1000),
}
QUICK: dict[str, Budget] = {
    "poisson1d": Budget(adam=200, eval_every=50, lbfgs=20, lbfgs_eval_every=10, rad_every=0,
                        thresholds=(5e-2, 1e-2, 1e-3)),
    "poisson2d": Budget(adam=100, eval_every=50, lbfgs=10, lbfgs_eval_every=5, rad_every=50),
    "burgers": Budget(adam=100, eval_every=50, lbfgs=10, lbfgs_eval_every=5, rad_every=50),
}
RAD_K, RAD_C, RAD_POOL = 1.0, 1.0, 4


@dataclass
class Result:
    """One run. ``records``: ``(epoch, training seconds, relative L2 error)`` at each
    evaluation, epoch 0 first; ``phases``: ``{name: (epochs, seconds)}``; ``note``: what did
    not run as asked (empty when everything did)."""

    problem: str
    variant: str
    impl: str
    records: list[tuple[int, float, float]] = field(default_factory=list)
    phases: dict[str, tuple[int, float]] = field(default_factory=dict)
    compile_s: float = 0.0
    note: str = ""

    @property
    def final_error(self) -> float:
        return self.records[-1][2] if self.records else float("nan")

    @property
    def epochs(self) -> int:
        return self.records[-1][0] if self.records else 0

    def rate(self, phase: str) -> float:
        """Epochs (steps) per second of ``phase``, NaN when it did not run."""
        n, s = self.phases.get(phase, (0, 0.0))
        return n / s if n and s > 0 else float("nan")

    def time_to(self, eps: float) -> float:
        """Training seconds to the first evaluation with error ``<= eps`` (NaN: never)."""
        return time_to(self.records, eps)


def time_to(records: Sequence[tuple[int, float, float]], eps: float) -> float:
    """The seconds of the first record ``(epoch, seconds, error)`` with ``error <= eps``,
    NaN when no record reaches it."""
    for _, t, e in records:
        if e <= eps:
            return float(t)
    return float("nan")


# ---------------------------------------------------------------------------- jno side
class _Clock:
    """A plain jno plugin (``interval`` epochs): at each fire, stamps the training time and
    keeps a host copy of the network's parameters; the errors are computed after the solve
    (:meth:`records`). Nothing runs on the device inside the clock: jno may already have
    dispatched the next chunk when a hook runs, and a device evaluation would queue behind
    it (the training time would then be counted as evaluation)."""

    def __init__(self, interval: int, key: str) -> None:
        self.interval = interval
        self.key = key
        self.elapsed = 0.0
        self.stamps: list[tuple[int, float, Any]] = []
        self._t = 0.0

    def _stamp(self, ctx: Any, epoch: int) -> None:
        params = jax.device_get(ctx.params[self.key])
        self.elapsed += time.perf_counter() - self._t
        if not self.stamps or self.stamps[-1][0] != epoch:
            self.stamps.append((int(epoch), self.elapsed, params))
        self._t = time.perf_counter()

    def records(self, err: Any) -> list[tuple[int, float, float]]:
        """``(epoch, seconds, err(params))`` of every stamp."""
        return [(e, t, err(p)) for e, t, p in self.stamps]

    @hookimpl(trylast=True)
    def on_solve_begin(self, ctx: Any) -> None:
        self._t = time.perf_counter()

    @hookimpl(trylast=True)
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        self._stamp(ctx, epoch)

    @hookimpl(trylast=True)
    def on_solve_end(self, ctx: Any, history: Any) -> None:
        self._stamp(ctx, ctx.end_epoch)


def _opt_structure(crux: Any) -> Any:
    return jax.tree_util.tree_structure(crux.state.opt_states)


def run_jno(problem: str, variant: str, budget: Budget, impl: str = "jno") -> Result:
    """The jno side of one (problem, variant). ``impl="jno-fresh"``: the same run with the
    L-BFGS step computing the loss and gradient afresh every step (jno before the step
    reused the line search's value, :func:`jno_core.optim.reuse_value_and_grad`), for a
    before/after comparison in one process."""
    import jno
    from jno_core import chunk as chunk_mod
    from jno_core.api import trainable_key

    if impl == "jno-fresh":
        restore, chunk_mod.stored_value_key = chunk_mod.stored_value_key, lambda *a, **k: None
        try:
            return run_jno(problem, variant, budget, "_fresh")
        finally:
            chunk_mod.stored_value_key = restore
    p = AP.build_jno(problem, budget.adam)
    res = Result(problem, variant, "jno-fresh" if impl == "_fresh" else "jno")
    key = trainable_key(p.net)
    clock = _Clock(budget.eval_every, key)
    err = AP.relative_l2_fn(p.net.static, p.test_points, p.reference)
    callbacks: list[Any] = [clock]
    if variant == "rad":
        if not hasattr(jno, "resampling") or not hasattr(jno.resampling, "rad"):
            res.note = "jno.resampling.rad is missing (issue 17 part B not merged)"
            return res
        callbacks.insert(0, jno.resampling.rad(p.pde, domain=p.domain, every=budget.rad_every, k=RAD_K, c=RAD_C,
                                               pool_factor=RAD_POOL, seed=0))
    h = p.crux.solve(budget.adam, callbacks=callbacks, progress=False)
    res.compile_s += h.compile_time
    res.phases["adam"] = (budget.adam, clock.elapsed)
    if variant == "lbfgs":
        before = _opt_structure(p.crux)
        p.net.optimizer(optax.lbfgs())
        clock.interval = budget.lbfgs_eval_every
        t_adam = clock.elapsed
        try:
            h = p.crux.solve(budget.lbfgs, callbacks=[clock], progress=False)
        except TypeError as exc:  # optax's missing value/grad/value_fn before issue 17 part A
            res.note = f"L-BFGS phase failed: {str(exc).splitlines()[0][:120]}"
            res.records = clock.records(err)
            return res
        res.compile_s += h.compile_time
        res.phases["lbfgs"] = (budget.lbfgs, clock.elapsed - t_adam)
        if _opt_structure(p.crux) == before:
            res.note = "optimizer switch ignored: the L-BFGS phase ran Adam (issue 17 part A not merged)"
    res.records = clock.records(err)
    return res


# ---------------------------------------------------------------------------- hand-written side
def _scan_chunk(step: Any, length: int) -> Any:
    def chunk(params: Any, opt_state: Any, pts: Any) -> Any:
        def body(carry: Any, _: Any) -> Any:
            return step(*carry, pts), None

        (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), None, length=length)
        return params, opt_state

    return chunk


def _aot(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _rad_resample(problem: str, static: Any, n: int, box: tuple[np.ndarray, np.ndarray]) -> Any:
    """``resample(params, key) -> (n, d)``: RAD over a pool of ``RAD_POOL * n`` points uniform
    in ``box`` (Wu et al. 2023, Eq. 2), drawn with ``jax.random.choice(p=...)``, no
    replacement."""
    lo, hi = jnp.asarray(box[0], jnp.float32), jnp.asarray(box[1], jnp.float32)
    m = RAD_POOL * n

    def resample(params: Any, key: jax.Array) -> jax.Array:
        k_pool, k_pick = jax.random.split(key)
        pool = lo + (hi - lo) * jax.random.uniform(k_pool, (m, lo.shape[0]), jnp.float32)
        model = eqx.combine(params, static)
        u = lambda z: model(z)[0]  # noqa: E731
        r = jnp.abs(jax.vmap(lambda z: AP.hand_residual(problem, u, z))(pool)) ** RAD_K
        w = r / jnp.mean(r) + RAD_C
        idx = jax.random.choice(k_pick, m, (n,), replace=False, p=w / jnp.sum(w))
        return pool[idx]

    return resample


def run_hand(problem: str, variant: str, budget: Budget) -> Result:
    """The hand-written side: the jno problem's initial module and points, plain JAX + optax."""
    p = AP.build_jno(problem, budget.adam)  # only for the initial network and the points (arrays)
    res = Result(problem, variant, "hand")
    params, static = eqx.partition(p.net.module, eqx.is_inexact_array)
    pts = {p.tags[k]: jnp.asarray(v) for k, v in p.crux.points.items()}
    loss = AP.hand_loss(problem, static)
    err = AP.relative_l2_fn(static, p.test_points, p.reference)
    adam = AP.adam_tx(problem, budget.adam)

    def adam_step(params: Any, opt_state: Any, pts: Any) -> Any:
        g = jax.grad(loss)(params, pts)
        upd, opt_state = adam.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state

    opt_state = adam.init(params)
    chunk, res.compile_s = _aot(_scan_chunk(adam_step, budget.eval_every), params, opt_state, pts)
    resample = None
    if variant == "rad":
        if not budget.rad_every:
            res.note = f"RAD not offered on {problem}"
            return res
        resample, c_s = _aot(_rad_resample(problem, static, pts["interior"].shape[0], p.box), params,
                             jax.random.PRNGKey(0))
        res.compile_s += c_s
    elapsed = 0.0
    stamps = [(0, 0.0, jax.device_get(params))]  # host copies; errors after training (as jno's clock)
    rng = jax.random.PRNGKey(0)
    for epoch in range(budget.eval_every, budget.adam + 1, budget.eval_every):
        t0 = time.perf_counter()
        params, opt_state = chunk(params, opt_state, pts)
        if resample is not None and epoch % budget.rad_every == 0 and epoch < budget.adam:  # as jno: not at the end
            pts = {**pts, "interior": resample(params, jax.random.fold_in(rng, epoch))}
        jax.block_until_ready((params, pts))
        host = jax.device_get(params)
        elapsed += time.perf_counter() - t0
        stamps.append((epoch, elapsed, host))
    res.phases["adam"] = (budget.adam, elapsed)
    if variant == "lbfgs":
        lbfgs = optax.lbfgs()

        def lbfgs_step(params: Any, state: Any, pts: Any) -> Any:
            value_fn = lambda q: loss(q, pts)  # noqa: E731
            value, grad = optax.value_and_grad_from_state(value_fn)(params, state=state)
            upd, state = lbfgs.update(grad, state, params, value=value, grad=grad, value_fn=value_fn)
            return optax.apply_updates(params, upd), state

        state = lbfgs.init(params)
        lchunk, c_s = _aot(_scan_chunk(lbfgs_step, budget.lbfgs_eval_every), params, state, pts)
        res.compile_s += c_s
        t_adam = elapsed
        for epoch in range(budget.adam + budget.lbfgs_eval_every, budget.adam + budget.lbfgs + 1,
                           budget.lbfgs_eval_every):
            t0 = time.perf_counter()
            params, state = jax.block_until_ready(lchunk(params, state, pts))
            host = jax.device_get(params)
            elapsed += time.perf_counter() - t0
            stamps.append((epoch, elapsed, host))
        res.phases["lbfgs"] = (budget.lbfgs, elapsed - t_adam)
    res.records = [(e, t, err(q)) for e, t, q in stamps]
    return res


# ---------------------------------------------------------------------------- table
def _f(v: float, fmt: str) -> str:
    return "-" if not np.isfinite(v) else format(v, fmt)


def table(results: Sequence[Result], thresholds: dict[str, tuple[float, ...]]) -> str:
    """The results as a Markdown table, a ratio row (jno / hand) under each pair."""
    eps_all = sorted({e for t in thresholds.values() for e in t}, reverse=True)
    head = ["problem", "variant", "impl", "epochs", "Adam ep/s", "L-BFGS it/s", "compile s",
            *[f"t({e:g}) s" for e in eps_all], "final L2", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r.problem, r.variant, r.impl): r for r in results}
    order = lambda r: (AP.PROBLEMS.index(r.problem), VARIANTS.index(r.variant), r.impl != "hand")  # noqa: E731
    for r in sorted(results, key=order):
        eps = thresholds[r.problem]
        cells = [r.problem, r.variant, r.impl, str(r.epochs), _f(r.rate("adam"), ".1f"), _f(r.rate("lbfgs"), ".1f"),
                 _f(r.compile_s, ".2f"), *[_f(r.time_to(e), ".3g") if e in eps else "" for e in eps_all],
                 _f(r.final_error, ".3e"), r.note]
        lines.append("| " + " | ".join(cells) + " |")
        other = by.get((r.problem, r.variant, "hand"))
        if r.impl != "hand" and other is not None:
            ratio = lambda a, b: _f(a / b, ".2f") if np.isfinite(a) and np.isfinite(b) and b > 0 else "-"  # noqa: E731
            cells = ["", "", f"{r.impl}/hand", "", ratio(r.rate("adam"), other.rate("adam")),
                     ratio(r.rate("lbfgs"), other.rate("lbfgs")), ratio(r.compile_s, other.compile_s),
                     *[ratio(r.time_to(e), other.time_to(e)) if e in eps else "" for e in eps_all],
                     ratio(r.final_error, other.final_error), ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(problems: Sequence[str], variants: Sequence[str], quick: bool = False,
        impls: Sequence[str] = ("hand", "jno"), adam: int | None = None, lbfgs: int | None = None) -> list[Result]:
    """Run every (problem, variant) on each side (hand-written first, then jno, back to back).
    With both ``adam`` and ``lbfgs`` asked for, ``adam`` is the Adam phase of the ``lbfgs``
    run (:func:`adam_phase`; its ``compile_s`` is then that of both phases). ``adam`` /
    ``lbfgs``: override the budget's epochs of each phase (evaluations then every tenth of
    the phase)."""
    budgets = QUICK if quick else FULL
    out = []
    for problem in problems:
        b = budgets[problem]
        if adam is not None:
            b = replace(b, adam=adam, eval_every=max(1, adam // 10))
        if lbfgs is not None:
            b = replace(b, lbfgs=lbfgs, lbfgs_eval_every=max(1, lbfgs // 10))
        derive = "adam" in variants and "lbfgs" in variants
        for variant in variants:
            if variant == "rad" and not b.rad_every:
                continue
            if variant == "adam" and derive:
                continue  # the Adam phase of the lbfgs run (below)
            for impl in impls:
                if impl == "jno-fresh" and variant != "lbfgs":
                    continue  # the same program as jno's without an L-BFGS phase
                r = run_hand(problem, variant, b) if impl == "hand" else run_jno(problem, variant, b, impl)
                print(f"  {problem} {variant} {impl}: final {r.final_error:.3e} after {r.epochs} epochs "
                      f"{r.note}", file=sys.stderr, flush=True)
                if variant == "lbfgs" and derive:
                    out.append(adam_phase(r, b.adam))
                out.append(r)
    return out


def adam_phase(r: Result, adam_epochs: int) -> Result:
    """The ``adam`` variant read off an ``lbfgs`` run: its records up to the end of the Adam
    phase (the same deterministic trajectory, points and clock as a separate Adam run)."""
    return Result(r.problem, "adam", r.impl, [x for x in r.records if x[0] <= adam_epochs],
                  {"adam": r.phases["adam"]} if "adam" in r.phases else {}, r.compile_s, r.note)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", nargs="+", choices=[*AP.PROBLEMS, "all"], default=["all"])
    ap.add_argument("--variant", nargs="+", choices=[*VARIANTS, "all"], default=["all"])
    ap.add_argument("--impl", nargs="+", choices=["hand", "jno", "jno-fresh"], default=["hand", "jno"],
                    help="jno-fresh: jno with the L-BFGS step computing value and gradient afresh "
                         "(no reuse of the line search's; jno's step before that change)")
    ap.add_argument("--quick", action="store_true", help="a tiny budget (a smoke run)")
    ap.add_argument("--adam", type=int, help="override the Adam epochs (evaluated every tenth)")
    ap.add_argument("--lbfgs", type=int, help="override the L-BFGS steps (evaluated every tenth)")
    ap.add_argument("--json", help="also write the results (records included) to this file")
    args = ap.parse_args(argv)
    problems = AP.PROBLEMS if "all" in args.problem else tuple(args.problem)
    variants = VARIANTS if "all" in args.variant else tuple(args.variant)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; jax {jax.__version__} on "
          f"{jax.devices()[0].platform}", flush=True)
    results = run(problems, variants, args.quick, args.impl, args.adam, args.lbfgs)
    budgets = QUICK if args.quick else FULL
    print(table(results, {p: budgets[p].thresholds for p in problems}))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(r) for r in results], fh, indent=1)
    return results


if __name__ == "__main__":
    main()
