"""jno.callbacks.early_stopping: the stopping rule on hand-made loss sequences (any chunking),
and live solves (plateau, patience, restore_best)."""

from __future__ import annotations

import math

import jax
import numpy as np
import optax
import pytest

import jno
from jno_core import plugins
from jno_core.hookspecs import hookimpl
from jno_core.testing import small_problem
from jno_plugin_early_stopping import EarlyStopping


class FakeCtx:
    def __init__(self, end: int) -> None:
        self.epoch = 0
        self.end_epoch = end
        self.params = None
        self.stop_reason = None
        self.logged: list = []

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def log(self, metrics, step=None, source="plugin") -> None:
        self.logged.append((step, metrics))


def feed(es: EarlyStopping, values, chunk: int, extra_cols: int = 1) -> FakeCtx:
    """Deliver values as the loop would: chunks of ``chunk`` epochs, stopping when asked."""
    values = np.asarray(values, np.float64)
    ctx = FakeCtx(len(values))
    es.on_solve_begin(ctx=ctx)
    for start in range(0, len(values), chunk):
        v = values[start : start + chunk]
        losses = np.column_stack([v] + [v * (k + 2) for k in range(extra_cols)])
        ctx.epoch = start + len(v)
        es.on_chunk_end(ctx=ctx, epochs=np.arange(start, start + len(v)), losses=losses)
        if ctx.stop_reason:
            break
    return ctx


@pytest.mark.parametrize("chunk", [1, 2, 4, 100])
def test_min_mode_plateau(chunk: int) -> None:
    es = EarlyStopping(patience=3, interval=None)
    ctx = feed(es, [5, 4, 3, 3, 3, 3, 3, 3, 3], chunk)
    # best 3 at epoch 2; epochs 3, 4, 5 do not improve -> the third one stops
    assert (es.stopped_epoch, es.best_epoch, es.best_metric) == (5, 2, 3.0)
    assert "epoch 5" in ctx.stop_reason
    assert ctx.logged == [(5, {"early_stopping/stopped_epoch": 5, "early_stopping/best_metric": 3.0,
                               "early_stopping/best_epoch": 2})]


@pytest.mark.parametrize("chunk", [1, 3, 50])
def test_max_mode(chunk: int) -> None:
    es = EarlyStopping(patience=3, mode="max", interval=None)
    feed(es, [1, 2, 3, 2.5, 2.9, 2.99, 1, 7], chunk)
    assert (es.stopped_epoch, es.best_epoch, es.best_metric) == (5, 2, 3.0)


def test_patience_is_respected() -> None:
    vals = [10, 9, 9, 9, 8, 8, 8, 8, 7, 7, 7, 7, 7]
    es = EarlyStopping(patience=4, interval=None)
    feed(es, vals, 5)
    # stalls of 3 epochs (after 9 and after 8) do not stop; the 4-epoch stall after 7 does
    assert es.stopped_epoch == 12 and es.best_epoch == 8
    es = EarlyStopping(patience=5, interval=None)
    ctx = feed(es, vals, 5)
    assert es.stopped_epoch is None and ctx.stop_reason is None and es.wait == 4


def test_min_delta() -> None:
    es = EarlyStopping(patience=2, min_delta=0.05, interval=None)
    feed(es, [1.0, 0.95, 0.91, 0.90, 0.899, 0.5], 10)
    # 0.95 is not below 1.0 - 0.05; 0.91 is; 0.90 and 0.899 are not below 0.86 -> stop at 4
    assert (es.stopped_epoch, es.best_epoch, es.best_metric) == (4, 2, 0.91)


def test_non_finite_values_never_improve() -> None:
    es = EarlyStopping(patience=2, interval=None)
    feed(es, [1.0, math.nan, math.inf, 0.5], 1)
    assert es.stopped_epoch == 2 and es.best_metric == 1.0


def test_metric_fn_on_a_constraint_column() -> None:
    es = EarlyStopping(patience=2, metric_fn=lambda l: l[:, 1] - 2 * l[:, 0] + np.arange(len(l)), interval=None)
    # column 1 is 2 * column 0, so the metric is the epoch index within the chunk: rising
    feed(es, np.ones(10), 10)
    assert es.stopped_epoch == 2 and es.best_epoch == 0
    bad = EarlyStopping(patience=2, metric_fn=lambda l: l[0])
    with pytest.raises(ValueError, match="one value per epoch"):
        feed(bad, np.ones(5), 5)


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"mode": "up"}, {"metric_fn": 1}, {"interval": 0}])
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        EarlyStopping(**kwargs)


# ----------------------------------------------------------------------------- live
@pytest.fixture(autouse=True)
def _plugins():
    plugins.reset()
    yield


class ChunkCounter:
    name = "chunk-counter"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    @hookimpl
    def on_chunk_end(self, ctx, epochs, losses):
        self.calls.append((int(epochs[0]), int(epochs[-1])))


def frozen_problem():
    """Training with a zero learning rate: the loss is exactly constant (a plateau)."""
    domain = jno.domain.line(mesh_size=0.1)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.sgd(0.0))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(jno.np.pi * x)
    return jno.core([pde.mse, ub.mse])


def test_plateau_stops_the_solve_at_the_chunk_end() -> None:
    crux = frozen_problem()
    es = jno.callbacks.early_stopping(patience=30, interval=10)
    counter = ChunkCounter()
    hist = crux.solve(1000, callbacks=[es, counter])
    # best at epoch 0, epochs 1..30 do not improve: stopped at 30, in the chunk [30, 40)
    assert es.stopped_epoch == 30 and es.best_epoch == 0
    assert es.best_metric == pytest.approx(hist.total_loss[0], rel=0, abs=0)
    assert hist.n_epochs == 40 and crux.epoch == 40
    assert hist.stopped and "early stopping at epoch 30" in hist.stopped
    assert counter.calls == [(0, 9), (10, 19), (20, 29), (30, 39)]


def test_decides_once_per_chunk_not_per_epoch() -> None:
    p = small_problem()
    es = jno.callbacks.early_stopping(patience=10_000)  # no interval: the loop's own chunks
    counter = ChunkCounter()
    p.crux.solve(300, callbacks=[es, counter])
    assert counter.calls == [(0, 149), (150, 299)]  # the loop halves its chunks towards the end
    es = jno.callbacks.early_stopping(patience=10_000, interval=100)
    counter = ChunkCounter()
    p.crux.solve(300, callbacks=[es, counter])
    assert counter.calls == [(300, 399), (400, 499), (500, 599)]
    assert es.stopped_epoch is None


class StateProbe:
    name = "state-probe"

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.params: dict[int, list] = {}

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.params[epoch] = [np.asarray(a) for a in jax.tree_util.tree_leaves(ctx.params)]


def test_restore_best_restores_the_best_boundary_parameters() -> None:
    """mode="max" on a decreasing loss: the best is at the start. The restored parameters are
    those of the boundary epoch (multiple of 10) whose recorded loss is the highest."""
    p = small_problem()
    probe = StateProbe(10)
    es = jno.callbacks.early_stopping(patience=20, mode="max", restore_best=True, interval=10)
    hist = p.crux.solve(500, callbacks=[probe, es])
    tl = hist.total_loss
    # the rule by hand on the recorded losses
    best, best_e, wait, stop = -np.inf, None, 0, None
    for e, v in enumerate(tl):
        if v > best:
            best, best_e, wait = v, e, 0
        else:
            wait += 1
            if wait >= 20:
                stop = e
                break
    assert es.stopped_epoch == stop and es.best_epoch == best_e and es.best_metric == best
    assert hist.n_epochs == (stop // 10 + 1) * 10
    boundaries = [b for b in range(0, hist.n_epochs, 10)]
    b = max(boundaries, key=lambda k: tl[k])
    assert es.restored_epoch == b
    now = [np.asarray(a) for a in jax.tree_util.tree_leaves(p.crux.state[0])]
    for got, want in zip(now, probe.params[b]):
        np.testing.assert_array_equal(got, want)
    # the network holds the restored values after the solve
    for got, want in zip(jax.tree_util.tree_leaves(p.net.params), probe.params[b]):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_counters_reset_between_solves_and_resume_from_state() -> None:
    crux = frozen_problem()
    es = jno.callbacks.early_stopping(patience=5, interval=5)
    crux.solve(100, callbacks=[es])
    assert es.stopped_epoch == 5
    crux.solve(100, callbacks=[es])  # fresh counters: best at the new start epoch 10
    assert es.stopped_epoch == 15 and es.best_epoch == 10
    saved = es.jno_state()
    es2 = jno.callbacks.early_stopping(patience=5, interval=5)
    es2.jno_load_state({**saved, "wait": 3})
    assert crux.epoch == 20
    crux.solve(100, callbacks=[es2])  # continues: epochs 20 and 21 are stalled epochs 4 and 5
    assert es2.stopped_epoch == 21 and es2.best_epoch == 10
