"""jno-plugin-landscape: grid values checked against a hand-written loss evaluated at the
perturbed parameters; the centre against the solver's own training loss."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jno
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    count_compiles_per_fire,
    fresh_plugins,
    poisson_fields,
    poisson_losses,
    small_problem,
)
from jno_core.weighting import WeightingScheme

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def poisson(hidden=16, layers=2, seed=0, lr=1e-2):
    p = small_problem(hidden=hidden, layers=layers, seed=seed, lr=lr)
    return p.crux, p.net, p.domain


def hand_losses(module, domain):
    """(pde.mse, bc.mse) of the 1-D Poisson problem, written directly with the module."""
    return tuple(float(v) for v in poisson_losses(module, domain))


def hand_loss(module, domain):
    return sum(hand_losses(module, domain))


def test_registered_under_both_namespaces():
    import jno_plugin_landscape

    assert jno.trackers.loss_landscape is jno_plugin_landscape.loss_landscape
    assert jno.callbacks.loss_landscape is jno_plugin_landscape.loss_landscape


def test_centre_is_the_training_loss_and_no_compilation_when_firing():
    crux, net, domain = poisson(seed=1)
    cb = count_compiles_per_fire(jno.trackers.loss_landscape(interval=8, n_grid=5, alpha_range=0.5))
    m0 = net.module
    hist = crux.solve(25, callbacks=[cb])
    r = cb.result
    assert list(r["epochs"]) == [0, 8, 16, 24] and cb.fire_compiles == [[], [], [], []]
    assert r["landscapes"].shape == (4, 5, 5)
    np.testing.assert_allclose(r["alphas"], [-0.5, -0.25, 0.0, 0.25, 0.5])
    centre = r["landscapes"][:, 2, 2]
    np.testing.assert_allclose(centre, hist.total_loss[r["epochs"]], rtol=2e-6)
    np.testing.assert_allclose(centre[0], hand_loss(m0, domain), rtol=1e-5)
    # training unchanged by the tracker (bit for bit)
    crux_b, _, _ = poisson(seed=1)
    hist_b = crux_b.solve(25)
    np.testing.assert_array_equal(hist.losses, hist_b.losses)
    np.testing.assert_array_equal(hist.total_loss, hist_b.total_loss)


class Ramp(WeightingScheme):
    """Weights that change every step: (1 + s, 2 - s) with s = 0.05 * steps."""

    name = "ramp"

    def init(self, losses):
        return jnp.zeros((), jnp.float32)

    def weights(self, state):
        return jnp.stack([1.0 + state, 2.0 - state])

    def update(self, state, losses, epoch):
        return state + 0.05


def test_centre_uses_the_current_weights_of_a_weighting_scheme():
    f = poisson_fields(hidden=8, layers=1, seed=2, lr=1e-2)
    net, domain = f.net, f.domain
    pde_mse, bc_mse = f.pde.mse, f.bc.mse
    w_pde, w_bc = Ramp([pde_mse, bc_mse]).placeholders()
    crux = jno.core([w_pde * pde_mse, w_bc * bc_mse])
    cb = jno.trackers.loss_landscape(interval=4, n_grid=3, alpha_range=0.1)
    m0 = net.module
    hist = crux.solve(9, callbacks=[cb])
    r = cb.result
    assert list(r["epochs"]) == [0, 4, 8]
    np.testing.assert_allclose(r["landscapes"][:, 1, 1], hist.total_loss[r["epochs"]], rtol=2e-6)
    pde0, bc0 = hand_losses(m0, domain)  # weights (1, 2) at epoch 0
    np.testing.assert_allclose(r["landscapes"][0, 1, 1], pde0 + 2.0 * bc0, rtol=1e-5)
    assert not np.isclose(r["landscapes"][0, 1, 1], pde0 + bc0, rtol=1e-3)


def test_masked_grid_matches_hand_loss_at_perturbed_weights():
    crux, net, domain = poisson()
    all_false = jax.tree_util.tree_map(lambda _: False, net.params)
    mask = eqx.tree_at(lambda m: m.output_layer.weight, all_false, True)
    cb = jno.trackers.loss_landscape(interval=100, mask=mask, n_grid=5, alpha_range=1.0)
    m0 = net.module
    crux.solve(2, callbacks=[cb])
    d1, d2 = (np.asarray(d) for d in cb.directions)
    W = np.asarray(m0.output_layer.weight)  # (1, 16): one filter (the output neuron's row)
    assert d1.shape == d2.shape == (16,)
    np.testing.assert_allclose(np.linalg.norm(d1), np.linalg.norm(W), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d2), np.linalg.norm(W), rtol=1e-5)
    assert abs(np.dot(d1, d2)) < 0.9 * np.linalg.norm(d1) * np.linalg.norm(d2)
    alphas = np.linspace(-1.0, 1.0, 5)
    land = cb.result["landscapes"][0]
    for i, a in enumerate(alphas):
        for j, b in enumerate(alphas):
            Wp = jnp.asarray(W + a * d1.reshape(1, 16) + b * d2.reshape(1, 16), jnp.float32)
            m = eqx.tree_at(lambda mm: mm.output_layer.weight, m0, Wp)
            np.testing.assert_allclose(land[i, j], hand_loss(m, domain), rtol=2e-5, atol=1e-7)


def test_filter_normalisation_over_all_parameters():
    crux, net, domain = poisson()
    cb = jno.trackers.loss_landscape(interval=100, n_grid=3, alpha_range=0.25)
    cb_nb = jno.trackers.loss_landscape(interval=100, n_grid=3, alpha_range=0.25, ignore_bias=True)
    m0 = net.module
    crux.solve(1, callbacks=[cb, cb_nb])
    params, static = eqx.partition(m0, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    for d in cb.directions:
        tree = unravel(jnp.asarray(d))
        for dl, wl in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(params)):
            dl, wl = np.asarray(dl), np.asarray(wl)
            if wl.ndim == 2:  # one filter per row (output neuron)
                np.testing.assert_allclose(np.linalg.norm(dl, axis=1), np.linalg.norm(wl, axis=1), rtol=1e-5)
            else:
                np.testing.assert_allclose(np.linalg.norm(dl), np.linalg.norm(wl), rtol=1e-5)
        # the unit of alpha: ||d|| = ||theta_selected||
        np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(flat), rtol=1e-5)
    d1, d2 = (np.asarray(d) for d in cb.directions)
    corner = eqx.combine(unravel(flat - 0.25 * jnp.asarray(d1) + 0.25 * jnp.asarray(d2)), static)
    np.testing.assert_allclose(cb.result["landscapes"][0][0, 2], hand_loss(corner, domain), rtol=2e-5)
    # ignore_bias: 1-D leaves get a zero direction
    tree = unravel(jnp.asarray(cb_nb.directions[0]))
    for dl in jax.tree_util.tree_leaves(tree):
        if dl.ndim == 1:
            assert not np.any(np.asarray(dl))
    np.testing.assert_allclose(cb_nb.result["landscapes"][0][1, 1], cb.result["landscapes"][0][1, 1], rtol=0)


def test_directions_drawn_once_unless_redraw():
    crux, net, domain = poisson()
    fixed = jno.trackers.loss_landscape(interval=5, n_grid=3, alpha_range=0.5)
    fresh = jno.trackers.loss_landscape(interval=5, n_grid=3, alpha_range=0.5, redraw=True)
    seen = {id(fixed): [], id(fresh): []}

    for cb in (fixed, fresh):
        orig = cb.compute

        def keep(ctx, epoch, _cb=cb, _orig=orig):
            out = _orig(ctx, epoch)
            seen[id(_cb)].append(np.asarray(_cb.directions[0]))
            return out

        cb.compute = keep
    crux.solve(6, callbacks=[fixed, fresh])  # fires at 0 and 5; parameters move in between
    params, _ = eqx.partition(net.module, eqx.is_inexact_array)
    _, unravel = ravel_pytree(params)

    def unit_rows(d):  # per-filter unit vectors: independent of the normalisation target
        w = np.asarray(unravel(jnp.asarray(d)).hidden_layers[1].weight)
        return w / np.linalg.norm(w, axis=1, keepdims=True)

    a, b = seen[id(fixed)]
    np.testing.assert_allclose(unit_rows(a), unit_rows(b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, b)  # rescaled to the moved parameters
    c, d = seen[id(fresh)]
    assert np.abs(unit_rows(c) - unit_rows(d)).max() > 0.1
    np.testing.assert_array_equal(a, c)  # first fire: the same key


def test_argument_errors():
    with pytest.raises(ValueError, match="n_grid must be an integer >= 2"):
        jno.trackers.loss_landscape(n_grid=1)
    with pytest.raises(ValueError, match="alpha_range must be a positive number"):
        jno.trackers.loss_landscape(alpha_range=0.0)
    with pytest.raises(ValueError, match="interval"):
        jno.trackers.loss_landscape(interval=0)


def test_default_batch_size_follows_the_point_budget():
    from jno_plugin_landscape import _tracker as T

    assert T.BATCH_POINT_BUDGET == 32768
    assert T.default_batch_size(11, 21) == 121  # the whole grid: 121 * 21 < 32768
    assert T.default_batch_size(11, 1000) == 32  # 32768 // 1000
    assert T.default_batch_size(11, 10_000) == 11  # never less than one grid row
    assert T.default_batch_size(11, 0) == 121


@pytest.mark.parametrize("batch_size", [None, 1, 7, 25])
def test_grid_does_not_depend_on_the_batch_size(batch_size):
    crux, net, domain = poisson()
    cb = jno.trackers.loss_landscape(interval=100, n_grid=5, alpha_range=0.5, batch_size=batch_size)
    m0 = net.module
    crux.solve(1, callbacks=[cb])
    d1, d2 = (np.asarray(d) for d in cb.directions)
    theta, unravel = ravel_pytree(eqx.filter(m0, eqx.is_array))
    static = eqx.filter(m0, eqx.is_array, inverse=True)
    land = cb.result["landscapes"][0]
    for i, a in enumerate(np.linspace(-0.5, 0.5, 5)):
        for j, b in [(0, -0.5), (4, 0.5)]:
            m = eqx.combine(unravel(jnp.asarray(theta + a * d1 + b * d2, jnp.float32)), static)
            np.testing.assert_allclose(land[i, j], hand_loss(m, domain), rtol=2e-5, atol=1e-7)
