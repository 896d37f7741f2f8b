"""RAD, R3 and random resampling against formulas computed independently (NumPy, SciPy),
on known residual fields; domains incl. a disk, a polygon, a difference and a time domain;
diagnostics on the new points; resume through the checkpoint plugin."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import jno
from jno_core.compile import trainable_key
from jno_core.testing import (  # noqa: F401  (fresh_plugins: a fixture)
    RecordingSink,
    fresh_plugins,
    poisson_residual,
    small_problem,
)

import jno_plugin_resampling as R

pytestmark = pytest.mark.usefixtures("fresh_plugins")


# ---------------------------------------------------------------------------- the formulas
def test_rad_probabilities_match_the_formula():
    r = np.random.default_rng(0).uniform(0, 3, 500).astype(np.float32)
    for k, c in [(1.0, 1.0), (2.0, 0.0), (0.5, 3.0)]:
        w = r.astype(np.float64) ** k / np.mean(r.astype(np.float64) ** k) + c
        np.testing.assert_allclose(np.asarray(R.rad_probabilities(jnp.asarray(r), k, c)), w / w.sum(), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(R.rad_probabilities(jnp.zeros(4), 1.0, 0.0)), np.full(4, 0.25))


def test_rad_with_replacement_draws_from_p_chi_square():
    r = jnp.asarray([0.1, 0.5, 1.0, 2.0, 4.0, 0.0], jnp.float32)
    k, c, n = 1.0, 0.5, 40_000
    idx = np.asarray(R.rad_select(jax.random.PRNGKey(0), r, n, k, c, replace=True))
    w = np.asarray(r, np.float64) / np.mean(np.asarray(r, np.float64)) + c
    counts = np.bincount(idx, minlength=6)
    chi = stats.chisquare(counts, n * w / w.sum())
    assert chi.pvalue > 1e-3, (counts, n * w / w.sum(), chi)


def test_rad_without_replacement_inclusion_matches_successive_sampling():
    """Pool of 5, 2 drawn without replacement: P(i included) = p_i + sum_j p_j p_i / (1 - p_j),
    checked over 40,000 seeded draws; no draw repeats an index."""
    r = jnp.asarray([0.2, 1.0, 2.0, 3.0, 0.5], jnp.float32)
    k, c = 2.0, 0.3
    w = np.asarray(r, np.float64) ** k / np.mean(np.asarray(r, np.float64) ** k) + c
    p = w / w.sum()
    incl = np.array([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(5) if j != i) for i in range(5)])
    keys = jax.random.split(jax.random.PRNGKey(1), 40_000)
    idx = np.asarray(jax.vmap(lambda kk: R.rad_select(kk, r, 2, k, c))(keys))
    assert np.all(idx[:, 0] != idx[:, 1])
    freq = np.bincount(idx.ravel(), minlength=5) / len(idx)
    np.testing.assert_allclose(freq, incl, atol=4 * np.sqrt(incl * (1 - incl) / len(idx)).max())
    # the first pick alone is a draw from p
    chi = stats.chisquare(np.bincount(idx[:, 0], minlength=5), len(idx) * p)
    assert chi.pvalue > 1e-3


def test_r3_update_keeps_exactly_the_points_above_the_mean():
    rng = np.random.default_rng(2)
    pts = rng.uniform(size=(50, 2)).astype(np.float32)
    fresh = rng.uniform(size=(50, 2)).astype(np.float32)
    a = rng.exponential(size=50).astype(np.float32)
    new, keep = R.r3_update(jnp.asarray(pts), jnp.asarray(a), jnp.asarray(fresh))
    expect = a > a.mean()
    np.testing.assert_array_equal(np.asarray(keep), expect)
    np.testing.assert_array_equal(np.asarray(new), np.where(expect[:, None], pts, fresh))


# ---------------------------------------------------------------------------- through a solve
def line_problem(n=2000, seed=0):
    """A line with n sampled interior points, a small network trained on -u'' = 1 (the
    resamplers below read other, known fields on the same point set)."""
    jno.finish()
    dom = jno.domain.line(x_range=(0.0, 1.0), seed=seed)
    x, ps = dom.variable("interior", sample=(n, "uniform"))
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, output_dim=1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(1e-3))
    pde = -net(x).d2(x) - 1.0
    crux = jno.core([pde.mse, net(xb).mse], chunk_size=64)
    return dom, x, ps, crux


@pytest.mark.parametrize("c", [0.0, 1.0])
def test_rad_points_follow_the_density_ks(c):
    """Residual field |r(x)| = x, k = 1, sampling with replacement from a 16x pool: the new
    points have density proportional to x / E[x] + c = 2x + c on (0, 1), CDF (x^2 + c x) / (1 + c)."""
    dom, x, ps, crux = line_problem()
    r = jno.resampling.rad(x * 1.0, domain=dom, every=5, k=1.0, c=c, pool_factor=16, seed=3, replace=True)
    old = np.asarray(crux.points[ps.key])[:, 0]
    crux.solve(6, callbacks=[r])
    new = np.asarray(crux.points[ps.key])[:, 0]
    ks = stats.kstest(new, lambda t: (np.clip(t, 0, 1) ** 2 + c * np.clip(t, 0, 1)) / (1 + c))
    assert ks.pvalue > 1e-3, ks
    assert stats.kstest(new, "uniform").pvalue < 1e-6  # and it is not uniform
    rec = r.records[0]
    assert rec["epoch"] == 5 and rec["kept_fraction"] == 0.0
    np.testing.assert_allclose(rec["mean_residual"], np.mean(np.abs(old)), rtol=1e-5)


def test_r3_through_a_solve_keeps_the_points_above_the_mean():
    dom, x, ps, crux = line_problem(n=500)
    field = x - 0.3
    r = jno.resampling.r3(field, domain=dom, every=5, seed=0)
    old = np.asarray(crux.points[ps.key])
    crux.solve(6, callbacks=[r])
    new = np.asarray(crux.points[ps.key])
    a = np.abs(old[:, 0] - np.float32(0.3))
    keep = a > a.mean()
    np.testing.assert_array_equal(new[keep], old[keep])
    assert not np.any(new[~keep] == old[~keep])
    assert np.all((new > 0) & (new < 1))
    np.testing.assert_allclose(r.records[0]["kept_fraction"], keep.mean(), rtol=1e-6)
    np.testing.assert_allclose(r.records[0]["mean_residual"], a.mean(), rtol=1e-5)


def test_random_is_uniform_and_logs_metrics():
    dom, x, ps, crux = line_problem(n=1000)
    sink = RecordingSink()
    r = jno.resampling.random(x * 1.0, domain=dom, every=5, seed=0)
    crux.solve(11, callbacks=[r, sink])
    new = np.asarray(crux.points[ps.key])[:, 0]
    assert stats.kstest(new, "uniform").pvalue > 1e-3
    assert sink.steps("resample/kept_fraction") == [5, 10]
    assert float(sink.at(10)["resample/kept_fraction"].value) == 0.0
    assert [rec["epoch"] for rec in r.records] == [5, 10]


def _inside(dom, pts):
    return np.asarray(dom.shape.contains(pts[:, : dom.shape.dim].astype(np.float64)), bool)


@pytest.mark.parametrize("kind", ["disk", "poly", "difference", "box", "line_time", "disk_time"])
def test_device_sampler_stays_inside_and_is_uniform(kind):
    from jno_core.api import device_sampler

    if kind == "disk":
        dom = jno.domain.disk((0.5, -1.0), 2.0)
    elif kind == "poly":
        dom = jno.domain.poly([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])  # an L
    elif kind == "difference":
        dom = jno.domain.rect(x_range=(0, 1), y_range=(0, 1)) - jno.domain.disk((0.5, 0.5), 0.3)
    elif kind == "box":
        dom = jno.domain.box(x_range=(0, 1), y_range=(-1, 1), z_range=(2, 3))
    elif kind == "line_time":
        dom = jno.domain.line(x_range=(-1, 1), time=(0.0, 0.99, 100))
    else:
        dom = jno.domain.disk((0, 0), 1.0, time=(1.0, 2.0, 11))
    n = 4000
    pts = np.asarray(jax.jit(device_sampler(dom, "interior", n))(jax.random.PRNGKey(0)))
    assert pts.shape == (n, len(dom.coords)) and pts.dtype == np.float32
    assert np.all(_inside(dom, pts))
    if dom.time is not None:
        t = pts[:, -1]
        assert np.all((t >= dom.time.t0) & (t <= dom.time.t1))
        assert stats.kstest((t - dom.time.t0) / (dom.time.t1 - dom.time.t0), "uniform").pvalue > 1e-3
    if dom.shape.kind == "disk":  # uniform in area: (r / R)^2 ~ U(0, 1)
        rr = np.sum((pts[:, :2] - dom.shape.center) ** 2, axis=1) / dom.shape.radius**2
        assert stats.kstest(rr, "uniform").pvalue > 1e-3
    if kind == "poly":  # the three unit squares of the L get a third each
        sq = (pts[:, 0] > 1).astype(int) + 2 * (pts[:, 1] > 1).astype(int)
        assert stats.chisquare(np.bincount(sq, minlength=3)[:3]).pvalue > 1e-3


def test_resampling_on_disk_and_time_domains_stays_inside():
    jno.finish()
    disk = jno.domain.disk((0, 0), 1.0)
    x, y, ps = disk.variable("interior", sample=(256, "sobol"))
    net = jno.nn.wrap(jno.nn.mlp(2, output_dim=1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    pde = net(x, y).d2(x) + net(x, y).d2(y) + 1.0
    crux = jno.core([pde.mse])
    r = jno.resampling.rad(pde, domain=disk, every=3, seed=0)
    crux.solve(7, callbacks=[r])
    pts = np.asarray(crux.points[ps.key])
    assert pts.shape == (256, 2) and np.all(_inside(disk, pts)) and len(r.records) == 2

    tl = jno.domain.line(x_range=(-1, 1), time=(0.0, 1.0, 11))
    xt, tt, pst = tl.variable("interior", sample=(300, "uniform"))
    net2 = jno.nn.wrap(jno.nn.mlp(2, output_dim=1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(1)))
    net2.optimizer(optax.adam(1e-3))
    heat = net2(xt, tt).d(tt) - 0.1 * net2(xt, tt).d2(xt)
    crux2 = jno.core([heat.mse])
    for r2 in (jno.resampling.r3(heat, domain=tl, every=3), jno.resampling.rad(heat, domain=tl, every=3)):
        crux2.solve(7, callbacks=[r2])
        p = np.asarray(crux2.points[pst.key])
        assert p.shape == (300, 2) and np.all(_inside(tl, p))
        assert np.all((p[:, 1] >= 0.0) & (p[:, 1] <= 1.0))


def test_residual_stats_reports_on_the_new_points():
    """residual_stats every epoch, RAD every 5: the fire at 5 (host visit, after the
    resample) and at 6 (from the chunk's snapshot) equal NumPy statistics of the residual
    computed by hand (plain JAX, jax.grad) on the resampled points."""
    def build():
        p = small_problem(chunk_size=64)
        return p, jno.resampling.rad(p.pde, domain=p.domain, every=5, seed=0)

    a, ra = build()
    rs = jno.trackers.residual_stats(interval=1, constraints=[a.losses[0]])
    hist = a.crux.solve(9, callbacks=[ra, rs])
    res = rs.result
    # the points in use from epoch 5 on: those a solve to 6 ends with (no resample at 6)
    c, rc = build()
    c.crux.solve(6, callbacks=[rc])
    pts = np.asarray(c.crux.points[rc.key])[:, 0]
    for ep in (5, 6):
        b, rb = build()  # the same deterministic run stopped at ep: the parameters at ep
        b.crux.solve(ep, callbacks=[rb])
        module = eqx.combine(b.crux.params[trainable_key(b.net)], b.net.static)
        resid = np.asarray(poisson_residual(module, jnp.asarray(pts)))
        row = list(res["epochs"]).index(ep)
        np.testing.assert_allclose(res["means"][row, 0], resid.mean(), rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res["stds"][row, 0], resid.std(), rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res["maxes"][row, 0], resid.max(), rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res["p99"][row, 0], np.percentile(resid, 99), rtol=2e-4, atol=1e-6)
    old = np.asarray(a.domain.points("interior"))[:, 0]
    assert not np.allclose(np.sort(old), np.sort(pts))  # the new points differ from the grid
    assert len(hist.total_loss) == 9


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    def build():
        p = small_problem(chunk_size=64)
        return p, jno.resampling.r3(p.pde, domain=p.domain, every=5, seed=7)

    a, ra = build()
    a.crux.solve(20, callbacks=[ra])
    b, rb = build()
    ck = jno.callbacks.checkpoint(directory=tmp_path / "ck", save_interval_epochs=10, max_to_keep=None)
    b.crux.solve(13, callbacks=[rb, ck])
    c, rc = build()
    ck2 = jno.callbacks.checkpoint(directory=tmp_path / "ck")
    data = ck2.restore(step=10, crux=c.crux, plugins=[rc])
    assert data.step == 10 and rc.last_epoch == 10 and rc.plugin_name in data.plugin_state["plugins"]
    c.crux.solve(10, callbacks=[rc])
    np.testing.assert_array_equal(np.asarray(c.crux.points[rc.key]), np.asarray(a.crux.points[ra.key]))
    for la, lb in zip(jax.tree_util.tree_leaves(c.crux.params), jax.tree_util.tree_leaves(a.crux.params)):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    assert [x["epoch"] for x in rc.records] == [15]


def test_bad_arguments_are_clear_errors():
    dom, x, ps, crux = line_problem(n=10)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        jno.resampling.rad(x * 1.0, domain=dom, every=0)
    with pytest.raises(ValueError, match="do not come from the domain"):
        jno.resampling.r3(x * 1.0, domain=jno.domain.line(), every=5)
    with pytest.raises(ValueError, match="only 'interior'"):
        xb, _ = dom.variable("boundary")
        jno.resampling.random(xb * 1.0, domain=dom)
    with pytest.raises(TypeError, match="residual expression"):
        jno.resampling.rad(np.zeros(3), domain=dom)
    with pytest.raises(ValueError, match="k must be a finite number"):
        jno.resampling.rad(x * 1.0, domain=dom, k=-1)
    with pytest.raises(ValueError, match="expected an array of shape"):
        crux.set_points(ps.key, np.zeros((11, 1), np.float32))


def test_a_second_resampler_with_the_same_settings_uses_its_own_field():
    """The compiled function is cached on the solver by settings and the residual's structure:
    R3 on |x - 0.3| and then on |x - 0.7| keep the points above each field's own mean."""
    dom, x, ps, crux = line_problem(n=400)
    crux.solve(6, callbacks=[jno.resampling.r3(x - 0.3, domain=dom, every=5)])
    old = np.asarray(crux.points[ps.key])
    crux.solve(5, callbacks=[jno.resampling.r3(x - 0.7, domain=dom, every=5)])  # resamples at 10
    new = np.asarray(crux.points[ps.key])
    a = np.abs(old[:, 0] - np.float32(0.7))
    keep = a > a.mean()
    np.testing.assert_array_equal(new[keep], old[keep])
    assert not np.any(new[~keep] == old[~keep])


def test_start_delays_the_first_resample():
    dom, x, ps, crux = line_problem(n=50)
    r = jno.resampling.random(x * 1.0, domain=dom, every=5, start=10, seed=0)
    crux.solve(21, callbacks=[r])
    assert [rec["epoch"] for rec in r.records] == [10, 15, 20]
    with pytest.raises(ValueError, match="start must be a non-negative epoch"):
        jno.resampling.rad(x * 1.0, domain=dom, start=-1)
