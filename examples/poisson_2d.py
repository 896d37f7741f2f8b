"""2-D Poisson on the unit square: -lap u = 2 pi^2 sin(pi x) sin(pi y), u = 0 on the boundary.
Exact solution sin(pi x) sin(pi y)."""

import jax
import numpy as np
import optax

import jno

π = jno.np.pi
jno.setup(__file__)

domain = jno.domain.rect(mesh_size=0.05)
x, y, _ = domain.variable("interior")
xb, yb, _ = domain.variable("boundary")

net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
net.optimizer(optax.adam(optax.exponential_decay(2e-3, 1_000, 0.5, end_value=1e-5)))
u, ub = net(x, y), net(xb, yb)
pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)

crux = jno.core([pde.mse, ub.mse])
history = crux.solve(5_000)
_u, _ue = crux.eval([u, jno.np.sin(π * x) * jno.np.sin(π * y)])
rel = float(np.linalg.norm(_u - _ue) / np.linalg.norm(_ue))
print(f"final loss {history.final_loss:.3e}, relative L2 error {rel:.3e}")
