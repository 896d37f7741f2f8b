"""The loop starts the next chunk before reading the current one's results
(jno_core.core.Core._loop). These tests pin down that nothing a user can see changes: a
solve's losses equal those of a solve whose chunks are all started after the host visit,
and a plugin that replaces the train state at a host visit makes the loop drop the chunk it
started ahead and continue from the replaced state."""

from __future__ import annotations

import jax
import numpy as np

import jno
from jno_core.testing import small_problem
from jno_core.tracker import Tracker


class _Every:
    """A plugin with an interval (a host visit every ``interval`` epochs)."""

    plugin_name = "every"

    def __init__(self, interval: int) -> None:
        self.interval = interval

    @jno.hookimpl
    def on_epoch(self, ctx, epoch):
        pass


class _RestoreOnce(_Every):
    """At epoch ``at`` load the train state recorded at epoch ``back`` (both host visits)."""

    plugin_name = "restore-once"

    def __init__(self, interval: int, back: int, at: int) -> None:
        super().__init__(interval)
        self.back, self.at, self.saved, self.done = back, at, None, False

    @jno.hookimpl
    def on_epoch(self, ctx, epoch):
        if epoch == self.back and self.saved is None:
            self.saved = ctx.crux.state
        elif epoch == self.at and not self.done:
            self.done = True
            ctx.crux.load_state(self.saved)


def test_losses_equal_with_and_without_starting_ahead():
    a = small_problem(hidden=8, layers=2)
    b = small_problem(hidden=8, layers=2)
    ha = a.crux.solve(300, callbacks=[_Every(50)])
    # the same epochs as six solves of 50: no chunk is ever started ahead
    rows = [b.crux.solve(50, callbacks=[_Every(50)]) for _ in range(6)]
    ra = ha._table()
    rb = np.concatenate([h._table() for h in rows])
    assert ra.shape == rb.shape == (300, ra.shape[1])
    np.testing.assert_array_equal(ra, rb)
    pa = jax.tree_util.tree_leaves(a.crux.state[0])
    pb = jax.tree_util.tree_leaves(b.crux.state[0])
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_state_replaced_at_a_host_visit_drops_the_chunk_started_ahead():
    a = small_problem(hidden=8, layers=2)
    cb = _RestoreOnce(50, back=100, at=200)
    h = a.crux.solve(300, callbacks=[cb])
    assert cb.done
    ep = h.epochs
    # 0..199, then again from the restored epoch 100 to 299: 400 rows
    np.testing.assert_array_equal(ep, np.concatenate([np.arange(0, 200), np.arange(100, 300)]))
    assert a.crux.epoch == 300
    rows = h._table()
    # the replayed epochs 100..199 start from the same state: the same losses, bitwise
    np.testing.assert_array_equal(rows[100:200], rows[200:300])
    # and the end state is that of 300 uninterrupted epochs
    b = small_problem(hidden=8, layers=2)
    b.crux.solve(300)
    for x, y in zip(jax.tree_util.tree_leaves(a.crux.state[0]), jax.tree_util.tree_leaves(b.crux.state[0])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_non_finite_loss_in_a_later_chunk_drops_the_chunk_started_ahead():
    """The loss turns non-finite in a chunk after which another was already started: the
    solve stops at that epoch, with the history up to it (no rows from the dropped chunk)
    and the parameters before the failing step."""
    import optax
    import pytest

    def problem(decay):
        # (p + 10)^2 drives p from 6 down through 0, where log(p) turns non-finite
        d = jno.domain.line(mesh_size=0.1)
        x, _ = d.variable("interior")
        p = jno.np.parameter((1,), name="p", init=6.0).optimizer(optax.sgd(decay))
        return jno.core([(jno.np.log(p) + 0 * x).mse * 1e-3 + (p + 10.0 + 0 * x).mse]), p

    crux, p = problem(0.01)
    ref, p_ref = problem(0.01)
    with pytest.warns(RuntimeWarning, match="non-finite loss at epoch"):
        h_ref = ref.solve(400)  # one chunk: nothing started ahead
    with pytest.warns(RuntimeWarning, match="non-finite loss at epoch"):
        h = crux.solve(400, callbacks=[_Every(7)])  # a chunk per 7 epochs, each started ahead
    n = len(h_ref.epochs)
    assert n > 14  # the stop is several chunks in
    assert h.stopped == h_ref.stopped and crux.epoch == ref.epoch == n - 1
    np.testing.assert_array_equal(h.epochs, np.arange(n))
    np.testing.assert_array_equal(h._table(), h_ref._table())
    [pv], [pr] = crux.eval([p]), ref.eval([p_ref])
    assert np.isfinite(pv).all()
    np.testing.assert_array_equal(pv, pr)


class _ParamNorm(Tracker):
    """The squared parameter norm at every fire."""

    name = "param_norm_sq"
    result_keys = ("norm",)

    def compute(self, ctx, epoch):
        return {"norm": float(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree_util.tree_leaves(ctx.params)))}


class _Steps:
    """A sink that records the steps and losses it receives."""

    plugin_name = "steps"

    def __init__(self) -> None:
        self.got: dict[int, float] = {}

    @jno.hookimpl
    def log_metrics(self, step, metrics):
        if "loss/total" in metrics:
            self.got[step] = float(metrics["loss/total"].value)


class _ChunkLengths:
    def __init__(self):
        self.lengths = []

    @jno.hookimpl
    def on_chunk_end(self, ctx, epochs, losses):
        self.lengths.append(len(epochs))


def test_tapered_chunks_are_the_same_with_or_without_sinks_and_keep_the_trajectory():
    a = small_problem(hidden=8, layers=2)
    b = small_problem(hidden=8, layers=2)
    a.crux.solve(1)
    b.crux.solve(1)
    la, lb = _ChunkLengths(), _ChunkLengths()  # chunk boundaries as plugins see them
    sink = _Steps()
    ha = a.crux.solve(2000, log_every=50, callbacks=[sink, la])
    hb = b.crux.solve(2000, log_every=50, callbacks=[lb])
    # taper = 1000 / 16 -> 63 epochs; boundaries a function of the epochs only
    assert la.lengths == lb.lengths == [1000, 500, 250, 150, 100]
    np.testing.assert_array_equal(ha._table(), hb._table())
    assert sorted(sink.got) == list(range(50, 2001, 50))  # epochs 1..2000 (one epoch before)
    np.testing.assert_allclose([sink.got[s] for s in sorted(sink.got)], ha._table()[49::50, 0], rtol=1e-6)
    # a tracker fires at the same epochs with the same values as in one-chunk-per-fire solves
    ta, tb = _ParamNorm(interval=70), _ParamNorm(interval=70)
    ha = a.crux.solve(1000, log_every=50, callbacks=[_Steps(), ta])
    hb = b.crux.solve(1000, log_every=50, callbacks=[tb], chunk_size=70)
    np.testing.assert_array_equal(ha._table(), hb._table())
    assert ta.result["epochs"].tolist() == tb.result["epochs"].tolist() == list(range(2030, 3001, 70))
    np.testing.assert_array_equal(ta.result["norm"], tb.result["norm"])
