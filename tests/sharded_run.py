"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 by
test_sharding.py; prints a JSON record of losses for 1 and 4 devices."""

import json
import sys

import jax
import numpy as np
import optax

import jno


def build():
    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=1 / 9)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
    return jno.core([pde.mse, ub.mse]), u


def main():
    out = {"n_devices": len(jax.devices())}
    a, _ = build()
    out["one"] = a.solve(30, devices=1).total_loss.tolist()
    b, ub = build()
    hb = b.solve(30, devices=4)
    out["four"] = hb.total_loss.tolist()
    out["interior_sharding"] = str(next(v for k, v in b._points.items() if k.endswith("interior")).sharding)
    c, _ = build()
    out["batch_a"] = c.solve(20, batchsize=16, seed=3).total_loss.tolist()
    d, _ = build()
    out["batch_b"] = d.solve(20, batchsize=16, seed=3, devices=4).total_loss.tolist()
    e, _ = build()
    out["batch_c"] = e.solve(20, batchsize=16, seed=4).total_loss.tolist()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
