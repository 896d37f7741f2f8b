"""Tests of the example plugin: the core's conformance suite plus a value check against an
independent computation. Copy this file as the starting point of your own plugin's tests."""

import jax
import numpy as np

import jno
from jno_core.compile import trainable_key
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    ParamProbe,
    RecordingSink,
    TrackerConformance,
    count_compiles_per_fire,
    fresh_plugins,
    small_problem,
)

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
# Then check the values against an independent computation. The kit's ParamProbe records the
# parameters the solver hands every plugin at each fire, count_compiles_per_fire records the
# JAX compilations each fire causes (none: prepare() compiled everything) and RecordingSink
# keeps what the sinks receive. fresh_plugins runs a test in tmp_path with a reset registry.
def test_norm_matches_numpy_and_reaches_the_sink(fresh_plugins):
    prob = small_problem()
    probe = ParamProbe(4, trainable_key(prob.net))
    # count compilations during each fire: prepare() compiled everything already
    tracker = count_compiles_per_fire(jno.trackers.parameter_norm(interval=4))
    assert tracker.value is None and tracker.latest_epoch is None

    sink = RecordingSink()
    hist = prob.crux.solve(9, callbacks=[probe, tracker, sink])
    assert tracker.fire_compiles == [[], [], []]

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


def test_factory_is_the_registered_one(fresh_plugins):
    assert jno.trackers.parameter_norm is jno.callbacks.parameter_norm is jno_plugin_example.parameter_norm
