"""The tracker contract (jno_core.tracker, jno_core.fires): a device function declared by
``fire_fn`` with its ``needs``, run by the core over a chunk's snapshot slots; ``finish`` and
``metrics`` on the host; ``compute`` as the escape hatch; the previous release's API kept."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jno
from jno_core import compile_pool
from jno_core.errors import JnoPluginError
from jno_core.testing import poisson_losses, small_problem
from jno_core.tracker import Tracker


class GradAndParams(Tracker):
    """Returns the gradient matrix the core computed, the flat parameters and the epoch."""

    name = "grad_and_params"
    result_keys = ("G", "flat", "epoch")
    needs = ("gradient_matrix", "epoch")

    def fire_fn(self, ctx):
        key = ctx.trained_keys[0]

        def fn(params, points, inputs, weights, gradient_matrix, epoch):
            return {"G": gradient_matrix, "flat": ravel_pytree(params[key])[0], "epoch": epoch}

        return fn


def test_needs_give_the_gradient_matrix_and_epoch_of_each_fire():
    p = small_problem(hidden=8, layers=2)
    t = GradAndParams(interval=7)
    p.crux.solve(40, callbacks=[t])
    r = t.result
    np.testing.assert_array_equal(r["epochs"], np.arange(0, 40, 7))
    np.testing.assert_array_equal(r["epoch"], r["epochs"])
    _, unravel = ravel_pytree(p.net.params)
    for flat, G in zip(r["flat"], r["G"]):
        # by hand: jacrev of the two unweighted losses written out with jax.grad
        def losses(theta):
            return jnp.stack(poisson_losses(eqx.combine(unravel(theta), p.net.static), p.domain))

        want = np.asarray(jax.jacrev(losses)(jnp.asarray(flat)))
        assert G.shape == want.shape == (2, p.dims.P)
        np.testing.assert_allclose(G, want, rtol=2e-4, atol=1e-6)
    # training moved the parameters between the first and the last fire
    assert not np.allclose(r["flat"][0], r["flat"][-1])


class _OneCallPerFire(GradAndParams):
    name = "grad_and_params_unbatched"
    batch_fires = False


def test_batch_fires_false_gives_the_same_values_one_call_per_fire():
    """A tracker that opts out of the per-chunk slot batch (Hessian, landscape, NTK do) fires
    on each epoch's snapshot: same epochs and values as the batched fire, its own one-fire
    executable, no mapped one."""
    out = {}
    for cls in (GradAndParams, _OneCallPerFire):
        p = small_problem(hidden=8, layers=2)
        t = cls(interval=7)
        p.crux.solve(40, callbacks=[t])
        out[cls] = t.result
        names = [str(k[1]) for k in p.crux._cache.compiled if "grad_and_params" in str(k[1])]
        assert len(names) == 1 and names[0].startswith("fire_batch:" if t.batch_fires else "fire:"), names
        assert t.prepared_fire.batched is t.batch_fires
    a, b = out[GradAndParams], out[_OneCallPerFire]
    np.testing.assert_array_equal(a["epochs"], b["epochs"])
    for k in ("G", "flat", "epoch"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)


class _Shared(Tracker):
    result_keys = ("total",)

    def __init__(self, name, interval):
        self.name = name
        super().__init__(interval)

    def fire_fn(self, ctx):
        return _total_loss_of(ctx)

    def fire_key(self, ctx):
        return ("shared-total",)


_FNS = {}


def _total_loss_of(ctx):
    """One function object per solver (trackers with the same key must return the same one)."""
    fn = _FNS.get(id(ctx.crux))
    if fn is None:
        def fn(params, points, inputs, weights):
            return {"total": ctx.total_loss(params, points=points, inputs=inputs, weights=weights)}

        _FNS[id(ctx.crux)] = fn
    return fn


def test_trackers_with_one_key_share_one_executable_and_one_call_per_chunk(monkeypatch):
    p = small_problem(hidden=8, layers=2)
    a, b = _Shared("shared_a", 10), _Shared("shared_b", 10)
    calls = []
    orig = compile_pool.Pending.result

    def result(self):
        fn = orig(self)
        if not self.name.startswith("fire_batch:('shared-total',)"):
            return fn

        def counted(*args):
            calls.append(1)
            return fn(*args)

        return counted

    monkeypatch.setattr(compile_pool.Pending, "result", result)
    h = p.crux.solve(100, callbacks=[a, b])
    names = [k[1] for k in p.crux._cache.compiled if "shared-total" in str(k[1])]
    assert names == ["fire_batch:('shared-total',)"]
    fires = len(a.result["epochs"])
    assert fires == 10 and 1 <= len(calls) < fires  # one call per chunk, for both trackers
    np.testing.assert_array_equal(a.result["total"], b.result["total"])
    # the tracker's total is the history's loss at the same epochs (same parameters)
    np.testing.assert_allclose(a.result["total"], h.total_loss[a.result["epochs"]], rtol=1e-5)


class _Neither(Tracker):
    name = "neither"
    result_keys = ("x",)


class _BadNeeds(Tracker):
    name = "bad_needs"
    needs = ("hessian",)

    def fire_fn(self, ctx):
        return lambda params, points, inputs, weights, hessian: {"x": 0.0}


def test_a_tracker_without_device_function_or_compute_is_a_named_error():
    p = small_problem()
    with pytest.raises(JnoPluginError, match=r"neither.*fire_fn.*compute"):
        p.crux.solve(5, callbacks=[_Neither(interval=1)])


def test_unknown_needs_are_refused_naming_the_tracker():
    p = small_problem()
    with pytest.raises(Exception, match=r"bad_needs.*hessian.*gradient_matrix, epoch"):
        p.crux.solve(5, callbacks=[_BadNeeds(interval=1)])


class _PreviousRelease(Tracker):
    """The previous release's documented example: prepare + ctx.compile + compute."""

    name = "previous_release"
    result_keys = ("norms",)

    def prepare(self, ctx):
        keys = list(ctx.trained_keys)

        def global_norm(params):
            leaves = jax.tree_util.tree_leaves({k: params[k] for k in keys})
            return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))

        self._fn = ctx.compile("previous/parameter_norm", global_norm, ctx.params)

    def compute(self, ctx, epoch):
        return {"norms": np.float32(self._fn(ctx.params))}


class _CompileFireFn(Tracker):
    """The previous release's one-call-per-chunk form: compile_fire_fn / run_fire_fn."""

    name = "compile_fire_fn"
    result_keys = ("norms",)

    def prepare(self, ctx):
        keys = list(ctx.trained_keys)

        def fn(params, points, inputs, weights):
            return optax_free_norm({k: params[k] for k in keys})

        self.compile_fire_fn(ctx, "previous/compile_fire_fn", fn)

    def compute(self, ctx, epoch):
        return {"norms": np.float32(self.run_fire_fn(ctx))}


def optax_free_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))


def test_trackers_written_for_the_previous_release_still_work():
    p = small_problem()
    old, cff, new = _PreviousRelease(interval=5), _CompileFireFn(interval=5), jno.trackers.parameter_norm(interval=5)

    class Probe(Tracker):  # records the flat parameters through the new contract
        name = "probe"
        result_keys = ("flat",)

        def fire_fn(self, ctx):
            key = ctx.trained_keys[0]
            return lambda params, points, inputs, weights: {"flat": ravel_pytree(params[key])[0]}

    probe = Probe(interval=5)
    p.crux.solve(30, callbacks=[old, cff, new, probe])
    want = np.linalg.norm(probe.result["flat"].astype(np.float64), axis=1)
    for t in (old, cff, new):
        np.testing.assert_array_equal(t.result["epochs"], np.arange(0, 30, 5))
        np.testing.assert_allclose(t.result["norms"], want, rtol=1e-5, err_msg=t.name)


def test_the_example_tracker_plugin_is_under_50_lines_of_code():
    """docs/writing-plugins.md's promise: a complete tracker plugin (registration hook,
    factory, Tracker subclass) in under 50 lines, comments and docstrings aside."""
    import ast
    import inspect

    import jno_plugin_example

    src = inspect.getsource(jno_plugin_example)
    docs: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    code = [line for i, line in enumerate(src.splitlines(), 1)
            if i not in docs and line.strip() and not line.strip().startswith("#")]
    assert 15 < len(code) < 50, len(code)
    assert "def fire_fn" in src and "def finish" in src and "def metrics" in src
