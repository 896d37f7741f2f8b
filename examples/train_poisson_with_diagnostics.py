"""The main example: the spec's 1-D Poisson with every diagnostic on, logged to the embedded
default sink (CSV in the run directory: no account, no server), ending with the path of the
run's self-contained HTML report (``jno report``; open it in any browser, offline).

    python3 tools/dev.py example

-u''(x) = sin(pi x) on (0, 1), u(0) = u(1) = 0 (soft), exact u = sin(pi x) / pi^2.
"""

import foundax
import jax
import numpy as np
import optax

import jno
from jno_core.replay import read_metrics

π = jno.np.pi
# runs/train_poisson_with_diagnostics/<timestamp>, CSV sink; report.html written when the run closes
dire = jno.setup(__file__, report=True)

domain = jno.domain.line(mesh_size=0.05)
x, _ = domain.variable("interior")
xb, _ = domain.variable("boundary")
u_exact = jno.np.sin(π * x) / π**2

u_net = jno.nn.wrap(
    foundax.mlp(in_features=1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0))
).optimizer(optax.adam(optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)))
u = u_net(x)
ub = u_net(xb)
pde = -u.d2(x) - jno.np.sin(π * x)
bc = ub

callbacks = [
    cb_norms := jno.callbacks.gradient_norms(interval=50),
    cb_cos := jno.callbacks.cos_similarity(interval=50),
    cb_align := jno.callbacks.gradient_alignment(interval=50),
    cb_res := jno.callbacks.residual_stats(interval=50),
    cb_sal := jno.callbacks.input_sensitivity(u.d(x), interval=50),
    cb_ntk := jno.callbacks.ntk_spectrum(u.grad(u_net), n_points=32, top_k=5, interval=200),
    cb_hess := jno.callbacks.hessian_spectrum(k=5, n_iter=15, interval=400),
    cb_land := jno.callbacks.loss_landscape(interval=200, n_grid=11, alpha_range=0.5),
    cb_ckpt := jno.callbacks.checkpoint(save_interval_epochs=500, max_to_keep=3,
                                        best_fn=lambda m: m["total_loss"]),
]

crux = jno.core([pde.mse, bc.mse])
history = crux.solve(4_000, callbacks=callbacks)
cb_ckpt.close()
jno.finish()  # flush and close the sinks, then write report.html (report=True)

_u, _u_exact = crux.eval([u, u_exact])
rel_l2 = float(np.linalg.norm(_u - _u_exact) / np.linalg.norm(_u_exact))
print(f"run directory        : {dire}")
print(f"epochs               : {history.n_epochs}  ({history.n_epochs / history.wall_time:,.0f} epochs/s)")
print(f"final loss           : {history.final_loss:.3e}")
print(f"relative L2 error    : {rel_l2:.3e}")
print(f"gradient norms (last): {cb_norms.result['norms'][-1]}")
print(f"cos sim pde/bc (last): {cb_cos.result['cos_sim_matrix'][-1][0, 1]:+.3f}")
print(f"alignment (last)     : {cb_align.result['alignment'][-1]:+.3f}")
print(f"residual p99 (last)  : {cb_res.result['p99'][-1]}")
print(f"max |du/dx| (last)   : {np.abs(cb_sal.result['values'][-1]).max():.3e}")
print(f"NTK condition (last) : {cb_ntk.result['condition_number'][-1]:.3e}")
print(f"Hessian sharpness    : {cb_hess.result['sharpness'][-1]:.3e}")
print(f"landscape grid       : {cb_land.result['landscapes'].shape}")
print(f"checkpoints          : {cb_ckpt.all_steps}")
logged = read_metrics(dire)
print(f"CSV metrics logged   : {len(logged)} keys, e.g. loss/total at "
      f"{len(logged['loss/total']['steps'])} steps")
assert rel_l2 < 1e-2, rel_l2
print(f"report (open offline): {dire.run.report_path}")
