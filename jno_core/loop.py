"""The solve loop: epochs ``start..end`` chunk by chunk (:class:`SolveLoop`).

The loop runs epochs on the device in chunks (:mod:`jno_core.chunk`) and returns to the host
only at epochs where a non-deferred plugin or a tracker expression asked to run
(``epoch % interval == 0``), when the per-chunk buffer is full, or when the chunk's
parameter-snapshot slots run out (:mod:`jno_core.schedule`). Deferred plugins (trackers) fire
after the chunk from its snapshots. ``on_epoch`` goes through pluggy for the plugins due
(:meth:`SolveLoop.call_on_epoch`). Per-epoch losses come back once per chunk and reach the
sinks as batches (:class:`MetricsBuffer`).
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import dispatch
from . import plugins as P
from .chunk import Chunk, ChunkSlots, dispatch_chunk
from .errors import NonFiniteLossError
from .history import History
from .interrupts import check_interrupt, deferred_interrupts
from .metrics import Array, Scalar
from .optim import split_line_search_lrs
from .progress import Progress
from .schedule import ChunkPlan, plan_chunk, taper_epochs

__all__ = ["FirePlan", "MetricsBuffer", "LrTable", "SolveLoop", "plan_fires"]


class MetricsBuffer:
    """Metrics by step, delivered to the bus in step order once a step is complete (a step
    with a fire still running on the diagnostics thread is not complete)."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.pending: dict[int, dict[str, Any]] = {}
        self.worker: Any = None
        self._lock = threading.Lock()

    def add(self, step: int, metrics: dict[str, Any]) -> None:
        if self.bus is None:
            return
        with self._lock:
            self.pending.setdefault(step, {}).update(metrics)

    def emit_before(self, step: int | None) -> None:
        if self.bus is None:
            return
        busy = self.worker.pending_from() if self.worker is not None else None
        if busy is not None:
            step = busy if step is None else min(step, busy)
        with self._lock:
            ready = [(s, self.pending.pop(s)) for s in sorted(k for k in self.pending if step is None or k < step)]
        self.bus.put_many(ready)


class LrTable:
    """Learning rates of every network at the logged epochs of one solve, from one
    vectorised schedule call per network (a schedule call per chunk was a measurable cost per
    chunk; see benchmarks/README.md)."""

    def __init__(self, fns: dict[str, Any], opt_start: int, start: int, end: int, log_every: int) -> None:
        self.fns = {name: fn for name, fn in fns.items() if fn is not None}
        self.opt_start = opt_start
        first = -(-start // log_every) * log_every
        self.epochs = np.arange(first, end, log_every)
        if len(self.epochs) > 200_000:  # very long solves logging often: per chunk instead
            self.epochs = self.epochs[:0]
        self.table = {name: fn(self.epochs - opt_start) for name, fn in self.fns.items()}
        self.log_every = log_every
        self.first = first

    def lookup(self, epochs: Sequence[int]) -> dict[str, np.ndarray]:
        ep = np.asarray(epochs)
        idx = (ep - self.first) // self.log_every
        hit = (ep % self.log_every == 0) & (idx >= 0) & (idx < len(self.epochs))
        out = {}
        for name, fn in self.fns.items():
            vals = np.empty(len(ep))
            if hit.any():
                vals[hit] = self.table[name][idx[hit]]
            if (~hit).any():  # a non-finite stop outside the logging grid
                vals[~hit] = fn(ep[~hit] - self.opt_start)
            out[name] = vals
        return out


class FirePlan(NamedTuple):
    """Who fires how in a solve: ``plugins`` (every plugin with an interval), ``deferred``
    (fired after the chunk from its on-device snapshots: trackers), ``host`` (the others, a
    chunk ends at their epochs) and ``postpone`` (deferred fires due at a host-visit epoch are
    taken from a snapshot in the next chunk too: allowed when every host plugin declares
    ``on_epoch`` concurrent, so none can tell)."""

    plugins: list[Any]
    deferred: list[Any]
    host: list[Any]
    postpone: bool


def plan_fires(crux: Any, pm: Any, callbacks: Sequence[Any]) -> FirePlan:
    """The :class:`FirePlan` of a solve of ``crux`` with ``callbacks`` (registered) and the
    plugin manager's other plugins."""
    plugins_ = [p for _, p in pm.list_name_plugin() if getattr(p, "interval", None)]
    for cb in callbacks:
        if cb not in plugins_ and getattr(cb, "interval", None):
            plugins_.append(cb)
    deferred = [p for p in plugins_ if getattr(p, "deferred_fire", False)] if not crux.providers else []
    host = [p for p in plugins_ if not any(p is d for d in deferred)]
    postpone = bool(deferred) and all("on_epoch" in getattr(p, "concurrent_hooks", ()) for p in host)
    return FirePlan(plugins_, deferred, host, postpone)


class SolveLoop:
    """One solve's loop over chunks. The next chunk is dispatched before the current one's
    results are read (one chunk ahead), so the host's per-chunk work (losses, metrics,
    deferred fires, host-visit plugins) overlaps the device. The chunk started ahead is used
    only if, after the host visit, the train state, the points and the epoch are still those
    it started from (a plugin that restored a state, resampled points or stopped the solve
    makes the loop drop it); with weight providers nothing is started ahead, nor before the
    epochs of a host plugin declaring ``replaces_points = True`` (a resampler: the chunk would be
    dropped, and on a busy device it still costs its full run)."""

    def __init__(self, crux: Any, ctx: Any, hist: History, pm: Any, plan: FirePlan, buffer: MetricsBuffer,
                 cap: int, log_every: int) -> None:
        self.crux, self.ctx, self.hist, self.pm, self.plan, self.buffer = crux, ctx, hist, pm, plan, buffer
        self.start, self.end = ctx.start_epoch, ctx.end_epoch
        self.cap, self.log_every = cap, log_every
        # fired at host visits (the deferred ones too unless postponed to the next chunk)
        self.at_host = plan.host if plan.postpone else plan.plugins
        self.host_intervals = [p.interval for p in plan.host] + [t.interval for t in crux.tracker_exprs]
        # shorter chunks towards the end, with sinks attached or not: chunk boundaries (where
        # early stopping decides) must not depend on the sinks
        self.taper = taper_epochs(cap, log_every)
        self.lr_table = LrTable(crux._lr_fns, crux._opt_start_epoch, self.start, self.end, log_every)
        self.keys = ["loss/total"] + [f"loss/{n}" for n in crux.constraint_names]
        self.replacers = [p.interval for p in plan.host if getattr(p, "replaces_points", False)]

    def plan_at(self, e: int) -> ChunkPlan:
        return plan_chunk(e, self.end, self.cap, host_intervals=self.host_intervals,
                          deferred_intervals=[p.interval for p in self.plan.deferred],
                          postpone=self.plan.postpone, taper=self.taper,
                          log_every=self.log_every, slots=self.crux._n_slots)

    def dispatch(self, e: int, before: Any) -> Chunk:
        return dispatch_chunk(self.crux, e, before, self.plan_at(e), self.log_every)

    def start_ahead(self, e: int, state: Any) -> Chunk | None:
        """The chunk at ``e`` dispatched from ``state`` (the future state of the running
        chunk) before the running chunk's results are read, or None where it would be
        dropped anyway: weight providers, the end of the solve, a resampler's epoch."""
        if self.crux.providers or e >= self.end or any(e % iv == 0 for iv in self.replacers):
            return None
        return self.dispatch(e, state)

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool | None) -> None:
        crux, ctx, end = self.crux, self.ctx, self.end
        run = ctx.run
        show = Progress(end - self.start, enabled=progress if progress is not None else (run.progress if run else None))
        wait_chunk_end = any(hasattr(p, "on_chunk_end") and "on_chunk_end" not in getattr(p, "concurrent_hooks", ())
                             for _, p in self.pm.list_name_plugin())
        t_loop = self.t_done = time.perf_counter()
        pending = None
        if self.start < end:
            self.fire(self.start)
            pending = self.dispatch(self.start, crux._state)
        try:
            while pending is not None:
                check_interrupt()  # an interrupt Python dropped (raised inside a gc callback)
                c = pending
                state = c.outs[0]
                ahead = self.start_ahead(c.e + c.n, state)
                rows, ep_s, ok = self.finish_chunk(c)
                if not ok:
                    self.non_finite(c, rows)
                    break
                e = crux.epoch = c.e + len(rows)
                if wait_chunk_end:
                    ctx.wait_for_diagnostics()
                P.call_hook(self.pm, "on_chunk_end", where=f" at epoch {e} (end of epochs {c.e}..{e - 1})",
                            ctx=ctx, epochs=np.arange(c.e, e), losses=rows[:, : len(self.keys)])
                self.buffer.emit_before(e)
                show.update(e - self.start, float(rows[-1, 0]), ep_s)
                if ctx.stop_reason:
                    self.hist.stopped = ctx.stop_reason
                    break
                pending = None
                if e < end:
                    self.fire(e)
                    if (ahead is not None and ahead.e == e and crux._state is state and crux._points is ahead.points
                            and crux.epoch == e):
                        pending = ahead
                    else:  # a plugin changed what the chunk started ahead started from
                        pending = self.dispatch(crux.epoch, crux._state)
        finally:
            show.close()
            self.hist.wall_time += time.perf_counter() - t_loop

    def finish_chunk(self, c: Chunk) -> tuple[np.ndarray, float, bool]:
        """Read a chunk's results: ``(rows, epochs/s, ok)``; the history, the metrics of its
        logged epochs and its deferred fires."""
        state, buf, n_done, ok, snaps, n_slots = c.outs
        rows = np.asarray(buf)  # waits for the device: Ctrl-C here drops the chunk
        n_done, ok = int(n_done), bool(ok)
        with deferred_interrupts():  # the state, the history and the metrics move on together
            rows, ep_s = self._record_chunk(c, state, rows[:n_done], ok)
        if c.snap_epochs:
            self.fire_deferred(snaps, c.snap_epochs[: int(n_slots)], c.inputs, c.points)
        return rows, ep_s, ok

    def _record_chunk(self, c: Chunk, state: Any, rows: np.ndarray, ok: bool) -> tuple[np.ndarray, float]:
        """Take a finished chunk's state, append its rows to the history and buffer the
        metrics of its logged epochs; returns ``(rows without the line-search columns,
        epochs/s)``."""
        crux, log_every, n_done = self.crux, self.log_every, len(rows)
        crux._state = state
        rows, ls_lrs = split_line_search_lrs(crux, rows)
        e = c.e
        self.hist._append(np.arange(e, e + n_done), rows)
        t_prev, self.t_done = self.t_done, time.perf_counter()
        dt = self.t_done - max(c.t_dispatch, t_prev)  # queued behind the previous chunk until t_prev
        ep_s = n_done / dt if dt > 0 else float("inf")
        logged = [j for j in range(n_done) if (e + j) % log_every == 0 or (not ok and j == n_done - 1)]
        if logged and self.buffer.bus is not None:
            lrs = self.lr_table.lookup([e + j for j in logged])
            for t, j in enumerate(logged):
                m = {k: Scalar(v) for k, v in zip(self.keys, rows[j, : len(self.keys)].tolist())}
                m["train/grad_norm"] = Scalar(float(rows[j, -2]))
                m["train/param_norm"] = Scalar(float(rows[j, -1]))
                for name, vals in lrs.items():
                    m[f"lr/{name}"] = Scalar(float(vals[t]))
                for name, vals in ls_lrs.items():
                    m[f"lr/{name}"] = Scalar(float(vals[j]))
                self.buffer.add(e + j, m)
        # the chunk's speed at its last logged epoch (a step the sinks get anyway)
        self.buffer.add(e + (logged[-1] if logged else max(n_done - 1, 0)), {"perf/epochs_per_s": Scalar(ep_s)})
        return rows, ep_s

    def non_finite(self, c: Chunk, rows: np.ndarray) -> None:
        """A non-finite loss in the chunk's last row: the state before that step (replayed
        from the chunk's start), a warning, or :class:`NonFiniteLossError` in strict mode."""
        crux, n_terms = self.crux, len(self.keys) - 1
        crux._state = crux._chunk_fn(c.before, c.points, c.inputs, np.int32(len(rows) - 1),
                                     np.int32(self.log_every), c.snap_at)[0]
        crux.epoch = c.e + len(rows) - 1
        bad = [crux.constraint_names[i] for i in range(n_terms) if not np.isfinite(rows[-1, 1 + i])]
        msg = (
            f"non-finite loss at epoch {crux.epoch} in {', '.join(bad) or 'the total loss'} "
            f"({rows[-1, 0]!r}); training stopped there and the parameters are those before "
            "that step. The history up to that epoch is kept. Lower the learning rate or "
            "check the constraint for divisions by zero / logs of negatives."
        )
        self.hist.stopped = msg
        self.buffer.emit_before(None)
        if P.strict_mode():
            raise NonFiniteLossError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    # ------------------------------------------------------------------ fires
    def fire(self, e: int) -> None:
        """Host visit at epoch ``e``: the tracker expressions due, then ``on_epoch`` of the
        plugins due (the host plugins, and the deferred ones unless postponed)."""
        crux, ctx = self.crux, self.ctx
        ctx._memo = {}
        for i, t in enumerate(crux.tracker_exprs):
            if e % t.interval == 0:
                st = crux._state
                v = np.asarray(crux._tracker_fn(i)(st.params, crux._points, crux._current_inputs(),
                                                   crux.scheme_weights(st.scheme_states)))
                name = crux.tracker_names[i]
                self.hist.trackers[name].append(e, v)
                self.buffer.add(e, {f"tracker/{name}": Scalar(v) if v.size == 1 else Array(v)})
        if ctx._worker is not None:
            ctx._worker.check()
        self.call_on_epoch(ctx, self.at_host, e)

    def call_on_epoch(self, ctx: Any, plugins_: Sequence[Any], e: int) -> None:
        """``on_epoch`` through pluggy for the plugins of ``plugins_`` due at ``e`` (and every
        implementation on a plugin without an ``interval``, e.g. a wrapper), waiting first for
        in-flight fires unless every due plugin is concurrent; a failure names the plugin."""
        due = [p for p in plugins_ if e % p.interval == 0]
        if not due:
            return
        if any("on_epoch" not in getattr(p, "concurrent_hooks", ()) for p in due):
            ctx.wait_for_diagnostics()
        timed = [p for p in due if isinstance(getattr(p, "fire_times_ms", None), list)
                 and "on_epoch" not in getattr(p, "concurrent_hooks", ())]
        t0 = time.perf_counter()
        caller = self.pm.subset_hook_caller("on_epoch", [p for p in self.plan.plugins if not any(p is d for d in due)])
        dispatch.call(caller, "on_epoch", where=f" at epoch {e}", ctx=ctx, epoch=e)
        for p in timed:  # concurrent ones time themselves
            p.fire_times_ms.append((time.perf_counter() - t0) * 1e3)

    def fire_deferred(self, snaps: Any, epochs: Sequence[int], inputs: dict[str, Any], points: Any = None) -> None:
        """Fire the deferred plugins due at each of ``epochs`` (inside the chunk just run),
        each with a context frozen at that epoch from the chunk's snapshot slot; each tracker's
        device function runs over all slots in one call, made by the first fire that needs
        it (on the diagnostics thread; :mod:`jno_core.fires`)."""
        crux = self.crux
        # the chunk's own points: a resampler may replace crux._points before these fires run
        chunk = ChunkSlots(snaps, crux._points if points is None else points, inputs, epochs, crux._n_slots)
        for j, s_ep in enumerate(epochs):
            def materialize(j: int = j) -> Any:
                return crux._take_slot(snaps, np.int32(j))

            snap = self.ctx.deferred_snapshot(int(s_ep), materialize, inputs, chunk=chunk, slot=j)
            self.call_on_epoch(snap, self.plan.deferred, int(s_ep))
