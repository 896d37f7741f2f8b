"""An L-BFGS step takes the loss and gradient its line search computed at the end of the
previous step (as ``optax.value_and_grad_from_state``) when they belong to this step's loss,
and computes them afresh otherwise (:func:`jno_core.optim.reuse_value_and_grad`).

Each test compares jno with a hand-written ``optax.lbfgs()`` loop on the loss of
:func:`small_problem` written out in jnp (``poisson_residual``), where the hand loop reuses
the stored value exactly where the previous step's line search evaluated the same loss, and
recomputes it where the loss changed (new points, new weights, a mini-batch, a fresh
optimizer). The stale cases also check that the reusing loop differs from the fresh one, so
each comparison can tell the two apart."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno_core import optim
from jno_core.api import point_set
from jno_core.testing import poisson_residual, scalar_network, small_problem
from jno_core.weighting import HostWeights, WeightingScheme

TX = optax.lbfgs()


def _loss(static):
    """``loss(params, xs, xb, w) -> (total, (pde, bc))`` of :func:`small_problem` with the
    constraint weights ``w`` ``(2,)``, at interior points ``xs`` ``(n,)`` and boundary points
    ``xb`` ``(m,)``."""

    def loss(params, xs, xb, w):
        m = eqx.combine(params, static)
        pde = jnp.mean(poisson_residual(m, xs) ** 2)
        bc = jnp.mean(jax.vmap(scalar_network(m))(xb) ** 2)
        return w[0] * pde + w[1] * bc, jnp.stack([w[0] * pde, w[1] * bc])

    return loss


def _hand_step(static):
    """A jitted L-BFGS step ``(params, state, xs, xb, w, reuse) -> (params, state, value,
    terms)``; ``reuse`` (static): take value and gradient from the state
    (``optax.value_and_grad_from_state``) instead of ``jax.value_and_grad``. ``value`` and
    ``terms`` are the loss the step started from."""
    loss = _loss(static)
    total = lambda q, xs, xb, w: loss(q, xs, xb, w)[0]  # noqa: E731

    def step(params, state, xs, xb, w, reuse):
        if reuse:
            value, grad = optax.value_and_grad_from_state(total)(params, xs, xb, w, state=state)
        else:
            value, grad = jax.value_and_grad(total)(params, xs, xb, w)
        terms = loss(params, xs, xb, w)[1]
        upd, state = TX.update(grad, state, params, value=value, grad=grad,
                               value_fn=lambda q: total(q, xs, xb, w))
        return optax.apply_updates(params, upd), state, value, terms

    return jax.jit(step, static_argnames="reuse")


def _points(p):
    """``(interior key, xs (n,), xb (m,))`` of a small problem's solver."""
    tags = {point_set(k).tag: k for k in p.crux.points}
    xs = jnp.asarray(p.crux.points[tags["interior"]][:, 0], jnp.float32)
    xb = jnp.asarray(p.crux.points[tags["boundary"]][:, 0], jnp.float32)
    return tags["interior"], xs, xb


@pytest.fixture
def stored_path(monkeypatch):
    """The list of per-step flags (in step order) of whether the step used the stored value,
    recorded from inside the compiled step."""
    flags = []
    orig = optim._belongs

    def probe(stored, fresh):
        ok = orig(stored, fresh)
        jax.debug.callback(lambda v: flags.append(bool(v)), ok)
        return ok

    monkeypatch.setattr(optim, "_belongs", probe)
    return flags


def _close(a, b, rtol=2e-4, atol=2e-5):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def test_reuse_equals_value_and_grad_from_state_and_logs_the_loss_the_step_started_from(stored_path):
    p = small_problem(hidden=8, mesh_size=0.1)
    p.net.optimizer(optax.lbfgs())
    params = p.net.params
    _, xs, xb = _points(p)
    seen = {}

    class Params:  # the parameters at every epoch (one-epoch chunks: reuse across chunks too)
        interval = 1

        @jno.hookimpl
        def on_epoch(self, ctx, epoch):
            seen[epoch] = jax.device_get(ctx.params[p.crux.trained_keys[0]])

    hist = p.crux.solve(20, callbacks=[Params()])
    # optax's first state holds value = inf: the first step computes afresh, the others reuse
    assert stored_path == [False] + [True] * 19
    loss = _loss(p.net.static)
    for e in range(20):  # each row: the loss at the parameters its step started from
        total, terms = loss(seen[e], xs, xb, jnp.ones(2))
        np.testing.assert_allclose(hist.total_loss[e], float(total), rtol=1e-5)
        np.testing.assert_allclose(hist.losses[e], np.asarray(terms), rtol=1e-5, atol=1e-10)

    step, state, w = _hand_step(p.net.static), TX.init(params), jnp.ones(2)
    values, terms = [], []
    for _ in range(20):
        params, state, v, t = step(params, state, xs, xb, w, reuse=True)
        values.append(float(v))
        terms.append(np.asarray(t))
    _close(p.net.params, params)
    assert values[-1] < 0.01 * values[0]  # it did optimise
    # the hand loop's values; near the end (loss ~1e-3) float32 rounding differences between
    # the two programs move the last digits of the trajectory
    np.testing.assert_allclose(hist.total_loss[:15], values[:15], rtol=1e-4)
    np.testing.assert_allclose(hist.total_loss, values, rtol=2e-3)
    np.testing.assert_allclose(hist.losses, np.stack(terms), rtol=2e-3, atol=1e-9)


def test_points_replaced_during_a_solve_recompute_the_first_step_on_them(stored_path):
    """A hook replaces the interior points at epoch 10 (as a resampler does): step 10's
    stored value belongs to the old points, so it is computed afresh on the new ones."""
    p = small_problem(hidden=8, mesh_size=0.1)
    p.net.optimizer(optax.lbfgs())
    params = p.net.params
    key, xs, xb = _points(p)
    xs_new = 0.05 + 0.9 * xs

    class Move:
        interval = 10

        @jno.hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 10:
                ctx.set_points(key, np.asarray(xs_new)[:, None])

    hist = p.crux.solve(20, callbacks=[Move()])
    np.testing.assert_array_equal(np.asarray(p.crux.points[key])[:, 0], np.asarray(xs_new))

    step, w = _hand_step(p.net.static), jnp.ones(2)
    state = TX.init(params)
    for i in range(20):
        pts = xs if i < 10 else xs_new
        params, state, v, _ = step(params, state, pts, xb, w, reuse=i not in (0, 10))
        if i == 9:
            mid = (params, state)
        if i == 10:
            np.testing.assert_allclose(hist.total_loss[10], float(v), rtol=1e-4)
    _close(p.net.params, params)
    # steps 0-9 on the old points, then 10-19 on the new ones (a chunk the loop started
    # ahead of the move and dropped would add flags between them)
    assert stored_path[:10] == [False] + [True] * 9
    assert stored_path[-10:] == [False] + [True] * 9
    # reusing the old points' value at step 10 gives another trajectory
    stale, st = mid
    for i in range(10, 20):
        stale, st, _, _ = step(stale, st, xs_new, xb, w, reuse=True)
    assert _max_diff(stale, params) > 1e-3


def test_a_loaded_state_reuses_its_value_only_on_the_points_it_was_computed_on(stored_path):
    """A state loaded into another solver (as from a checkpoint): on the same points the
    next step reuses the stored value and continues the run bit for bit; on other points it
    computes afresh and equals the hand loop that does."""
    full = small_problem(hidden=8, mesh_size=0.1)
    full.net.optimizer(optax.lbfgs())
    params0 = full.net.params
    full.crux.solve(10)
    st = full.crux.state
    full.crux.solve(5)

    def loaded():
        q = small_problem(hidden=8, mesh_size=0.1)
        q.net.optimizer(optax.lbfgs())
        (kf,), (kq,) = full.crux.trained_keys, q.crux.trained_keys
        q.crux.load_state(st._replace(params={kq: st.params[kf]}, opt_states={kq: st.opt_states[kf]}))
        return q

    same = loaded()
    del stored_path[:]
    same.crux.solve(5)
    assert stored_path == [True] * 5
    for a, b in zip(jax.tree_util.tree_leaves(full.crux.state), jax.tree_util.tree_leaves(same.crux.state),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    other = loaded()
    key, xs, xb = _points(other)
    xs_new = 0.05 + 0.9 * xs
    other.crux.set_points(key, np.asarray(xs_new)[:, None])
    del stored_path[:]
    other.crux.solve(5)
    step, w = _hand_step(other.net.static), jnp.ones(2)
    params, state = params0, TX.init(params0)
    for i in range(15):
        pts = xs if i < 10 else xs_new
        params, state, _, _ = step(params, state, pts, xb, w, reuse=i not in (0, 10))
    _close(other.net.params, params)
    assert stored_path == [False] + [True] * 4


class _Ramp(WeightingScheme):
    """Test scheme: weights ``(1 + 0.5 s, 1)`` with ``s`` the number of steps taken, so the
    loss changes at every step."""

    name = "ramp"

    def init(self, losses):
        return jnp.zeros((), jnp.float32)

    def weights(self, state):
        return jnp.stack([1.0 + 0.5 * state, jnp.ones(())])

    def update(self, state, losses, epoch):
        return state + 1.0


def test_a_weighting_scheme_makes_every_step_compute_afresh(stored_path):
    p = small_problem(hidden=8, mesh_size=0.1)
    scheme = _Ramp([p.pde.mse, p.bc.mse])
    w0, w1 = scheme.placeholders()
    crux = jno.core([w0 * p.pde.mse, w1 * p.bc.mse])
    p.net.optimizer(optax.lbfgs())
    params = p.net.params
    tags = {point_set(k).tag: k for k in crux.points}
    xs = jnp.asarray(crux.points[tags["interior"]][:, 0], jnp.float32)
    xb = jnp.asarray(crux.points[tags["boundary"]][:, 0], jnp.float32)
    hist = crux.solve(10)
    step, state = _hand_step(p.net.static), TX.init(params)
    for i in range(10):
        w = jnp.array([1.0 + 0.5 * i, 1.0])
        params, state, v, _ = step(params, state, xs, xb, w, reuse=False)
        if i == 9:
            np.testing.assert_allclose(hist.total_loss[9], float(v), rtol=1e-4)
        if i == 4:
            mid = (params, state)
    _close(p.net.params, params)
    assert stored_path == []  # the stored value is never even considered
    stale, st = mid  # reusing values computed under the previous step's weights differs
    for i in range(5, 10):
        stale, st, _, _ = step(stale, st, xs, xb, jnp.array([1.0 + 0.5 * i, 1.0]), reuse=True)
    assert _max_diff(stale, params) > 1e-4


def test_mini_batches_compute_afresh_on_each_epochs_batch(stored_path):
    """``batchsize=B``: each epoch's interior points are the first ``B`` of a permutation
    drawn from ``fold_in(fold_in(PRNGKey(seed), epoch), i)`` (i: the set's position in key
    order, see jno_core.batching); the two boundary points are used whole."""
    p = small_problem(hidden=8, mesh_size=0.05)
    p.net.optimizer(optax.lbfgs())
    params = p.net.params
    key, xs, xb = _points(p)
    hist = p.crux.solve(8, batchsize=8, seed=3)
    pos = sorted(p.crux.points).index(key)
    step, state, w = _hand_step(p.net.static), TX.init(params), jnp.ones(2)
    batches = []
    for e in range(8):
        idx = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(3), e), pos),
                                     xs.shape[0])[:8]
        batches.append(xs[idx])
        params, state, v, _ = step(params, state, xs[idx], xb, w, reuse=False)
        np.testing.assert_allclose(hist.total_loss[e], float(v), rtol=1e-4)
        if e == 3:
            mid = (params, state)
    _close(p.net.params, params)
    assert stored_path == []
    stale, st = mid
    for e in range(4, 8):
        stale, st, _, _ = step(stale, st, batches[e], xb, w, reuse=True)
    assert _max_diff(stale, params) > 1e-4


def test_an_optimizer_switch_starts_afresh_and_then_reuses(stored_path):
    """Adam, then L-BFGS, then another L-BFGS: each new optimizer's state holds no value
    (optax stores inf), so its first step computes afresh."""
    p = small_problem(hidden=8, mesh_size=0.1, lr=1e-2)
    p.crux.solve(10)
    assert stored_path == []  # Adam keeps no value: the step is the plain one
    assert optim.stored_value_key(p.crux, None) is None
    start = p.net.params
    p.net.optimizer(optax.lbfgs())
    p.crux.solve(6)
    p.net.optimizer(optax.lbfgs())
    p.crux.solve(6)
    assert stored_path == [False] + [True] * 5 + [False] + [True] * 5
    _, xs, xb = _points(p)
    step, w, params = _hand_step(p.net.static), jnp.ones(2), start
    for _ in range(2):
        state = TX.init(params)
        for i in range(6):
            params, state, _, _ = step(params, state, xs, xb, w, reuse=i > 0)
    _close(p.net.params, params)


def test_several_trained_networks_never_reuse():
    """With two networks, the line search of one holds the other at its value before a step
    in which it moved: its stored value is not the next step's loss
    (test_optimizers.py::test_two_networks_one_adam_one_lbfgs_equal_a_hand_written_loop
    checks the values of that fresh path)."""
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    na = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(1)))
    nb = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(2)))
    na.optimizer(optax.lbfgs())
    nb.optimizer(optax.lbfgs())
    crux = jno.core([(na(x) + nb(x) - jno.np.sin(jno.np.pi * x)).mse])
    crux.state  # builds the train state (no compile)
    assert optim.stored_value_key(crux, None) is None
    one = small_problem(hidden=4, mesh_size=0.1)
    one.net.optimizer(optax.lbfgs())
    one.crux.state
    assert optim.stored_value_key(one.crux, None) == one.crux.trained_keys[0]
    assert optim.stored_value_key(one.crux, 8) is None


def test_host_fed_weights_never_reuse():
    """Weights fed from the host change between chunks (e.g. from a tracker's value): the
    step computes afresh rather than trust the stored value across such a change."""
    p = small_problem(hidden=4, mesh_size=0.1)
    hw0, hw1 = HostWeights(2).placeholders()
    crux = jno.core([hw0 * p.pde.mse, hw1 * p.bc.mse])
    p.net.optimizer(optax.lbfgs())
    crux.state
    assert crux.current_inputs()  # the provider is an input of the step
    assert optim.stored_value_key(crux, None) is None
