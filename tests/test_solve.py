"""The solve loop: convergence, chunking, trackers, continuation, errors."""

import re
import jax
import numpy as np
import optax
import pytest

import jno
from jno_core.hookspecs import hookimpl
from jno_core.testing import CompileEvents

from helpers_core import poisson1d


def test_poisson1d_converges_to_exact_solution():
    crux, v = poisson1d(hidden=32, layers=3)
    u, x = v["u"], v["x"]
    hist = crux.solve(4000)
    _u, _ue = crux.eval([u, jno.np.sin(jno.np.pi * x) / jno.np.pi**2])
    rel = np.linalg.norm(_u - _ue) / np.linalg.norm(_ue)
    assert rel < 1e-2, rel
    assert hist.total_loss.shape == (4000,) and hist.losses.shape == (4000, 2)
    np.testing.assert_allclose(hist.total_loss, hist.losses.sum(1), rtol=1e-5)
    assert hist.total_loss[-1] < 1e-2 * hist.total_loss[0]


def test_history_equals_losses_recomputed_by_hand():
    crux, v = poisson1d()
    hist = crux.solve(50)
    # loss at epoch 50 is the loss of the parameters after 50 steps: evaluate directly
    pde_l, bc_l = crux.eval([v["pde"].mse, v["ub"].mse])
    hist2 = crux.solve(1)
    np.testing.assert_allclose(hist2.losses[0], [pde_l, bc_l], rtol=1e-5)
    assert hist2.epochs.tolist() == [50]


def test_chunking_does_not_change_the_trajectory():
    a, _ = poisson1d(chunk_size=1000)
    b, _ = poisson1d(chunk_size=7)
    ha = a.solve(60)
    hb = b.solve(60)
    np.testing.assert_allclose(ha.total_loss, hb.total_loss, rtol=1e-6)
    # one step at a time
    c, _ = poisson1d(chunk_size=1)
    hc = c.solve(60)
    np.testing.assert_allclose(ha.total_loss, hc.total_loss, rtol=1e-6)


def test_second_solve_continues_epochs_and_optimizer_state():
    a, _ = poisson1d()
    b, _ = poisson1d()
    h1 = a.solve(30)
    h2 = a.solve(30)
    hb = b.solve(60)
    assert h2.epochs[0] == 30 and h2.epochs[-1] == 59
    np.testing.assert_allclose(np.concatenate([h1.total_loss, h2.total_loss]), hb.total_loss, rtol=1e-6)
    assert a.history.n_epochs == 60


def test_no_recompile_on_second_solve():
    crux, _ = poisson1d()
    crux.solve(5)
    fn = crux._chunk_fn
    with CompileEvents() as cc:
        crux.solve(5)
        crux.solve(17, chunk_size=3)
    assert crux._chunk_fn is fn
    assert cc.count == 0, cc.events
    with CompileEvents() as cc2:  # the counter does see compilations
        jax.jit(lambda z: z * 3.0)(1.0)
    assert cc2.count >= 1


def test_tracker_expressions_fire_at_their_interval():
    crux, v = poisson1d()
    u, x = v["u"], v["x"]
    err = jno.numpy.tracker(jno.np.mean(jno.np.abs(u)), interval=7)
    t2 = (u.mse).tracker(10)
    crux2 = jno.core([v["pde"].mse, v["ub"].mse, err, t2], chunk_size=5)
    hist = crux2.solve(40)
    assert hist.trackers["tracker_0"].epochs == list(range(0, 40, 7))
    assert hist.trackers["tracker_1"].epochs == [0, 10, 20, 30]
    # values equal the expression evaluated at those parameters: check the first one
    fresh, fv = poisson1d()
    [m0] = fresh.eval([jno.np.mean(jno.np.abs(fv["u"]))])
    np.testing.assert_allclose(hist.trackers["tracker_0"].values[0], m0, rtol=1e-6)


class _Recorder:
    def __init__(self, interval):
        self.interval = interval
        self.epochs = []
        self.begun = 0

    @hookimpl
    def on_solve_begin(self, ctx):
        self.begun += 1

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.epochs.append(epoch)


def test_callbacks_fire_exactly_at_multiples_whatever_the_chunking():
    crux, _ = poisson1d(chunk_size=4)
    r3, r7 = _Recorder(3), _Recorder(7)
    crux.solve(40, callbacks=[r3, r7])
    assert r3.epochs == list(range(0, 40, 3))
    assert r7.epochs == list(range(0, 40, 7))
    crux.solve(10, callbacks=[r3])
    assert r3.epochs == list(range(0, 40, 3)) + [42, 45, 48]
    assert r3.begun == 2


def test_callbacks_do_not_change_training():
    a, _ = poisson1d()
    b, _ = poisson1d()
    ha = a.solve(40)
    hb = b.solve(40, callbacks=[_Recorder(3)])
    np.testing.assert_array_equal(ha.total_loss, hb.total_loss)


def test_non_finite_loss_stops_and_keeps_history():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    p = jno.np.parameter((1,), name="p", init=1.0).optimizer(optax.sgd(1.0))
    # loss = (log p)^2 : gradient steps drive p negative -> log(p) nan
    loss = (jno.np.log(p) + 0 * x).mse + (p - 5.0).mse * 0 + (p * 3.0 + 2.0).mse
    crux = jno.core([loss])
    with pytest.warns(RuntimeWarning, match="non-finite loss at epoch"):
        hist = crux.solve(100)
    assert hist.stopped is not None
    assert np.isfinite(hist.total_loss[:-1]).all() and not np.isfinite(hist.total_loss[-1])
    # parameters are those before the failing step: finite
    [pv] = crux.eval([p])
    assert np.isfinite(pv).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_epochs_rejected(bad):
    crux, _ = poisson1d()
    with pytest.raises(ValueError, match="positive integer"):
        crux.solve(bad)


def test_bad_tracker_interval_rejected():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    with pytest.raises(ValueError, match="positive integer"):
        x.mse.tracker(0)


def test_inverse_problem_recovers_coefficients():
    π = jno.np.pi
    d = jno.domain.line(mesh_size=0.02)
    x, _ = d.variable("interior")
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jno.np.parameter((1,), key=k1, name="a")
    b = jno.np.parameter((1,), key=k2, name="b")
    c = jno.np.parameter((1,), key=k3, name="c")
    for p in (a, b, c):
        p.optimizer(optax.adam(5e-2))
    target = 1.5 * jno.np.sin(π * x) - 0.7 * jno.np.cos(π * x) + 2.0 * x * (1 - x)
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) + c * x * (1 - x) - target
    crux = jno.core([residual.mse])
    crux.solve(3000)
    _a, _b, _c = crux.eval([a, b, c])
    np.testing.assert_allclose([_a[0], _b[0], _c[0]], [1.5, -0.7, 2.0], rtol=0.02)
    text = f"{_a[0]:.3f}"  # formats as the spec's script does: a plain number, 3 decimals
    assert re.fullmatch(r"-?\d+\.\d{3}", text) and abs(float(text) - float(_a[0])) <= 5e-4


class _Sink:
    def __init__(self):
        self.rows = []

    @hookimpl
    def log_metrics(self, step, metrics):
        self.rows.append((step, {k: getattr(v, "value", None) for k, v in metrics.items()}))


def test_core_training_metrics_reach_sinks_with_monotone_steps():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1), name="u_net")
    sched = optax.exponential_decay(1e-2, 10, 0.5)
    net.optimizer(optax.adam(sched))
    crux = jno.core([(net(x) - x).mse, jno.np.mean(net(x)).tracker(5)])
    sink = _Sink()
    h1 = crux.solve(20, callbacks=[sink], log_every=5)
    crux.solve(20, callbacks=[sink], log_every=5)
    steps = [s for s, _ in sink.rows]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] >= 35
    by_step = {}
    for s, m in sink.rows:
        by_step.setdefault(s, {}).update(m)
    assert by_step[5]["loss/total"] == pytest.approx(h1.total_loss[5], rel=1e-6)
    assert by_step[5]["loss/constraint_0"] == pytest.approx(h1.losses[5, 0], rel=1e-6)
    assert by_step[30]["lr/u_net"] == pytest.approx(float(sched(30)), rel=1e-6)
    assert by_step[10]["train/grad_norm"] == pytest.approx(h1.grad_norm[10], rel=1e-6)
    assert "tracker/tracker_0" in by_step[15]


def test_progress_line_when_enabled_and_silent_by_default(capsys):
    crux, _ = poisson1d()
    crux.solve(30, progress=True, chunk_size=10)
    err = capsys.readouterr().err
    assert "epoch       30/30" in err and "epochs/s" in err
    crux.solve(30)  # JNO_NO_PROGRESS / non-tty: silent
    assert capsys.readouterr().err == ""
