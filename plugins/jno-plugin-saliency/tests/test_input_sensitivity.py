"""jno-plugin-saliency against input gradients of the network computed by hand with jax.grad."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno_core import plugins
from jno_core.compile import trainable_key
from jno_core.metrics import Histogram
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    ParamProbe,
    RecordingSink,
    TrackerConformance,
    count_compiles_per_fire,
    fresh_plugins,
    scalar_network,
    small_problem,
)

import jno_plugin_saliency

PI = np.pi

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def poisson1d():
    p = small_problem(hidden=16)
    return p.crux, p.net, p.u, p.x, np.asarray(p.domain.points("interior"))


def hand_du_dx(params, static, pts):
    f = scalar_network(eqx.combine(params, static))
    return np.asarray(jax.vmap(jax.grad(f))(jnp.asarray(pts[:, 0])), np.float64)


def test_du_dx_matches_jax_grad_of_the_network():
    crux, net, u, x, pts = poisson1d()
    probe = ParamProbe(10, trainable_key(net))
    sal = count_compiles_per_fire(jno.trackers.input_sensitivity(u.d(x), interval=10))
    assert sal.value is None and sal.latest_epoch is None
    sink = RecordingSink()
    hist = crux.solve(21, callbacks=[probe, sal, sink])
    assert sal.fire_compiles == [[], [], []]
    res = sal.result
    assert res["epochs"].tolist() == [0, 10, 20] and sal.latest_epoch == 20
    assert res["values"].shape == (3, pts.shape[0]) and sal.shape == (pts.shape[0],)
    for s, e in enumerate([0, 10, 20]):
        want = hand_du_dx(probe.seen[e], net.static, pts)
        np.testing.assert_allclose(res["values"][s], want, rtol=1e-5, atol=1e-6)
        m = sink.at(e)
        a = np.abs(want)
        assert m["explainability/saliency/mean_abs"].value == pytest.approx(a.mean(), rel=1e-5)
        assert m["explainability/saliency/max_abs"].value == pytest.approx(a.max(), rel=1e-5)
        assert m["explainability/saliency/std_abs"].value == pytest.approx(a.std(), rel=1e-4)
        assert isinstance(m["explainability/saliency/histogram"], Histogram)
        np.testing.assert_allclose(m["explainability/saliency/histogram"].values, want, rtol=1e-5, atol=1e-6)
        assert m["explainability/time_ms/input_sensitivity"].value >= 0
    np.testing.assert_array_equal(sal.value["values"], res["values"][-1])

    crux2, *_ = poisson1d()
    np.testing.assert_array_equal(hist.total_loss, crux2.solve(21).total_loss)


def test_jacobian_on_a_rect_domain_has_shape_n_by_2():
    domain = jno.domain.rect(mesh_size=0.25)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(3)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - jno.np.sin(PI * x) * jno.np.sin(PI * y)
    crux = jno.core([pde.mse, ub.mse])
    probe = ParamProbe(4, trainable_key(net))
    sal = jno.trackers.input_sensitivity(jno.Jacobian(u, [x, y]), interval=4)
    crux.solve(5, callbacks=[probe, sal])
    pts = np.asarray(domain.points("interior"))
    assert pts.shape == (9, 2)
    assert sal.result["values"].shape == (2, 9, 2)
    for s, e in enumerate([0, 4]):
        module = eqx.combine(probe.seen[e], net.static)
        J = jax.vmap(jax.jacrev(lambda p: module(p)[0]))(jnp.asarray(pts))  # (9, 2) by hand
        np.testing.assert_allclose(sal.result["values"][s], np.asarray(J), rtol=1e-5, atol=1e-6)


def test_network_outside_the_solver_uses_its_own_fixed_parameters():
    crux, net, u, x, pts = poisson1d()
    other = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(7)))
    sal = jno.trackers.input_sensitivity(other(x).d(x), interval=5)
    crux.solve(6, callbacks=[sal])
    want = hand_du_dx(other.params, other.static, pts)
    np.testing.assert_allclose(sal.result["values"], np.stack([want, want]), rtol=1e-5, atol=1e-6)


def test_rejects_non_expressions_and_registers_in_both_namespaces():
    with pytest.raises(TypeError, match="jno expression"):
        jno.trackers.input_sensitivity(lambda z: z, interval=5)
    with pytest.raises(ValueError, match="interval"):
        _, _, u, x, _ = poisson1d()
        jno.trackers.input_sensitivity(u.d(x), interval=0)
    assert jno.trackers.input_sensitivity is jno.callbacks.input_sensitivity is jno_plugin_saliency.input_sensitivity


class TestInputSensitivityConformance(TrackerConformance):
    entry_point = "saliency"
    distribution = "jno-plugin-saliency"
    tracker_name = "input_sensitivity"
    result_keys = {"values": lambda d: (d.n_interior,)}
    metric_keys = tuple(f"explainability/saliency/{k}" for k in ("mean_abs", "max_abs", "std_abs", "histogram"))

    def make_tracker(self, problem, interval):
        return plugins.lookup("trackers", self.tracker_name).factory(problem.u.d(problem.x), interval=interval)
