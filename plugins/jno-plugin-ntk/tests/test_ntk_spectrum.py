"""jno-plugin-ntk: the NTK spectrum checked against ``eigvalsh(J @ J.T)`` with ``J`` built by
hand (``jax.jacrev`` of the network outputs at the same subsampled points)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jno
import jno_core.plugins as P
from jno_core.errors import JnoPluginError
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    count_compiles_per_fire,
    fresh_plugins,
    poisson_residual,
    small_problem,
)

EPS32 = float(np.finfo(np.float32).eps)

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def poisson(mesh_size=0.05, hidden=16, layers=2, out=1, seed=0):
    p = small_problem(mesh_size=mesh_size, hidden=hidden, layers=layers, output_dim=out, seed=seed)
    return p.crux, dict(net=p.net, u=p.u, x=p.x, pde=p.pde, domain=p.domain)


def hand_jacobian(module, xs):
    """(n, P): d u(x_i) / d theta for the scalar output of ``module`` (all parameters)."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def outputs(theta):
        m = eqx.combine(unravel(theta), static)
        return jax.vmap(m)(xs)[:, 0]

    return np.asarray(jax.jit(jax.jacrev(outputs))(flat), np.float64)


def hand_spectrum(J):
    K = J @ J.T
    return np.clip(np.linalg.eigvalsh(K)[::-1], 0.0, None), np.trace(K)


def check_against_hand(value, J, n):
    ev, tr = hand_spectrum(J)
    lam_max = ev[0]
    floor = EPS32 * lam_max * n
    tol = dict(rtol=1e-3, atol=10 * floor)
    np.testing.assert_allclose(value["all_eigvals"], ev, **tol)
    np.testing.assert_allclose(value["lambda_max"], lam_max, rtol=1e-4)
    np.testing.assert_allclose(value["trace"], tr, rtol=1e-4)
    np.testing.assert_allclose(value["lambda_min"], max(ev[-1], floor), **tol)
    assert value["lambda_min"] >= floor * (1 - 1e-5)
    np.testing.assert_allclose(value["condition_number"], value["lambda_max"] / value["lambda_min"], rtol=1e-5)
    assert np.all(np.diff(value["all_eigvals"]) <= 0) and np.all(value["all_eigvals"] >= 0)


def test_registered_under_both_namespaces():
    import jno_plugin_ntk

    assert jno.trackers.ntk_spectrum is jno_plugin_ntk.ntk_spectrum
    assert jno.callbacks.ntk_spectrum is jno_plugin_ntk.ntk_spectrum
    assert P.registry("trackers")["ntk_spectrum"].distribution == "jno-plugin-ntk"


def test_subsampled_spectrum_matches_hand_jacobian():
    crux, s = poisson(mesh_size=0.005)  # 199 interior points, P = 321 parameters
    net, u, x = s["net"], s["u"], s["x"]
    pts = np.asarray(s["domain"].points("interior"), np.float32)
    n_points, top_k = 32, 5
    cb = jno.trackers.ntk_spectrum(u.grad(net), n_points=n_points, top_k=top_k, interval=3)
    module0 = net.module
    crux.solve(3, callbacks=[cb])  # fires at epoch 0 only (3 is the end)
    module3 = net.module
    crux.solve(2, callbacks=[cb])  # fires at epoch 3 with the parameters after 3 steps
    r = cb.result
    assert list(r["epochs"]) == [0, 3]
    # the documented subset rule
    idx = np.sort(np.random.default_rng(0).choice(len(pts), n_points, replace=False))
    np.testing.assert_array_equal(r["indices"], idx)
    assert r["eigvals_topk"].shape == (2, top_k) and r["all_eigvals"].shape == (2, n_points)
    for s_, module in enumerate([module0, module3]):
        J = hand_jacobian(module, pts[idx])
        value = {k: r[k][s_] for k in cb.result_keys}
        check_against_hand(value, J, n_points)
        ev = hand_spectrum(J)[0]
        floor = EPS32 * ev[0] * n_points  # eigenvalues below ~floor are float32 noise
        np.testing.assert_allclose(r["eigvals_topk"][s_], ev[:top_k], rtol=1e-3, atol=10 * floor)
    assert not np.allclose(r["all_eigvals"][0], r["all_eigvals"][1])
    assert set(cb.value) >= {"trace", "eigvals_topk"} and cb.latest_epoch == 3


def test_masked_output_layer_kernel_is_hidden_feature_gram():
    """With only the output weights selected, d u / d W_out = h(x) (last hidden features), so
    K = H H^T: rank 16 < n = 19 points, and lambda_min is the documented floor."""
    crux, s = poisson(mesh_size=0.05)  # 19 interior points < n_points: all are used
    net, u = s["net"], s["u"]
    all_false = jax.tree_util.tree_map(lambda _: False, net.params)
    mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)
    cb = jno.trackers.ntk_spectrum(u.grad(net.mask(mask)), n_points=64, top_k=3, interval=10)
    m = net.module
    crux.solve(5, callbacks=[cb])
    xs = jnp.asarray(s["domain"].points("interior"), jnp.float32)
    h = xs
    for layer in m.hidden_layers:
        h = jnp.tanh(h @ layer.weight.T + layer.bias)
    H = np.asarray(h, np.float64)  # (19, 16)
    value = {k: v[0] for k, v in cb.result.items() if k != "epochs"}
    assert value["all_eigvals"].shape == (19,)
    check_against_hand(value, H, 19)
    floor = EPS32 * value["lambda_max"] * 19
    np.testing.assert_allclose(value["lambda_min"], floor, rtol=1e-5)  # rank-deficient kernel
    np.testing.assert_allclose(value["condition_number"], 1 / (EPS32 * 19), rtol=1e-4)


def test_pde_residual_kernel_and_vector_output_projection():
    crux, s = poisson(mesh_size=0.05, out=2)
    net, u, x = s["net"], s["u"], s["x"]
    bad = jno.trackers.ntk_spectrum(u.grad(net), n_points=8, interval=10)
    # raised in on_solve_begin (the core may wrap it in a JnoPluginError naming the plugin)
    with pytest.raises((ValueError, JnoPluginError), match=r"scalar output only.*u\[\.\.\., 0\]\.grad\(net\)"):
        crux.solve(1, callbacks=[bad])
    good = jno.trackers.ntk_spectrum(u[..., 0].grad(net), n_points=8, top_k=2, interval=10)
    m = net.module
    crux.solve(1, callbacks=[good])
    pts = np.asarray(s["domain"].points("interior"), np.float32)
    idx = np.sort(np.random.default_rng(0).choice(len(pts), 8, replace=False))
    check_against_hand({k: v[0] for k, v in good.result.items() if k != "epochs"},
                       hand_jacobian(m, pts[idx]), 8)


def hand_residual_jacobian(module, xs, centre=False):
    """(n, P): d r(x_i) / d theta for r = -u'' - sin(pi x) (optionally minus its mean over
    the n points)."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def residuals(theta):
        r = poisson_residual(eqx.combine(unravel(theta), static), xs)
        return r - jnp.mean(r) if centre else r

    return np.asarray(jax.jit(jax.jacrev(residuals))(flat), np.float64)


def test_residual_kernel_per_point_and_field_strategies():
    """pde.grad(net) is pointwise (rows computed point by point); a field centred by its own
    mean is not, and falls back to the whole-field Jacobian on the subset."""
    crux, s = poisson(mesh_size=0.02)  # 49 interior points
    net, pde = s["net"], s["pde"]
    cb_pt = jno.trackers.ntk_spectrum(pde.grad(net), n_points=20, top_k=3, interval=10)
    cb_field = jno.trackers.ntk_spectrum((pde - jno.np.mean(pde)).grad(net), n_points=20, top_k=3, interval=10)
    m = net.module
    crux.solve(1, callbacks=[cb_pt, cb_field])
    assert cb_pt.strategy == "per_point" and cb_field.strategy == "field"
    xs = np.asarray(s["domain"].points("interior")[:, 0], np.float32)
    idx = np.sort(np.random.default_rng(0).choice(len(xs), 20, replace=False))
    for cb, centre in ((cb_pt, False), (cb_field, True)):
        J = hand_residual_jacobian(m, jnp.asarray(xs[idx]), centre=centre)
        check_against_hand({k: v[0] for k, v in cb.result.items() if k != "epochs"}, J, 20)


def test_trainable_parameter_kernel():
    """u = c * net(x) with a trainable c of shape (1,): d u / d c = net(x), a rank-1 kernel
    whose trace is sum(net(x)^2); the one-element per-point value counts as a scalar."""
    π = jno.np.pi
    domain = jno.domain.line(mesh_size=0.1)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=1, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    c = jno.np.parameter((1,), name="c")
    c.optimizer(optax.adam(1e-2))
    u = c * net(x)
    crux = jno.core([(-u.d2(x) - jno.np.sin(π * x)).mse, net(xb).mse])
    xs = jnp.asarray(domain.points("interior"), jnp.float32)
    v = np.asarray(jax.vmap(net.module)(xs)[:, 0], np.float64)  # before training: epoch 0
    cb = jno.trackers.ntk_spectrum(u.grad(c), n_points=64, top_k=2, interval=10)
    crux.solve(1, callbacks=[cb])
    check_against_hand({k: val[0] for k, val in cb.result.items() if k != "epochs"}, v[:, None], len(v))
    np.testing.assert_allclose(cb.value["trace"], np.sum(v ** 2), rtol=1e-5)


def test_argument_errors():
    crux, s = poisson()
    with pytest.raises(TypeError, match="NetworkGradient"):
        jno.trackers.ntk_spectrum(s["u"])
    with pytest.raises(ValueError, match="per-point field"):
        jno.trackers.ntk_spectrum(s["pde"].mse.grad(s["net"]))
    with pytest.raises(ValueError, match="n_points must be a positive integer"):
        jno.trackers.ntk_spectrum(s["u"].grad(s["net"]), n_points=0)


def test_no_compilation_when_firing_and_training_unchanged():
    crux_a, a = poisson(seed=3)
    cb = count_compiles_per_fire(jno.trackers.ntk_spectrum(a["u"].grad(a["net"]), n_points=16, top_k=4, interval=7))
    hist_a = crux_a.solve(30, callbacks=[cb])
    crux_b, _ = poisson(seed=3)
    hist_b = crux_b.solve(30)
    assert cb.fire_compiles == [[], [], [], [], []]  # epochs 0, 7, 14, 21, 28
    np.testing.assert_array_equal(hist_a.losses, hist_b.losses)
    np.testing.assert_array_equal(hist_a.total_loss, hist_b.total_loss)


def test_memory_depends_on_n_points_not_on_collocation_points():
    """The compiled fire's temporary and output sizes, and its arguments other than the
    solver's points (which it subsamples), are identical for a 2-D problem with 81 and with
    361 interior points (the full (N, P) Jacobian is never formed; see
    benchmarks/bench_ntk_memory.py for 3,025 points)."""
    stats = {}
    for mesh in (0.1, 0.05):
        domain = jno.domain.rect(mesh_size=mesh)
        x, y, _ = domain.variable("interior")
        xb, yb, _ = domain.variable("boundary")
        net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)))
        net.optimizer(optax.adam(1e-3))
        u = net(x, y)
        pde = -(u.d2(x) + u.d2(y)) - 1.0
        crux = jno.core([pde.mse, net(xb, yb).mse])
        cb = jno.trackers.ntk_spectrum(pde.grad(net), n_points=32, interval=10)
        crux.solve(1, callbacks=[cb])
        ma = cb.fire_executable.memory_analysis()
        # jit drops the arguments a function does not read: the fire reads the interior
        # points only (the residual's), not the boundary's
        points_bytes = int(np.asarray(domain.points("interior")).nbytes)
        n_int = domain.points("interior").shape[0]
        # the same expression's full Jacobian grows with N (sanity check of the measurement)
        from jno_core.compile import Env, evaluate

        full = jax.jit(lambda p, pts: evaluate(pde.grad(net), Env(p, pts))).lower(
            crux.state[0], crux.points).compile().memory_analysis()
        stats[n_int] = (ma.argument_size_in_bytes - points_bytes, ma.temp_size_in_bytes,
                        ma.output_size_in_bytes, full.output_size_in_bytes)
    (n1, s1), (n2, s2) = sorted(stats.items())
    assert (n1, n2) == (81, 361)
    # the other arguments (the parameters, the weights, the epoch), the temporaries and the
    # outputs do not grow with N; a (N, P) Jacobian would add N * P * 4 bytes (361 * 337 * 4
    # = 487 kB here)
    assert s1[:3] == s2[:3], stats
    assert cb.strategy == "per_point"
    assert s2[3] == s1[3] * n2 // n1  # the full Jacobian output is N x P floats
