"""jno-plugin-residuals against NumPy statistics of residuals computed by hand in plain JAX."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno
from jno_core.compile import trainable_key
from jno_core.errors import JnoPluginError
from jno_core.metrics import Histogram
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    ParamProbe,
    RecordingSink,
    TrackerConformance,
    count_compiles_per_fire,
    fresh_plugins,
    poisson_fields,
    poisson_residual,
    scalar_network,
)

import jno_plugin_residuals

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def build(scale: float = 1.0):
    """Poisson + boundary + data-fit constraints (the first optionally scaled)."""
    f = poisson_fields(hidden=16)
    x, u, ub, pde = f.x, f.u, f.ub, f.pde
    data = u - x * (1 - x)
    losses = [scale * pde.mse if scale != 1.0 else pde.mse, ub.mse, data.mse]
    crux = jno.core(losses)
    pts = (np.asarray(f.domain.points("interior"))[:, 0], np.asarray(f.domain.points("boundary"))[:, 0])
    return crux, f.net, pts, dict(pde=pde, ub=ub, data=data, u=u, losses=losses)


def hand_residuals(params, static, pts):
    """[pde (N,), boundary (2,), data (N,)] from the equinox module, by hand."""
    xs, xbs = (jnp.asarray(p, jnp.float32) for p in pts)
    module = eqx.combine(params, static)
    f = scalar_network(module)
    return [np.asarray(r, np.float64) for r in (
        poisson_residual(module, xs), jax.vmap(f)(xbs), jax.vmap(f)(xs) - xs * (1 - xs))]


def np_stats(rs):
    return dict(means=[np.mean(r) for r in rs], stds=[np.std(r) for r in rs],
                maxes=[np.max(r) for r in rs], p99=[np.percentile(r, 99) for r in rs])


def test_stats_match_numpy_on_hand_residuals():
    crux, net, pts, _ = build()
    probe = ParamProbe(10, trainable_key(net))
    rs = count_compiles_per_fire(jno.trackers.residual_stats(interval=10))
    assert rs.value is None and rs.latest_epoch is None
    sink = RecordingSink()
    hist = crux.solve(21, callbacks=[probe, rs, sink])
    assert rs.fire_compiles == [[], [], []]
    res = rs.result
    assert res["epochs"].tolist() == [0, 10, 20] and rs.latest_epoch == 20
    assert res["indices"].tolist() == [0, 1, 2]
    for k in ("means", "stds", "maxes", "p99"):
        assert res[k].shape == (3, 3) and res[k].dtype == np.float32
    for s, e in enumerate([0, 10, 20]):
        hand = hand_residuals(probe.seen[e], net.static, pts)
        want = np_stats(hand)
        for k in want:
            np.testing.assert_allclose(res[k][s], want[k], rtol=2e-5, atol=1e-6, err_msg=k)
        m = sink.at(e)
        for i in range(3):
            base = f"explainability/residual/constraint_{i}"
            for k, label in (("means", "mean"), ("stds", "std"), ("maxes", "max"), ("p99", "p99")):
                assert m[f"{base}/{label}"].value == pytest.approx(float(res[k][s, i]))
            h = m[f"{base}/histogram"]
            assert isinstance(h, Histogram)
            np.testing.assert_allclose(h.values, hand[i], rtol=2e-5, atol=1e-6)
        assert m["explainability/time_ms/residual_stats"].value >= 0
    for k in ("means", "stds", "maxes", "p99"):
        np.testing.assert_array_equal(rs.value[k], res[k][-1])

    crux2, _, _, _ = build()
    np.testing.assert_array_equal(hist.total_loss, crux2.solve(21).total_loss)


def test_scoped_constraints_by_identity_and_structure():
    crux, net, pts, v = build()
    probe = ParamProbe(5, trainable_key(net))
    # the data loss by identity, the PDE loss rebuilt (a new `.mse` placeholder): structural
    rs = jno.trackers.residual_stats(interval=5, constraints=[v["losses"][2], v["pde"].mse])
    sink = RecordingSink()
    crux.solve(6, callbacks=[probe, rs, sink])
    assert rs.result["indices"].tolist() == [2, 0]
    assert rs.result["means"].shape == (2, 2)
    hand = hand_residuals(probe.seen[5], net.static, pts)
    want = np_stats([hand[2], hand[0]])
    for k in want:
        np.testing.assert_allclose(rs.result[k][-1], want[k], rtol=2e-5, atol=1e-6)
    keys = {k for _, m in sink.records for k in m if k.startswith("explainability/residual/")}
    assert "explainability/residual/constraint_2/p99" in keys
    assert "explainability/residual/constraint_0/histogram" in keys
    assert not any(k.startswith("explainability/residual/constraint_1/") for k in keys)


def test_residual_of_a_scaled_loss_is_the_unscaled_field():
    crux, net, pts, v = build(scale=10.0)
    probe = ParamProbe(3, trainable_key(net))
    rs = jno.trackers.residual_stats(interval=3, constraints=[v["losses"][0]])
    crux.solve(4, callbacks=[probe, rs])
    hand = hand_residuals(probe.seen[3], net.static, pts)[0]  # pde, not 10 * pde or pde**2
    np.testing.assert_allclose(rs.result["maxes"][-1], [hand.max()], rtol=2e-5)
    np.testing.assert_allclose(rs.result["p99"][-1], [np.percentile(hand, 99)], rtol=2e-5)


def test_expression_that_is_not_a_constraint_is_a_clear_error():
    crux, _, _, v = build()
    rs = jno.trackers.residual_stats(interval=5, constraints=[v["u"].mse])
    with pytest.raises((ValueError, JnoPluginError)) as info:
        crux.solve(2, callbacks=[rs])
    msg = str(info.value)
    assert "entry #0" in msg and "not a loss constraint" in msg and "jno.core" in msg


def test_bad_arguments():
    _, _, _, v = build()
    with pytest.raises(TypeError, match="list"):
        jno.trackers.residual_stats(constraints=v["losses"][0])
    with pytest.raises(ValueError, match="None"):
        jno.trackers.residual_stats(constraints=[])
    with pytest.raises(TypeError, match="jno expressions"):
        jno.trackers.residual_stats(constraints=[v["losses"][0], "pde"])
    assert jno.trackers.residual_stats is jno.callbacks.residual_stats is jno_plugin_residuals.residual_stats


class TestResidualStatsConformance(TrackerConformance):
    entry_point = "residuals"
    distribution = "jno-plugin-residuals"
    tracker_name = "residual_stats"
    result_keys = {k: (lambda d: (d.N,)) for k in ("means", "stds", "maxes", "p99")}
    metric_keys = tuple(f"explainability/residual/constraint_{i}/{s}"
                        for i in (0, 1) for s in ("mean", "std", "max", "p99", "histogram"))
