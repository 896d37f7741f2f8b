"""The time-to-accuracy benchmark (benchmarks/bench_accuracy.py): its pieces against hand-derived
values, and a tiny-budget run where jno and the hand-written loop must follow the same
trajectory (same network, points, loss and Adam)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import accuracy_problems as AP
from benchmarks import bench_accuracy as BA


def test_time_to_is_the_first_record_at_or_below_the_threshold() -> None:
    recs = [(0, 0.0, 1.0), (10, 0.5, 0.2), (20, 1.25, 0.04), (30, 2.0, 0.06), (40, 3.0, 0.009)]
    assert BA.time_to(recs, 5e-2) == 1.25
    assert BA.time_to(recs, 1e-2) == 3.0
    assert BA.time_to(recs, 0.2) == 0.5
    assert math.isnan(BA.time_to(recs, 1e-3))


def test_relative_l2_of_a_linear_model_matches_numpy() -> None:
    lin = eqx.nn.Linear(1, 1, key=jax.random.PRNGKey(3))
    params, static = eqx.partition(lin, eqx.is_inexact_array)
    x = np.linspace(0.0, 1.0, 11, dtype=np.float32)[:, None]
    ref = np.sin(np.pi * x[:, 0]).astype(np.float64)
    w, b = float(lin.weight[0, 0]), float(lin.bias[0])
    expected = np.linalg.norm(w * x[:, 0].astype(np.float64) + b - ref) / np.linalg.norm(ref)
    assert AP.relative_l2_fn(static, x, ref)(params) == pytest.approx(expected, rel=1e-5)


def test_hand_residuals_vanish_on_the_exact_poisson_solutions() -> None:
    z1 = jnp.array([0.3])
    u1 = lambda z: jnp.sin(jnp.pi * z[0]) / jnp.pi**2  # noqa: E731
    assert abs(float(AP.hand_residual("poisson1d", u1, z1))) < 1e-6
    z2 = jnp.array([0.3, 0.7])
    u2 = lambda z: jnp.sin(jnp.pi * z[0]) * jnp.sin(jnp.pi * z[1])  # noqa: E731
    assert abs(float(AP.hand_residual("poisson2d", u2, z2))) < 1e-4


def test_hand_burgers_residual_matches_a_hand_derived_value() -> None:
    # u = x^2 t: u_t = x^2, u_x = 2 x t, u_xx = 2 t, r = u_t + u u_x - nu u_xx
    x, t = 0.4, 0.6
    u = lambda z: z[0] ** 2 * z[1]  # noqa: E731
    expected = x**2 + (x**2 * t) * (2 * x * t) - (0.01 / np.pi) * 2 * t
    got = float(AP.hand_residual("burgers", u, jnp.array([x, t])))
    assert got == pytest.approx(expected, rel=1e-5)


def test_unknown_problem_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown problem 'heat'.*poisson1d"):
        AP.hand_residual("heat", lambda z: z[0], jnp.zeros(1))


def test_quick_run_jno_and_hand_follow_the_same_trajectory(capsys: pytest.CaptureFixture[str]) -> None:
    results = BA.main(["--quick", "--problem", "poisson1d", "--variant", "adam"])
    hand, jno_ = (next(r for r in results if r.impl == i) for i in ("hand", "jno"))
    b = BA.QUICK["poisson1d"]
    expected_epochs = list(range(0, b.adam + 1, b.eval_every))
    for r in (hand, jno_):
        assert [e for e, _, _ in r.records] == expected_epochs
        times = [t for _, t, _ in r.records]
        # jno's clock starts at on_solve_begin: its loop set-up before epoch 0 is counted
        assert times[0] >= 0.0 and all(b2 > a for a, b2 in zip(times, times[1:]))
        assert r.phases["adam"][0] == b.adam and r.compile_s > 0 and r.note == ""
    # same initial network and points: the same error at epoch 0, and (same loss, same Adam)
    # the same errors along the way to float32 rounding
    np.testing.assert_allclose([e for *_, e in jno_.records], [e for *_, e in hand.records], rtol=1e-3)
    assert jno_.records[-1][2] < 0.5 * jno_.records[0][2]  # it trained
    out = capsys.readouterr().out
    assert "| poisson1d | adam | jno |" in out and "| poisson1d | adam | hand |" in out and "jno/hand" in out


def test_budget_overrides_and_the_jno_fresh_column(capsys: pytest.CaptureFixture[str]) -> None:
    """``--adam/--lbfgs`` set the phases (evaluated every tenth); ``--impl jno-fresh`` runs
    jno with the L-BFGS step computing value and gradient afresh (no line-search reuse): the
    same optimisation up to rounding, and the reuse is switched back on afterwards."""
    from jno_core import chunk as chunk_mod

    before = chunk_mod.stored_value_key
    results = BA.main(["--problem", "poisson1d", "--variant", "lbfgs", "--impl", "jno", "jno-fresh",
                       "--adam", "20", "--lbfgs", "10"])
    assert chunk_mod.stored_value_key is before
    jno_, fresh = (next(r for r in results if r.impl == i and r.variant == "lbfgs") for i in ("jno", "jno-fresh"))
    for r in (jno_, fresh):
        assert [e for e, _, _ in r.records] == list(range(0, 21, 2)) + list(range(21, 31))
        assert r.phases == {"adam": (20, r.phases["adam"][1]), "lbfgs": (10, r.phases["lbfgs"][1])}
    np.testing.assert_allclose([e for *_, e in fresh.records], [e for *_, e in jno_.records], rtol=1e-3)
    assert jno_.records[-1][2] < 0.5 * jno_.records[20 // 2][2]  # L-BFGS trained
    assert "| poisson1d | lbfgs | jno-fresh |" in capsys.readouterr().out
