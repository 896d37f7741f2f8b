"""The problems of :mod:`benchmarks.bench_accuracy`, written twice: with jno, and as plain JAX
functions for the hand-written loop (no jno inside the traced code).

Each problem has an exact (or quasi-exact) reference on a test grid:

* ``poisson1d``: the spec's ``-u'' = sin(pi x)`` on ``[0, 1]``, ``u(0) = u(1) = 0`` (soft),
  19 grid points, MLP 1-32x3-1 (foundax), Adam with exponential decay; exact
  ``u = sin(pi x) / pi^2`` on 201 points.
* ``poisson2d``: ``-lap u = 2 pi^2 sin(pi x) sin(pi y)`` on ``[0, 1]^2``, ``u = 0`` on the
  boundary (soft), 1,024 Sobol interior and 256 Sobol boundary points, MLP 2-32x3-1
  (Glorot normal), Adam 1e-3; exact ``u = sin(pi x) sin(pi y)`` on a 101 x 101 grid.
* ``burgers``: ``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 0.99]``,
  ``u(x, 0) = -sin(pi x)``, ``u(+-1, t) = 0`` (Raissi et al. 2019, Sec. 3.1.1), the points of
  :func:`benchmarks.problems.burgers_parts` (2,540 / 80 / 160 Sobol points), the network and
  schedule of ``examples/burgers.py`` (MLP 2-32x3-1 Glorot normal, Adam with a warm-up cosine
  schedule, initial condition weighted 10); Cole-Hopf reference on the 256 x 100 grid of
  ``examples/burgers_reference.py``.

The loss is the sum of the mean squared residual and the mean squared boundary (and initial,
weighted :data:`BURGERS_IC_WEIGHT`) misfit, on both sides.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import equinox as eqx
import foundax
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["PROBLEMS", "JnoProblem", "build_jno", "hand_loss", "hand_residual", "relative_l2_fn", "adam_tx"]

PROBLEMS: tuple[str, ...] = ("poisson1d", "poisson2d", "burgers")
NU = 0.01 / np.pi

# the Cole-Hopf reference lives with the Burgers example
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))


#: Burgers: the initial condition's weight in the loss (as ``examples/burgers.py``)
BURGERS_IC_WEIGHT = 10.0


def adam_tx(problem: str, epochs: int) -> optax.GradientTransformation:
    """The Adam of ``problem`` for an ``epochs``-epoch Adam phase (the same configuration on
    both sides): the spec's decay for the 1-D Poisson, ``examples/burgers.py``'s warm-up
    cosine schedule (1e-3 to 1e-2 in 500 epochs, down to 1e-5 at ``epochs``) for Burgers,
    1e-3 for the 2-D Poisson."""
    if problem == "poisson1d":
        return optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5))
    if problem == "burgers":
        return optax.adam(optax.warmup_cosine_decay_schedule(1e-3, 1e-2, min(500, epochs // 2), epochs, 1e-5))
    return optax.adam(1e-3)


@dataclass
class JnoProblem:
    """A problem built with jno.

    Attributes:
        crux: the solver (``jno.core``).
        net: the network (``jno.nn.wrap``); ``net.module`` is the initial equinox module.
        pde: the residual expression (before ``.mse``).
        domain: the domain of ``pde``'s points (``None`` where RAD is not offered).
        tags: ``{point-set key: tag}`` (``"interior"``, ``"boundary"``, ``"initial"``).
        test_points: ``(K, d)`` float32 test grid; ``reference`` ``(K,)`` float64 solution.
        box: ``(lo, hi)`` each ``(d,)``: the bounding box of the interior (RAD's pool).
    """

    crux: Any
    net: Any
    pde: Any
    domain: Any
    tags: dict[str, str]
    test_points: np.ndarray
    reference: np.ndarray
    box: tuple[np.ndarray, np.ndarray]


def build_jno(problem: str, adam_epochs: int) -> JnoProblem:
    """Build ``problem`` with jno (a fresh solver and network each call; ``adam_epochs``
    sets the length of Burgers' learning-rate schedule)."""
    import jno
    from jno_core.api import point_set

    from benchmarks import problems

    π = jno.np.pi
    if problem == "poisson1d":
        dom = jno.domain.line(mesh_size=0.05)
        x, _ = dom.variable("interior")
        xb, _ = dom.variable("boundary")
        net = jno.nn.wrap(foundax.mlp(in_features=1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
        u = net(x)
        pde = -u.d2(x) - jno.np.sin(π * x)
        cons = [pde.mse, net(xb).mse]
        test = np.linspace(0.0, 1.0, 201)[:, None]
        ref = np.sin(np.pi * test[:, 0]) / np.pi**2
        box = (np.array([0.0]), np.array([1.0]))
    elif problem == "poisson2d":
        dom = jno.domain.rect(seed=0)
        x, y, _ = dom.variable("interior", sample=(1024, "sobol"))
        xb, yb, _ = dom.variable("boundary", sample=(256, "sobol"))
        net = jno.nn.wrap(jno.nn.mlp(2, 1, 32, 3, key=jax.random.PRNGKey(0), init="glorot_normal"))
        u = net(x, y)
        pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
        cons = [pde.mse, net(xb, yb).mse]
        g = np.linspace(0.0, 1.0, 101)
        X, Y = np.meshgrid(g, g, indexing="ij")
        test = np.stack([X.ravel(), Y.ravel()], axis=1)
        ref = np.sin(np.pi * test[:, 0]) * np.sin(np.pi * test[:, 1])
        box = (np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    elif problem == "burgers":
        from burgers_reference import reference_grid

        cons, u, net, dom = problems.burgers_parts(hidden=32, layers=3)
        from jno_core.api import residual_of

        pde = residual_of(cons[0])
        cons = [cons[0], cons[1], BURGERS_IC_WEIGHT * cons[2]]
        X, T, U = reference_grid()
        test = np.stack([X.ravel(), T.ravel()], axis=1)
        ref = U.ravel()
        box = (np.array([-1.0, 0.0]), np.array([1.0, 0.99]))
    else:
        raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}.")
    net.optimizer(adam_tx(problem, adam_epochs))
    crux = jno.core(cons, chunk_size=1000)
    tags = {k: point_set(k).tag for k in crux.points}
    return JnoProblem(crux, net, pde, dom, tags, test.astype(np.float32), ref.astype(np.float64), box)


def _d(f: Callable[[jax.Array], jax.Array], e: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """The directional derivative ``z -> grad f(z) . e`` (one forward-mode JVP)."""
    return lambda z: jax.jvp(f, (z,), (e,))[1]


def hand_residual(problem: str, u: Callable[[jax.Array], jax.Array], z: jax.Array) -> jax.Array:
    """The PDE residual of ``problem`` at one point ``z`` ``(d,)`` for a scalar field ``u``."""
    pi = jnp.pi
    if problem == "poisson1d":
        e = jnp.array([1.0])
        return -_d(_d(u, e), e)(z) - jnp.sin(pi * z[0])
    if problem == "poisson2d":
        ex, ey = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        lap = _d(_d(u, ex), ex)(z) + _d(_d(u, ey), ey)(z)
        return -lap - 2 * pi**2 * jnp.sin(pi * z[0]) * jnp.sin(pi * z[1])
    if problem == "burgers":
        ex, et = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        (uu, u_x), (_, u_xx) = jax.jvp(lambda w: jax.jvp(u, (w,), (ex,)), (z,), (ex,))
        return _d(u, et)(z) + uu * u_x - NU * u_xx
    raise ValueError(f"unknown problem {problem!r}; expected one of {PROBLEMS}.")


def hand_loss(problem: str, static: Any) -> Callable[[Any, dict[str, jax.Array]], jax.Array]:
    """``loss(params, points)``: mean r^2 + mean u_b^2 (+ 10 mean (u_0 + sin(pi x_0))^2 for
    Burgers); ``points`` is ``{"interior", "boundary"[, "initial"]}`` arrays ``(N, d)``."""

    def loss(params: Any, pts: dict[str, jax.Array]) -> jax.Array:
        model = eqx.combine(params, static)
        u = lambda z: model(z)[0]  # noqa: E731
        r = jax.vmap(lambda z: hand_residual(problem, u, z))(pts["interior"])
        total = jnp.mean(r**2) + jnp.mean(jax.vmap(u)(pts["boundary"]) ** 2)
        if "initial" in pts:
            z0 = pts["initial"]
            ic = jnp.mean((jax.vmap(u)(z0) + jnp.sin(jnp.pi * z0[:, 0])) ** 2)
            total = total + BURGERS_IC_WEIGHT * ic
        return total

    return loss


def relative_l2_fn(static: Any, test_points: np.ndarray, reference: np.ndarray) -> Callable[[Any], float]:
    """``err(params) -> float``: ``||u - u_ref|| / ||u_ref||`` on the test grid (jitted; the
    norm is taken in float64 on the host)."""
    pts = jnp.asarray(test_points)

    @jax.jit
    def predict(params: Any) -> jax.Array:
        model = eqx.combine(params, static)
        return jax.vmap(lambda z: model(z)[0])(pts)

    ref_norm = float(np.linalg.norm(reference))

    def err(params: Any) -> float:
        pred = np.asarray(predict(params), dtype=np.float64)
        return float(np.linalg.norm(pred - reference) / ref_norm)

    return err
