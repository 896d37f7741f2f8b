"""The benchmark problems written with jno (the same problems as :mod:`benchmarks.baseline`)."""

from __future__ import annotations

from typing import Any

import foundax
import jax
import optax

import jno


def poisson1d_parts() -> tuple[list, Any, Any, Any]:
    """The pieces of :func:`poisson1d` (the spec's script 09 solver): ``(constraints, u, net,
    x)`` (``u`` the network on the interior points ``x``), for benchmarks that attach
    diagnostics."""
    π = jno.np.pi
    domain = jno.domain.line(mesh_size=0.05)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(foundax.mlp(in_features=1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(π * x)
    return [pde.mse, ub.mse], u, net, x


def poisson1d(chunk_size: int = 1000) -> "jno_core.core.Core":  # noqa: F821
    """The spec's 1-D Poisson: line(mesh_size=0.05), MLP 1-32x3-1, Adam with decay."""
    constraints, _, _, _ = poisson1d_parts()
    return jno.core(constraints, chunk_size=chunk_size)


def poisson2d_parts(mesh_size: float = 0.02) -> tuple[list, Any, Any, Any]:
    """The pieces of :func:`poisson2d`: ``(constraints, u, net, x)`` (``u`` the network on the
    interior points, ``x`` their first coordinate), for benchmarks that attach diagnostics."""
    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=mesh_size)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    net = jno.nn.wrap(foundax.mlp(in_features=2, hidden_dims=64, num_layers=4, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
    return [pde.mse, ub.mse], u, net, x


def poisson2d(chunk_size: int = 1000, mesh_size: float = 0.02) -> "jno_core.core.Core":  # noqa: F821
    """2-D Poisson on rect(mesh_size=0.02): -lap u = 2 pi^2 sin(pi x) sin(pi y), MLP 2-64x4-1,
    Adam(1e-3). (The baseline's boundary repeats the 4 corners: 204 vs 200 points.) A coarser
    ``mesh_size`` gives a smaller problem (0.1: ~0.6 ms per epoch on 2 CPU cores)."""
    constraints, _, _, _ = poisson2d_parts(mesh_size)
    return jno.core(constraints, chunk_size=chunk_size)
