"""jno-plugin-gradients against gradients computed by hand in plain JAX.

The losses are rebuilt by hand from the network's equinox module (``eqx.combine``) and
differentiated with ``jax.grad``; the parameters are the ones the solver hands every plugin at
the fired epoch (recorded by an independent probe plugin)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jno
from jno_core import plugins
from jno_core.compile import trainable_key
from jno_core.errors import JnoPluginError, MaskError
from jno_core.metrics import Heatmap
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    CompileEvents,
    ParamProbe,
    RecordingSink,
    count_compiles_per_fire,
    fresh_plugins,
    poisson_fields,
    poisson_residual,
    scalar_network,
)

import jno_plugin_gradients as G_

pytestmark = pytest.mark.usefixtures("fresh_plugins")


# ---------------------------------------------------------------------------- fixtures
def build(three: bool = True, seed: int = 0, constant: bool = False):
    """1-D Poisson (+ a data-fit term, + optionally a constraint without any parameter)."""
    f = poisson_fields(hidden=16, seed=seed)
    x, u = f.x, f.u
    terms = [f.pde.mse, f.ub.mse]
    if three:
        terms.append((u - x * (1 - x)).mse)
    if constant:
        terms.append((x - 0.5).mse)
    crux = jno.core(terms)
    pts = (np.asarray(f.domain.points("interior"))[:, 0], np.asarray(f.domain.points("boundary"))[:, 0])
    return crux, f.net, pts


def hand_losses(params, static, pts, three=True, constant=False):
    """The constraint losses written out by hand (no jno evaluation)."""
    xs, xbs = (jnp.asarray(p, jnp.float32) for p in pts)
    module = eqx.combine(params, static)
    f = scalar_network(module)
    out = [jnp.mean(poisson_residual(module, xs) ** 2), jnp.mean(jax.vmap(f)(xbs) ** 2)]
    if three:
        out.append(jnp.mean((jax.vmap(f)(xs) - xs * (1 - xs)) ** 2))
    if constant:
        out.append(jnp.mean((xs - 0.5) ** 2))
    return out


def hand_G(params, static, pts, leaf=None, **kw):
    """Rows = flattened gradients of each hand loss (optionally of one selected leaf)."""
    n = len(hand_losses(params, static, pts, **kw))
    rows = []
    for i in range(n):
        g = jax.grad(lambda p: hand_losses(p, static, pts, **kw)[i])(params)
        rows.append(np.asarray(leaf(g)).ravel() if leaf is not None else np.asarray(ravel_pytree(g)[0]))
    return np.stack(rows).astype(np.float64)


# ---------------------------------------------------------------------------- tests
def test_registered_under_both_namespaces():
    for name in ("gradient_norms", "cos_similarity", "gradient_alignment"):
        assert getattr(jno.trackers, name) is getattr(jno.callbacks, name)
        assert getattr(jno.trackers, name) is getattr(G_, name)
        assert plugins.lookup("trackers", name).distribution == "jno-plugin-gradients"


def test_values_match_hand_gradients_and_metrics_reach_sinks():
    crux, net, pts = build(three=True)
    key = trainable_key(net)
    probe = ParamProbe(10, key)
    gn = count_compiles_per_fire(jno.trackers.gradient_norms(interval=10))
    cs = count_compiles_per_fire(jno.trackers.cos_similarity(interval=10))
    ga = count_compiles_per_fire(jno.trackers.gradient_alignment(interval=10))
    assert gn.value is None and gn.latest_epoch is None and cs.value is None and ga.value is None
    sink = RecordingSink()
    hist = crux.solve(25, callbacks=[probe, gn, cs, ga, sink])

    # no compilation during any fire (compiled in on_solve_begin)
    for t in (gn, cs, ga):
        assert t.fire_compiles == [[], [], []], t.fire_compiles

    epochs = [0, 10, 20]
    for t in (gn, cs, ga):
        assert t.result["epochs"].tolist() == epochs and t.latest_epoch == 20
    assert gn.result["norms"].shape == (3, 3) and gn.result["norms"].dtype == np.float32
    assert cs.result["cos_sim_matrix"].shape == (3, 3, 3)
    assert ga.result["alignment"].shape == (3,)

    for s, e in enumerate(epochs):
        Gh = hand_G(probe.seen[e], net.static, pts, three=True)
        norms = np.linalg.norm(Gh, axis=1)
        cos = (Gh @ Gh.T) / np.outer(norms, norms)
        U = Gh / norms[:, None]
        align = 2 * np.sum(U.mean(0) ** 2) - 1
        np.testing.assert_allclose(gn.result["norms"][s], norms, rtol=2e-4)
        np.testing.assert_allclose(cs.result["cos_sim_matrix"][s], cos, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ga.result["alignment"][s], align, rtol=1e-4, atol=1e-5)

        m = sink.at(e)
        for i in range(3):
            assert m[f"explainability/gradient_norm/constraint_{i}"].value == pytest.approx(
                gn.result["norms"][s, i], rel=1e-6)
        for i, j in [(0, 1), (0, 2), (1, 2)]:
            assert m[f"explainability/cos_sim/{i}_{j}"].value == pytest.approx(cos[i, j], rel=1e-4, abs=1e-5)
        assert "explainability/cos_sim/1_0" not in m and "explainability/cos_sim/0_0" not in m
        assert isinstance(m["explainability/cos_sim_matrix"], Heatmap)
        np.testing.assert_array_equal(m["explainability/cos_sim_matrix"].values, cs.result["cos_sim_matrix"][s])
        assert m["explainability/gradient_alignment"].value == pytest.approx(align, rel=1e-4, abs=1e-5)
        for name in ("gradient_norms", "cos_similarity", "gradient_alignment"):
            assert m[f"explainability/time_ms/{name}"].value >= 0
    np.testing.assert_array_equal(gn.value["norms"], gn.result["norms"][-1])
    np.testing.assert_array_equal(np.diagonal(cs.result["cos_sim_matrix"], axis1=1, axis2=2), 1.0)

    # no effect on training: the same problem solved without trackers gives the same losses
    crux2, _, _ = build(three=True)
    hist2 = crux2.solve(25)
    np.testing.assert_array_equal(hist.total_loss, hist2.total_loss)
    np.testing.assert_array_equal(hist.losses, hist2.losses)


def test_alignment_equals_cosine_for_two_constraints():
    crux, net, pts = build(three=False)
    probe = ParamProbe(5, trainable_key(net))
    cs, ga = jno.trackers.cos_similarity(interval=5), jno.trackers.gradient_alignment(interval=5)
    crux.solve(11, callbacks=[probe, cs, ga])
    np.testing.assert_allclose(ga.result["alignment"], cs.result["cos_sim_matrix"][:, 0, 1], rtol=1e-5, atol=1e-6)
    Gh = hand_G(probe.seen[10], net.static, pts, three=False)
    cos01 = Gh[0] @ Gh[1] / np.linalg.norm(Gh[0]) / np.linalg.norm(Gh[1])
    np.testing.assert_allclose(ga.result["alignment"][-1], cos01, rtol=1e-4, atol=1e-5)


def test_mask_restricts_to_the_output_layer_weight():
    crux, net, pts = build(three=True)
    probe = ParamProbe(7, trainable_key(net))
    all_false = jax.tree_util.tree_map(lambda _: False, net.params)
    mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)
    gn = jno.trackers.gradient_norms(interval=7, mask=mask)
    cs = jno.trackers.cos_similarity(interval=7, mask=mask)
    crux.solve(8, callbacks=[probe, gn, cs])
    assert gn.n_params == net.params.output_layer.weight.size == 16
    for s, e in enumerate([0, 7]):
        Gh = hand_G(probe.seen[e], net.static, pts, leaf=lambda g: g.output_layer.weight, three=True)
        norms = np.linalg.norm(Gh, axis=1)
        np.testing.assert_allclose(gn.result["norms"][s], norms, rtol=2e-4)
        np.testing.assert_allclose(cs.result["cos_sim_matrix"][s], Gh @ Gh.T / np.outer(norms, norms),
                                   rtol=1e-4, atol=1e-5)


def test_mismatched_mask_raises_mask_error_naming_leaves():
    crux, net, _ = build(three=False)
    other = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=3, key=jax.random.PRNGKey(1)))
    bad = jax.tree_util.tree_map(lambda _: True, other.params)
    with pytest.raises((MaskError, JnoPluginError)) as info:
        crux.solve(3, callbacks=[jno.trackers.gradient_norms(interval=1, mask=bad)])
    # the core may wrap hook errors in a JnoPluginError naming the plugin; the cause is the
    # MaskError raised by the core's ParamSelector, naming the leaves that differ
    err = info.value if isinstance(info.value, MaskError) else info.value.__cause__
    assert isinstance(err, MaskError), repr(info.value)
    assert "leaves only in the mask" in str(err) and "hidden_layers[2]" in str(err)
    assert "hidden_layers[2]" in str(info.value)


def test_zero_gradient_gives_no_nan():
    crux, net, pts = build(three=False, constant=True)  # 3rd constraint has no parameters
    gn, cs, ga = (jno.trackers.gradient_norms(interval=4), jno.trackers.cos_similarity(interval=4),
                  jno.trackers.gradient_alignment(interval=4))
    probe = ParamProbe(4, trainable_key(net))
    crux.solve(5, callbacks=[probe, gn, cs, ga])
    for t in (gn, cs, ga):
        for v in t.result.values():
            assert np.all(np.isfinite(v))
    assert np.all(gn.result["norms"][:, 2] == 0)
    C = cs.result["cos_sim_matrix"]
    np.testing.assert_array_equal(C[:, 2, :2], 0.0)
    np.testing.assert_array_equal(C[:, 2, 2], 1.0)
    # the zero gradient is a zero unit vector: alignment = 2*||(u0 + u1)/3||^2 - 1
    Gh = hand_G(probe.seen[4], net.static, pts, three=False)
    U = Gh / np.linalg.norm(Gh, axis=1)[:, None]
    np.testing.assert_allclose(ga.result["alignment"][-1], 2 * np.sum((U.sum(0) / 3) ** 2) - 1, rtol=1e-4)


def test_second_solve_reuses_compiled_functions():
    crux, _, _ = build(three=False)
    gn = jno.trackers.gradient_norms(interval=3)
    crux.solve(4, callbacks=[gn])
    with CompileEvents() as ce:
        crux.solve(4, callbacks=[gn])
    assert ce.events == []
    assert gn.result["epochs"].tolist() == [0, 3, 6]
    with CompileEvents() as ce2:  # the counter sees compilations
        jnp.percentile(jnp.arange(7.0) * 1.5, 13.0)
    assert ce2.events


def test_bad_interval_is_rejected():
    with pytest.raises(ValueError, match="interval"):
        jno.trackers.gradient_norms(interval=0)
