"""Tests of the example plugin: the core's conformance suite plus a value check against an
independent computation. Copy this file as the starting point of your own plugin's tests."""

import jax
import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.compile import trainable_key
from jno_core.hookspecs import hookimpl
from jno_core.testing import RecordingSink, TrackerConformance, small_problem

import jno_plugin_example


# ---------------------------------------------------------------------------- 1. conformance
# Subclass the core's conformance suite and describe the plugin: pytest then runs every
# inherited test (entry point, registration, `jno plugins`, interval scheduling across
# chunks and repeated solves, .value/.latest_epoch/.result, unchanged training trajectory).
class TestParameterNormConformance(TrackerConformance):
    entry_point = "example"  # the name in [project.entry-points.jno]
    distribution = "jno-plugin-example"
    tracker_name = "parameter_norm"  # the name passed to register(...)
    result_keys = {"norms": ()}  # result["norms"].shape == (S,)
    metric_keys = ("example/parameter_norm",)  # logged at every fire


# ---------------------------------------------------------------------------- 2. values
class ParamProbe:
    """An independent plugin recording the parameters the solver exposes at each fire."""

    def __init__(self, interval, key):
        self.interval, self.key, self.seen = interval, key, {}

    @hookimpl
    def on_epoch(self, ctx, epoch):
        self.seen[epoch] = jax.device_get(ctx.params[self.key])


class CompileEvents:
    """Counts JAX tracing/lowering/XLA compilation events (jax.monitoring) while active."""

    def __init__(self):
        self.events = []

    def _cb(self, event, duration, **kw):
        if event.startswith("/jax/core/compile/"):
            self.events.append(event)

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._cb)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._cb)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    yield
    plugins.reset()


def test_norm_matches_numpy_and_reaches_the_sink(fresh):
    prob = small_problem()
    probe = ParamProbe(4, trainable_key(prob.net))
    tracker = jno.trackers.parameter_norm(interval=4)
    assert tracker.value is None and tracker.latest_epoch is None

    # count compilations during each fire: prepare() compiled everything already
    fires = []
    orig = tracker.on_epoch

    def counted(ctx, epoch):
        with CompileEvents() as ce:
            orig(ctx=ctx, epoch=epoch)
        fires.append(ce.events)

    tracker.on_epoch = counted
    sink = RecordingSink()
    hist = prob.crux.solve(9, callbacks=[probe, tracker, sink])
    assert fires == [[], [], []]

    res = tracker.result
    assert res["epochs"].tolist() == [0, 4, 8] and res["norms"].shape == (3,)
    for s, e in enumerate([0, 4, 8]):
        flat = np.concatenate([np.ravel(np.asarray(l, np.float64)) for l in jax.tree_util.tree_leaves(probe.seen[e])])
        want = np.sqrt(np.sum(flat**2))
        np.testing.assert_allclose(res["norms"][s], want, rtol=1e-6)
        assert sink.steps("example/parameter_norm").count(e) == 1
    logged = [m["example/parameter_norm"].value for _, m in sink.records if "example/parameter_norm" in m]
    np.testing.assert_allclose(logged, res["norms"], rtol=1e-7)
    # the core logs the same quantity as train/param_norm at its logged epochs
    np.testing.assert_allclose(res["norms"][0], hist.param_norm[0], rtol=1e-5)
    assert tracker.value["norms"] == res["norms"][-1] and tracker.latest_epoch == 8


def test_factory_is_the_registered_one(fresh):
    assert jno.trackers.parameter_norm is jno.callbacks.parameter_norm is jno_plugin_example.parameter_norm
