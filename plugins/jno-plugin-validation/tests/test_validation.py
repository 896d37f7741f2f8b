"""validation: test errors against NumPy computed from the network evaluated directly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jno
from jno_core.errors import ShapeError
from jno_core.testing import TrackerConformance, small_problem


def _test_domain(m: int = 37) -> tuple[jno.domain.ArrayDomain, np.ndarray]:
    xs = np.linspace(0.0, 1.0, m)[:, None]
    return jno.domain.from_array({"interior": xs}), xs


class TestValidationConformance(TrackerConformance):
    entry_point = "validation"
    distribution = "jno-plugin-validation"
    tracker_name = "validation"
    result_keys = {"l2_rel": (), "mae": (), "max_abs": ()}
    metric_keys = ("val/l2_rel", "val/mae", "val/max_abs")

    def make_tracker(self, problem, interval):
        dom, xs = _test_domain()
        return jno.trackers.validation(problem.u, domain=dom, reference=np.sin(np.pi * xs[:, 0]) / np.pi**2,
                                       interval=interval)


def test_errors_match_numpy_of_the_module():
    p = small_problem(chunk_size=7)
    dom, xs = _test_domain()
    exact = lambda pts: np.sin(np.pi * pts[:, 0]) / np.pi**2  # noqa: E731
    val = jno.trackers.validation(p.u, domain=dom, reference=exact, interval=10)
    p.crux.solve(30, callbacks=[val], progress=False)
    assert list(val.result["epochs"]) == [0, 10, 20]
    ref = exact(xs)
    # the last fire was at epoch 20: train an identical problem 20 epochs and evaluate its
    # equinox module directly at the test points
    q = small_problem(chunk_size=7)
    q.crux.solve(20, progress=False)
    pred20 = np.asarray(jax.vmap(q.net.module)(xs.astype(np.float32)))[:, 0]
    d = pred20 - ref
    np.testing.assert_allclose(val.result["l2_rel"][-1], np.linalg.norm(d) / np.linalg.norm(ref), rtol=1e-4)
    np.testing.assert_allclose(val.result["mae"][-1], np.mean(np.abs(d)), rtol=1e-4)
    np.testing.assert_allclose(val.result["max_abs"][-1], np.max(np.abs(d)), rtol=1e-4)


def test_missing_tag_and_bad_reference_are_clear_errors():
    p = small_problem()
    other = jno.domain.from_array({"test": np.zeros((4, 1))})
    with pytest.raises(ShapeError, match="'interior'.*tags are 'test'"):
        jno.trackers.validation(p.u, domain=other, reference=np.zeros(4))
    dom, xs = _test_domain(5)
    with pytest.raises(ValueError, match=r"shape \(4,\).*5 points"):
        jno.trackers.validation(p.u, domain=dom, reference=np.zeros(4))
    with pytest.raises(TypeError, match="jno domain"):
        jno.trackers.validation(p.u, domain=xs, reference=np.zeros(5))
