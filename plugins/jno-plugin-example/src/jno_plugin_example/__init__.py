"""jno-plugin-example: the smallest complete jno tracker plugin, commented line by line.

It adds ``jno.trackers.parameter_norm`` (also ``jno.callbacks.parameter_norm``): the global L2
norm of the trained parameters, ``||theta||_2 = sqrt(sum_j theta_j^2)`` over every array of
every trained network and parameter, recorded every ``interval`` epochs.

The whole pattern, in the order jno uses it:

1. ``pyproject.toml`` declares the entry point ``example = "jno_plugin_example"`` in the group
   ``"jno"``. Nothing is imported when ``import jno`` runs; the first registry look-up (e.g.
   ``jno.trackers.parameter_norm``) loads every entry point and registers the module with
   jno's pluggy plugin manager.
2. The module-level :func:`jno_register_trackers` (marked ``@hookimpl``) is called once and
   registers the factory under a name, which becomes ``jno.trackers.<name>``.
3. The user calls the factory and passes the tracker in ``crux.solve(..., callbacks=[...])``.
4. When the solve starts (the ``on_solve_begin`` hook, inherited from
   :class:`jno_core.tracker.Tracker`) the core asks :meth:`ParameterNorm.fire_fn` for the
   tracker's device function and compiles it (in the background, warmed up), so fires are warm.
5. At every epoch with ``epoch % interval == 0`` the core runs that function on the
   parameters of that epoch (after the device chunk, all of a chunk's fires in one call), then
   :meth:`ParameterNorm.finish` (device output -> value) and :meth:`ParameterNorm.metrics` on
   the host; the base class stores the value (``.value``, ``.latest_epoch``, ``.result``) and
   sends the metrics to every sink.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# ``hookimpl`` marks functions/methods as implementations of jno's hooks (pluggy marker
# for the project name "jno"). ``Tracker`` implements ``on_solve_begin`` / ``on_epoch`` and
# the bookkeeping every tracker needs; a subclass only fills in three methods.
from jno_core.api import hookimpl
from jno_core.api import Tracker

__all__ = ["ParameterNorm", "parameter_norm", "jno_register_trackers"]


class ParameterNorm(Tracker):
    """Global L2 norm of the trained parameters every ``interval`` epochs.

    ``result``: ``epochs`` ``(S,)`` int and ``norms`` ``(S,)`` float32.
    Metric: ``example/parameter_norm`` (plus the base class's timing metric
    ``explainability/time_ms/parameter_norm``).
    """

    # ``name`` is used in error messages and in the timing metric's key.
    name = "parameter_norm"
    # The keys of each fire's value that the base class stacks into ``.result``
    # (``.result["norms"]`` has shape ``(S,)`` because each fire's value is a scalar).
    result_keys = ("norms",)

    def fire_fn(self, ctx: Any) -> Callable[..., Any]:
        """Called once per solve when it starts. Return the device function: pure JAX of
        ``(params, points, inputs, weights)`` (``params``: ``{trainable key: pytree}`` at the
        fire's epoch) returning arrays. The core compiles and runs it; never call it yourself.
        ``ctx`` (:class:`jno_core.api.SolveContext`) tells what the solve has."""
        keys = list(ctx.trained_keys)  # the trained networks/parameters (a frozen one is not)

        def global_norm(params: Any, points: Any, inputs: Any, weights: Any) -> jax.Array:
            leaves = jax.tree_util.tree_leaves({k: params[k] for k in keys})
            return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))

        return global_norm

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        """The fire's value from the device output (a NumPy array here): a dict with (at
        least) every key of ``result_keys``. Host-side work goes here."""
        return {"norms": np.float32(out)}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        """The metrics to log for this fire: ``{key: number}`` or typed values from
        :mod:`jno_core.metrics` (``Heatmap``, ``Histogram``, ``Array``). Every sink (CSV,
        TensorBoard, W&B, ...) receives them at ``step = epoch``; never talk to a sink directly."""
        return {"example/parameter_norm": float(value["norms"])}


def parameter_norm(interval: int = 100) -> ParameterNorm:
    """``jno.trackers.parameter_norm(interval=100)``: the factory users call.

    ``result``: ``epochs`` ``(S,)``, ``norms`` ``(S,)``. See :class:`ParameterNorm`."""
    return ParameterNorm(interval=interval)


@hookimpl
def jno_register_trackers(register: Callable[..., None]) -> None:
    """Registration hook: called once, lazily, when jno first needs its tracker registry.

    ``register(name, factory)`` makes ``jno.trackers.<name>`` and ``jno.callbacks.<name>``
    return ``factory``. The name must be a Python identifier and unique across the installed
    plugins (a clash is an error naming both plugins).
    """
    register("parameter_norm", parameter_norm)
