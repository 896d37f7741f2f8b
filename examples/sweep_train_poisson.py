"""A training script a sweep runs: the spec's 1-D Poisson, its hyperparameters read from the
run config (defaults here; a sweep trial's values when `jno sweep` runs it).

    python examples/sweep_train_poisson.py                  # one run with the defaults
    jno sweep run examples/sweep_poisson.yaml --count 4 --workers 2 -- python examples/sweep_train_poisson.py
    jno sweep show sweeps/<id>

-u''(x) = sin(pi x) on (0, 1), u(0) = u(1) = 0, exact u = sin(pi x) / pi^2. The script logs
the relative L2 error against the exact solution as ``val/l2_rel`` after training.
"""

import foundax
import jax
import numpy as np
import optax

import jno

dire = jno.setup(__file__, config={"lr": 1e-3, "width": 32, "depth": 3, "epochs": 2_000})
cfg = dire.config

π = jno.np.pi
domain = jno.domain.line(mesh_size=0.05)
x, _ = domain.variable("interior")
xb, _ = domain.variable("boundary")
u_exact = jno.np.sin(π * x) / π**2

net = jno.nn.wrap(foundax.mlp(in_features=1, hidden_dims=int(cfg.width), num_layers=int(cfg.depth),
                              key=jax.random.PRNGKey(0)))
net.optimizer(optax.adam(float(cfg.lr)))
u, ub = net(x), net(xb)
pde = -u.d2(x) - jno.np.sin(π * x)

crux = jno.core([pde.mse, ub.mse])
history = crux.solve(int(cfg.epochs))

_u, _u_exact = crux.eval([u, u_exact])
l2_rel = float(np.linalg.norm(_u - _u_exact) / np.linalg.norm(_u_exact))
jno.log({"val/l2_rel": l2_rel, "time/solve_s": history.wall_time + history.compile_time})
print(f"{dire}: lr={cfg.lr} width={cfg.width} final loss {history.final_loss:.3e}, val/l2_rel {l2_rel:.3e}")
