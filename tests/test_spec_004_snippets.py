"""The snippets of the spec page 004 (trackers, custom functions, parameters, parameter
Jacobian) run as written and give the values computed independently."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno
import jno.numpy as jnn
from jno.numpy import tracker


def _problem():
    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=0.25)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    u_net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(1)))
    u_net.optimizer(optax.adam(1e-3))
    u, ub = u_net(x, y), u_net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - jno.np.sin(π * x)
    return domain, x, y, u_net, u, ub, pde


def test_custom_function_is_differentiable():
    domain, x, y, *_ = _problem()

    def my_fn(a, b):
        return jnp.exp(-a**2) * jnp.sin(b)

    result = jnn.function(my_fn, [x, y])
    crux = jno.core([(result - x).mse])
    r, rx = crux.eval([result, result.d(x)])
    p = domain.points("interior")
    np.testing.assert_allclose(r, np.exp(-p[:, 0] ** 2) * np.sin(p[:, 1]), rtol=1e-5)
    np.testing.assert_allclose(rx, -2 * p[:, 0] * np.exp(-p[:, 0] ** 2) * np.sin(p[:, 1]), rtol=1e-4, atol=1e-6)


def test_jacobian_norm_ntk_and_cos_sim_trackers():
    domain, x, y, u_net, u, ub, pde = _problem()
    J = u.grad(u_net)  # (B, N, P)
    J_norm = tracker(jno.np.mean(J**2), interval=5)
    J_flat = J[0]
    K = J_flat @ J_flat.T
    K_norm = tracker(jno.np.max(K) / (jno.np.min(K) + 1e-8), interval=5)
    J_pde = pde.grad(u_net)
    J_bc = ub.grad(u_net)
    g_pde = jno.np.mean(J_pde[0], axis=0)
    g_bc = jno.np.mean(J_bc[0], axis=0)
    cos_sim = tracker(jno.np.dot(g_pde, g_bc) / (jno.np.norm(g_pde) * jno.np.norm(g_bc) + 1e-8), interval=5)
    crux = jno.core([pde.mse, ub.mse, J_norm, K_norm, cos_sim])
    hist = crux.solve(11)
    assert hist.trackers["tracker_0"].epochs == [0, 5, 10]
    # independent: a fresh copy trained 10 epochs, its Jacobians evaluated and reduced in numpy
    hist_last = {k: v.values[-1] for k, v in hist.trackers.items()}
    fresh = _problem()
    d2, x2, y2, net2, u2, ub2, pde2 = fresh
    c2 = jno.core([pde2.mse, ub2.mse])
    c2.solve(10)
    Jv, Jp, Jb = c2.eval([u2.grad(net2), pde2.grad(net2), ub2.grad(net2)])
    np.testing.assert_allclose(hist_last["tracker_0"], np.mean(Jv**2), rtol=1e-5)
    Kv = Jv @ Jv.T
    np.testing.assert_allclose(hist_last["tracker_1"], Kv.max() / (Kv.min() + 1e-8), rtol=1e-4)
    gp, gb = Jp.mean(0), Jb.mean(0)
    np.testing.assert_allclose(hist_last["tracker_2"], gp @ gb / (np.linalg.norm(gp) * np.linalg.norm(gb) + 1e-8),
                               rtol=1e-4, atol=1e-6)


def test_relobralo_placeholders_with_trackers():
    domain, x, y, u_net, u, ub, pde = _problem()
    w_pde, w_bc = jno.fn.adaptive.relobralo([pde.mse, ub.mse])
    crux = jno.core([w_pde * pde.mse, w_bc * ub.mse, w_pde.tracker(), w_bc.tracker()])
    hist = crux.solve(20)
    w = np.stack([hist.trackers["tracker_0"].values, hist.trackers["tracker_1"].values], axis=1).reshape(20, 2)
    np.testing.assert_allclose(w.sum(1), 2.0, rtol=1e-5)
    np.testing.assert_allclose(w[0], [1.0, 1.0], rtol=1e-6)


def test_stop_gradient_jacobian_as_a_loss_term():
    domain, x, y, u_net, u, ub, pde = _problem()
    J = u.grad(u_net)
    reg = jno.np.mean(J.stop_gradient ** 2) * 1e-3
    crux = jno.core([pde.mse, ub.mse, reg])
    hist = crux.solve(3)
    assert np.isfinite(hist.total_loss).all()
    [Jv] = crux.eval([J])
    [r] = crux.eval([reg])
    np.testing.assert_allclose(r, 1e-3 * np.mean(Jv**2), rtol=1e-5)
