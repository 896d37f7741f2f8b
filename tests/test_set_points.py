"""Core.set_points / SolveContext.set_points: replacing a point set between chunks reuses the
compiled chunk, and the losses after the swap are those of the new points (computed by hand in
plain JAX)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jno_core.compile import trainable_key
from jno_core.hookspecs import hookimpl
from jno_core.testing import CompileEvents, ParamProbe, fresh_plugins, poisson_residual, small_problem  # noqa: F401

pytestmark = pytest.mark.usefixtures("fresh_plugins")


def hand_pde_loss(net, params, xs):
    module = eqx.combine(params, net.static)
    return float(jnp.mean(poisson_residual(module, jnp.asarray(xs, jnp.float32)) ** 2))


def test_set_points_between_solves_reuses_the_chunk_and_trains_on_the_new_points():
    p = small_problem(chunk_size=16)
    key = [k for k in p.crux.points if k.endswith(":interior")][0]
    p.crux.solve(5)
    new = np.linspace(0.03, 0.97, p.dims.n_interior, dtype=np.float32)[:, None]
    placed = p.crux.set_points(key, new)
    assert placed.dtype == jnp.float32 and placed.shape == new.shape
    params5 = p.crux.params[trainable_key(p.net)]
    with CompileEvents() as ce:
        hist = p.crux.solve(3)
    assert ce.events == []
    np.testing.assert_allclose(hist.losses[0, 0], hand_pde_loss(p.net, params5, new[:, 0]), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(p.crux.points[key]), new)


class Swapper:
    """Replaces the interior points at epoch 4 from on_epoch."""

    interval = 4
    plugin_name = "swapper"

    def __init__(self, key, new):
        self.key, self.new = key, new

    @hookimpl
    def on_epoch(self, ctx, epoch):
        if epoch == 4:
            ctx.set_points(self.key, self.new)


def test_set_points_from_a_hook_drops_the_chunk_started_ahead():
    p = small_problem(chunk_size=16)
    key = [k for k in p.crux.points if k.endswith(":interior")][0]
    old = np.asarray(p.crux.points[key])
    new = (old * 0.5 + 0.25).astype(np.float32)
    probe = ParamProbe(4, trainable_key(p.net))
    hist = p.crux.solve(8, callbacks=[probe, Swapper(key, new)])
    np.testing.assert_allclose(hist.losses[0, 0], hand_pde_loss(p.net, probe.seen[0], old[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(hist.losses[4, 0], hand_pde_loss(p.net, probe.seen[4], new[:, 0]), rtol=1e-5)


def test_set_points_rejects_another_shape_or_dtype_or_key():
    p = small_problem()
    key = [k for k in p.crux.points if k.endswith(":interior")][0]
    n = p.dims.n_interior
    with pytest.raises(ValueError, match=r"expected an array of shape \(%d, 1\)" % n):
        p.crux.set_points(key, np.zeros((n + 1, 1), np.float32))
    with pytest.raises(ValueError, match="dtype float32"):
        p.crux.set_points(key, np.zeros((n, 1), np.float64))
    with pytest.raises(KeyError, match="no point set"):
        p.crux.set_points("nope", np.zeros((n, 1), np.float32))
