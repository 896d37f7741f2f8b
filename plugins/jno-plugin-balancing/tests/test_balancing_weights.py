"""gradient_norm_balanced / ntk_balanced: weights checked against numbers computed by hand,
the cold start, the EMA, and live solves (weights enter the step as inputs, no recompile)."""

from __future__ import annotations

import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.errors import JnoPluginError
from jno_core.testing import CompileEvents, small_problem


class StubTracker:
    """Stands in for a tracker: .value / .latest_epoch / .interval."""

    def __init__(self, interval: int = 10) -> None:
        self.interval = interval
        self.value = None
        self.latest_epoch = None

    def fire(self, epoch: int, **value: object) -> None:
        self.value = {k: np.asarray(v) for k, v in value.items()}
        self.latest_epoch = epoch


def balancers():
    plugins.reset()
    from jno.utils.adaptive.weights import gradient_norm_balanced, ntk_balanced

    return gradient_norm_balanced, ntk_balanced


def test_spec_import_path_resolves_registered_names() -> None:
    gnb, ntk = balancers()
    assert plugins.lookup("weightings", "gradient_norm_balanced").factory is gnb
    assert plugins.lookup("weightings", "ntk_balanced").factory is ntk
    assert jno.fn.adaptive.gradient_norm_balanced is gnb


def test_gradient_norm_weights_for_norms_1_and_4() -> None:
    gnb, _ = balancers()
    gn = StubTracker()
    w = gnb(gn)
    p = small_problem()
    w_pde, w_bc = w(p.pde.mse, p.bc.mse)
    assert (w_pde.index, w_bc.index) == (0, 1) and w_pde.provider is w
    gn.fire(0, norms=[1.0, 4.0])
    # 1/1 : 1/4 = 0.8 : 0.2 of the total N = 2
    np.testing.assert_allclose(w.current(), [1.6, 0.4], rtol=1e-7)
    assert w.current().dtype == np.float32


def test_gradient_norm_weights_three_constraints() -> None:
    gnb, _ = balancers()
    gn = StubTracker()
    w = gnb(gn)
    p = small_problem()
    w([p.pde.mse, p.bc.mse, p.u.mse])  # a list works too
    gn.fire(0, norms=[1.0, 2.0, 4.0])
    # 1/n = [1, 0.5, 0.25], sum 1.75 -> 3 * [1, .5, .25] / 1.75
    np.testing.assert_allclose(w.current(), [12 / 7, 6 / 7, 3 / 7], rtol=1e-6)


def test_ntk_weights_for_traces_1_and_4_with_ema_0() -> None:
    _, ntk = balancers()
    a, b = StubTracker(200), StubTracker(200)
    w = ntk([a, b], ema=0.0)
    p = small_problem()
    w(p.pde.mse, p.bc.mse)
    a.fire(200, trace=1.0)
    b.fire(200, trace=4.0)
    # tr(K_total) = 5: raw [5, 1.25], normalised to sum 2
    np.testing.assert_allclose(w.current(), [1.6, 0.4], rtol=1e-7)


def test_cold_start_is_uniform_until_every_tracker_fired() -> None:
    gnb, ntk = balancers()
    p = small_problem()
    a, b = StubTracker(), StubTracker()
    w = ntk([a, b])
    w(p.pde.mse, p.bc.mse)
    np.testing.assert_array_equal(w.current(), [1.0, 1.0])
    a.fire(0, trace=1.0)
    np.testing.assert_array_equal(w.current(), [1.0, 1.0])
    b.fire(0, trace=3.0)
    np.testing.assert_allclose(w.current(), [1.5, 0.5], rtol=1e-7)
    gn = StubTracker()
    g = gnb(gn)
    g(p.pde.mse, p.bc.mse)
    np.testing.assert_array_equal(g.current(), [1.0, 1.0])


def test_ema_updates_once_per_measurement() -> None:
    _, ntk = balancers()
    a, b = StubTracker(), StubTracker()
    w = ntk([a, b], ema=0.9)
    p = small_problem()
    w(p.pde.mse, p.bc.mse)
    a.fire(0, trace=1.0)
    b.fire(0, trace=4.0)
    first = [0.9 + 0.1 * 1.6, 0.9 + 0.1 * 0.4]  # from the uniform cold-start weights
    for _ in range(3):  # reads between fires do not re-apply the EMA
        np.testing.assert_allclose(w.current(), first, rtol=1e-6)
    a.fire(10, trace=4.0)
    b.fire(10, trace=1.0)
    second = [0.9 * first[0] + 0.1 * 0.4, 0.9 * first[1] + 0.1 * 1.6]
    np.testing.assert_allclose(w.current(), second, rtol=1e-6)
    np.testing.assert_allclose(w.current().sum(), 2.0, rtol=1e-6)
    np.testing.assert_array_equal(w.result["epochs"], [0, 10])
    np.testing.assert_allclose(w.result["weights"], [first, second], rtol=1e-6)


def test_errors_name_the_fix() -> None:
    gnb, ntk = balancers()
    p = small_problem()
    with pytest.raises(JnoPluginError, match="w_pde, w_bc = w"):
        gnb(StubTracker()).current()
    with pytest.raises(ValueError, match="one per tracker"):
        ntk([StubTracker(), StubTracker()])(p.pde.mse, p.bc.mse, p.u.mse)
    gn = StubTracker()
    w = gnb(gn)
    w(p.pde.mse, p.bc.mse)
    gn.fire(0, norms=[1.0, 2.0, 3.0])
    with pytest.raises(JnoPluginError, match="3 constraint gradient norms"):
        w.current()
    with pytest.raises(TypeError, match="ntk_balanced"):
        gnb([StubTracker(), StubTracker()])
    with pytest.raises(TypeError, match="list with one NTK tracker"):
        ntk(StubTracker())
    with pytest.raises(ValueError, match="ema"):
        ntk([StubTracker()], ema=1.5)


def test_non_finite_measurement_keeps_previous_weights() -> None:
    gnb, _ = balancers()
    gn = StubTracker()
    w = gnb(gn)
    p = small_problem()
    w(p.pde.mse, p.bc.mse)
    gn.fire(0, norms=[1.0, 4.0])
    w.current()
    gn.fire(10, norms=[np.nan, 1.0])
    with pytest.warns(RuntimeWarning, match="non-finite"):
        np.testing.assert_allclose(w.current(), [1.6, 0.4], rtol=1e-7)


# ----------------------------------------------------------------------------- live
def test_weights_enter_the_step_as_inputs() -> None:
    """hist.losses[0] = w * L(0) with L(0) the unweighted losses evaluated before training."""
    gnb, _ = balancers()
    p = small_problem()
    gn = StubTracker()
    gn.fire(0, norms=[1.0, 4.0])
    w = gnb(gn)
    w_pde, w_bc = w(p.pde.mse, p.bc.mse)
    crux = jno.core([w_pde * p.pde.mse, w_bc * p.bc.mse])
    l0 = np.asarray(crux.eval([p.pde.mse, p.bc.mse]), np.float64)
    hist = crux.solve(3)
    np.testing.assert_allclose(hist.losses[0], [1.6 * l0[0], 0.4 * l0[1]], rtol=1e-5)


def test_live_gradient_norm_balancing_sums_to_n_without_recompiling() -> None:
    pytest.importorskip("jno_plugin_gradients")
    gnb, _ = balancers()
    p = small_problem(lr=1e-2)
    gn = jno.trackers.gradient_norms(interval=10)
    w = gnb(gn)
    w_pde, w_bc = w(p.pde.mse, p.bc.mse)
    crux = jno.core([w_pde * p.pde.mse, w_bc * p.bc.mse, w_pde.tracker(10), w_bc.tracker(10)])
    crux.solve(50, callbacks=[gn])
    with CompileEvents() as cc:
        crux.solve(50, callbacks=[gn])
    assert cc.count == 0, f"{cc.count} compilation events while the weights changed: {cc.events}"
    ws = np.stack([crux.history.trackers["tracker_0"].values, crux.history.trackers["tracker_1"].values], axis=1)
    epochs = np.asarray(crux.history.trackers["tracker_0"].epochs)
    np.testing.assert_array_equal(epochs, np.arange(0, 100, 10))
    np.testing.assert_allclose(ws.sum(axis=1), 2.0, rtol=1e-6)
    np.testing.assert_array_equal(ws[0], [1.0, 1.0])  # cold start
    norms = np.asarray(gn.result["norms"], np.float64)  # fires at 0, 10, ... (both solves)
    assert norms.shape == (10, 2)
    inv = 1.0 / norms[:-1]
    want = 2.0 * inv / inv.sum(axis=1, keepdims=True)  # weights at e from the norms at e - 10
    np.testing.assert_allclose(ws[1:], want, rtol=1e-5)
    assert np.ptp(ws[1:, 0]) > 1e-4  # the weights did change between fires


def test_live_ntk_balancing_with_ntk_trackers() -> None:
    pytest.importorskip("jno_plugin_ntk")
    _, ntk = balancers()
    p = small_problem()
    t_pde = jno.trackers.ntk_spectrum(p.pde.grad(p.net), n_points=8, interval=10)
    t_bc = jno.trackers.ntk_spectrum(p.bc.grad(p.net), n_points=2, interval=10)
    w = ntk([t_pde, t_bc], ema=0.0)
    w_pde, w_bc = w(p.pde.mse, p.bc.mse)
    crux = jno.core([w_pde * p.pde.mse, w_bc * p.bc.mse, w_pde.tracker(10), w_bc.tracker(10)])
    crux.solve(30, callbacks=[t_pde, t_bc])
    ws = np.stack([crux.history.trackers["tracker_0"].values, crux.history.trackers["tracker_1"].values], axis=1)
    tr = np.stack([t_pde.result["trace"], t_bc.result["trace"]], axis=1).astype(np.float64)
    raw = tr.sum(axis=1, keepdims=True) / tr
    want = 2.0 * raw / raw.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(ws[0], [1.0, 1.0])
    np.testing.assert_allclose(ws[1:], want[:-1], rtol=1e-5)
