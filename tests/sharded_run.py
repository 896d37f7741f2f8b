"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 by
test_sharding.py; prints a JSON record of losses for 1 and 4 devices."""

import json
import sys

import jax
import numpy as np
import optax

import jno


def build():
    crux, u, _ = build_full()
    return crux, u


def build_full():
    π = jno.np.pi
    domain = jno.domain.rect(mesh_size=1 / 9)
    x, y, _ = domain.variable("interior")
    xb, yb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u, ub = net(x, y), net(xb, yb)
    pde = -(u.d2(x) + u.d2(y)) - 2 * π**2 * jno.np.sin(π * x) * jno.np.sin(π * y)
    return jno.core([pde.mse, ub.mse]), u, net


def _trackers(u, net):
    return [
        jno.trackers.gradient_norms(interval=10),
        jno.trackers.cos_similarity(interval=10),
        jno.trackers.residual_stats(interval=10),
        jno.trackers.input_sensitivity(u, interval=10),
        jno.trackers.ntk_spectrum(u.grad(net), n_points=16, top_k=3, interval=10),
        jno.trackers.hessian_spectrum(k=3, n_iter=12, interval=10),
        jno.trackers.loss_landscape(interval=10, n_grid=5, alpha_range=0.5),
    ]


def _tracker_results(devices):
    crux, u, net = build_full()
    ts = _trackers(u, net)
    crux.solve(21, devices=devices, callbacks=ts)
    return {f"{t.name}/{k}": np.asarray(v).tolist() for t in ts for k, v in t.result.items()}


def _checkpoint_resume(tmp):
    crux, _, _ = build_full()
    cb = jno.callbacks.checkpoint(directory=f"{tmp}/ckpt", save_interval_epochs=10)
    crux.solve(20, devices=4, callbacks=[cb])
    cb.close()
    fresh, _, _ = build_full()
    cb.restore(crux=fresh)
    resumed = fresh.solve(10, devices=1).total_loss.tolist()
    ref, _, _ = build_full()
    straight = ref.solve(30, devices=1).total_loss[20:].tolist()
    return resumed, straight


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
    out["trackers_one"] = _tracker_results(1)
    out["trackers_four"] = _tracker_results(4)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out["resumed"], out["straight"] = _checkpoint_resume(tmp)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
