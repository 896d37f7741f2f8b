"""The spec's inverse problem: recover a, b, c in a sin(pi x) + b cos(pi x) + c x (1 - x)
from residual constraints alone (jno.np.parameter)."""

import jax
import optax

import jno

π = jno.np.pi
domain = jno.domain.line(mesh_size=0.02)
x, _ = domain.variable("interior")
target = 1.5 * jno.np.sin(π * x) - 0.7 * jno.np.cos(π * x) + 2.0 * x * (1 - x)

key = jax.random.PRNGKey(0)
k1, k2, k3 = jax.random.split(key, 3)
a = jno.np.parameter((1,), key=k1, name="a")
b = jno.np.parameter((1,), key=k2, name="b")
c = jno.np.parameter((1,), key=k3, name="c")
for p in [a, b, c]:
    p.optimizer(optax.adam(1e-2))

residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) + c * x * (1 - x) - target
crux = jno.core([residual.mse])
history = crux.solve(30000)
_a, _b, _c = crux.eval([a, b, c])
print(f"Recovered: a={_a[0]:.3f}, b={_b[0]:.3f}, c={_c[0]:.3f}  (true 1.500, -0.700, 2.000)")
