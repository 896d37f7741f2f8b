"""Expressions against hand-derived values: derivatives, Jacobians, parameter Jacobians."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno_core.errors import MaskError, ShapeError


def _net(in_features=1, out=1, seed=0):
    return jno.nn.wrap(jno.nn.mlp(in_features, output_dim=out, hidden_dims=8, num_layers=2,
                                  key=jax.random.PRNGKey(seed))).optimizer(optax.adam(1e-3))


def test_derivatives_of_analytic_functions():
    d = jno.domain.line(mesh_size=0.1, x_range=(0.0, 2.0))
    x, _ = d.variable("interior")
    f = jno.np.sin(3 * x) * x**2
    crux = jno.core([(f - 0 * x).mse])
    xs = d.points("interior")[:, 0].astype(np.float64)
    df, d2f, d3 = crux.eval([f.d(x), f.d2(x), f.d(x, order=3)])
    np.testing.assert_allclose(df, 3 * np.cos(3 * xs) * xs**2 + 2 * xs * np.sin(3 * xs), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        d2f, -9 * np.sin(3 * xs) * xs**2 + 12 * xs * np.cos(3 * xs) + 2 * np.sin(3 * xs), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        d3, -27 * np.cos(3 * xs) * xs**2 - 54 * xs * np.sin(3 * xs) + 18 * np.cos(3 * xs), rtol=1e-3, atol=2e-3)


def test_network_derivatives_match_jax_grad():
    d = jno.domain.rect(mesh_size=0.25)
    x, y, _ = d.variable("interior")
    net = _net(2)
    u = net(x, y)
    crux = jno.core([u.mse])
    pts = d.points("interior")
    scalar = lambda p: net.module(p)[0]
    ux_ref = jax.vmap(jax.grad(scalar))(pts)
    hess = jax.vmap(jax.hessian(scalar))(pts)
    ux, uyy, J, lap = crux.eval([u.d(x), u.d2(y), jno.Jacobian(u, [x, y]), u.d2(x) + u.d2(y)])
    np.testing.assert_allclose(ux, ux_ref[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(uyy, hess[:, 1, 1], rtol=1e-4, atol=1e-5)
    assert J.shape == (pts.shape[0], 2)
    np.testing.assert_allclose(J, ux_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lap, hess[:, 0, 0] + hess[:, 1, 1], rtol=1e-4, atol=1e-5)


def _line_with_flat_params():
    """A 1-D line problem ``(x, net, u, crux, pts, flat, module_at)``: the network's
    parameters as one flat vector ``flat`` and ``module_at(theta)`` the equinox module with
    parameters ``theta`` (for references computed with plain jax)."""
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = _net()
    u = net(x)
    crux = jno.core([u.mse])
    params, static = eqx.partition(net.module, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return x, net, u, crux, d.points("interior"), flat, lambda theta: eqx.combine(unravel(theta), static)


def test_parameter_jacobian_equals_jacrev():
    x, net, u, crux, pts, flat, module_at = _line_with_flat_params()

    def outputs(theta):
        return jax.vmap(module_at(theta))(pts)[:, 0]

    J_ref = jax.jacrev(outputs)(flat)
    [J] = crux.eval([u.grad(net)])
    assert J.shape == (pts.shape[0], flat.size)
    np.testing.assert_allclose(J, J_ref, rtol=1e-5, atol=1e-6)
    # gradient of a reduced loss: (P,)
    [g] = crux.eval([u.mse.grad(net)])
    g_ref = jax.grad(lambda t: jnp.mean(outputs(t) ** 2))(flat)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7)


def test_parameter_jacobian_of_a_derivative_field_and_its_cost_is_linear_in_points():
    """``u.d(x).grad(net)`` is differentiated one point at a time: it equals ``jacrev`` of
    the hand-written derivative, and its compiled temporary memory grows linearly with the
    number of points (whole-field jacrev would grow quadratically)."""
    x, net, u, crux, pts, flat, module_at = _line_with_flat_params()

    def du_dx(theta):
        m = module_at(theta)
        return jax.vmap(jax.grad(lambda p: m(p)[0]))(pts)[:, 0]

    [J] = crux.eval([u.d(x).grad(net)])
    np.testing.assert_allclose(J, jax.jacrev(du_dx)(flat), rtol=1e-5, atol=1e-6)

    from jno_core.compile import Env, evaluate

    expr = u.d(x).grad(net)
    key = x.point_set

    def temp_bytes(n):
        p_ = {k: t.params for k, t in crux.trainables.items()}
        pts_n = jnp.linspace(0.0, 1.0, n)[:, None]
        fn = jax.jit(lambda pp, q: evaluate(expr, Env(pp, {key: q}, {}, {})))
        return fn.lower(p_, pts_n).compile().memory_analysis().temp_size_in_bytes

    small, big = temp_bytes(512), temp_bytes(2048)
    assert big < 6 * small, (small, big)  # 4x the points: ~4x memory, not ~16x


def test_masked_parameter_jacobian_selects_output_layer():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = _net()
    u = net(x)
    crux = jno.core([u.mse])
    all_false = jax.tree_util.tree_map(lambda _: False, net.module)
    mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)
    [J] = crux.eval([u.grad(net.mask(mask))])
    pts = d.points("interior")
    # d u / d W_out = hidden activations at each point
    m = net.module
    h = jnp.asarray(pts)
    for layer in m.hidden_layers:
        h = jnp.tanh(jax.vmap(layer)(h))
    np.testing.assert_allclose(J, h, rtol=1e-5, atol=1e-6)
    # the same mask built from .params works; mask(None) clears
    all_false_p = jax.tree_util.tree_map(lambda _: False, net.params)
    mask_p = eqx.tree_at(lambda m: m.output_layer.weight, all_false_p, True)
    [Jp] = crux.eval([u.grad(net.mask(mask_p))])
    np.testing.assert_allclose(Jp, J)
    [Jfull] = crux.eval([u.grad(net.mask(None))])
    assert Jfull.shape[1] == net.n_params()


def test_mismatched_mask_names_leaves():
    net = _net()
    bad = {"weight": True}
    with pytest.raises(MaskError, match="leaves only in"):
        net.mask(bad)


def test_batch_view_indexing_and_functions_follow_the_spec_shapes():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = _net()
    u = net(x)
    J = u.grad(net)  # (B, N, P) in the spec's view
    K = J[0] @ J[0].T
    seen = {}

    def halves(Jarr):
        seen["shape"] = Jarr.shape
        mid = Jarr.shape[0] // 2
        return jnp.dot(Jarr[:mid].mean(0), Jarr[mid:].mean(0))

    crux = jno.core([u.mse])
    [Jv] = crux.eval([J])
    Kv, hv = crux.eval([K, jno.np.function(halves, [J])])
    np.testing.assert_allclose(Kv, Jv @ Jv.T, rtol=1e-5, atol=1e-6)
    assert seen["shape"] == Jv.shape
    mid = Jv.shape[0] // 2
    np.testing.assert_allclose(hv, Jv[:mid].mean(0) @ Jv[mid:].mean(0), rtol=1e-5)


def test_incompatible_point_sets_error():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    xb, _ = d.variable("boundary")
    with pytest.raises(ShapeError, match="different point sets"):
        _ = x + xb


def test_unknown_tag_lists_valid_ones():
    d = jno.domain.rect(mesh_size=0.5)
    with pytest.raises(ShapeError, match="'left'"):
        d.variable("inside")


def test_rect_sides_and_determinism():
    d1 = jno.domain.rect(mesh_size=0.25)
    d2 = jno.domain.rect(mesh_size=0.25)
    np.testing.assert_array_equal(d1.points("interior"), d2.points("interior"))
    assert d1.points("interior").shape == (9, 2)
    assert np.all(d1.points("left")[:, 0] == 0) and np.all(d1.points("top")[:, 1] == 1)
    assert d1.points("boundary").shape == (16, 2)
    x, y, ps = d1.variable("bottom")
    assert ps.n == 5


def test_non_scalar_constraint_error():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = _net()
    crux = jno.core([net(x) - x])
    with pytest.raises(ShapeError, match="pde.mse"):
        crux.solve(1)


def test_missing_optimizer_error():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1))
    crux = jno.core([net(x).mse])
    with pytest.raises(Exception, match="optimizer"):
        crux.solve(1)


def test_derivative_through_reduction_rejected():
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    e = (x * jno.np.mean(x)).d(x)
    crux = jno.core([x.mse])
    with pytest.raises(ShapeError, match="combines values of different points"):
        crux.eval([e])
