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


def poisson2d_sampled(n_interior: int = 4096, n_boundary: int = 260, sampler: str = "sobol",
                      chunk_size: int = 1000) -> "jno_core.core.Core":  # noqa: F821
    """:func:`poisson2d`'s problem on ``n_interior`` sampled interior and ``n_boundary``
    boundary points (``sampler="grid"`` with ``n`` None: the 64 x 64 grid of mesh_size 1/65)."""
    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=1 / 65, seed=0)
    if sampler == "grid":
        x, y, _ = domain.variable("interior")
        xb, yb, _ = domain.variable("boundary")
    else:
        x, y, _ = domain.variable("interior", sample=(n_interior, sampler))
        xb, yb, _ = domain.variable("boundary", sample=(n_boundary, sampler))
    net = jno.nn.wrap(foundax.mlp(in_features=2, hidden_dims=64, num_layers=4, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
    return jno.core([pde.mse, ub.mse], chunk_size=chunk_size)


def poisson2d(chunk_size: int = 1000, mesh_size: float = 0.02) -> "jno_core.core.Core":  # noqa: F821
    """2-D Poisson on rect(mesh_size=0.02): -lap u = 2 pi^2 sin(pi x) sin(pi y), MLP 2-64x4-1,
    Adam(1e-3). (The baseline's boundary repeats the 4 corners: 204 vs 200 points.) A coarser
    ``mesh_size`` gives a smaller problem (0.1: ~0.6 ms per epoch on 2 CPU cores)."""
    constraints, _, _, _ = poisson2d_parts(mesh_size)
    return jno.core(constraints, chunk_size=chunk_size)


def burgers_parts(n_interior: int = 2540, n_boundary: int = 80, n_initial: int = 160, seed: int = 0,
                  sampler: str = "sobol", hidden: int = 20, layers: int = 3, lr: Any = 1e-3) -> tuple[list, Any, Any, Any]:
    """Viscous Burgers ``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 0.99]``,
    ``u(x, 0) = -sin(pi x)``, ``u(+-1, t) = 0`` (DeepXDE's Burgers example: 2,540 interior,
    80 boundary and 160 initial points, MLP 2-20x3-1 with Glorot-normal weights, Adam 1e-3).
    Returns ``(constraints, u, net, domain)``."""
    π = jno.np.pi
    dom = jno.domain.line(x_range=(-1.0, 1.0), time=(0.0, 0.99, 100), seed=seed)
    x, t, _ = dom.variable("interior", sample=(n_interior, sampler))
    xb, tb, _ = dom.variable("boundary", sample=(n_boundary, sampler))
    x0, t0, _ = dom.variable("initial", sample=(n_initial, sampler))
    net = jno.nn.wrap(jno.nn.mlp(2, 1, hidden, layers, key=jax.random.PRNGKey(seed), init="glorot_normal"))
    net.optimizer(optax.adam(lr))
    u = net(x, t)
    pde = u.d(t) + u * u.d(x) - (0.01 / π) * u.d2(x)
    ic = net(x0, t0) + jno.np.sin(π * x0)
    bc = net(xb, tb)
    return [pde.mse, bc.mse, ic.mse], u, net, dom


def burgers(chunk_size: int = 1000, **kw: Any) -> "jno_core.core.Core":  # noqa: F821
    """:func:`burgers_parts` as a solver."""
    constraints, _, _, _ = burgers_parts(**kw)
    return jno.core(constraints, chunk_size=chunk_size)
