"""Small problems shared by the core tests (built with jno.nn.mlp: no extra package)."""

from jno_core.testing import small_problem


def poisson1d(mesh_size=0.05, hidden=16, layers=2, lr=1e-3, seed=0, chunk_size=1000):
    """The kit's 1-D Poisson problem (:func:`jno_core.testing.small_problem`, 16 hidden units
    by default) as ``(crux, {name: expression, "net": ..., "domain": ...})``."""
    p = small_problem(mesh_size=mesh_size, hidden=hidden, layers=layers, lr=lr, seed=seed, chunk_size=chunk_size)
    return p.crux, dict(x=p.x, xb=p.xb, u=p.u, ub=p.ub, pde=p.pde, net=p.net, domain=p.domain)
