"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 by
test_resampling_sharded.py; prints a JSON record: RAD / R3 on 4 devices vs 1."""

import json

import jax
import numpy as np
import optax

import jno
from jno_core.testing import CompileEvents


def run(method, devices):
    jno.finish()
    dom = jno.domain.rect(x_range=(0, 1), y_range=(0, 1), seed=0)
    x, y, ps = dom.variable("interior", sample=(256, "sobol"))
    xb, yb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u = net(x, y)
    pde = -(u.d2(x) + u.d2(y)) - 1.0
    crux = jno.core([pde.mse, net(xb, yb).mse], chunk_size=64)
    r = getattr(jno.resampling, method)(pde, domain=dom, every=5, seed=2)
    crux.solve(6, callbacks=[r], devices=devices)
    before = str(crux.points[ps.key].sharding.spec) if devices else None
    with CompileEvents() as ce:
        crux.solve(6, callbacks=[r])  # resamples at 10
    pts = crux.points[ps.key]
    return {
        "sharding": str(pts.sharding.spec) if devices else None,
        "sharding_before": before,
        "n_shards": len(pts.addressable_shards),
        "points": np.asarray(pts).tolist(),
        "inside": bool(np.all((np.asarray(pts) > 0) & (np.asarray(pts) < 1))),
        "compiles": ce.events,
        "records": r.records,
    }


out = {"n_devices": len(jax.devices())}
for method in ("rad", "r3"):
    out[method] = {"four": run(method, 4), "one": run(method, None)}
print(json.dumps(out))
