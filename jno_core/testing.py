"""Conformance tests for plugin authors, in the style of fsspec's abstract test classes.

Subclass one of the classes below in your plugin's own test module, under a name pytest
collects (``Test...``), set a few attributes, and pytest runs every inherited ``test_*``
method against your plugin::

    # plugins/jno-plugin-example/tests/test_example_conformance.py
    from jno_core.testing import TrackerConformance

    class TestParameterNorm(TrackerConformance):
        entry_point = "example"                 # the name in [project.entry-points.jno]
        distribution = "jno-plugin-example"     # optional: checked when given
        tracker_name = "parameter_norm"         # the name it registers
        result_keys = {"norm": ()}              # result[key].shape == (S, *trailing)

* :class:`TrackerConformance`: a diagnostic registered through ``jno_register_trackers``.
* :class:`SinkConformance`: a metrics sink registered through ``jno_register_sinks``.
* :class:`WeightingConformance`: a loss-weighting scheme registered through
  ``jno_register_weightings`` (or any :class:`~jno_core.weighting.WeightingScheme`).
* :class:`ResamplerConformance`: a collocation-point resampler registered through
  ``jno_register_resamplers`` (in :mod:`jno_core._resampler_kit`).

For the value tests a plugin adds on top (checks against an independent computation), the kit
also has :class:`ParamProbe` (the parameters at every fire), :class:`RecordingSink` and
:class:`BatchRecordingSink` (what the sinks receive, per step or in delivery batches),
:class:`CompileEvents` / :func:`count_compiles_per_fire` (JAX compilations while active /
during each fire), the ``fresh_plugins`` fixture, :func:`poisson_fields` (the
problem's expressions, for your own constraints) and a plain-JAX reference of the problem
(:func:`scalar_network`, :func:`poisson_residual`, :func:`poisson_losses`) that uses only the
network's equinox module and ``jax.grad``.

The plugin must be installed (``pip install -e plugins/<dist>``) so its entry point exists.
Every check trains on :func:`small_problem`, a 1-D Poisson problem built with
:func:`jno.nn.mlp` (no extra package needed). This module needs ``pytest``.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pytest

from . import _testkit, plugins
from ._testkit import (
    CORE_PREFIXES,
    CompileEvents,
    ParamProbe,
    PoissonFields,
    ProblemDims,
    BatchRecordingSink,
    RecordingSink,
    SmallProblem,
    count_compiles_per_fire,
    entry_point as _entry_point,
    finish_run as _finish_run,
    fresh_plugin_manager,
    jno_plugins_json,
    poisson_fields,
    poisson_losses,
    poisson_residual,
    scalar_network,
    small_problem,
)
from .metrics import METRIC_TYPES, Array, Heatmap, Histogram, Scalar

__all__ = ["fresh_plugins", "TrackerConformance", "SinkConformance", "WeightingConformance", "ResamplerConformance"]
__all__ += _testkit.__all__  # the helpers imported above


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
def fresh_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A pytest fixture: run the test in ``tmp_path`` (so runs and files land there) with the
    plugin registry reset before and after (:func:`jno_core.plugins.reset`). Import it into
    a test module and request it by name, or for every test of the module::

        from jno_core.testing import fresh_plugins  # noqa: F401  (a fixture)

        pytestmark = pytest.mark.usefixtures("fresh_plugins")
    """
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    yield
    plugins.reset()


# ---------------------------------------------------------------------------- base
class _PluginConformance:
    """Checks shared by every plugin kind. Subclasses set :attr:`entry_point`."""

    #: the entry-point name in ``[project.entry-points.jno]`` (required)
    entry_point: str = ""
    #: the distribution name; checked against the entry point when set
    distribution: str | None = None
    #: registry kind and the name registered in it (set by the kind-specific classes)
    kind: str = ""

    def registered_name(self) -> str | None:
        raise NotImplementedError

    def _plugin_instance(self) -> Any:
        """An instance of the plugin object that hooks into the solve (or None)."""
        return None

    def test_entry_point_declared(self) -> None:
        assert self.entry_point, f"{type(self).__name__}: set entry_point = '<name in [project.entry-points.jno]>'."
        ep = _entry_point(self.entry_point)
        if self.distribution is not None:
            assert ep.dist is not None and ep.dist.name == self.distribution, (
                f"entry point {self.entry_point!r} belongs to {ep.dist and ep.dist.name!r}, "
                f"expected {self.distribution!r}."
            )

    def test_registers_through_entry_point(self) -> None:
        plugins.reset()
        name = self.registered_name()
        records = {r["name"]: r for r in plugins.describe_plugins()}
        assert self.entry_point in records, f"describe_plugins() lists {sorted(records)}, not {self.entry_point!r}."
        if name is not None:
            entry = plugins.lookup(self.kind, name)
            assert entry.plugin == self.entry_point, (
                f"{self.kind} name {name!r} is registered by {entry.plugin!r}, expected {self.entry_point!r}."
            )
            assert name in records[self.entry_point]["registers"][self.kind]

    def test_listed_by_jno_plugins_command(self) -> None:
        records = {r["name"]: r for r in jno_plugins_json()}
        assert self.entry_point in records, f"`jno plugins --json` lists {sorted(records)}, not {self.entry_point!r}."
        rec = records[self.entry_point]
        if self.distribution is not None:
            assert rec["distribution"] == self.distribution
            assert rec["version"] == metadata.version(self.distribution)
        name = self.registered_name()
        if name is not None:
            assert name in rec["registers"][self.kind]

    def test_hookimpls_match_specs(self) -> None:
        pm = fresh_plugin_manager()
        module = _entry_point(self.entry_point).load()
        plugins.register_plugin(module, name=self.entry_point, pm=pm)
        inst = self._plugin_instance()
        if inst is not None:
            plugins.register_plugin(inst, name=f"{self.entry_point}-instance", pm=pm)
        pm.check_pending()
        registered: dict[str, list[str]] = {}
        hook = getattr(pm.hook, f"jno_register_{self.kind}")
        hook(register=lambda n, f: registered.setdefault(self.kind, []).append(n))
        name = self.registered_name()
        if name is not None:
            assert name in registered.get(self.kind, []), (
                f"{self.entry_point!r}'s jno_register_{self.kind} registered {registered.get(self.kind, [])}, "
                f"not {name!r}."
            )


# ---------------------------------------------------------------------------- trackers
class TrackerConformance(_PluginConformance):
    """Conformance tests for a tracker (diagnostic) plugin.

    Set :attr:`entry_point`, :attr:`tracker_name` and :attr:`result_keys`; override
    :meth:`make_tracker` when the factory needs arguments besides ``interval`` (e.g. an
    expression built from the problem). The tests check that the tracker

    * is declared as an entry point and registered under :attr:`tracker_name`, visible in
      :func:`~jno_core.plugins.describe_plugins`, ``jno plugins --json``, ``jno.trackers`` and
      ``jno.callbacks`` (the same factory);
    * has hookimpls that validate against the hookspecs (``pm.check_pending()``);
    * rejects ``interval <= 0`` with an error naming it;
    * fires exactly at ``epoch % interval == 0`` under chunking, across two ``solve()`` calls
      (global epochs), and logs plugin metrics only at those epochs;
    * fills ``.value`` (``None`` before the first fire, then a dict with the result keys equal
      to the last row of ``.result``), ``.latest_epoch`` and ``.result`` (``"epochs"`` ``(S,)``
      plus ``key`` ``(S, *trailing)``), as the trackers reference page describes;
    * leaves the training trajectory unchanged: losses and final parameters equal those of a
      solve without it.
    """

    kind = "trackers"
    #: the name passed to ``register`` (``jno.trackers.<tracker_name>``)
    tracker_name: str = ""
    #: ``{key: trailing shape}``; a shape is a tuple or a function of :class:`ProblemDims`
    #: (e.g. ``lambda d: (d.N,)``). ``result[key]`` must have shape ``(S, *trailing)``.
    result_keys: Mapping[str, tuple[int, ...] | Callable[[ProblemDims], tuple[int, ...]]] = {}
    #: metric keys that must be logged at every fire (optional)
    metric_keys: tuple[str, ...] = ()
    #: the interval, chunk size and epochs of the scheduling test (two solves)
    interval: int = 3
    chunk_size: int = 5
    epochs: tuple[int, int] = (20, 10)

    def make_tracker(self, problem: SmallProblem, interval: int) -> Any:
        """A fresh tracker for ``problem`` firing every ``interval`` epochs. The default
        calls the registered factory with ``interval=interval`` only."""
        return plugins.lookup("trackers", self.tracker_name).factory(interval=interval)

    def registered_name(self) -> str:
        assert self.tracker_name, f"{type(self).__name__}: set tracker_name = '<registered name>'."
        return self.tracker_name

    def _plugin_instance(self) -> Any:
        return self.make_tracker(small_problem(), self.interval)

    def _shape(self, spec: Any, dims: ProblemDims) -> tuple[int, ...]:
        return tuple(spec(dims) if callable(spec) else spec)

    # -------------------------------------------------------------- shared solves
    @pytest.fixture(scope="class")
    @classmethod
    def tracked(cls) -> dict[str, Any]:
        """:meth:`run_tracked`, once per class."""
        return cls.run_tracked()

    @classmethod
    def run_tracked(cls) -> dict[str, Any]:
        """Two solves with the tracker (and a recording sink), then the same two solves of
        an identical problem without it."""
        self = cls()
        _finish_run()
        prob = small_problem(chunk_size=self.chunk_size)
        tracker = self.make_tracker(prob, self.interval)
        before = (getattr(tracker, "value", "missing"), getattr(tracker, "latest_epoch", "missing"))
        sink = RecordingSink()
        e1, e2 = self.epochs
        log_every = e1 + e2 + 1  # the core logs its training metrics at epoch 0 only
        h1 = prob.crux.solve(e1, callbacks=[tracker, sink], log_every=log_every)
        after_first = {
            "value": tracker.value,
            "latest_epoch": tracker.latest_epoch,
            "epochs": np.asarray(tracker.result["epochs"]).copy(),
        }
        h2 = prob.crux.solve(e2, callbacks=[tracker, sink], log_every=log_every)
        ref = small_problem(chunk_size=self.chunk_size)
        r1 = ref.crux.solve(e1, log_every=log_every)
        r2 = ref.crux.solve(e2, log_every=log_every)
        return dict(prob=prob, tracker=tracker, before=before, sink=sink, after_first=after_first,
                    hists=(h1, h2), ref=ref, ref_hists=(r1, r2))

    # -------------------------------------------------------------- tests
    def test_same_factory_in_trackers_and_callbacks(self) -> None:
        import jno

        plugins.reset()
        assert getattr(jno.trackers, self.tracker_name) is getattr(jno.callbacks, self.tracker_name)

    def test_rejects_nonpositive_interval(self) -> None:
        from .errors import JnoError

        prob = small_problem()
        for bad in (0, -1):
            with pytest.raises((ValueError, TypeError, JnoError)) as info:
                self.make_tracker(prob, bad)
            assert self.tracker_name in str(info.value) or "interval" in str(info.value)

    def test_interval_attribute(self) -> None:
        tr = self.make_tracker(small_problem(), 7)
        assert tr.interval == 7

    def test_value_and_latest_epoch_start_as_none(self, tracked: dict[str, Any]) -> None:
        assert tracked["before"] == (None, None), (
            f"before the first fire .value and .latest_epoch must be None, got {tracked['before']}."
        )

    def test_fires_exactly_at_interval(self, tracked: dict[str, Any]) -> None:
        e1, e2 = self.epochs
        first = np.arange(0, e1, self.interval)
        both = np.arange(0, e1 + e2, self.interval)
        np.testing.assert_array_equal(tracked["after_first"]["epochs"], first)
        np.testing.assert_array_equal(tracked["tracker"].result["epochs"], both)
        assert tracked["after_first"]["latest_epoch"] == first[-1]
        assert tracked["tracker"].latest_epoch == both[-1]

    def test_logs_only_at_fire_epochs(self, tracked: dict[str, Any]) -> None:
        e1, e2 = self.epochs
        fires = set(range(0, e1 + e2, self.interval))
        logged = tracked["sink"].plugin_keys()
        stray = sorted(s for s in logged if s not in fires)
        assert not stray, f"plugin metrics logged at non-fire steps {stray}: {[logged[s] for s in stray]}"
        for step, metrics in tracked["sink"].records:
            for k, v in metrics.items():
                assert isinstance(v, METRIC_TYPES), f"{k!r} at step {step} is a {type(v).__name__}"
        for key in self.metric_keys:
            steps = sorted(set(tracked["sink"].steps(key)))
            assert steps == sorted(fires), f"{key!r} logged at {steps}, expected {sorted(fires)}"

    def test_result_shapes(self, tracked: dict[str, Any]) -> None:
        res = tracked["tracker"].result
        S = len(res["epochs"])
        dims = tracked["prob"].dims
        for key, spec in self.result_keys.items():
            assert key in res, f"result lacks {key!r}; it has {sorted(res)}"
            want = (S, *self._shape(spec, dims))
            assert np.shape(res[key]) == want, f"result[{key!r}] has shape {np.shape(res[key])}, expected {want}"

    def test_value_is_last_result_row(self, tracked: dict[str, Any]) -> None:
        tr = tracked["tracker"]
        assert isinstance(tr.value, dict), f".value must be a dict after a fire, got {type(tr.value).__name__}"
        first_value = tracked["after_first"]["value"]
        assert isinstance(first_value, dict)
        res = tr.result
        for key in self.result_keys:
            assert key in tr.value, f".value lacks {key!r}; it has {sorted(tr.value)}"
            np.testing.assert_array_equal(np.asarray(tr.value[key]), np.asarray(res[key])[-1])
            np.testing.assert_array_equal(
                np.asarray(first_value[key]), np.asarray(res[key])[len(tracked["after_first"]["epochs"]) - 1]
            )

    def test_does_not_change_trajectory(self, tracked: dict[str, Any]) -> None:
        import jax

        for h, r in zip(tracked["hists"], tracked["ref_hists"]):
            np.testing.assert_array_equal(h.epochs, r.epochs)
            np.testing.assert_array_equal(h.losses, r.losses)
            np.testing.assert_array_equal(h.total_loss, r.total_loss)
        a = jax.tree_util.tree_leaves(tracked["prob"].crux.state[0])
        b = jax.tree_util.tree_leaves(tracked["ref"].crux.state[0])
        for x, y in zip(a, b):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------------------- sinks
def _conformance_batch(step: int) -> dict[str, Any]:
    """One metric of every type (values depend on ``step``)."""
    return {
        "conformance/scalar": Scalar(0.5 + step),
        "conformance/nan": Scalar(float("nan")),
        "conformance/heatmap": Heatmap(np.arange(12, dtype=np.float32).reshape(3, 4) * (step + 1)),
        "conformance/histogram": Histogram(np.linspace(-1.0, 1.0, 50) * (step + 1), bins=10),
        "conformance/array": Array(np.arange(5, dtype=np.float32) + step),
    }


class SinkConformance(_PluginConformance):
    """Conformance tests for a metrics sink plugin.

    Set :attr:`entry_point` and :attr:`sink_name`, and implement :meth:`read_back`
    (override :meth:`make_sink` if the factory needs more than the run). The tests check that
    the sink is registered through its entry point (``describe_plugins``, ``jno plugins``),
    that its hookimpls validate, that it accepts every metric type (including a ``nan``
    scalar) and that what it wrote reads back: scalars with their steps and values, ``nan`` as
    ``nan``, the other kinds at their steps (and their values when :attr:`array_roundtrip`);
    that a sink implementing the optional ``log_metrics_batch`` writes the same as with one
    ``log_metrics`` call per record (and still implements ``log_metrics``); and finally that
    ``jno.setup(sinks=[sink_name])`` plus a solve writes ``loss/total``.
    """

    kind = "sinks"
    #: the name used in ``jno.setup(sinks=[...])``
    sink_name: str = ""
    #: metric kinds whose keys :meth:`read_back` can recover
    readable_kinds: tuple[str, ...] = ("scalar", "heatmap", "histogram", "array")
    #: whether :meth:`read_back` returns heatmap/array values that compare exactly
    array_roundtrip: bool = False
    #: extra keyword arguments for ``jno.setup`` in the end-to-end test
    setup_kwargs: Mapping[str, Any] = {}

    def make_sink(self, run: Any) -> Any:
        """A sink for ``run`` (default: the registered factory called with the run)."""
        return plugins.lookup("sinks", self.sink_name).factory(run)

    def read_back(self, run_dir: Path) -> dict[str, dict[str, list]]:
        """What the sink wrote under ``run_dir``: ``{key: {"steps": [...], "values": [...]}}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_back(run_dir).")

    def registered_name(self) -> str:
        assert self.sink_name, f"{type(self).__name__}: set sink_name = '<registered name>'."
        return self.sink_name

    @pytest.fixture
    def run(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        """A run directory under ``tmp_path`` with no sinks attached."""
        import jno

        monkeypatch.chdir(tmp_path)
        path = jno.setup(None, name="conformance", sinks="none", root=tmp_path / "runs", **dict(self.setup_kwargs))
        yield path.run
        _finish_run()

    def _write_batches(self, run: Any, steps: tuple[int, ...]) -> None:
        sink = self.make_sink(run)
        for s in steps:
            sink.log_metrics(step=s, metrics=_conformance_batch(s))
        for method in ("flush_metrics", "close_run"):
            fn = getattr(sink, method, None)
            if fn is not None:
                fn()

    def test_accepts_every_metric_type(self, run: Any) -> None:
        steps = (0, 1, 2)
        self._write_batches(run, steps)
        data = self.read_back(run.dir)
        got = data.get("conformance/scalar")
        assert got is not None, f"read_back found no 'conformance/scalar'; it found {sorted(data)}"
        assert list(map(int, got["steps"])) == list(steps)
        np.testing.assert_allclose(np.asarray(got["values"], dtype=np.float64), [0.5 + s for s in steps], rtol=1e-6)
        nan = data.get("conformance/nan")
        assert nan is not None, "a nan scalar must be written, not dropped"
        assert list(map(int, nan["steps"])) == list(steps)
        assert all(math.isnan(float(v)) for v in nan["values"]), f"nan read back as {nan['values']}"
        for kind in ("heatmap", "histogram", "array"):
            if kind not in self.readable_kinds:
                continue
            key = f"conformance/{kind}"
            assert key in data, f"read_back found no {key!r}; it found {sorted(data)}"
            assert list(map(int, data[key]["steps"])) == list(steps)
        if self.array_roundtrip:
            for s, hv, av in zip(steps, data["conformance/heatmap"]["values"], data["conformance/array"]["values"]):
                b = _conformance_batch(s)
                np.testing.assert_allclose(np.asarray(hv), b["conformance/heatmap"].values, rtol=1e-6)
                np.testing.assert_allclose(np.asarray(av), b["conformance/array"].values, rtol=1e-6)

    def test_batch_delivery_reads_back_like_single_calls(self, run: Any) -> None:
        """``log_metrics_batch`` (optional) writes what the same records sent one
        ``log_metrics`` call at a time would: here steps 0-2 in one batch, 3 alone, 4-5 in a
        second batch."""
        sink = self.make_sink(run)
        if getattr(sink, "log_metrics_batch", None) is None:
            pytest.skip(f"{type(sink).__name__} has no log_metrics_batch (optional): the delivery "
                        "thread calls log_metrics once per record")
        assert callable(getattr(sink, "log_metrics", None)), (
            f"{type(sink).__name__} implements log_metrics_batch but not log_metrics; a sink "
            "must implement log_metrics (the solve loop recognises sinks by it).")
        sink.log_metrics_batch(records=[(s, _conformance_batch(s)) for s in (0, 1, 2)])
        sink.log_metrics(step=3, metrics=_conformance_batch(3))
        sink.log_metrics_batch(records=[(s, _conformance_batch(s)) for s in (4, 5)])
        for method in ("flush_metrics", "close_run"):
            fn = getattr(sink, method, None)
            if fn is not None:
                fn()
        data = self.read_back(run.dir)
        steps = list(range(6))
        got = data.get("conformance/scalar")
        assert got is not None, f"read_back found no 'conformance/scalar'; it found {sorted(data)}"
        assert list(map(int, got["steps"])) == steps
        np.testing.assert_allclose(np.asarray(got["values"], dtype=np.float64), [0.5 + s for s in steps], rtol=1e-6)
        assert all(math.isnan(float(v)) for v in data["conformance/nan"]["values"])
        assert list(map(int, data["conformance/nan"]["steps"])) == steps
        for kind in ("heatmap", "histogram", "array"):
            if kind in self.readable_kinds:
                assert list(map(int, data[f"conformance/{kind}"]["steps"])) == steps
        if self.array_roundtrip:
            for s, hv in zip(steps, data["conformance/heatmap"]["values"]):
                np.testing.assert_allclose(np.asarray(hv), _conformance_batch(s)["conformance/heatmap"].values, rtol=1e-6)

    def test_end_to_end_through_setup(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import jno

        monkeypatch.chdir(tmp_path)
        _finish_run()
        path = jno.setup(None, name="e2e", sinks=[self.sink_name], root=tmp_path / "runs", **dict(self.setup_kwargs))
        prob = small_problem()
        hist = prob.crux.solve(20, log_every=5)
        _finish_run()
        data = self.read_back(Path(str(path)))
        got = data.get("loss/total")
        assert got is not None, f"read_back found no 'loss/total'; it found {sorted(data)}"
        assert list(map(int, got["steps"])) == [0, 5, 10, 15]
        np.testing.assert_allclose(np.asarray(got["values"], np.float64), hist.total_loss[[0, 5, 10, 15]], rtol=1e-6)


# ---------------------------------------------------------------------------- weightings
class WeightingConformance(_PluginConformance):
    """Conformance tests for a loss-weighting scheme.

    Implement :meth:`make_scheme` (or set :attr:`weighting_name` and keep the default, which
    calls ``jno.fn.adaptive.<weighting_name>(losses)``); set :attr:`entry_point` for the
    registration checks (leave it empty to skip them for a scheme that is not a plugin). The
    tests check, for ``K = 2`` and ``K = 3`` losses, that ``init`` / ``weights`` / ``update``
    are jit-able and agree with their eager results, that the state's pytree structure, leaf
    shapes and dtypes never change (``update`` runs inside ``lax.scan``), that the weights are
    finite with shape ``(K,)`` for losses spanning ``1e-6 .. 1e3``, and that the placeholders
    train the small problem with finite losses.
    """

    kind = "weightings"
    #: the registered name (``jno.fn.adaptive.<weighting_name>``), or None
    weighting_name: str | None = None

    def make_scheme(self, losses: list) -> Any:
        """The scheme (a :class:`~jno_core.weighting.WeightingScheme`) or its weight
        placeholders for the loss expressions ``losses``."""
        assert self.weighting_name, f"{type(self).__name__}: implement make_scheme(losses) or set weighting_name."
        return plugins.lookup("weightings", self.weighting_name).factory(losses)

    def registered_name(self) -> str | None:
        return self.weighting_name

    def _scheme_and_placeholders(self, losses: list) -> tuple[Any, tuple]:
        made = self.make_scheme(losses)
        if isinstance(made, (list, tuple)):
            return made[0].scheme, tuple(made)
        return made, made.placeholders()

    def _losses(self, k: int) -> list:
        p = small_problem()
        return [p.pde.mse, p.bc.mse, p.u.mse][:k]

    def _skip_unregistered(self) -> None:
        if not self.entry_point:
            pytest.skip("no entry_point set: the scheme is not checked as a plugin")

    def test_entry_point_declared(self) -> None:
        self._skip_unregistered()
        super().test_entry_point_declared()

    def test_registers_through_entry_point(self) -> None:
        self._skip_unregistered()
        super().test_registers_through_entry_point()

    def test_listed_by_jno_plugins_command(self) -> None:
        self._skip_unregistered()
        super().test_listed_by_jno_plugins_command()

    def test_hookimpls_match_specs(self) -> None:
        self._skip_unregistered()
        super().test_hookimpls_match_specs()

    @pytest.mark.parametrize("k", [2, 3])
    def test_jittable_and_matches_eager(self, k: int) -> None:
        import jax
        import jax.numpy as jnp

        scheme, _ = self._scheme_and_placeholders(self._losses(k))
        l0 = jnp.linspace(0.5, 2.0, k, dtype=jnp.float32)
        l1 = l0[::-1] * 0.9
        s_jit = jax.jit(scheme.init)(l0)
        s_eager = scheme.init(l0)
        u_jit = jax.jit(scheme.update)(s_jit, l1, jnp.int32(1))
        u_eager = scheme.update(s_eager, l1, jnp.int32(1))
        for a, b in zip(jax.tree_util.tree_leaves(u_jit), jax.tree_util.tree_leaves(u_eager)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.asarray(jax.jit(scheme.weights)(u_jit)), np.asarray(scheme.weights(u_eager)),
                                   rtol=1e-5, atol=1e-7)

    @pytest.mark.parametrize("k", [2, 3])
    def test_state_structure_stable_and_weights_finite(self, k: int) -> None:
        import jax
        import jax.numpy as jnp

        scheme, _ = self._scheme_and_placeholders(self._losses(k))
        rng = np.random.default_rng(0)
        seq = jnp.asarray(10.0 ** rng.uniform(-6, 3, size=(25, k)), jnp.float32)
        s0 = jax.jit(scheme.init)(seq[0])

        def sig(state: Any) -> Any:
            leaves, tree = jax.tree_util.tree_flatten(state)
            return tree, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]

        def body(state: Any, inp: Any) -> Any:
            losses, epoch = inp
            new = scheme.update(state, losses, epoch)
            return new, scheme.weights(new)

        final, ws = jax.jit(lambda s: jax.lax.scan(body, s, (seq[1:], jnp.arange(1, 25, dtype=jnp.int32))))(s0)
        assert sig(final) == sig(s0), f"state changed structure: {sig(s0)} -> {sig(final)}"
        ws = np.asarray(ws)
        assert ws.shape == (24, k), f"weights have shape {ws.shape[1:]}, expected ({k},)"
        assert np.all(np.isfinite(ws)), f"non-finite weights: {ws}"
        w0 = np.asarray(scheme.weights(s0))
        assert w0.shape == (k,) and np.all(np.isfinite(w0))

    def test_trains_small_problem(self) -> None:
        import jno

        _finish_run()
        p = small_problem()
        scheme, ws = self._scheme_and_placeholders(p.losses)
        assert len(ws) == len(p.losses)
        crux = jno.core([w * l for w, l in zip(ws, p.losses)], chunk_size=7)
        hist = crux.solve(20)
        assert hist.losses.shape == (20, 2)
        assert np.all(np.isfinite(hist.total_loss))
        state = crux.state[2][scheme.key]
        import jax

        assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(
            scheme.init(np.asarray(hist.losses[0], np.float32)))


from ._resampler_kit import ResamplerConformance  # noqa: E402  (it subclasses _PluginConformance)
