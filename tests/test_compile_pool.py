"""jno_core.compile_pool: background compilation in on_solve_begin (same executables, same
numbers, nothing compiled by a fire, errors naming the plugin)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno
from jno_core import compile_pool
from jno_core.context import SolveContext
from jno_core.errors import JnoPluginError
from jno_core.testing import count_compiles_per_fire, small_problem


def _ctx():
    p = small_problem()
    p.crux._ensure_state()
    return SolveContext(p.crux, None, 0, 0, lambda *a, **k: None)


def test_compile_async_shares_the_solver_cache_with_ctx_compile():
    ctx = _ctx()
    fn = lambda x: jnp.sin(x) * 2.0  # noqa: E731
    x = jnp.arange(4.0)
    pending = compile_pool.compile_async(ctx, "t:sin", fn, x, owner="probe")
    assert pending.out_info.shape == (4,)
    compile_pool.drain(ctx)
    assert pending.done()
    compiled = pending.result()
    np.testing.assert_allclose(np.asarray(compiled(x)), np.sin(np.arange(4.0)) * 2.0, rtol=1e-6)
    # the same key as SolveContext.compile: no second compilation either way
    assert ctx.compile("t:sin", fn, x) is compiled
    again = compile_pool.compile_async(ctx, "t:sin", fn, x, owner="probe")
    assert again.done() and again.result() is compiled
    # other shapes: another executable
    other = compile_pool.compile_async(ctx, "t:sin", fn, jnp.arange(3.0), owner="probe")
    compile_pool.drain(ctx)
    assert other.result() is not compiled


@pytest.mark.parametrize("threads", ["0", "2"])
def test_failure_is_reported_naming_the_plugin(monkeypatch, threads):
    monkeypatch.setenv("JNO_COMPILE_THREADS", threads)
    ctx = _ctx()

    def boom(v):
        raise RuntimeError("warm-up exploded")

    def fn(x):
        jax.debug.callback(boom, x)
        return x + 1.0

    pending = compile_pool.compile_async(ctx, "t:boom", fn, jnp.zeros(2), owner="my_tracker")
    with pytest.raises(JnoPluginError, match="my_tracker.*t:boom"):
        compile_pool.drain(ctx)
    with pytest.raises(JnoPluginError, match="my_tracker"):
        pending.result()


def test_settle_drains_for_a_plugin_outside_the_solve():
    ctx = _ctx()
    pending = compile_pool.compile_async(ctx, "t:cos", jnp.cos, jnp.ones(3), owner="probe")
    compile_pool.settle(ctx, object())  # not registered: nobody later would drain
    assert pending.done()


def test_bad_thread_count_names_the_variable(monkeypatch):
    monkeypatch.setenv("JNO_COMPILE_THREADS", "many")
    with pytest.raises(ValueError, match="JNO_COMPILE_THREADS"):
        compile_pool.pool_size()


def _trackers(p):
    return [
        count_compiles_per_fire(jno.trackers.gradient_norms(interval=5)),
        count_compiles_per_fire(jno.trackers.cos_similarity(interval=5)),
        count_compiles_per_fire(jno.trackers.hessian_spectrum(k=3, n_iter=8, interval=5)),
        count_compiles_per_fire(jno.trackers.loss_landscape(interval=5, n_grid=5, alpha_range=0.5)),
        count_compiles_per_fire(jno.trackers.ntk_spectrum(p.u.grad(p.net), n_points=8, top_k=3, interval=5)),
        count_compiles_per_fire(jno.trackers.residual_stats(interval=5)),
        count_compiles_per_fire(jno.trackers.input_sensitivity(p.u.d(p.x), interval=5)),
    ]


def test_background_compilation_gives_the_same_numbers_and_warm_first_fires(monkeypatch):
    results = {}
    for threads in ("0", "2"):
        monkeypatch.setenv("JNO_COMPILE_THREADS", threads)
        p = small_problem()
        cbs = _trackers(p)
        p.crux.solve(11, callbacks=cbs)
        for cb in cbs:
            assert cb.fire_compiles == [[], [], []], (threads, cb.name, cb.fire_compiles)
        results[threads] = [cb.result for cb in cbs]
    for a, b in zip(results["0"], results["2"]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
