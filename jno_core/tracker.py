"""Base class for diagnostic trackers: one contract.

A tracker declares a pure device function of ``(params, points, inputs, weights)`` (plus its
:attr:`Tracker.needs`: the gradient matrix, the epoch) in :meth:`Tracker.fire_fn`, and host
work in :meth:`Tracker.finish` (output -> value) and :meth:`Tracker.metrics` (value ->
metrics). The core alone compiles the function (in the background, warmed up, in
``on_solve_begin``), schedules it and runs it over the chunk's snapshot slots
(:mod:`jno_core.fires`). :meth:`Tracker.prepare` is optional set-up before ``fire_fn``. The
one escape hatch for host-driven work (a Lanczos loop driven from Python, say): leave
``fire_fn`` at ``None`` and override :meth:`Tracker.compute`.

Life cycle: ``on_solve_begin`` prepares (skipped on a repeated solve of the same solver, see
:meth:`Tracker.on_solve_begin`); ``on_epoch`` (at ``epoch % interval == 0``) calls
:meth:`compute`, stores the value in :attr:`value` / :attr:`latest_epoch`, appends it to the
history behind :attr:`result`, and logs :meth:`metrics` plus the fire's duration in
milliseconds under ``explainability/time_ms/<name>``. Trackers never modify the train state.

Fires run off the training thread when the solve has a diagnostics thread (see
:mod:`jno_core.concurrent`): ``on_epoch`` freezes the context (:meth:`SolveContext.snapshot`)
and submits the fire, so :meth:`compute` must only use the ``ctx`` it is given (never the
solver's live state). :attr:`value`, :attr:`latest_epoch` and :attr:`result` are complete
when ``solve()`` returns and whenever a non-concurrent plugin's hook runs.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Hashable

import numpy as np

from .fires import batches, fire_output, prepare_fire
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
    #: in a solve that fires from chunk snapshots, run all of a chunk's fires as one device
    #: call mapped over its snapshot slots (one dispatch per chunk). False: one call per fire,
    #: on the snapshot of that epoch; better for an expensive function that fires rarely
    #: (a Hessian, a loss landscape), whose mapped program is slower per fire and slower to
    #: compile (see benchmarks/README.md)
    batch_fires: bool = True
    #: what :meth:`fire_fn`'s function takes beyond ``(params, points, inputs, weights)``, as
    #: keyword arguments: ``"gradient_matrix"`` (``G`` ``(N, P)`` for :attr:`mask`) and/or
    #: ``"epoch"`` (int32 scalar)
    needs: tuple[str, ...] = ()
    #: the parameters ``"gradient_matrix"`` differentiates (None: every trained parameter)
    mask: Any = None

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
        #: the core's preparation of :meth:`fire_fn`'s function for this solve
        #: (:class:`jno_core.fires.Fire`; None for a host-side tracker)
        self.prepared_fire: Any = None
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
        """Optional set-up against ``ctx`` before :meth:`fire_fn` (resolve constraints,
        masks, static results). Called in ``on_solve_begin``."""

    def fire_fn(self, ctx: Any) -> Callable[..., Any] | None:
        """The tracker's device function, ``fn(params, points, inputs, weights, **needs) ->
        pytree of arrays`` (pure and traceable; ``needs`` per :attr:`needs`). The core compiles
        it in the background, warms it up and runs it at every fire, over a chunk's snapshot
        slots in one call where it can (:mod:`jno_core.fires`); :meth:`finish` turns its output
        (NumPy leaves) into the fire's value. ``None`` (the default): the tracker has no
        device function and overrides :meth:`compute` instead (the host-side escape hatch)."""
        return None

    def fire_key(self, ctx: Any) -> Hashable:
        """What identifies :meth:`fire_fn`'s function: trackers returning equal keys (and the
        same function) share one executable and one call per fire. Default: this object."""
        return (self.name, id(self))

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        """This fire's value from the device function's output ``out`` (NumPy leaves); host
        work (e.g. float64 statistics) goes here. Default: ``out`` itself (a dict)."""
        return dict(out)

    def compute(self, ctx: Any, epoch: int) -> dict[str, Any]:
        """This fire's value: a dict with at least :attr:`result_keys`. Default:
        :meth:`finish` of the device function's output at ``ctx``'s epoch. Override it (and
        leave :meth:`fire_fn` at ``None``) for host-driven work, using only the ``ctx`` given
        (``ctx.params``, ``ctx.compile``, ``ctx.gradient_matrix``, ...)."""
        fire = self.prepared_fire
        if fire is None:
            raise NotImplementedError(
                f"tracker {self.name!r} has neither a device function (fire_fn) nor a compute(ctx, epoch) "
                "override; implement one of them (see docs/writing-plugins.md)."
            )
        return self.finish(fire_output(ctx, fire, self.interval), epoch)

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        """The metrics to log for ``value`` (``{key: number or MetricValue}``)."""
        return {}

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def on_solve_begin(self, ctx: Any) -> None:
        """:meth:`prepare`, then the core prepares :meth:`fire_fn`'s function; skipped when
        this tracker already prepared successfully for ``ctx.setup_token`` (a repeated
        ``solve()`` of the same solver: same shapes, points and placement, so the compiled
        functions are still valid)."""
        token = getattr(ctx, "setup_token", None)
        if token is not None and token is self._prepared_for and self.still_prepared(ctx):
            return
        self._prepared_for = None
        self.prepared_fire = None
        self.prepare(ctx)
        fn = self.fire_fn(ctx)
        if fn is not None:
            self.prepared_fire = prepare_fire(ctx, self, fn, self.fire_key(ctx))
        self._prepared_for = token

    def still_prepared(self, ctx: Any) -> bool:
        """Whether what the last preparation made still serves ``ctx`` (same setup token):
        its compilations succeeded and its device function was prepared for the way this
        solve fires (from chunk snapshots or not). Subclasses whose preparation depends on
        more than the token add their condition."""
        fire = self.prepared_fire
        if fire is not None and (fire.batched != batches(ctx, self) or not fire.ready()):
            return False
        pending = getattr(self, "pending", None)
        if pending is not None and hasattr(pending, "result"):
            try:
                pending.result()
            except Exception:  # noqa: BLE001 - prepare again (and report it there)
                return False
        return True

    @property
    def fire_executable(self) -> Any:
        """The compiled device function of this solve (``jax.stages.Compiled``, over a chunk's
        snapshot slots when the solve fires from them; None for a host-side tracker or
        before the solve starts)."""
        return None if self.prepared_fire is None else self.prepared_fire.pending.result()

    # ------------------------------------------------------------------ earlier API (kept)
    def compile_fire_fn(self, ctx: Any, name: str, fn: Any) -> Any:
        """Earlier form of :meth:`fire_fn` (kept for trackers written against it): prepare
        ``fn(params, points, inputs, weights)`` from :meth:`prepare`; :meth:`run_fire_fn`
        reads it. Returns ``jax.eval_shape`` of one fire's output."""
        self.prepared_fire = prepare_fire(ctx, self, fn, name)
        return self.prepared_fire.out_info

    def run_fire_fn(self, ctx: Any) -> Any:
        """The output of :meth:`compile_fire_fn`'s function at ``ctx`` (NumPy leaves)."""
        return fire_output(ctx, self.prepared_fire, self.interval)

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
