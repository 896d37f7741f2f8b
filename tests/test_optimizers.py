"""Any optax optimizer in the compiled step (L-BFGS with its zoom line search) and optimizer
phases (``net.optimizer(new)`` between solves), checked against hand-written optax loops on
the same loss written out in jnp (:func:`jno_core.testing.poisson_losses`)."""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno_core import chunk as chunk_mod
from jno_core.testing import RecordingSink, poisson_losses, small_problem


def _hand_loss(p):
    """The training loss of :func:`small_problem` (pde.mse + bc.mse) by hand, as a function
    of the network's parameters."""
    static = p.net.static

    def loss(params):
        pde, bc = poisson_losses(eqx.combine(params, static), p.domain)
        return pde + bc

    return loss


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _assert_close(a, b, rtol, atol):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _hand_run(tx, loss, params, steps, extra_args):
    """``steps`` optax updates of ``params`` by hand; returns the params and the optimizer
    state after each step."""
    state = tx.init(params)
    states = []
    vg = jax.jit(jax.value_and_grad(loss))
    for _ in range(steps):
        value, grad = vg(params)
        if extra_args:
            upd, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        else:
            upd, state = tx.update(grad, state, params)
        params = optax.apply_updates(params, upd)
        states.append(state)
    return params, states


def test_lbfgs_20_steps_equal_a_hand_written_optax_loop_and_log_the_line_search_step():
    p = small_problem(hidden=8, mesh_size=0.1)
    p.net.optimizer(optax.lbfgs())
    params0 = p.net.params
    sink = RecordingSink()
    p.crux.solve(20, callbacks=[sink], log_every=5)
    want, states = _hand_run(optax.lbfgs(), _hand_loss(p), params0, 20, extra_args=True)
    assert float(_hand_loss(p)(want)) < 0.5 * float(_hand_loss(p)(params0))  # it did optimise
    _assert_close(p.crux.params[next(iter(p.crux.params))], want, rtol=2e-4, atol=2e-5)
    # lr/<net> is the step size the zoom line search accepted at that epoch's step
    name = p.net.name
    for e in (0, 5, 10, 15):
        lr = float(optax.tree_utils.tree_get(states[e], "learning_rate"))
        assert float(sink.at(e)[f"lr/{name}"].value) == pytest.approx(lr, rel=1e-4)


def test_adam_then_fresh_optimizer_equals_a_fresh_optimizer_from_those_params():
    """Adam 50 epochs, then Adam with another rate for 30: the second phase starts from a
    fresh state (count 0, zero moments) at the params Adam reached; the chunk compiles once
    for the new phase and not again for a further solve."""
    p = small_problem(hidden=8, mesh_size=0.1, lr=1e-3)
    params0 = p.net.params
    p.crux.solve(50)
    mid = p.crux.params[next(iter(p.crux.params))]
    want_mid, _ = _hand_run(optax.adam(1e-3), _hand_loss(p), params0, 50, extra_args=False)
    _assert_close(mid, want_mid, rtol=1e-4, atol=1e-6)

    calls = []
    orig = chunk_mod.make_chunk

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    chunk_mod.make_chunk = counting
    try:
        p.net.optimizer(optax.adam(1e-2))
        hist = p.crux.solve(30)
        assert len(calls) == 1  # one recompile for the new optimizer
        np.testing.assert_array_equal(hist.epochs, np.arange(50, 80))  # the epoch count goes on
        after = p.crux.params[next(iter(p.crux.params))]
        p.crux.solve(5)
        assert len(calls) == 1  # same optimizer: the compiled chunk is reused
    finally:
        chunk_mod.make_chunk = orig
    want, _ = _hand_run(optax.adam(1e-2), _hand_loss(p), mid, 30, extra_args=False)
    _assert_close(after, want, rtol=1e-4, atol=1e-6)
    # carrying Adam's moments over would have given something else
    carried, _ = _hand_run(optax.adam(1e-2), _hand_loss(p), params0, 80, extra_args=False)
    assert max(np.max(np.abs(a - b)) for a, b in zip(_leaves(after), _leaves(carried))) > 1e-4
    assert p.crux.history.epochs.tolist() == list(range(85))  # one history across the phases
    assert [ph["start_epoch"] for ph in p.crux.optimizer_phases[p.net.name]] == [0, 50]


def test_sgd_zero_after_an_adam_solve_freezes_the_parameters():
    """The issue's bug: the new optimizer used to be ignored (the loss kept falling)."""
    p = small_problem(hidden=8, mesh_size=0.1, lr=1e-2)
    p.crux.solve(100)
    before = _leaves(p.crux.params)
    p.net.optimizer(optax.sgd(0.0))
    hist = p.crux.solve(100)
    for a, b in zip(before, _leaves(p.crux.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.all(hist.losses[:, 0] == hist.losses[0, 0]) if hist.losses.ndim == 2 else True


def test_lr_schedule_metric_counts_from_the_start_of_its_phase():
    p = small_problem(hidden=8, mesh_size=0.1)
    s1 = optax.exponential_decay(1e-3, 10, 0.5)
    s2 = optax.linear_schedule(5e-3, 1e-3, 40)
    p.net.optimizer(optax.adam(s1))
    sink = RecordingSink()
    p.crux.solve(30, callbacks=[sink], log_every=10)
    p.net.optimizer(optax.adam(s2))
    p.crux.solve(40, callbacks=[sink], log_every=10)
    key = f"lr/{p.net.name}"
    for e in (0, 10, 20):
        assert float(sink.at(e)[key].value) == pytest.approx(1e-3 * 0.5 ** (e / 10), rel=1e-6)
    for e in (30, 40, 50, 60):
        assert float(sink.at(e)[key].value) == pytest.approx(5e-3 - 4e-3 * (e - 30) / 40, rel=1e-6)
    assert float(sink.at(0)[f"optimizer/phase/{p.net.name}"].value) == 0
    assert float(sink.at(30)[f"optimizer/phase/{p.net.name}"].value) == 1
    assert sink.steps(f"optimizer/phase/{p.net.name}") == [0, 30]


def test_config_json_records_the_phases(tmp_path: Path):
    dire = jno.setup(str(tmp_path / "phases.py"), sinks="none", root=tmp_path)
    try:
        p = small_problem(hidden=8, mesh_size=0.1)
        p.crux.solve(20)
        p.net.optimizer(optax.lbfgs())
        p.crux.solve(10)
        cfg = json.loads((Path(dire) / "config.json").read_text())
    finally:
        jno.finish()
    assert cfg["optimizers"] == {p.net.name: [
        {"start_epoch": 0, "optimizer": "chain(scale_by_adam, lr=0.001)"},
        {"start_epoch": 20, "optimizer": "chain(scale_by_lbfgs, scale_by_zoom_linesearch)"},
    ]}
    assert [s["networks"][p.net.name]["optimizer"] for s in cfg["solves"]] == [
        "chain(scale_by_adam, lr=0.001)", "chain(scale_by_lbfgs, scale_by_zoom_linesearch)"]


def test_optimizer_changed_during_a_solve_takes_effect_at_the_next_solve():
    ref = small_problem(hidden=8, mesh_size=0.1, lr=1e-2)
    ref.crux.solve(20)
    p = small_problem(hidden=8, mesh_size=0.1, lr=1e-2)

    class Switch:
        interval = 10

        @jno.hookimpl
        def on_epoch(self, ctx, epoch):
            if epoch == 10:
                p.net.optimizer(optax.sgd(0.0))

    p.crux.solve(20, callbacks=[Switch()])
    for a, b in zip(_leaves(ref.crux.params), _leaves(p.crux.params), strict=True):
        np.testing.assert_array_equal(a, b)  # the solve went on with Adam
    before = _leaves(p.crux.params)
    p.crux.solve(10)
    for a, b in zip(before, _leaves(p.crux.params), strict=True):
        np.testing.assert_array_equal(a, b)  # the next one uses sgd(0)
    assert [ph["start_epoch"] for ph in p.crux.optimizer_phases[p.net.name]] == [0, 20]


def test_two_networks_one_adam_one_lbfgs_equal_a_hand_written_loop():
    """u = net_a(x) + net_b(x) fits sin(pi x): net_a trained with Adam, net_b with L-BFGS
    whose line search sees the loss as a function of net_b's params (net_a held at its
    values before the step). 10 steps: beyond them float32 rounding differences between the
    two evaluations of the loss grow by ~3x per step in this coupled problem (L-BFGS's
    curvature pairs see a landscape Adam moves), while a line search on the wrong function
    (net_a already updated) is off by ~1e-3 after a few steps."""
    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    mk = lambda s: jno.nn.wrap(jno.nn.mlp(1, hidden_dims=6, num_layers=2, key=jax.random.PRNGKey(s)))  # noqa: E731
    na, nb = mk(1), mk(2)
    na.optimizer(optax.adam(1e-2))
    nb.optimizer(optax.lbfgs())
    crux = jno.core([(na(x) + nb(x) - jno.np.sin(jno.np.pi * x)).mse])
    pa, pb = na.params, nb.params
    crux.solve(10)

    xs = jnp.asarray(d.points("interior")[:, 0], jnp.float32)
    sa, sb = na.static, nb.static

    def loss(a, b):
        f = lambda m: jax.vmap(lambda t: m(t.reshape(1))[0])(xs)  # noqa: E731
        return jnp.mean((f(eqx.combine(a, sa)) + f(eqx.combine(b, sb)) - jnp.sin(jnp.pi * xs)) ** 2)

    txa, txb = optax.adam(1e-2), optax.lbfgs()
    oa, ob = txa.init(pa), txb.init(pb)
    l0 = float(loss(pa, pb))
    for _ in range(10):
        value, (ga, gb) = jax.value_and_grad(loss, argnums=(0, 1))(pa, pb)
        ua, oa = txa.update(ga, oa, pa)
        ub, ob = txb.update(gb, ob, pb, value=value, grad=gb, value_fn=lambda q, pa=pa: loss(pa, q))
        pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
    assert float(loss(pa, pb)) < 0.7 * l0
    _assert_close(na.params, pa, rtol=2e-4, atol=5e-5)
    _assert_close(nb.params, pb, rtol=2e-4, atol=5e-5)


def test_describe_optimizer_names_the_parts_of_a_chain():
    from jno_core.optim import describe_optimizer

    assert describe_optimizer(optax.adam(3e-4), None) == "chain(scale_by_adam, lr=0.0003)"
    assert describe_optimizer(optax.lbfgs(), None) == "chain(scale_by_lbfgs, scale_by_zoom_linesearch)"
    assert describe_optimizer(optax.sgd(0.1), "my sgd") == "my sgd"
