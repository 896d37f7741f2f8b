"""ReLoBRaLo against the paper's update (arXiv:2110.09813, Eqs. 11-13) computed by hand in
NumPy (float64), on fixed loss sequences and on a live solve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno
from jno_core import plugins
from jno_core.testing import small_problem
from jno_plugin_relobralo import ReLoBRaLo


# ----------------------------------------------------------------------------- by hand
def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def np_fmix32(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def np_rho(epoch: int, seed: int, beta: float) -> float:
    """The documented draw: u = fmix32(epoch * 0x9E3779B9 + fmix32(seed)) >> 8, / 2**24."""
    h = np_fmix32((epoch * 0x9E3779B9 + np_fmix32(seed)) & 0xFFFFFFFF)
    u = (h >> 8) / float(1 << 24)
    return 1.0 if u < beta else 0.0


def np_relobralo(seq: np.ndarray, alpha: float, beta: float, tau: float, rhos: np.ndarray) -> np.ndarray:
    """Weights after each step: lam[t] = weights after the update with losses seq[t]
    (seq[0] are also the initial losses); Eqs. (11)-(13)."""
    k = seq.shape[1]
    lam = np.ones(k)
    l0 = seq[0]
    prev = seq[0]
    out = []
    for t, l in enumerate(seq):
        bal_prev = k * np_softmax(l / (tau * prev))
        bal_0 = k * np_softmax(l / (tau * l0))
        hist = rhos[t] * lam + (1 - rhos[t]) * bal_0
        lam = alpha * hist + (1 - alpha) * bal_prev
        prev = l
        out.append(lam)
    return np.asarray(out)


def run_scheme(scheme: ReLoBRaLo, seq: np.ndarray) -> np.ndarray:
    """Weights after each update, with the update inside lax.scan as in training."""
    s0 = scheme.init(jnp.asarray(seq[0], jnp.float32))

    def body(s, inp):
        l, e = inp
        s = scheme.update(s, l, e)
        return s, scheme.weights(s)

    _, ws = jax.jit(lambda s: jax.lax.scan(body, s, (jnp.asarray(seq, jnp.float32), jnp.arange(len(seq), dtype=jnp.int32))))(s0)
    return np.asarray(ws, np.float64)


def loss_sequence(k: int, n: int = 60, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = 10.0 ** rng.uniform(-2, 1, size=k)
    decay = np.exp(np.cumsum(rng.normal(-0.05, 0.2, size=(n, k)), axis=0))
    return (start * decay).astype(np.float32).astype(np.float64)


def losses_exprs(k: int) -> list:
    p = small_problem()
    return [p.pde.mse, p.bc.mse, p.u.mse][:k]


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("alpha,beta,tau", [(0.999, 0.99, 0.1), (0.5, 0.9, 1.0), (0.0, 0.5, 0.5)])
def test_expected_lookback_matches_hand_computation(k: int, alpha: float, beta: float, tau: float) -> None:
    seq = loss_sequence(k)
    scheme = ReLoBRaLo(losses_exprs(k), alpha=alpha, beta=beta, tau=tau, lookback="expected")
    want = np_relobralo(seq, alpha, beta, tau, np.full(len(seq), beta))
    got = run_scheme(scheme, seq)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), k, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.6])
def test_bernoulli_lookback_matches_hand_computation(beta: float) -> None:
    seq = loss_sequence(2, n=80, seed=3)
    scheme = ReLoBRaLo(losses_exprs(2), alpha=0.9, beta=beta, tau=0.2, seed=7)
    rhos = np.asarray([np_rho(t, 7, beta) for t in range(len(seq))])
    if beta == 0.6:
        assert 0 < rhos.sum() < len(rhos)  # both branches exercised
    want = np_relobralo(seq, 0.9, beta, 0.2, rhos)
    np.testing.assert_allclose(run_scheme(scheme, seq), want, rtol=2e-5, atol=1e-6)


def test_bernoulli_draws_have_expected_frequency() -> None:
    scheme = ReLoBRaLo(losses_exprs(2), beta=0.7, seed=3)
    rho = np.asarray(jax.jit(jax.vmap(scheme.rho))(jnp.arange(20000, dtype=jnp.int32)))
    assert set(np.unique(rho)) <= {0.0, 1.0}
    assert abs(rho.mean() - 0.7) < 0.015  # 4.6 sigma of Bernoulli(0.7) over 20000 draws
    # consecutive draws are not correlated
    assert abs(np.corrcoef(rho[:-1], rho[1:])[0, 1]) < 0.05


def test_defaults_are_the_papers() -> None:
    scheme = ReLoBRaLo(losses_exprs(2))
    assert (scheme.alpha, scheme.beta, scheme.tau, scheme.lookback) == (0.999, 0.99, 0.1, "bernoulli")


def test_first_update_is_neutral_and_weights_sum_to_k() -> None:
    scheme = ReLoBRaLo(losses_exprs(3))
    l0 = jnp.asarray([0.3, 20.0, 1e-4], jnp.float32)
    s = scheme.init(l0)
    np.testing.assert_array_equal(np.asarray(scheme.weights(s)), np.ones(3))
    s = scheme.update(s, l0, jnp.int32(0))
    np.testing.assert_allclose(np.asarray(scheme.weights(s)), np.ones(3), rtol=1e-6)
    # a loss that shrinks relative to the others loses weight, one that grows gains weight
    s = scheme.update(s, jnp.asarray([0.03, 20.0, 2e-4], jnp.float32), jnp.int32(1))
    w = np.asarray(scheme.weights(s))
    assert w[0] < 1 < w[2]
    np.testing.assert_allclose(w.sum(), 3.0, rtol=1e-6)


def test_zero_loss_does_not_produce_nan() -> None:
    scheme = ReLoBRaLo(losses_exprs(2), alpha=0.5)
    s = scheme.init(jnp.asarray([0.0, 1.0], jnp.float32))
    s = scheme.update(s, jnp.asarray([0.0, 0.5], jnp.float32), jnp.int32(0))
    s = scheme.update(s, jnp.asarray([1e-3, 0.5], jnp.float32), jnp.int32(1))
    w = np.asarray(scheme.weights(s))
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w.sum(), 2.0, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"alpha": 1.5}, "alpha"), ({"beta": -0.1}, "beta"), ({"tau": 0.0}, "tau"), ({"lookback": "sometimes"}, "lookback")],
)
def test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReLoBRaLo(losses_exprs(2), **kwargs)


def test_rejects_a_single_expression() -> None:
    p = small_problem()
    with pytest.raises(TypeError, match="list of loss expressions"):
        jno.fn.adaptive.relobralo(p.pde.mse)


# ----------------------------------------------------------------------------- live
def spec_problem(trackers: bool, **kw):
    """The spec's usage: w_pde, w_bc = relobralo([pde.mse, bc.mse]); core with .tracker()."""
    plugins.reset()
    p = small_problem()
    w_pde, w_bc = jno.fn.adaptive.relobralo([p.pde.mse, p.bc.mse], **kw)
    terms = [w_pde * p.pde.mse, w_bc * p.bc.mse]
    if trackers:
        terms += [w_pde.tracker(), w_bc.tracker()]
    return p, w_pde, w_bc, jno.core(terms, chunk_size=16)


def test_live_solve_follows_the_paper_update() -> None:
    """Weights logged every epoch by .tracker() against the recursion driven by the unweighted
    losses, recovered as hist.losses / weights."""
    p, w_pde, w_bc, crux = spec_problem(True, alpha=0.9, beta=0.8, tau=0.5, seed=2)
    hist = crux.solve(40)
    w = np.stack([hist.trackers["tracker_0"].values, hist.trackers["tracker_1"].values], axis=1).astype(np.float64)
    assert w.shape == (40, 2)
    np.testing.assert_allclose(w.sum(axis=1), 2.0, rtol=1e-5)
    np.testing.assert_array_equal(w[0], [1.0, 1.0])
    unweighted = hist.losses / w  # training records the weighted losses
    rhos = np.asarray([np_rho(t, 2, 0.8) for t in range(40)])
    want = np_relobralo(unweighted, 0.9, 0.8, 0.5, rhos)  # want[t] = weights used at t + 1
    np.testing.assert_allclose(w[1:], want[:-1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(w[-1], 1.0)


def test_trackers_and_eval_do_not_advance_the_state() -> None:
    _, w_pde, w_bc, crux = spec_problem(True)
    crux.solve(25)
    before = np.asarray(crux.state[2][w_pde.scheme.key])
    for _ in range(3):
        vals = crux.eval([w_pde, w_bc, w_pde.tracker(), w_pde * 2.0])
    np.testing.assert_array_equal(np.asarray(crux.state[2][w_pde.scheme.key]), before)
    w_now = np.asarray(w_pde.scheme.weights(jnp.asarray(before)))
    np.testing.assert_allclose([float(vals[0]), float(vals[1])], w_now, rtol=1e-6)
    np.testing.assert_allclose(float(vals[3]), 2 * w_now[0], rtol=1e-6)
    assert int(crux.state[3]) == 25


def test_trackers_do_not_change_the_trajectory() -> None:
    _, _, _, with_trackers = spec_problem(True)
    _, _, _, without = spec_problem(False)
    h1 = with_trackers.solve(30)
    h2 = without.solve(30)
    np.testing.assert_array_equal(h1.losses, h2.losses)
