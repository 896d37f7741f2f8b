""":class:`ResamplerConformance`, the conformance class for resampler plugins (re-exported by
:mod:`jno_core.testing`; kept apart so that module stays small)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import plugins
from ._testkit import CompileEvents, RecordingSink, finish_run, small_problem
from .testing import _PluginConformance

__all__ = ["ResamplerConformance"]


class ResamplerConformance(_PluginConformance):
    """Conformance tests for a collocation-point resampler (``jno_register_resamplers``).

    Set :attr:`entry_point` (and optionally :attr:`distribution`) and :attr:`resampler_name`,
    or override :meth:`make_resampler`. The checks train :func:`small_problem` (1-D Poisson,
    19 interior grid points) with the resampler every :attr:`every` epochs and assert:

    * the point set keeps its count, columns and dtype, lies strictly inside the domain and
      changed;
    * the same seed gives the same points and parameters, another seed other points;
    * a second solve with resampling compiles nothing (no trace, no XLA compilation);
    * ``jno_state`` survives a JSON round trip and a new resampler loaded from it, on a solver
      whose points were reset, continues exactly like the uninterrupted run (parameters and
      points equal);
    * ``resample/kept_fraction`` (in ``[0, 1]``) and ``resample/mean_residual`` (finite,
      ``>= 0``) reach the sinks at every resample epoch.
    """

    kind = "resamplers"
    #: the registered name (``jno.resampling.<resampler_name>``)
    resampler_name: str | None = None
    #: resampling interval used by the checks
    every: int = 5

    def make_resampler(self, residual: Any, domain: Any, *, every: int, seed: int) -> Any:
        """The resampler for ``residual`` on ``domain`` (default:
        ``jno.resampling.<resampler_name>(residual, domain=domain, every=every, seed=seed)``)."""
        assert self.resampler_name, f"{type(self).__name__}: set resampler_name or implement make_resampler."
        return plugins.lookup("resamplers", self.resampler_name).factory(residual, domain=domain, every=every,
                                                                         seed=seed)

    def registered_name(self) -> str | None:
        return self.resampler_name

    def _run(self, epochs: int, seed: int = 0, callbacks: tuple = ()) -> tuple[Any, Any, str]:
        finish_run()
        p = small_problem(chunk_size=64)
        r = self.make_resampler(p.pde, p.domain, every=self.every, seed=seed)
        key = r.key
        p.crux.solve(epochs, callbacks=[r, *callbacks])
        return p, r, key

    def test_count_dtype_and_inside_domain(self) -> None:
        p, r, key = self._run(3 * self.every)
        before = np.asarray(p.domain.points("interior"))
        after = np.asarray(p.crux.points[key])
        assert after.shape == before.shape and after.dtype == before.dtype, (
            f"points changed from {before.shape} {before.dtype} to {after.shape} {after.dtype}")
        assert np.all(p.domain.shape.contains(after.astype(np.float64))), "resampled points outside the domain"
        assert not np.array_equal(np.sort(after, axis=0), np.sort(before, axis=0)), "no point was resampled"

    def test_same_seed_same_points(self) -> None:
        a, _, ka = self._run(2 * self.every, seed=3)
        b, _, kb = self._run(2 * self.every, seed=3)
        c, _, kc = self._run(2 * self.every, seed=4)
        np.testing.assert_array_equal(np.asarray(a.crux.points[ka]), np.asarray(b.crux.points[kb]))
        for la, lb in zip(_leaves(a.crux.params), _leaves(b.crux.params)):
            np.testing.assert_array_equal(la, lb)
        assert not np.array_equal(np.asarray(a.crux.points[ka]), np.asarray(c.crux.points[kc])), (
            "seed 3 and seed 4 gave the same points")

    def test_no_recompilation(self) -> None:
        p, r, key = self._run(self.every)
        with CompileEvents() as ce:
            p.crux.solve(3 * self.every, callbacks=[r])
        assert ce.events == [], f"resampling compiled during a second solve: {ce.events}"

    def test_resume_equals_uninterrupted(self) -> None:
        e = self.every
        full, _, kf = self._run(4 * e, seed=1)
        half, r, key = self._run(2 * e, seed=1)
        saved = json.loads(json.dumps(r.jno_state()))
        half.crux.set_points(key, np.asarray(half.domain.points("interior")))  # forget the live points
        r2 = self.make_resampler(half.pde, half.domain, every=e, seed=99)  # the state carries the key
        r2.jno_load_state(saved)
        half.crux.solve(2 * e, callbacks=[r2])
        np.testing.assert_array_equal(np.asarray(half.crux.points[key]), np.asarray(full.crux.points[kf]))
        for la, lb in zip(_leaves(half.crux.params), _leaves(full.crux.params)):
            np.testing.assert_array_equal(la, lb)

    def test_logs_what_it_did(self) -> None:
        sink = RecordingSink()
        self._run(3 * self.every, callbacks=(sink,))
        for name in ("resample/kept_fraction", "resample/mean_residual"):
            steps = sink.steps(name)
            assert steps == [self.every, 2 * self.every], f"{name} logged at {steps}"
        for s in (self.every, 2 * self.every):
            m = sink.at(s)
            kept = float(m["resample/kept_fraction"].value)
            mean = float(m["resample/mean_residual"].value)
            assert 0.0 <= kept <= 1.0 and np.isfinite(mean) and mean >= 0.0


def _leaves(tree: Any) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
