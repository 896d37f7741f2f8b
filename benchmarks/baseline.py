"""Hand-written pure JAX + equinox + optax PINN baseline (no jno dependency).

Two reference problems, built exactly as the jno benchmarks build them:

* ``poisson1d``: ``-u'' = sin(pi x)`` on [0, 1], ``u(0) = u(1) = 0`` (soft BC),
  exact solution ``sin(pi x) / pi^2``.
* ``poisson2d``: ``-lap(u) = 2 pi^2 sin(pi x) sin(pi y)`` on [0, 1]^2, ``u = 0``
  on the boundary (soft BC), exact solution ``sin(pi x) sin(pi y)``.

Loss = mean(residual^2) over interior points + mean(u^2) over boundary points.
Second derivatives are taken per point (``jax.hessian`` of the scalar network
output w.r.t. its input, trace = Laplacian) and vmapped over the points.

Two training loops are timed: :func:`run_jitted` (one jitted step per epoch,
dispatched from Python) and :func:`run_scan` (epochs fused with ``lax.scan``).
Both report the loss of the last epoch (evaluated before that epoch's update)
after exactly ``epochs`` updates from the same initial state, so their
``final_loss`` values are directly comparable.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable

import equinox as eqx
import foundax
import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
PyTree = Any
LossFn = Callable[[PyTree, dict[str, Array]], Array]

PROBLEMS: tuple[str, ...] = ("poisson1d", "poisson2d")


@dataclass(frozen=True)
class Problem:
    """Everything needed to train one PINN.

    Attributes:
        name: Problem name (one of :data:`PROBLEMS`).
        params: Trainable arrays of the network (``eqx.partition`` filter part).
        static: Non-trainable remainder of the network; ``eqx.combine(params,
            static)`` rebuilds it.
        points: ``{"interior": (N, d), "boundary": (M, d)}`` float32 arrays.
        loss_fn: ``loss_fn(params, points) -> scalar`` (``static`` closed over).
        optimizer: The optax gradient transformation.
        exact: Vectorised exact solution, ``(N, d) -> (N,)``.
        eval_points: Fine grid used for the relative L2 error, ``(K, d)``.
    """

    name: str
    params: PyTree
    static: PyTree
    points: dict[str, Array]
    loss_fn: LossFn
    optimizer: optax.GradientTransformation
    exact: Callable[[Array], Array]
    eval_points: Array


def _f32(a: np.ndarray) -> Array:
    return jnp.asarray(a, dtype=jnp.float32)


def _interior_1d(h: float) -> np.ndarray:
    n = round(1.0 / h)
    return np.linspace(0.0, 1.0, n + 1)[1:-1]


def _points(name: str) -> tuple[dict[str, Array], Array]:
    """Collocation points and evaluation grid for ``name``."""
    if name == "poisson1d":
        xi = _interior_1d(0.05)[:, None]
        xb = np.array([[0.0], [1.0]])
        ev = np.linspace(0.0, 1.0, 201)[:, None]
    elif name == "poisson2d":
        n = round(1.0 / 0.02)
        g = _interior_1d(0.02)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        xi = np.stack([xx.ravel(), yy.ravel()], axis=1)
        s = np.linspace(0.0, 1.0, n + 1)
        zero, one = np.zeros_like(s), np.ones_like(s)
        xb = np.concatenate([np.stack(p, axis=1) for p in
                             ((s, zero), (s, one), (zero, s), (one, s))])
        e = np.linspace(0.0, 1.0, 101)
        ex, ey = np.meshgrid(e, e, indexing="ij")
        ev = np.stack([ex.ravel(), ey.ravel()], axis=1)
    else:
        raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
    return {"interior": _f32(xi), "boundary": _f32(xb)}, _f32(ev)


def make_problem(name: str) -> Problem:
    """Build network, points, loss and optimizer for ``name``."""
    points, eval_points = _points(name)
    pi = jnp.pi
    if name == "poisson1d":
        net = foundax.mlp(in_features=1, hidden_dims=32, num_layers=3,
                          key=jax.random.PRNGKey(0))
        source = lambda x: jnp.sin(pi * x[0])
        exact = lambda x: jnp.sin(pi * x[:, 0]) / pi**2
        optimizer = optax.adam(optax.exponential_decay(1e-3, 1000, 0.5, end_value=1e-5))
    else:
        net = foundax.mlp(in_features=2, hidden_dims=64, num_layers=4,
                          key=jax.random.PRNGKey(0))
        source = lambda x: 2 * pi**2 * jnp.sin(pi * x[0]) * jnp.sin(pi * x[1])
        exact = lambda x: jnp.sin(pi * x[:, 0]) * jnp.sin(pi * x[:, 1])
        optimizer = optax.adam(1e-3)
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss_fn(p: PyTree, pts: dict[str, Array]) -> Array:
        model = eqx.combine(p, static)
        u = lambda x: model(x)[0]  # scalar output at one point x of shape (d,)
        lap = lambda x: jnp.trace(jax.hessian(u)(x))
        residual = jax.vmap(lambda x: -lap(x) - source(x))(pts["interior"])
        u_b = jax.vmap(u)(pts["boundary"])
        return jnp.mean(residual**2) + jnp.mean(u_b**2)

    return Problem(name, params, static, points, loss_fn, optimizer, exact, eval_points)


def relative_l2(problem: Problem, params: PyTree) -> float:
    """Relative L2 error of the network against the exact solution on a fine grid."""
    model = eqx.combine(params, problem.static)
    pred = jax.vmap(lambda x: model(x)[0])(problem.eval_points)
    ref = problem.exact(problem.eval_points)
    return float(jnp.linalg.norm(pred - ref) / jnp.linalg.norm(ref))


def _make_step(problem: Problem) -> Callable[[PyTree, PyTree], tuple[PyTree, PyTree, Array]]:
    """Un-jitted ``(params, opt_state) -> (params, opt_state, loss)`` update."""
    pts, opt = problem.points, problem.optimizer

    def step(params: PyTree, opt_state: PyTree) -> tuple[PyTree, PyTree, Array]:
        loss, grads = jax.value_and_grad(problem.loss_fn)(params, pts)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def run_jitted(name: str, epochs: int) -> dict[str, float]:
    """Train with one jitted step per epoch called from Python.

    ``compile_s`` is the wall time of the first call (compile + one step);
    the timed steady-state run then restarts from the initial state and does
    ``epochs`` steps, blocking only on the final result.
    """
    prob = make_problem(name)
    step = jax.jit(_make_step(prob))
    state0 = (prob.params, prob.optimizer.init(prob.params))
    t0 = time.perf_counter()
    jax.block_until_ready(step(*state0))
    compile_s = time.perf_counter() - t0

    params, opt_state = state0
    t0 = time.perf_counter()
    for _ in range(epochs):
        params, opt_state, loss = step(params, opt_state)
    jax.block_until_ready((params, loss))
    dt = time.perf_counter() - t0
    return {"epochs_per_s": epochs / dt, "compile_s": compile_s,
            "final_loss": float(loss), "rel_l2": relative_l2(prob, params)}


def run_scan(name: str, epochs: int, chunk: int | None = None) -> dict[str, float]:
    """Train with ``lax.scan``-fused epochs (``chunk`` epochs per jitted call).

    ``chunk`` defaults to ``epochs`` (the whole run in one call) and must
    divide ``epochs``. ``compile_s`` is the wall time of the first call
    (compile + ``chunk`` epochs). Steady state is a second full run from the
    initial state, timed with ``block_until_ready``.
    """
    chunk = epochs if chunk is None else chunk
    if epochs % chunk:
        raise ValueError(f"chunk={chunk} must divide epochs={epochs}")
    prob = make_problem(name)
    step = _make_step(prob)

    @jax.jit
    def run_chunk(params: PyTree, opt_state: PyTree) -> tuple[PyTree, PyTree, Array]:
        def body(carry: tuple[PyTree, PyTree], _: None) -> tuple[tuple[PyTree, PyTree], Array]:
            p, s, loss = step(*carry)
            return (p, s), loss
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), None, length=chunk)
        return params, opt_state, losses

    state0 = (prob.params, prob.optimizer.init(prob.params))
    t0 = time.perf_counter()
    jax.block_until_ready(run_chunk(*state0))
    compile_s = time.perf_counter() - t0

    params, opt_state = state0
    t0 = time.perf_counter()
    for _ in range(epochs // chunk):
        params, opt_state, losses = run_chunk(params, opt_state)
    jax.block_until_ready((params, losses))
    dt = time.perf_counter() - t0
    return {"epochs_per_s": epochs / dt, "compile_s": compile_s,
            "final_loss": float(losses[-1]), "rel_l2": relative_l2(prob, params)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux ``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    """CLI: print a table of both loop variants for the chosen problem(s)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=[*PROBLEMS, "all"], default="all")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs per run (default: 2000 for 1-D, 300 for 2-D)")
    ap.add_argument("--chunk", type=int, default=None, help="scan chunk (default: all epochs)")
    args = ap.parse_args()
    names = PROBLEMS if args.problem == "all" else (args.problem,)
    print(f"{'problem':<10} {'variant':<7} {'epochs':>6} {'ep/s':>10} "
          f"{'compile_s':>9} {'final_loss':>11} {'rel_l2':>9} {'rss_MB':>7}")
    for name in names:
        epochs = args.epochs or (2000 if name == "poisson1d" else 300)
        for variant, fn in (("jitted", lambda: run_jitted(name, epochs)),
                            ("scan", lambda: run_scan(name, epochs, args.chunk))):
            r = fn()
            print(f"{name:<10} {variant:<7} {epochs:>6} {r['epochs_per_s']:>10.1f} "
                  f"{r['compile_s']:>9.2f} {r['final_loss']:>11.3e} "
                  f"{r['rel_l2']:>9.2e} {peak_rss_mb():>7.0f}")


if __name__ == "__main__":
    main()
