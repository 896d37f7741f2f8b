"""Helpers behind :mod:`jno_core.testing` (the plugin authors' conformance kit): the small
1-D Poisson problem and its plain-JAX reference, a recording sink, a parameter probe, JAX
compilation counters, and entry-point / ``jno plugins`` utilities.

Import them from :mod:`jno_core.testing`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import attrs
import numpy as np
import pluggy

from . import plugins
from .hookspecs import PROJECT_NAME, JnoSpec, hookimpl

#: the names :mod:`jno_core.testing` re-exports
__all__ = [
    "CORE_PREFIXES",
    "ProblemDims",
    "PoissonFields",
    "poisson_fields",
    "SmallProblem",
    "small_problem",
    "scalar_network",
    "poisson_residual",
    "poisson_losses",
    "RecordingSink",
    "BatchRecordingSink",
    "ParamProbe",
    "CompileEvents",
    "count_compiles_per_fire",
    "jno_plugins_json",
    "fresh_plugin_manager",
]
# (entry_point and finish_run are used by jno_core.testing's conformance classes only)

#: metric key prefixes the core itself logs (everything else comes from plugins)
CORE_PREFIXES = ("loss/", "train/", "perf/", "tracker/")


# ---------------------------------------------------------------------------- the problem
@attrs.frozen
class ProblemDims:
    """Sizes of :func:`small_problem`, passed to the shape functions of
    :attr:`TrackerConformance.result_keys`.

    :ivar N: number of loss constraints (2: PDE residual and boundary condition).
    :ivar P: number of trainable parameters of the network.
    :ivar n_interior: interior collocation points.
    :ivar n_boundary: boundary points (2).
    """

    N: int
    P: int
    n_interior: int
    n_boundary: int


@attrs.frozen
class PoissonFields:
    """The expressions of the 1-D Poisson problem ``-u'' = sin(pi x)`` on ``[0, 1]`` built by
    :func:`poisson_fields`, before any solver: the ``domain``, the network ``net``, variables
    ``x`` (interior) / ``xb`` (boundary), network outputs ``u`` / ``ub``, the PDE residual field
    ``pde`` and the boundary field ``bc`` (``ub``, or ``ub[..., 0]`` for several outputs)."""

    domain: Any
    net: Any
    x: Any
    xb: Any
    u: Any
    ub: Any
    pde: Any
    bc: Any


def poisson_fields(
    *,
    seed: int = 0,
    hidden: int = 8,
    layers: int = 2,
    mesh_size: float = 0.05,
    lr: float = 1e-3,
    output_dim: int = 1,
) -> PoissonFields:
    """The fields of the spec's 1-D Poisson problem ``-u'' = sin(pi x)`` on ``[0, 1]``,
    ``u(0) = u(1) = 0`` (soft boundary condition), on a new ``jno.nn.mlp`` (Adam with learning
    rate ``lr``), deterministic for a given ``seed``. Build your own solver from them when a
    test needs other constraints than :func:`small_problem`'s. With ``output_dim > 1`` the
    network has that many outputs (``u`` / ``ub`` are vector fields) and the PDE and boundary
    condition constrain the first one, ``u[..., 0]``."""
    import jax
    import optax

    import jno

    pi = jno.np.pi
    domain = jno.domain.line(mesh_size=mesh_size)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    mlp = jno.nn.mlp(1, output_dim=output_dim, hidden_dims=hidden, num_layers=layers, key=jax.random.PRNGKey(seed))
    net = jno.nn.wrap(mlp)
    net.optimizer(optax.adam(lr))
    u, ub = net(x), net(xb)
    u0, ub0 = (u[..., 0], ub[..., 0]) if output_dim > 1 else (u, ub)
    pde = -u0.d2(x) - jno.np.sin(pi * x)
    return PoissonFields(domain, net, x, xb, u, ub, pde, ub0)


@attrs.frozen
class SmallProblem(PoissonFields):
    """What :func:`small_problem` returns: the :class:`PoissonFields` (``domain``, ``net``,
    ``x``, ``xb``, ``u``, ``ub``, ``pde``, ``bc``) plus ``crux`` (a fresh solver),
    ``losses = [pde.mse, bc.mse]`` (the solver's constraints, in that order) and
    :class:`ProblemDims` ``dims``."""

    crux: Any
    losses: list
    dims: ProblemDims


def small_problem(
    *,
    chunk_size: int = 1000,
    seed: int = 0,
    hidden: int = 8,
    layers: int = 2,
    mesh_size: float = 0.05,
    lr: float = 1e-3,
    output_dim: int = 1,
) -> SmallProblem:
    """The spec's 1-D Poisson problem ``-u'' = sin(pi x)`` on ``[0, 1]``, ``u(0) = u(1) = 0``
    (soft boundary condition), on a small MLP (``jno.nn.mlp``, Adam): the fields of
    :func:`poisson_fields` and a solver ``jno.core([pde.mse, bc.mse], chunk_size=chunk_size)``.
    Deterministic for a given ``seed``; every call builds new networks and a new solver."""
    import jax

    import jno

    f = poisson_fields(seed=seed, hidden=hidden, layers=layers, mesh_size=mesh_size, lr=lr, output_dim=output_dim)
    losses = [f.pde.mse, f.bc.mse]
    crux = jno.core(losses, chunk_size=chunk_size)
    dims = ProblemDims(
        N=len(losses),
        P=int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(f.net.params))),
        n_interior=int(f.domain.points("interior").shape[0]),
        n_boundary=int(f.domain.points("boundary").shape[0]),
    )
    return SmallProblem(**attrs.asdict(f, recurse=False), crux=crux, losses=losses, dims=dims)


# ---------------------------------------------------------------------------- plain-JAX reference
# Independent of jno's expression evaluation: these use only the network's equinox module and
# jax.grad, so a test can compare what the solver (or a plugin) computed with them.
def scalar_network(module: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``t -> module(t.reshape(1))[0]``: the first output of a 1-D network as a scalar
    function of a scalar input (differentiate it with ``jax.grad``, batch it with
    ``jax.vmap``). ``module`` is the network's equinox module (``net.module``, or
    ``eqx.combine(params, net.static)``)."""
    import jax.numpy as jnp

    return lambda t: module(jnp.reshape(t, (1,)))[0]


def poisson_residual(module: Callable[[Any], Any], xs: Any) -> Any:
    """The PDE residual ``-u''(x) - sin(pi x)`` of :func:`poisson_fields` at the 1-D points
    ``xs`` (shape ``(n,)``, float32), with ``u = scalar_network(module)`` differentiated twice
    by ``jax.grad``."""
    import jax
    import jax.numpy as jnp

    u_xx = jax.vmap(jax.grad(jax.grad(scalar_network(module))))(xs)
    return -u_xx - jnp.sin(jnp.pi * xs)


def poisson_losses(module: Callable[[Any], Any], domain: Any) -> tuple[Any, Any]:
    """``(pde.mse, bc.mse)`` of :func:`small_problem` written out by hand for the network
    ``module`` at the domain's interior and boundary points (JAX scalars; differentiable in
    ``module``'s parameters)."""
    import jax
    import jax.numpy as jnp

    xs = jnp.asarray(domain.points("interior")[:, 0], jnp.float32)
    xb = jnp.asarray(domain.points("boundary")[:, 0], jnp.float32)
    pde = jnp.mean(poisson_residual(module, xs) ** 2)
    bc = jnp.mean(jax.vmap(scalar_network(module))(xb) ** 2)
    return pde, bc


# ---------------------------------------------------------------------------- helpers
class RecordingSink:
    """A sink plugin that keeps every ``log_metrics`` call: pass it in
    ``solve(callbacks=[...])``. ``records`` is the list of ``(step, {key: MetricValue})``."""

    plugin_name = "recording-sink"

    def __init__(self) -> None:
        self.records: list[tuple[int, dict[str, Any]]] = []

    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.records.append((int(step), dict(metrics)))

    def steps(self, key: str) -> list[int]:
        """The steps at which ``key`` was logged, in delivery order."""
        return [s for s, m in self.records if key in m]

    def at(self, step: int) -> dict[str, Any]:
        """Every metric logged at ``step``, merged over the calls in delivery order."""
        out: dict[str, Any] = {}
        for s, m in self.records:
            if s == step:
                out.update(m)
        return out

    def plugin_keys(self) -> dict[int, set[str]]:
        """``step -> keys`` logged by plugins (keys outside the core's own prefixes)."""
        out: dict[int, set[str]] = {}
        for s, m in self.records:
            keys = {k for k in m if not k.startswith(CORE_PREFIXES)}
            if keys:
                out.setdefault(s, set()).update(keys)
        return out


class BatchRecordingSink(RecordingSink):
    """A :class:`RecordingSink` that also implements ``log_metrics_batch``: the metrics
    delivery thread then hands it everything queued in one call. ``records`` is the flat list
    of ``(step, metrics)`` as with :class:`RecordingSink`; ``batches`` the list of batch sizes
    in call order (a ``log_metrics`` call counts as a batch of one)."""

    plugin_name = "batch-recording-sink"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    @hookimpl
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.batches.append(1)
        self.records.append((int(step), dict(metrics)))

    @hookimpl
    def log_metrics_batch(self, records: Any) -> None:
        self.batches.append(len(records))
        self.records.extend((int(s), dict(m)) for s, m in records)


def _jno_command() -> list[str]:
    exe = Path(sys.executable).with_name("jno")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jno")
    return [found] if found else [sys.executable, "-m", "jno_core.cli"]


def jno_plugins_json(timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run ``jno plugins --json`` in a subprocess (the console script next to the current
    interpreter when present) and return its records."""
    proc = subprocess.run([*_jno_command(), "plugins", "--json"], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"`jno plugins --json` failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def fresh_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the jno hookspecs and nothing registered."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(JnoSpec)
    return pm


def entry_point(name: str) -> metadata.EntryPoint:
    """The installed entry point ``name`` in the group ``"jno"`` (an assertion error listing
    the installed ones otherwise)."""
    eps = [ep for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP) if ep.name == name]
    installed = sorted(ep.name for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP))
    assert eps, (
        f"no entry point {name!r} in group {plugins.ENTRY_POINT_GROUP!r}; installed: {installed}. "
        "Declare it under [project.entry-points.jno] and install the distribution "
        "(pip install -e plugins/<dist>)."
    )
    return eps[0]


class ParamProbe:
    """A plugin that records the parameters the solver hands every plugin, independently of
    the plugin under test: pass it first in ``solve(callbacks=[probe, tracker, ...])`` with the
    tracker's ``interval``; ``seen[epoch]`` is ``ctx.params[key]`` (copied to the host) at
    every fire. ``key`` is the network's key in the parameter dict
    (``jno_core.compile.trainable_key(net)``)."""

    plugin_name = "param-probe"

    def __init__(self, interval: int, key: Any) -> None:
        self.interval = interval
        self.key = key
        self.seen: dict[int, Any] = {}

    @hookimpl
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        import jax

        self.seen[epoch] = jax.device_get(ctx.params[self.key])


class CompileEvents:
    """Context manager that records JAX's compilation events while active: tracing to a
    jaxpr, lowering to MLIR and XLA backend compilation (``jax.monitoring`` duration events
    named ``/jax/core/compile/...``). A call served from JAX's in-memory caches records
    nothing, so an empty :attr:`events` means nothing was traced or compiled; an executable
    read back from the persistent compilation cache records a backend-compile event and
    counts in :attr:`cache_hits`::

        with CompileEvents() as ce:
            crux.solve(5)
        assert ce.events == []
    """

    PREFIX = "/jax/core/compile/"

    def __init__(self) -> None:
        #: the event names, in order (e.g. ``"/jax/core/compile/backend_compile_duration"``)
        self.events: list[str] = []
        #: XLA compilations served by the persistent compilation cache (each also records a
        #: ``backend_compile_duration`` event: reading an executable back replaces compiling it)
        self.cache_hits = 0

    @property
    def count(self) -> int:
        """The number of events recorded."""
        return len(self.events)

    def _listener(self, event: str, duration: float, **kwargs: Any) -> None:
        if event.startswith(self.PREFIX):
            self.events.append(event)

    def _event(self, event: str, **kwargs: Any) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self.cache_hits += 1

    @property
    def backend_compiles(self) -> int:
        """XLA compilations (``backend_compile_duration`` events), cache hits included."""
        return sum(e.endswith("backend_compile_duration") for e in self.events)

    def __enter__(self) -> "CompileEvents":
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._listener)
        jax.monitoring.register_event_listener(self._event)
        return self

    def __exit__(self, *exc: object) -> None:
        import jax

        jax.monitoring.unregister_event_duration_listener(self._listener)
        jax.monitoring.unregister_event_listener(self._event)


_T = TypeVar("_T")


def count_compiles_per_fire(tracker: _T) -> _T:
    """Wrap ``tracker.on_epoch`` so every fire appends the list of :class:`CompileEvents` it
    caused to ``tracker.fire_compiles``; returns the tracker. A tracker that compiled
    everything in ``prepare`` (``on_solve_begin``) gives ``[[], [], ...]``, one entry per
    fire."""
    orig = tracker.on_epoch  # type: ignore[attr-defined]
    fire_compiles: list[list[str]] = []

    def on_epoch(ctx: Any, epoch: int) -> None:
        with CompileEvents() as ce:
            orig(ctx=ctx, epoch=epoch)
        fire_compiles.append(list(ce.events))

    from .hookspecs import hookimpl

    tracker.fire_compiles = fire_compiles  # type: ignore[attr-defined]
    # marked, so pluggy registers the instance's wrapper as the tracker's on_epoch
    tracker.on_epoch = hookimpl(on_epoch)  # type: ignore[attr-defined]
    return tracker


def finish_run() -> None:
    """Close the current run (``jno.finish()``), so a test's solve logs nowhere else."""
    from .run import finish

    finish()
