"""Helpers behind :mod:`jno_core.testing` (the plugin authors' conformance kit): the small
1-D Poisson problem, a recording sink, and entry-point / ``jno plugins`` utilities.

Import them from :mod:`jno_core.testing`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import attrs
import numpy as np
import pluggy

from . import plugins
from .hookspecs import PROJECT_NAME, JnoSpec, hookimpl

__all__ = [
    "CORE_PREFIXES",
    "ProblemDims",
    "SmallProblem",
    "small_problem",
    "RecordingSink",
    "jno_plugins_json",
    "fresh_plugin_manager",
    "entry_point",
    "finish_run",
]

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
class SmallProblem:
    """The pieces of :func:`small_problem`: ``crux`` (a fresh solver), the network ``net``,
    variables ``x`` (interior) / ``xb`` (boundary), network outputs ``u`` / ``ub`` (fields),
    the PDE residual field ``pde``, the boundary field ``bc``, ``losses = [pde.mse, bc.mse]``
    (the solver's constraints, in that order) and :class:`ProblemDims` ``dims``."""

    crux: Any
    net: Any
    x: Any
    xb: Any
    u: Any
    ub: Any
    pde: Any
    bc: Any
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
) -> SmallProblem:
    """The spec's 1-D Poisson problem ``-u'' = sin(pi x)`` on ``[0, 1]``, ``u(0) = u(1) = 0``
    (soft boundary condition), on a small MLP (``jno.nn.mlp``, Adam). Deterministic for a
    given ``seed``; every call builds new networks and a new solver."""
    import jax
    import optax

    import jno

    pi = jno.np.pi
    domain = jno.domain.line(mesh_size=mesh_size)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=hidden, num_layers=layers, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(lr))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(pi * x)
    bc = ub
    losses = [pde.mse, bc.mse]
    crux = jno.core(losses, chunk_size=chunk_size)
    dims = ProblemDims(
        N=len(losses),
        P=int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(net.params))),
        n_interior=int(domain.points("interior").shape[0]),
        n_boundary=int(domain.points("boundary").shape[0]),
    )
    return SmallProblem(crux, net, x, xb, u, ub, pde, bc, losses, dims)


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

    def plugin_keys(self) -> dict[int, set[str]]:
        """``step -> keys`` logged by plugins (keys outside the core's own prefixes)."""
        out: dict[int, set[str]] = {}
        for s, m in self.records:
            keys = {k for k in m if not k.startswith(CORE_PREFIXES)}
            if keys:
                out.setdefault(s, set()).update(keys)
        return out


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


def finish_run() -> None:
    """Close the current run (``jno.finish()``), so a test's solve logs nowhere else."""
    from .run import finish

    finish()
