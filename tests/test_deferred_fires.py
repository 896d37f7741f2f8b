"""Deferred and concurrent tracker fires (jno_core.core._loop, jno_core.concurrent).

Trackers fire from on-device parameter snapshots taken inside the chunk (the gradient matrix
computed there too) and their work runs on the diagnostics thread. These tests pin down that
this changes nothing a user can see: the values equal those of fires from host visits, the
chunk count drops, metrics stay in step order, a failing tracker is still named."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jno
from jno_core.errors import JnoPluginError
from jno_core.testing import RecordingSink, small_problem
from jno_core.tracker import Tracker


class _HostVisit:
    """A non-deferred plugin due every epoch: forces a host visit (and so a live fire of
    every tracker) at every epoch."""

    interval = 1
    plugin_name = "every-epoch"

    @jno.hookimpl
    def on_epoch(self, ctx, epoch):
        pass


def _count_chunks(crux):
    """Record the epoch count of every chunk call of ``crux``'s next solve."""
    calls: list[int] = []
    orig = crux._compile_chunk

    def compile_and_count(*a, **k):
        t = orig(*a, **k)
        fn = crux._chunk_fn

        def counted(*args):
            calls.append(int(args[3]))
            return fn(*args)

        crux._chunk_fn = counted
        return t

    crux._compile_chunk = compile_and_count
    return calls


def _trackers(p=None):
    out = [jno.trackers.gradient_norms(interval=10), jno.trackers.cos_similarity(interval=10),
           jno.trackers.residual_stats(interval=20)]
    if p is not None:
        out.append(jno.trackers.input_sensitivity(p.u.d(p.x), interval=30))
    return out


def _run(force_host: bool, epochs: int = 200):
    p = small_problem(hidden=8, layers=2)
    cbs = _trackers(p)
    calls = _count_chunks(p.crux)
    h = p.crux.solve(epochs, callbacks=cbs + ([_HostVisit()] if force_host else []))
    g_fns = [str(k[1]).split(":")[0] for k in p.crux._cache.compiled if "gradient_matrix" in str(k[1])]
    return cbs, (calls, g_fns), h


def test_deferred_fires_match_host_fires_and_cut_host_visits():
    deferred, (calls, g_def), h_def = _run(force_host=False)
    live, (calls_live, g_live), h_live = _run(force_host=True)
    assert len(calls_live) == 200
    # the two gradient trackers share one device function computing G: over the chunk's
    # snapshot slots for deferred fires; for one fire when a non-concurrent plugin visits the
    # host at every epoch (fires cannot be postponed)
    assert g_def == ["fire_batch"] and g_live == ["fire"]
    np.testing.assert_array_equal(h_def.losses, h_live.losses)  # fires never touch training
    for a, b in zip(deferred, live):
        ra, rb = a.result, b.result
        np.testing.assert_array_equal(ra["epochs"], np.arange(0, 200, a.interval))
        np.testing.assert_array_equal(ra["epochs"], rb["epochs"])
        for k in a.result_keys:
            # deferred gradient matrices come from the chunk's own XLA program: equal up to
            # float32 rounding of a differently fused computation
            np.testing.assert_allclose(ra[k], rb[k], rtol=2e-5, atol=1e-7, err_msg=f"{a.name}:{k}")
    # fires every 10 epochs (20, epoch 0 included: all from snapshots, the one at a chunk's
    # first epoch too); a chunk takes at most a third of the fires left (2 to 8) and the host
    # visits the next one: 6 fires + visit at 60, 4 + 100, 3 + 130, 2 + 150, 2 + 170,
    # 2 + 190, 1 + the end (200 live fires needed one chunk per epoch)
    assert calls == [60, 40, 30, 20, 20, 20, 10], calls


def _count_slot_batch_calls():
    """``(counts, patched Pending.result)``: count the calls of every tracker device function
    compiled over a chunk's snapshot slots and of every one compiled for one fire
    (jno_core.fires.prepare_fire)."""
    from jno_core import compile_pool

    counts = {"batch": 0, "single": 0}
    orig = compile_pool.Pending.result

    def result(self):
        fn = orig(self)
        kind = "batch" if self.name.startswith("fire_batch:") else (
            "single" if self.name.startswith("fire:") else None)
        if kind is None:
            return fn

        def counted(*a):
            counts[kind] += 1
            return fn(*a)

        return counted

    return counts, result


def test_slot_batch_computes_a_chunks_fires_in_one_call_and_equals_live_fires(monkeypatch):
    """residual_stats / input_sensitivity fires from chunk snapshots run one compiled call per
    chunk and tracker (jno_core.fires), equal to live fires;
    a later solve of the same solver that fires live prepares the one-fire function again
    (Tracker._still_prepared)."""
    from jno_core import compile_pool

    p = small_problem(hidden=8, layers=2)
    res = jno.trackers.residual_stats(interval=20)
    sal = jno.trackers.input_sensitivity(p.u.d(p.x), interval=20)
    counts, counted = _count_slot_batch_calls()
    monkeypatch.setattr(compile_pool.Pending, "result", counted)
    calls = _count_chunks(p.crux)
    p.crux.solve(200, callbacks=[res, sal])
    n_chunks = len(calls)
    assert counts["single"] == 0
    # one call per chunk with a fire and tracker (a chunk may hold no fire of an interval)
    assert 2 <= counts["batch"] <= 2 * n_chunks < 2 * len(res.result["epochs"]), (counts, calls)
    # the same solver, solved on with a host visit every epoch: fires from the live state
    counts.update(batch=0, single=0)
    p.crux.solve(60, callbacks=[res, sal, _HostVisit()])
    assert counts["batch"] == 0 and counts["single"] == 2 * 3
    # values: equal to the same solves on a fresh solver with a host visit every epoch (live
    # fires only: the one-fire functions, which the plugins' own tests check against numpy
    # and jax.grad by hand)
    q = small_problem(hidden=8, layers=2)
    res_q = jno.trackers.residual_stats(interval=20)
    sal_q = jno.trackers.input_sensitivity(q.u.d(q.x), interval=20)
    q.crux.solve(200, callbacks=[res_q, sal_q, _HostVisit()])
    q.crux.solve(60, callbacks=[res_q, sal_q, _HostVisit()])
    for a, b in ((res, res_q), (sal, sal_q)):
        np.testing.assert_array_equal(a.result["epochs"], np.arange(0, 260, 20))
        for k in a.result_keys:
            np.testing.assert_allclose(a.result[k], b.result[k], rtol=2e-5, atol=1e-7, err_msg=f"{a.name}:{k}")


def test_metrics_of_concurrent_fires_arrive_in_step_order():
    p = small_problem()
    sink = RecordingSink()
    p.crux.solve(300, callbacks=_trackers() + [sink])
    steps = [s for s, _ in sink.records]
    assert steps == sorted(steps)
    assert len(set(steps)) == len(steps)  # one delivery per step: complete when delivered
    assert sink.steps("explainability/gradient_norm/constraint_0") == list(range(0, 300, 10))
    assert "explainability/residual/constraint_0/p99" in sink.at(280)


class _Boom(Tracker):
    name = "boom"
    result_keys = ("v",)

    def compute(self, ctx, epoch):
        if epoch >= 30:
            raise ValueError("exploded")
        return {"v": np.float32(epoch)}


def test_failing_deferred_fire_is_reported_with_the_plugin_name():
    p = small_problem()
    t = _Boom(interval=10)
    with pytest.raises(JnoPluginError, match=r"'boom' failed in on_epoch at epoch 30: ValueError: exploded"):
        p.crux.solve(100, callbacks=[t])
    np.testing.assert_array_equal(t.result["epochs"], [0, 10, 20])


def test_concurrency_switch_gives_identical_results(monkeypatch):
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("JNO_CONCURRENT_DIAGNOSTICS", flag)
        p = small_problem()
        cbs = _trackers()
        h = p.crux.solve(120, callbacks=cbs)
        results.append((h.losses, [cb.result for cb in cbs]))
    (la, ra), (lb, rb) = results
    np.testing.assert_array_equal(la, lb)
    for a, b in zip(ra, rb):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_context_loss_helpers_take_points_as_arguments():
    """ctx.loss_vector / ctx.total_loss: with points passed as an argument a compiled
    function evaluates the points it is given (nothing baked in), and the values equal the
    solver's own losses recorded for that epoch."""
    from jno_core.context import SolveContext

    p = small_problem()
    p.crux.solve(5)
    ctx = SolveContext(p.crux, None, 5, 5, lambda *a: None)
    params = ctx.params
    f = jax.jit(lambda pp, pts: ctx.loss_vector(pp, points=pts))
    got = np.asarray(f(params, ctx.points))
    total = float(jax.jit(lambda pp, pts: ctx.total_loss(pp, points=pts))(params, ctx.points))
    p.crux.solve(1)  # the loss recorded at epoch 5 is computed from the same parameters
    np.testing.assert_allclose(got, p.crux.history.losses[-1], rtol=1e-5)
    np.testing.assert_allclose(total, p.crux.history.total_loss[-1], rtol=1e-5)
    # a different point set changes the value (the points are an argument, not a constant)
    moved = {k: v * 0.5 for k, v in ctx.points.items()}
    assert not np.allclose(np.asarray(f(params, moved)), got)


class _BatchOnlySink:
    plugin_name = "batch-only-sink"

    def __init__(self):
        self.records = []

    @jno.hookimpl
    def log_metrics_batch(self, records):
        self.records.extend((int(s), dict(m)) for s, m in records)


def test_a_batch_only_sink_passed_as_callback_receives_every_step():
    p = small_problem()
    sink = _BatchOnlySink()
    p.crux.solve(120, callbacks=[jno.trackers.gradient_norms(interval=40), sink])
    steps = [s for s, _ in sink.records]
    assert steps == sorted(steps)
    assert [s for s, m in sink.records if "loss/total" in m] == [0, 50, 100]
    assert [s for s, m in sink.records if "explainability/gradient_norm/constraint_0" in m] == [0, 40, 80]


class _CountingPrepare(Tracker):
    """A tracker that counts its ``prepare`` calls and fires the parameter norm."""

    name = "counting_prepare"
    result_keys = ("norm",)

    def __init__(self, interval: int) -> None:
        super().__init__(interval)
        self.prepares = 0

    def prepare(self, ctx):
        self.prepares += 1
        self._fn = ctx.compile("counting_prepare", lambda p: jax.tree_util.tree_reduce(
            lambda a, b: a + (b ** 2).sum(), p, 0.0), ctx.params)

    def compute(self, ctx, epoch):
        return {"norm": self._fn(ctx.params)}


def test_prepare_runs_once_per_solver_and_layout():
    p = small_problem(hidden=8, layers=2)
    t = _CountingPrepare(interval=5)
    p.crux.solve(10, callbacks=[t])
    p.crux.solve(10, callbacks=[t])
    assert t.prepares == 1  # same solver, same layout: the compiled function is reused
    assert t.result["epochs"].tolist() == [0, 5, 10, 15]
    # the values are those of the parameters at each epoch (same as a fresh tracker's)
    fresh = _CountingPrepare(interval=5)
    p.crux.solve(10, callbacks=[t, fresh])
    np.testing.assert_allclose(t.result["norm"][-2:], fresh.result["norm"], rtol=1e-6)
    assert t.prepares == 1 and fresh.prepares == 1
    other = small_problem(hidden=4, layers=2)  # another solver (other shapes): prepared again
    other.crux.solve(5, callbacks=[t])
    assert t.prepares == 2
    p.crux.solve(5, callbacks=[t])  # back to the first solver
    assert t.prepares == 3
    p.crux.solve(5, callbacks=[t])
    assert t.prepares == 3
    p.crux.solve(5, callbacks=[t], devices=1)  # the layout changes: prepared again
    assert t.prepares == 4


def test_gradient_tracker_prepares_the_one_fire_g_when_a_later_solve_needs_it():
    p = small_problem(hidden=8, layers=2)
    gn = jno.trackers.gradient_norms(interval=10)

    def standalone():  # the one-fire G function, compiled or compiling
        cache = p.crux._cache
        return [k for k in list(cache.compiled) + list(cache.compiling)
                if str(k[1]).startswith("fire:('gradient_matrix'")]

    p.crux.solve(20, callbacks=[gn])  # every fire reads G over the chunk's slots: no one-fire G
    assert standalone() == []
    compiled_at_begin = []

    class _Probe:
        interval = 1000  # registered after the tracker: sees the state after its on_solve_begin
        plugin_name = "probe"

        @jno.hookimpl
        def on_solve_begin(self, ctx):
            compiled_at_begin.append(len(standalone()))

    # a host visit every epoch (non-concurrent): fires are live, so G must be compiled in
    # on_solve_begin although the tracker was prepared for this solver before
    p.crux.solve(20, callbacks=[gn, _HostVisit(), _Probe()])
    assert compiled_at_begin == [1]
    np.testing.assert_array_equal(gn.result["epochs"], [0, 10, 20, 30])
