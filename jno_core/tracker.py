"""Base class for diagnostic trackers (plugins implement :meth:`Tracker.prepare`,
:meth:`Tracker.compute` and :meth:`Tracker.metrics`).

Life cycle: ``on_solve_begin`` calls :meth:`prepare` (compile against live shapes, so the
first fire is warm; skipped on a repeated solve of the same solver, see
:meth:`Tracker.on_solve_begin`); ``on_epoch`` (at ``epoch % interval == 0``) calls :meth:`compute`, stores
the value in :attr:`value` / :attr:`latest_epoch`, appends it to the history behind
:attr:`result`, and logs :meth:`metrics` plus the fire's duration in milliseconds under
``explainability/time_ms/<name>``. Trackers never modify the train state.

Fires run off the training thread when the solve has a diagnostics thread (see
:mod:`jno_core.concurrent`): ``on_epoch`` freezes the context (:meth:`SolveContext.snapshot`)
and submits the fire, so :meth:`compute` must only use the ``ctx`` it is given (never the
solver's live state). :attr:`value`, :attr:`latest_epoch` and :attr:`result` are complete
when ``solve()`` returns and whenever a non-concurrent plugin's hook runs.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from . import compile_pool
from .hookspecs import hookimpl
from .validation import check_tracker_value

__all__ = ["Tracker"]


class Tracker:
    """A diagnostic plugin object. Subclasses set :attr:`name` and :attr:`result_keys`."""

    #: plugin/registry name, used in errors and the timing metric
    name: str = "tracker"
    #: keys of the per-fire value that are stacked into :attr:`result`
    result_keys: tuple[str, ...] = ()
    #: hooks the core may call while earlier fires are still running on the diagnostics
    #: thread (a tracker reads nothing but its own snapshot)
    concurrent_hooks: tuple[str, ...] = ("on_solve_begin", "on_epoch", "on_chunk_end")
    #: ``on_epoch`` may run after the device chunk containing the epoch, with a context frozen
    #: at that epoch (``SolveContext.deferred_snapshot``), so a fire does not end the chunk
    deferred_fire: bool = True

    def __init__(self, interval: int = 100) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval <= 0:
            raise ValueError(
                f"{self.name}: interval must be a positive integer number of epochs, received "
                f"{interval!r}; e.g. interval=100."
            )
        self.interval = int(interval)
        self.value: dict[str, Any] | None = None
        self.latest_epoch: int | None = None
        self.fire_times_ms: list[float] = []
        self._epochs: list[int] = []
        self._history: dict[str, list[np.ndarray]] = {k: [] for k in self.result_keys}
        #: entries added to :attr:`result` as they are (e.g. the constraint indices), set by
        #: :meth:`prepare`
        self.static_result: dict[str, np.ndarray] = {}
        #: the background compilation (:func:`compile_pool.compile_async`) :meth:`prepare`
        #: started, if any: when it failed, the next solve prepares again
        self.pending: Any = None
        self._prepared_for: object | None = None  # ctx.setup_token of the last prepare

    @property
    def plugin_name(self) -> str:
        return self.name

    # the names plugins used before they were public (kept for third-party trackers)
    @property
    def _pending(self) -> Any:
        return self.pending

    @_pending.setter
    def _pending(self, value: Any) -> None:
        self.pending = value

    @property
    def _static_result(self) -> dict[str, np.ndarray]:
        return self.static_result

    @_static_result.setter
    def _static_result(self, value: dict[str, np.ndarray]) -> None:
        self.static_result = value

    def _still_prepared(self, ctx: Any) -> bool:
        return self.still_prepared(ctx)

    # ------------------------------------------------------------------ to implement
    def prepare(self, ctx: Any) -> None:
        """Compile against ``ctx``'s live parameter shapes (called in ``on_solve_begin``)."""

    def compute(self, ctx: Any, epoch: int) -> dict[str, Any]:
        """Return this fire's value: a dict with at least :attr:`result_keys`."""
        raise NotImplementedError

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        """The metrics to log for ``value`` (``{key: number or MetricValue}``)."""
        return {}

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def on_solve_begin(self, ctx: Any) -> None:
        """:meth:`prepare`, unless this tracker already prepared successfully for
        ``ctx.setup_token`` (a repeated ``solve()`` of the same solver: same shapes, points
        and placement, so the compiled functions are still valid; ~0.1-1 ms per tracker)."""
        token = getattr(ctx, "setup_token", None)
        if token is not None and token is self._prepared_for and self.still_prepared(ctx):
            return
        self._prepared_for = None
        self.prepare(ctx)
        self._prepared_for = token

    def still_prepared(self, ctx: Any) -> bool:
        """Whether what the last :meth:`prepare` made still serves ``ctx`` (same setup token):
        here, whether its background compilations (if any) succeeded and a per-fire function
        of :meth:`compile_fire_fn` was made for the way this solve fires (from chunk
        snapshots or not). Subclasses whose preparation depends on more than the token add
        their condition."""
        if getattr(self, "_fire_fn", None) is not None and (
                (getattr(self, "_batched", None) is not None) != bool(getattr(ctx, "fires_from_snapshots", False))):
            return False
        for pending in (getattr(self, "pending", None), getattr(self, "_batched", None)):
            if pending is None or not hasattr(pending, "result"):
                continue
            try:
                pending.result()
            except Exception:  # noqa: BLE001 - prepare again (and report it there)
                return False
        return True

    # ------------------------------------------------------------------ per-fire functions
    def compile_fire_fn(self, ctx: Any, name: str, fn: Any) -> Any:
        """Start compiling this tracker's per-fire device function ``fn(params, points,
        inputs, weights) -> pytree`` for the way this solve fires: when every fire reads a
        chunk snapshot (``ctx.fires_from_snapshots``), over all of a chunk's slots in one
        call (``ctx.compile_slot_batch``); otherwise for one fire (``compile_async``).
        :meth:`run_fire_fn` calls it. Returns ``jax.eval_shape`` of one fire's output. Call
        ``compile_pool.settle`` at the end of :meth:`prepare` (background compilation)."""
        self._fire_fn = (name, fn)
        if getattr(ctx, "fires_from_snapshots", False):
            out = jax.eval_shape(fn, ctx.params, ctx.points, ctx.inputs, ctx.weights)
            self.pending = None
            self._batched = ctx.compile_slot_batch(name, fn, owner=self.name, out_shape=out)
            return out
        self._batched = None
        # traced here; compiled and run once (warm-up: an executable's first run pays
        # one-off set-up) on the compile pool
        self.pending = compile_pool.compile_async(ctx, name, fn, ctx.params, ctx.points, ctx.inputs,
                                                   ctx.weights, owner=self.name)
        return self.pending.out_info

    def run_fire_fn(self, ctx: Any) -> Any:
        """The value of :meth:`compile_fire_fn`'s function at ``ctx`` (device arrays, or
        NumPy arrays when it comes from the chunk's slot batch). A fire from the live state
        after a preparation for snapshot fires (a tool calling :meth:`_fire` directly)
        compiles the one-fire function then."""
        batched = getattr(self, "_batched", None)
        if batched is not None:
            out = ctx.slot_values(batched, self.interval)
            if out is not None:
                return out
        pending = getattr(self, "pending", None)
        if pending is not None:
            return pending.result()(ctx.params, ctx.points, ctx.inputs, ctx.weights)
        name, fn = self._fire_fn
        return ctx.compile(name, fn, ctx.params, ctx.points, ctx.inputs, ctx.weights)(
            ctx.params, ctx.points, ctx.inputs, ctx.weights)

    @hookimpl
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        submit = getattr(ctx, "submit", None)
        if submit is None:  # a bare context (tests, tools): fire now
            self._fire(ctx, epoch)
            return
        snap = ctx.snapshot()
        submit(epoch, self.name, lambda: self._fire(snap, epoch))

    def _fire(self, ctx: Any, epoch: int) -> None:
        """Compute, store and log one fire (on the diagnostics thread when there is one)."""
        t0 = time.perf_counter()
        value = check_tracker_value(self.name, self.compute(ctx, epoch))
        value = {k: np.asarray(v) for k, v in value.items()}
        missing = [k for k in self.result_keys if k not in value]
        if missing:
            raise TypeError(f"tracker {self.name!r} computed no value for {missing}.")
        ms = (time.perf_counter() - t0) * 1e3
        self.fire_times_ms.append(ms)
        self.value = value
        self.latest_epoch = int(epoch)
        self._epochs.append(int(epoch))
        for k in self.result_keys:
            self._history[k].append(value[k])
        metrics = dict(self.metrics(value))
        metrics[f"explainability/time_ms/{self.name}"] = ms
        ctx.log(metrics, step=epoch, source=f"tracker {self.name!r}")

    # ------------------------------------------------------------------ results
    @property
    def result(self) -> dict[str, np.ndarray]:
        """``{"epochs": (S,), key: (S, ...)}`` for every fire so far (plus static entries)."""
        out: dict[str, np.ndarray] = {"epochs": np.asarray(self._epochs, dtype=np.int64)}
        for k in self.result_keys:
            vals = self._history[k]
            out[k] = np.stack(vals) if vals else np.zeros((0,), np.float32)
        out.update(self.static_result)
        return out

    def __repr__(self) -> str:
        return f"<jno tracker {self.name} interval={self.interval} fires={len(self._epochs)}>"
