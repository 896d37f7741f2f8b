"""jno-plugin-hessian: Lanczos eigenvalues checked against the dense ``eigvalsh(jax.hessian)``
of a hand-written loss (float32 throughout; tolerances stated per test)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jno
from jno_core.errors import JnoPluginError
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    count_compiles_per_fire,
    fresh_plugins,
    poisson_fields,
    poisson_losses,
    small_problem,
)
from jno_core.weighting import WeightingScheme

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def poisson(hidden=8, layers=1, seed=0, mesh_size=0.05):
    p = small_problem(hidden=hidden, layers=layers, seed=seed, mesh_size=mesh_size, lr=1e-2)
    pde_mse, bc_mse = p.losses
    return p.crux, dict(net=p.net, pde=p.pde, ub=p.ub, pde_mse=pde_mse, bc_mse=bc_mse, domain=p.domain)


def dense_eigvals(module, domain, which=lambda pde, bc: pde + bc, select=None):
    """Descending eigenvalues of the dense Hessian of ``which(pde, bc)`` (the hand-written
    losses of :func:`jno_core.testing.poisson_losses`) with respect to all parameters, or to
    the leaf picked by ``select(module)``."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    if select is None:
        flat, unravel = ravel_pytree(params)
        rebuild = lambda th: eqx.combine(unravel(th), static)
    else:
        leaf = select(module)
        flat = leaf.ravel()
        rebuild = lambda th: eqx.tree_at(select, module, th.reshape(leaf.shape))
    H = jax.jit(jax.hessian(lambda th: which(*poisson_losses(rebuild(th), domain))))(flat)
    H = np.asarray(H, np.float64)
    return np.linalg.eigvalsh(0.5 * (H + H.T))[::-1], flat.size


def test_registered_under_both_namespaces():
    import jno_plugin_hessian

    assert jno.trackers.hessian_spectrum is jno_plugin_hessian.hessian_spectrum
    assert jno.callbacks.hessian_spectrum is jno_plugin_hessian.hessian_spectrum


def test_lanczos_restarts_after_breakdown():
    """A = Q diag(d) Q^T with repeated eigenvalues: the Krylov space of any start vector has
    only 4 dimensions, so 12 steps break down and restart; T must still have exactly A's
    12 eigenvalues (with multiplicity), and no ghost copies."""
    from jno_plugin_hessian import lanczos_tridiagonal, tridiagonal_eigvals

    d = np.array([5.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0, -1.0, -1.0, 0.5, 0.5, 0.5])
    Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((12, 12)))
    A = jnp.asarray(Q @ np.diag(d) @ Q.T, jnp.float32)
    v0 = jnp.asarray(np.random.default_rng(2).standard_normal(12), jnp.float32)
    alpha, beta = jax.jit(lambda v: lanczos_tridiagonal(lambda x: A @ x, v, 12))(v0)
    assert np.sum(np.abs(np.asarray(beta)) < 1e-4) >= 3  # restarts happened
    np.testing.assert_allclose(np.sort(np.asarray(tridiagonal_eigvals(alpha, beta))), np.sort(d), atol=1e-4)


def test_full_krylov_space_matches_dense_hessian():
    """n_iter >= P: the Ritz values are the Hessian's eigenvalues; top 5 to 1e-3 relative,
    at the initial parameters and after 3 Adam steps. n_iter is clipped to P."""
    crux, s = poisson(hidden=8, layers=1)  # P = 25
    net, domain = s["net"], s["domain"]
    cb = jno.trackers.hessian_spectrum(k=5, n_iter=40, interval=3)
    m0 = net.module
    crux.solve(3, callbacks=[cb])
    m3 = net.module
    crux.solve(1, callbacks=[cb])
    r = cb.result
    assert list(r["epochs"]) == [0, 3] and r["eigvals"].shape == (2, 5)
    assert cb.n_iter_eff == 25 and cb.value["n_iter"] == 25
    for i, m in enumerate([m0, m3]):
        ev, p = dense_eigvals(m, domain)
        assert p == 25
        np.testing.assert_allclose(r["eigvals"][i], ev[:5], rtol=1e-3)
        np.testing.assert_allclose(r["sharpness"][i], ev[0], rtol=1e-3)
    assert np.all(np.diff(r["eigvals"], axis=1) <= 0)


def test_partial_lanczos_finds_the_sharpness_of_a_larger_network():
    """P = 321 parameters, 30 Lanczos steps: the largest eigenvalue to 1e-3 relative."""
    crux, s = poisson(hidden=16, layers=2)
    cb = jno.trackers.hessian_spectrum(k=3, n_iter=30, interval=50)
    m0 = s["net"].module
    crux.solve(1, callbacks=[cb])
    ev, p = dense_eigvals(m0, s["domain"])
    assert p == 321
    np.testing.assert_allclose(cb.result["sharpness"][0], ev[0], rtol=1e-3)
    np.testing.assert_allclose(cb.result["eigvals"][0][:2], ev[:2], rtol=1e-3)


def test_mask_and_constraint_scope():
    crux, s = poisson(hidden=16, layers=2)
    net, domain = s["net"], s["domain"]
    all_false = jax.tree_util.tree_map(lambda _: False, net.params)
    mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)
    out_w = lambda m: m.output_layer.weight
    cb_mask = jno.trackers.hessian_spectrum(k=20, n_iter=16, interval=10, mask=mask)
    # the boundary loss only, matched structurally (a fresh .mse placeholder)
    cb_bc = jno.trackers.hessian_spectrum(k=4, n_iter=16, interval=10, mask=mask, constraints=[s["ub"].mse])
    cb_both = jno.trackers.hessian_spectrum(k=4, n_iter=16, interval=10, mask=mask,
                                            constraints=[s["pde_mse"], s["bc_mse"]])
    m0 = net.module
    crux.solve(1, callbacks=[cb_mask, cb_bc, cb_both])
    assert cb_mask.k_eff == 16 and cb_mask.result["eigvals"].shape == (1, 16)  # k clipped to P
    ev, _ = dense_eigvals(m0, domain, select=out_w)
    np.testing.assert_allclose(cb_mask.result["eigvals"][0][:4], ev[:4], rtol=1e-3)
    ev_bc, _ = dense_eigvals(m0, domain, which=lambda pde, bc: bc, select=out_w)
    np.testing.assert_allclose(cb_bc.result["eigvals"][0][:1], ev_bc[:1], rtol=1e-3)
    np.testing.assert_array_equal(cb_bc.result["constraint_indices"], [1])
    ev_mean, _ = dense_eigvals(m0, domain, which=lambda pde, bc: (pde + bc) / 2, select=out_w)
    np.testing.assert_allclose(cb_both.result["eigvals"][0][:3], ev_mean[:3], rtol=1e-3)


class Fixed(WeightingScheme):
    """Constant weights (1, 2), kept in the train state like any weighting scheme."""

    name = "fixed"

    def init(self, losses):
        return jnp.asarray([1.0, 2.0], jnp.float32)

    def weights(self, state):
        return state

    def update(self, state, losses, epoch):
        return state


def test_training_loss_hessian_includes_scheme_weights():
    f = poisson_fields(hidden=8, layers=1, seed=0, lr=1e-2)
    net, domain = f.net, f.domain
    pde_mse, bc_mse = f.pde.mse, f.bc.mse
    w_pde, w_bc = Fixed([pde_mse, bc_mse]).placeholders()
    crux = jno.core([w_pde * pde_mse, w_bc * bc_mse])
    cb = jno.trackers.hessian_spectrum(k=3, n_iter=25, interval=10)
    cb_bc = jno.trackers.hessian_spectrum(k=3, n_iter=25, interval=10, constraints=[w_bc * bc_mse])
    m0 = net.module
    crux.solve(1, callbacks=[cb, cb_bc])
    ev, _ = dense_eigvals(m0, domain, which=lambda pde, bc: pde + 2.0 * bc)
    np.testing.assert_allclose(cb.result["eigvals"][0], ev[:3], rtol=1e-3)
    ev_bc, _ = dense_eigvals(m0, domain, which=lambda pde, bc: bc)  # scoped: unweighted
    np.testing.assert_allclose(cb_bc.result["eigvals"][0][:1], ev_bc[:1], rtol=1e-3)


def test_argument_errors():
    crux, s = poisson()
    other = jno.domain.line(mesh_size=0.1)
    xo, _ = other.variable("interior")
    stranger = s["net"](xo).mse
    cb = jno.trackers.hessian_spectrum(k=2, n_iter=4, interval=10, constraints=[stranger])
    with pytest.raises((ValueError, JnoPluginError), match="not one of the solver's constraints"):
        crux.solve(1, callbacks=[cb])
    with pytest.raises(TypeError, match="constraints must be a non-empty list"):
        jno.trackers.hessian_spectrum(constraints=["pde"])
    with pytest.raises(ValueError, match="n_iter must be a positive integer"):
        jno.trackers.hessian_spectrum(n_iter=0)


def test_no_compilation_when_firing_and_training_unchanged():
    crux_a, _ = poisson(hidden=16, layers=2, seed=5)
    cb = count_compiles_per_fire(jno.trackers.hessian_spectrum(k=3, n_iter=10, interval=6))
    hist_a = crux_a.solve(20, callbacks=[cb])
    crux_b, _ = poisson(hidden=16, layers=2, seed=5)
    hist_b = crux_b.solve(20)
    assert cb.fire_compiles == [[], [], [], []]  # epochs 0, 6, 12, 18
    np.testing.assert_array_equal(hist_a.losses, hist_b.losses)
    np.testing.assert_array_equal(hist_a.total_loss, hist_b.total_loss)
