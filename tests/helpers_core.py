"""Small problems shared by the core tests (built with jno.nn.mlp: no extra package)."""

import jax
import optax

import jno


def poisson1d(mesh_size=0.05, hidden=16, layers=2, lr=1e-3, seed=0, chunk_size=1000):
    π = jno.np.pi
    domain = jno.domain.line(mesh_size=mesh_size)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=hidden, num_layers=layers, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(lr))
    u = net(x)
    ub = net(xb)
    pde = -u.d2(x) - jno.np.sin(π * x)
    crux = jno.core([pde.mse, ub.mse], chunk_size=chunk_size)
    return crux, dict(x=x, xb=xb, u=u, ub=ub, pde=pde, net=net, domain=domain)


class CompileCounter:
    """Counts XLA compilations while active (via jax_log_compiles log records)."""

    def __enter__(self):
        import logging

        self.records = []
        self._handler = logging.Handler()
        self._handler.emit = lambda r: self.records.append(r.getMessage())
        self._logger = logging.getLogger("jax")
        self._logger.addHandler(self._handler)
        self._old_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._old = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        return self

    @property
    def count(self):
        return sum(1 for m in self.records if "Compiling" in m or "compil" in m.lower() and "finished" in m.lower())

    def __exit__(self, *exc):
        jax.config.update("jax_log_compiles", self._old)
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)
