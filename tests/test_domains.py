"""Domains: shapes, samplers, normals, time tags, observation data, evaluation anywhere.
Expected values come from scipy / numpy / hand-derived geometry, not from jno."""

from __future__ import annotations

import json
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import qmc

import jno
from jno_core.errors import ShapeError

L_SHAPE = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]


def _pts(dom, tag, **kw):
    return dom.variable(tag, **kw)[-1].points.astype(np.float64)


def _scipy_rng(seed, tag):
    return np.random.default_rng([seed, zlib.crc32(tag.encode())])


# ------------------------------------------------------------------ samplers
def test_sobol_points_equal_scipys_for_the_same_seed():
    dom = jno.domain.rect(x_range=(-1, 3), y_range=(0, 2), seed=7)
    got = _pts(dom, "interior", sample=(256, "sobol"))
    u = qmc.Sobol(2, rng=_scipy_rng(7, "interior")).random(256)
    np.testing.assert_allclose(got, np.array([-1, 0]) + np.array([4, 2]) * u, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sampler", ["uniform", "sobol", "halton", "lhs"])
@pytest.mark.parametrize("make", [
    lambda: jno.domain.disk((0.5, -0.2), 0.7),
    lambda: jno.domain.poly(L_SHAPE),
    lambda: jno.domain.rect(x_range=(-1, 1), y_range=(-1, 1)) - jno.domain.disk((0, 0), 0.5),
    lambda: jno.domain.box(x_range=(0, 1), y_range=(0, 2), z_range=(-1, 0)),
])
def test_samples_lie_inside_the_shape(make, sampler):
    dom = make()
    p = _pts(dom, "interior", sample=(300, sampler))
    assert p.shape == (300, dom.shape.dim)
    assert dom.shape.contains(p).all()
    if isinstance(dom.shape, jno.domain.Domain) or dom.kind == "disk":
        assert np.all(np.hypot(p[:, 0] - 0.5, p[:, 1] + 0.2) < 0.7)
    if dom.kind == "poly":  # the L: [0,2]^2 without the square (1,2]x(1,2]
        assert np.all((p >= 0) & (p <= 2)) and not np.any((p[:, 0] > 1) & (p[:, 1] > 1))
    if dom.kind == "difference":
        assert np.all(np.hypot(p[:, 0], p[:, 1]) >= 0.5) and np.all(np.abs(p) <= 1)


def test_sobol_has_lower_discrepancy_than_uniform():
    dom = jno.domain.rect(seed=1)
    d_sobol = qmc.discrepancy(_pts(dom, "interior", sample=(1024, "sobol")))
    d_unif = qmc.discrepancy(_pts(dom, "interior", sample=(1024, "uniform")))
    assert d_sobol < 0.2 * d_unif


def test_disk_interior_is_uniform_in_area():
    p = _pts(jno.domain.disk((0, 0), 2.0, seed=3), "interior", sample=(4096, "sobol"))
    r = np.hypot(p[:, 0], p[:, 1])
    # uniform in area: P(r < s) = (s / R)^2
    for s in (0.5, 1.0, 1.5):
        assert abs(np.mean(r < s) - (s / 2.0) ** 2) < 0.01


def test_callable_sampler_and_bad_sampler():
    dom = jno.domain.rect(x_range=(0, 2))
    p = _pts(dom, "interior", sample=(5, lambda n, d, rng: np.full((n, d), 0.25)))
    np.testing.assert_allclose(p, np.tile([0.5, 0.25], (5, 1)))
    with pytest.raises(ValueError, match="unknown sampler 'sobl'"):
        dom.variable("interior", sample=(5, "sobl"))
    with pytest.raises(ValueError, match=r"returned shape \(5,\)"):
        dom.variable("boundary", sample=(5, lambda n, d, rng: np.zeros(n)))


def test_grid_sampler_subsets_the_grid_and_refuses_too_many():
    dom = jno.domain.rect(mesh_size=0.25)
    grid = dom.points("interior")
    assert grid.shape == (9, 2)
    sub = _pts(dom, "interior", sample=(4, "grid"))
    assert len({tuple(r) for r in sub}) == 4
    assert all(any(np.allclose(r, g) for g in grid) for r in sub)
    with pytest.raises(ValueError, match="asks for 10 points.*only 9"):
        dom.variable("interior", sample=(10, "grid"))


def test_per_axis_mesh_size():
    dom = jno.domain.rect(mesh_size=(0.5, 0.1), x_range=(0, 1), y_range=(0, 1))
    p = dom.points("interior")
    assert len(np.unique(p[:, 0])) == 1 and len(np.unique(p[:, 1])) == 9


# ------------------------------------------------------------------ boundaries and normals
def test_disk_boundary_on_circle_with_analytic_normals():
    c, R = np.array([1.0, -2.0]), 0.5
    dom = jno.domain.disk(c, R)
    for sample in (None, (200, "halton")):
        p = _pts(dom, "boundary", sample=sample, normals=True)
        np.testing.assert_allclose(np.hypot(*(p[:, :2] - c).T), R, atol=1e-6)
        np.testing.assert_allclose(p[:, 2:], (p[:, :2] - c) / R, atol=1e-5)


def test_polygon_boundary_normals_are_unit_and_outward():
    dom = jno.domain.poly(L_SHAPE[::-1])  # clockwise input
    p = _pts(dom, "boundary", sample=(400, "sobol"), normals=True)
    x, n = p[:, :2], p[:, 2:]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-6)
    eps = 1e-3
    inside_out = dom.shape.contains(x + eps * n)
    inside_in = dom.shape.contains(x - eps * n)
    # away from the corners a step along n leaves the shape and a step against it enters it
    far = np.min(np.abs(x[:, :, None] - np.array([0, 1, 2])[None, None]), axis=2).max(axis=1) > 2 * eps
    assert not inside_out[far].any() and inside_in[far].all()


def test_boundary_split_by_length_and_no_duplicate_corners():
    dom = jno.domain.rect(x_range=(0, 3), y_range=(0, 1))
    n = 800
    p = _pts(dom, "boundary", sample=(n, "sobol"))
    on_bottom = np.isclose(p[:, 1], 0) & (p[:, 0] < 3)
    on_left = np.isclose(p[:, 0], 0) & (p[:, 1] > 0)
    assert abs(on_bottom.mean() - 3 / 8) < 2 / n and abs(on_left.mean() - 1 / 8) < 2 / n
    g = dom.points("boundary")  # grid: each corner once
    assert len({tuple(r) for r in g.tolist()}) == len(g)
    # a hole's circle gets its share of the total boundary length
    holed = jno.domain.rect(x_range=(-1, 1), y_range=(-1, 1)) - jno.domain.disk((0, 0), 0.5)
    q = _pts(holed, "boundary", sample=(2000, "sobol"), normals=True)
    on_circle = np.isclose(np.hypot(q[:, 0], q[:, 1]), 0.5, atol=1e-5)
    assert abs(on_circle.mean() - np.pi / (8 + np.pi)) < 0.01
    # normals of the hole point into the hole (out of the plate)
    np.testing.assert_allclose(q[on_circle, 2:], -q[on_circle, :2] / 0.5, atol=1e-5)


def test_box_faces_by_area_with_normals():
    dom = jno.domain.box(x_range=(0, 2), y_range=(0, 1), z_range=(0, 1))
    p = _pts(dom, "boundary", sample=(1000, "sobol"), normals=True)
    x, n = p[:, :3], p[:, 3:]
    on_x = np.isclose(x[:, 0], 0) | np.isclose(x[:, 0], 2)
    assert abs(on_x.mean() - 2 / 10) < 0.01  # x-faces: 2 * 1 of the total area 10
    np.testing.assert_allclose(n[on_x & np.isclose(x[:, 0], 2)], np.tile([1, 0, 0], (int((on_x & np.isclose(x[:, 0], 2)).sum()), 1)))
    assert dom.points("interior").shape[1] == 3


# ------------------------------------------------------------------ time
def test_time_tags():
    dom = jno.domain.line(mesh_size=0.5, x_range=(-1, 1), time=(0.0, 1.0, 5))
    assert dom.tags == ["interior", "boundary", "left", "right", "initial"]
    x, t, ps = dom.variable("interior")
    assert (x.name, t.name) == ("x", "t")
    ip = dom.points("interior")
    assert set(np.round(ip[:, 0], 6)) == {-0.5, 0.0, 0.5} and set(np.round(ip[:, 1], 6)) == {0.25, 0.5, 0.75, 1.0}
    ini = dom.points("initial")
    np.testing.assert_allclose(ini[:, 1], 0.0)
    assert sorted(np.round(ini[:, 0], 6)) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    b = dom.points("boundary")
    assert set(np.round(b[:, 0], 6)) == {-1.0, 1.0} and len(b) == 2 * 5
    s = _pts(dom, "interior", sample=(500, "halton"))
    assert np.all((s[:, 1] >= 0) & (s[:, 1] <= 1) & (np.abs(s[:, 0]) < 1))
    s0 = _pts(dom, "initial", sample=(50, "uniform"))
    np.testing.assert_allclose(s0[:, 1], 0.0)
    r = jno.domain.rect(time=(0, 2, 3))
    assert len(r.variable("interior")) == 4


def test_time_derivatives_and_jacobian_are_exact():
    dom = jno.domain.rect(time=(0.0, 1.0, 4), seed=2)
    x, y, t, ps = dom.variable("interior", sample=(64, "sobol"))
    f = jno.np.sin(x) * y**2 * t**3
    J = jno.Jacobian(f, [x, y, t])
    crux = jno.core([f.mse])
    ft, fxx, jac, mixed = crux.eval([f.d(t), f.d2(x), J, f.d(x).d(t)])
    X, Y, T = ps.points.T.astype(np.float64)
    np.testing.assert_allclose(ft, 3 * np.sin(X) * Y**2 * T**2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fxx, -np.sin(X) * Y**2 * T**3, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jac[:, 1], 2 * np.sin(X) * Y * T**3, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mixed, 3 * np.cos(X) * Y**2 * T**2, rtol=1e-4, atol=1e-5)


def test_derivative_modes_agree(monkeypatch):
    from jno_core import compile as C

    dom = jno.domain.line(x_range=(-1, 1), time=(0, 1, 5), seed=0)
    x, t, _ = dom.variable("interior", sample=(50, "sobol"))
    net = jno.nn.wrap(jno.nn.mlp(2, 1, 8, 2, key=jax.random.PRNGKey(1)))
    u = net(x, t)
    res = u.d(t) + u * u.d(x) - 0.1 * u.d2(x)
    out = {}
    for mode in ("nested", "chain", "jet"):
        monkeypatch.setattr(C, "DERIVATIVE_MODE", mode)
        out[mode] = jno.core([res.mse]).eval(res)
    np.testing.assert_allclose(out["chain"], out["nested"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["jet"], out["nested"], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ observation data, eval anywhere
def test_eval_on_another_domain_equals_the_module():
    dom = jno.domain.line(x_range=(-1, 1), time=(0, 1, 5))
    x, t, _ = dom.variable("interior", sample=(30, "lhs"))
    mod = jno.nn.mlp(2, 1, 16, 2, key=jax.random.PRNGKey(4))
    net = jno.nn.wrap(mod)
    net.optimizer(optax.adam(1e-3))
    u = net(x, t)
    crux = jno.core([u.mse])
    X, T = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(0, 1, 3), indexing="ij")
    pts = np.stack([X.ravel(), T.ravel()], 1).astype(np.float32)
    test = jno.domain.from_array({"interior": pts})
    direct = np.asarray(jax.vmap(mod)(jnp.asarray(pts)))[:, 0]
    np.testing.assert_allclose(crux.eval(u, domain=test), direct, rtol=1e-6, atol=1e-6)
    # a derivative too: d/dx by central differences of the module
    h = 1e-2
    fd = (np.asarray(jax.vmap(mod)(jnp.asarray(pts + [h, 0])))[:, 0]
          - np.asarray(jax.vmap(mod)(jnp.asarray(pts - [h, 0])))[:, 0]) / (2 * h)
    np.testing.assert_allclose(crux.eval([u.d(x)], domain=test)[0], fd, atol=2e-3)
    # the training points are unchanged
    assert crux.eval(u).shape == (30,)
    with pytest.raises(ShapeError, match="tagged 'interior'.*tags are 'obs'"):
        crux.eval(u, domain=jno.domain.from_array({"obs": pts}))


def test_from_array_values_in_a_constraint():
    rng = np.random.default_rng(0)
    pts = rng.random((40, 2))
    vals = np.sin(pts[:, 0]) + pts[:, 1]
    obs = jno.domain.from_array({"obs": pts}, values={"obs": vals})
    xo, to, _ = obs.variable("obs")
    u_obs = obs.values("obs")
    mod = jno.nn.mlp(2, 1, 8, 2, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(mod)
    net.optimizer(optax.adam(1e-3))
    data = (net(xo, to) - u_obs).mse
    crux = jno.core([data])
    pred = np.asarray(jax.vmap(mod)(jnp.asarray(pts, jnp.float32)))[:, 0]
    np.testing.assert_allclose(crux.eval(data), np.mean((pred - vals) ** 2), rtol=1e-5)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="self-intersects"):
        jno.domain.poly([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(ValueError, match="radius must be > 0"):
        jno.domain.disk((0, 0), 0.0)
    with pytest.raises(ValueError, match="t1 > t0"):
        jno.domain.line(time=(1.0, 1.0, 10))
    with pytest.raises(ShapeError, match="rank 1.*expected rank 2"):
        jno.domain.from_array({"obs": np.zeros(5)})
    with pytest.raises(ShapeError, match=r"shape \(4,\) but the tag has 5 points"):
        jno.domain.from_array({"obs": np.zeros((5, 2))}, values={"obs": np.zeros(4)})
    with pytest.raises(ShapeError, match="normals=True needs a boundary tag"):
        jno.domain.disk().variable("interior", normals=True)
    with pytest.raises(ShapeError, match="unknown variable tag 'initial'"):
        jno.domain.rect().variable("initial")


def test_seed_reproducible_and_recorded_in_config(tmp_path):
    run = jno.setup("seeded.py", name="r", root=tmp_path, sinks="none", seed=11)
    a = _pts(jno.domain.rect(), "interior", sample=(64, "sobol"))
    b = _pts(jno.domain.rect(), "interior", sample=(64, "sobol"))
    c = _pts(jno.domain.rect(seed=12), "interior", sample=(64, "sobol"))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    cfg = json.loads((tmp_path / "seeded" / "r" / "config.json").read_text())
    entries = [s for d in cfg["domains"].values() for s in d["sets"].values() if s.get("sampler") == "sobol"]
    assert {e["seed"] for e in entries} >= {11, 12} and all(e["n"] == 64 for e in entries)
    jno.finish()
    assert run


# ------------------------------------------------------------------ network initialisation
@pytest.mark.parametrize("init,std", [("glorot_normal", lambda i, o: np.sqrt(2 / (i + o))),
                                      ("he_normal", lambda i, o: np.sqrt(2 / i)),
                                      ("glorot_uniform", lambda i, o: np.sqrt(6 / (i + o)) / np.sqrt(3))])
def test_mlp_init(init, std):
    m = jno.nn.mlp(300, 1, hidden_dims=200, num_layers=1, key=jax.random.PRNGKey(0), init=init)
    w = np.asarray(m.hidden_layers[0].weight)
    assert w.shape == (200, 300)
    assert abs(w.std() / std(300, 200) - 1) < 0.05
    np.testing.assert_array_equal(np.asarray(m.hidden_layers[0].bias), 0.0)
    d = jno.nn.mlp(3, 1, 4, 1, key=jax.random.PRNGKey(0))
    ref = jno.nn.MLP(3, 1, 4, 1, key=jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(d.hidden_layers[0].weight), np.asarray(ref.hidden_layers[0].weight))
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        jno.nn.mlp(3, init="xavier")
