"""Hand-written JAX baseline for the Burgers benchmark (no jno): the same points, network,
initialisation and optimizer as :func:`benchmarks.problems.burgers_parts`.

Per point ``p = (x, t)``: ``u`` and ``u_x``, ``u_xx`` from a forward-over-forward pair of
JVPs along ``e_x``, ``u_t`` from one JVP along ``e_t``; vmapped over the points. The loss is
``mean(r^2) + mean(u_b^2) + mean((u_0 + sin(pi x_0))^2)``; epochs are fused with
``lax.scan``.

    .venv/bin/python -m benchmarks.baseline_burgers   # standalone: steps/s
"""

from __future__ import annotations

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

NU = 0.01 / np.pi


def make_loss(module: Any, points: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    """``(loss_fn(params, points), params, static)`` for an equinox ``module`` ``R^2 -> R``;
    ``points`` has ``"interior"``, ``"boundary"``, ``"initial"`` arrays ``(N, 2)`` of
    ``(x, t)``."""
    params, static = eqx.partition(module, eqx.is_inexact_array)

    def loss_fn(p: Any, pts: dict[str, jax.Array]) -> jax.Array:
        model = eqx.combine(p, static)

        def u(xt: jax.Array) -> jax.Array:
            return model(xt)[0]

        ex, et = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])

        def residual(xt: jax.Array) -> jax.Array:
            def ux(z: jax.Array) -> tuple[jax.Array, jax.Array]:
                return jax.jvp(u, (z,), (ex,))

            (uu, u_x), (_, u_xx) = jax.jvp(ux, (xt,), (ex,))
            _, u_t = jax.jvp(u, (xt,), (et,))
            return u_t + uu * u_x - NU * u_xx

        r = jax.vmap(residual)(pts["interior"])
        ub = jax.vmap(u)(pts["boundary"])
        x0 = pts["initial"]
        u0 = jax.vmap(u)(x0) + jnp.sin(jnp.pi * x0[:, 0])
        return jnp.mean(r**2) + jnp.mean(ub**2) + jnp.mean(u0**2)

    return loss_fn, params, static


def run_scan(module: Any, points: dict[str, np.ndarray], epochs: int, lr: float = 1e-3,
             chunk: int = 1000) -> dict[str, float]:
    """Train ``epochs`` Adam steps (``lax.scan`` chunks of ``chunk``); returns ``epochs_per_s``
    of a second run after the compiling one, and ``final_loss``."""
    loss_fn, params, _ = make_loss(module, points)
    pts = {k: jnp.asarray(v, jnp.float32) for k, v in points.items()}
    opt = optax.adam(lr)

    @jax.jit
    def run(params: Any, opt_state: Any, pts: Any) -> Any:
        def body(carry: Any, _: Any) -> Any:
            params, opt_state = carry
            loss, g = jax.value_and_grad(loss_fn)(params, pts)
            upd, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), loss

        return jax.lax.scan(body, (params, opt_state), None, length=chunk)

    state = (params, opt.init(params))
    (p, o), _ = run(*state, pts)
    jax.block_until_ready(p)
    t0 = time.perf_counter()
    n = 0
    losses = None
    while n < epochs:
        (p, o), losses = run(p, o, pts)
        n += chunk
    jax.block_until_ready(losses)
    dt = time.perf_counter() - t0
    return {"epochs_per_s": n / dt, "final_loss": float(losses[-1])}
