"""The conformance kit (jno_core.testing) run against a small fake distribution that provides
one tracker, one sink and one weighting scheme, plus checks that the kit catches broken
plugins (a tracker that perturbs training, one that fires off-interval, a sink that drops
nan, a scheme whose state changes structure)."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest

from jno_core import plugins
from jno_core.testing import SinkConformance, TrackerConformance, WeightingConformance

DIST = "jno-kit-selftest"
EP = "kitselftest"
MODULE = "jno_kit_selftest_mod"

SOURCE = '''
"""A tiny plugin used only by tests/test_conformance_kit.py."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.hookspecs import hookimpl
from jno_core.tracker import Tracker
from jno_core.weighting import WeightingScheme


class KitNorm(Tracker):
    """Parameter 2-norm () and unweighted constraint losses (N,)."""

    name = "kit_norm"
    result_keys = ("norm", "losses")

    def prepare(self, ctx):
        self._fn = ctx.compile(
            "kit_norm",
            lambda p: (jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(p))),
                       ctx.loss_vector(p)),
            ctx.params)

    def compute(self, ctx, epoch):
        n, l = self._fn(ctx.params)
        return {"norm": n, "losses": l}

    def metrics(self, value):
        return {"kit/norm": float(value["norm"])}


class KitJsonl:
    """Writes one JSON line per (step, key): scalars as numbers, arrays as lists."""

    def __init__(self, run):
        self.path = run.dir / "kit.jsonl"
        self.fh = None

    @hookimpl
    def log_metrics(self, step, metrics):
        if self.fh is None:
            self.fh = open(self.path, "a")
        for k, v in metrics.items():
            val = v.value if v.kind == "scalar" else np.asarray(v.values).tolist()
            self.fh.write(json.dumps({"step": step, "key": k, "kind": v.kind,
                                      "value": "nan" if v.kind == "scalar" and math.isnan(val) else val}) + "\\n")

    @hookimpl
    def flush_metrics(self):
        if self.fh is not None:
            self.fh.flush()

    @hookimpl
    def close_run(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class KitEma(WeightingScheme):
    """Weights proportional to an exponential moving average of the losses, summing to K."""

    name = "kit_ema"

    def init(self, losses):
        return {"ema": losses.astype(jnp.float32), "count": jnp.int32(0)}

    def weights(self, state):
        e = state["ema"] / (jnp.sum(state["ema"]) + 1e-12)
        return jax.lax.stop_gradient(e * e.shape[0])

    def update(self, state, losses, epoch):
        return {"ema": 0.9 * state["ema"] + 0.1 * losses, "count": state["count"] + 1}


@hookimpl
def jno_register_trackers(register):
    register("kit_norm", KitNorm)


@hookimpl
def jno_register_sinks(register):
    register("kit_jsonl", KitJsonl)


@hookimpl
def jno_register_weightings(register):
    register("kit_ema", lambda losses: KitEma(losses).placeholders())
'''


@pytest.fixture(scope="module", autouse=True)
def kit_dist(tmp_path_factory):
    """Install the fake distribution on sys.path (and PYTHONPATH for `jno plugins`)."""
    root = tmp_path_factory.mktemp("kitdist")
    (root / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE))
    info = root / f"{DIST.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[jno]\n{EP} = {MODULE}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        mp.delenv("JNO_LOAD_PLUGINS", raising=False)
        plugins.reset()
        yield root
    sys.modules.pop(MODULE, None)
    plugins.reset()


class TestKitTracker(TrackerConformance):
    entry_point = EP
    distribution = DIST
    tracker_name = "kit_norm"
    result_keys = {"norm": (), "losses": lambda d: (d.N,)}
    metric_keys = ("kit/norm", "explainability/time_ms/kit_norm")


class TestKitTrackerOtherSchedule(TrackerConformance):
    entry_point = EP
    tracker_name = "kit_norm"
    result_keys = {"losses": lambda d: (d.N,)}
    interval, chunk_size, epochs = 4, 3, (9, 8)


class TestKitSink(SinkConformance):
    entry_point = EP
    distribution = DIST
    sink_name = "kit_jsonl"
    array_roundtrip = True

    def read_back(self, run_dir):
        import json

        out: dict = {}
        for line in (run_dir / "kit.jsonl").read_text().splitlines():
            r = json.loads(line)
            d = out.setdefault(r["key"], {"steps": [], "values": []})
            d["steps"].append(r["step"])
            d["values"].append(float("nan") if r["value"] == "nan" else r["value"])
        return out


class TestKitWeighting(WeightingConformance):
    entry_point = EP
    distribution = DIST
    weighting_name = "kit_ema"


class TestKitWeightingWithoutEntryPoint(WeightingConformance):
    """A scheme that is not a plugin: registration checks are skipped."""

    def make_scheme(self, losses):
        from jno_kit_selftest_mod import KitEma

        return KitEma(losses)


# ---------------------------------------------------------------------------- the kit catches bugs
class PerturbingNorm(TestKitTracker):
    __test__ = False

    def make_tracker(self, problem, interval):
        from jno_kit_selftest_mod import KitNorm

        class Perturb(KitNorm):
            def compute(self, ctx, epoch):
                out = super().compute(ctx, epoch)
                p = ctx.crux.state
                ctx.crux.load_state(p._replace(params=jax_tree_scale(p.params, 1.0 + 1e-3)))
                return out

        return Perturb(interval=interval)


def jax_tree_scale(tree, c):
    import jax

    return jax.tree_util.tree_map(lambda x: x * c, tree)


class OffByOne(TestKitTracker):
    __test__ = False

    def make_tracker(self, problem, interval):
        from jno_kit_selftest_mod import KitNorm

        class Late(KitNorm):
            def on_epoch(self, ctx, epoch):
                if epoch > 0:
                    super().on_epoch(ctx, epoch - 1)

        return Late(interval=interval)


def test_kit_catches_a_tracker_that_changes_training():
    tracked = PerturbingNorm.run_tracked()
    with pytest.raises(AssertionError):
        PerturbingNorm().test_does_not_change_trajectory(tracked)


def test_kit_catches_a_tracker_that_fires_off_interval():
    tracked = OffByOne.run_tracked()
    with pytest.raises(AssertionError):
        OffByOne().test_fires_exactly_at_interval(tracked)


def test_kit_catches_a_sink_that_drops_nan(tmp_path, monkeypatch):
    class DropNan(TestKitSink):
        __test__ = False

        def read_back(self, run_dir):
            data = super().read_back(run_dir)
            data.pop("conformance/nan")
            return data

    import jno

    monkeypatch.chdir(tmp_path)
    run = jno.setup(None, name="x", sinks="none", root=tmp_path).run
    try:
        with pytest.raises(AssertionError, match="nan"):
            DropNan().test_accepts_every_metric_type(run)
    finally:
        jno.finish()


def _batch_check(tmp_path, monkeypatch, sink_cls, name):
    import jno

    class Check(TestKitSink):
        __test__ = False

        def make_sink(self, run):
            return sink_cls(run)

    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    run = jno.setup(None, name=name, sinks="none", root=tmp_path).run
    try:
        Check().test_batch_delivery_reads_back_like_single_calls(run)
    finally:
        jno.finish()


def test_kit_checks_log_metrics_batch(tmp_path, monkeypatch):
    import importlib

    from jno_core.hookspecs import hookimpl

    kit = importlib.import_module(MODULE)

    class Batched(kit.KitJsonl):
        @hookimpl
        def log_metrics_batch(self, records):
            for step, metrics in records:
                self.log_metrics(step, metrics)

    class FirstOnly(kit.KitJsonl):
        @hookimpl
        def log_metrics_batch(self, records):
            step, metrics = records[0]  # loses the rest of every batch
            self.log_metrics(step, metrics)

    class BatchOnly:
        def __init__(self, run):
            self.inner = Batched(run)

        @hookimpl
        def log_metrics_batch(self, records):
            self.inner.log_metrics_batch(records)

    _batch_check(tmp_path / "ok", monkeypatch, Batched, "ok")
    with pytest.raises(AssertionError):
        _batch_check(tmp_path / "first", monkeypatch, FirstOnly, "first")
    with pytest.raises(AssertionError, match="not log_metrics"):
        _batch_check(tmp_path / "only", monkeypatch, BatchOnly, "only")


def test_kit_catches_a_scheme_whose_state_changes_structure():
    import jax.numpy as jnp

    from jno_core.weighting import WeightingScheme

    class Growing(WeightingScheme):
        name = "growing"

        def init(self, losses):
            return {"ema": losses}

        def weights(self, state):
            return jnp.ones_like(state["ema"])

        def update(self, state, losses, epoch):
            return {"ema": losses, "extra": losses}

    class Bad(WeightingConformance):
        __test__ = False

        def make_scheme(self, losses):
            return Growing(losses)

    with pytest.raises((AssertionError, TypeError, ValueError)):
        Bad().test_state_structure_stable_and_weights_finite(2)
    np.testing.assert_equal(len(Bad()._losses(3)), 3)
