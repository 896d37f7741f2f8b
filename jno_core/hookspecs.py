"""The jno hook contract (pluggy project name ``"jno"``).

Every diagnostic, metrics sink, loss-weighting scheme and training-control callback is a
pluggy plugin implementing some of the hooks below. Plugins are found through the entry-point
group ``"jno"`` (see :mod:`jno_core.plugins`) or passed to ``solve(callbacks=[...])``, which
registers them for the duration of that solve.

Dispatch: pluggy calls every broadcast hook (``pm.hook.<name>`` or a caller from
``pm.subset_hook_caller``; see :mod:`jno_core.dispatch`), so pluggy's rules hold: the
implementations run last-registered-first, ``@hookimpl(tryfirst=True)`` / ``trylast=True``
move one to the front / back, and ``wrapper=True`` (new style) or ``hookwrapper=True`` (old
style) implementations wrap the whole call. ``solve(callbacks=[...])`` registers its callbacks
last to first, so they run in list order. An exception raised by an implementation is
re-raised as :class:`~jno_core.errors.JnoPluginError` naming the plugin. ``JNO_TRACE_PLUGINS=1``
turns on pluggy's tracing (plus one line per implementation called).

Threads: hooks marked *training thread* run in the thread that called ``solve()`` between
device chunks. The loop has usually started the next chunk already (one chunk ahead, from the
state the hooks see), so short hooks overlap the device; a hook that replaces the state, the
points or the epoch (e.g. restoring a checkpoint) makes the loop drop that chunk and start
again from what the hook left, and a hook that blocks long still idles the device once the
chunk ahead is done. ``log_metrics``,
``log_metrics_batch``, ``save_checkpoint`` (for sinks), ``flush_metrics`` and ``close_run`` run on
the metrics delivery thread, off the training loop; they may block (network, disk) without
slowing training, up to the bounded queue's capacity. They still share the interpreter (the GIL)
and, on a small machine, the CPU with the training thread, so a sink should do little Python
work per step: ``log_metrics_batch`` lets it write and flush once per batch. A chunk's
metrics reach the sinks after the chunk ends, and ``solve()`` returns only once the sinks have
them all; the loop therefore halves its chunks towards the end of a solve (down to a
sixteenth of ``chunk_size``), so little is left to deliver after the last one.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pluggy

__all__ = ["PROJECT_NAME", "hookspec", "hookimpl", "JnoSpec"]

PROJECT_NAME = "jno"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class JnoSpec:
    """Hook specifications. Each method documents one hook."""

    # ------------------------------------------------------------------ registration
    @hookspec
    def jno_register_trackers(self, register: Callable[..., None]) -> None:
        """Register tracker (diagnostic callback) factories by name.

        Called once, the first time a registry is needed (lazily, on the calling thread).
        Names appear as ``jno.trackers.<name>`` and ``jno.callbacks.<name>`` (the same object).

        :param register: ``register(name, factory)``; ``factory(**kwargs)`` returns a tracker
            object (see :class:`jno_core.tracker.Tracker`). Registering a name another plugin
            already registered is an error naming both plugins.
        Must not block.
        """

    @hookspec
    def jno_register_callbacks(self, register: Callable[..., None]) -> None:
        """Register training-control callback factories (checkpointing, early stopping).

        Called once, lazily, on the calling thread, like :meth:`jno_register_trackers`; names
        share the ``jno.callbacks`` namespace with trackers.

        :param register: ``register(name, factory)``.
        Must not block.
        """

    @hookspec
    def jno_register_sinks(self, register: Callable[..., None]) -> None:
        """Register metrics sink factories by name (the names used in ``jno.setup(sinks=[...])``,
        ``JNO_SINKS`` and ``jno.toml``).

        Called once, lazily, on the calling thread.

        :param register: ``register(name, factory)``; ``factory(run)`` receives the
            :class:`jno_core.run.Run` and returns a plugin object implementing
            ``log_metrics`` (and optionally ``log_metrics_batch``, ``save_checkpoint``,
            ``flush_metrics``, ``close_run``).
        Must not block.
        """

    @hookspec
    def jno_register_weightings(self, register: Callable[..., None]) -> None:
        """Register loss-weighting scheme factories by name; they appear as
        ``jno.fn.adaptive.<name>``.

        Called once, lazily, on the calling thread.

        :param register: ``register(name, factory)``; ``factory(losses, **kwargs)`` returns
            weight placeholders backed by a pure ``init``/``update`` pair
            (see :class:`jno_core.weighting.WeightingScheme`).
        Must not block.
        """

    @hookspec
    def jno_register_resamplers(self, register: Callable[..., None]) -> None:
        """Register collocation-point resampling strategies (RAD, R3, ...) by name; they
        appear as ``jno.resampling.<name>``.

        Called once, lazily, on the calling thread.

        :param register: ``register(name, factory)``; ``factory(residual, *, domain, every,
            seed, ...)`` returns a plugin object passed in ``solve(callbacks=[...])`` that
            replaces the residual's point set between chunks (``SolveContext.set_points``),
            keeping its count, dtype and sharding (see ``docs/resampling.md``).
        Must not block.
        """

    # ------------------------------------------------------------------ the solve loop
    @hookspec
    def on_solve_begin(self, ctx: Any) -> None:
        """Called once per ``solve()``, after the train step is compiled and before the first
        epoch runs. Plugins compile their own functions here against ``ctx``'s live parameter
        shapes, so their first ``on_epoch`` runs a warm kernel.

        :param ctx: the :class:`jno_core.context.SolveContext` of this solve.
        Training thread; may block (compilation), which counts as set-up time, not epoch time.
        """

    @hookspec
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        """Called at the epochs a plugin asked for: ``epoch % plugin.interval == 0``, with the
        parameters that epoch's step starts from (the loss of ``history`` at ``epoch`` is
        computed from the same parameters). Only the plugins due at ``epoch`` are called (a
        subset caller without the others); an implementation on a plugin without an
        ``interval`` attribute (a wrapper, say) is part of every ``on_epoch`` call.

        :param ctx: the :class:`jno_core.context.SolveContext`; ``ctx.params`` are the
            parameters at ``epoch``. ``ctx.log(metrics)`` sends metrics to every sink.
        :param epoch: the global epoch (continues across repeated ``solve()`` calls).
        Training thread; blocking here stalls training. Plugins with ``deferred_fire = True``
        (every :class:`jno_core.tracker.Tracker`) are called after the device chunk that
        contains ``epoch``, with ``ctx`` frozen at ``epoch`` (the chunk does not stop for
        them); a plugin listing ``"on_epoch"`` in ``concurrent_hooks`` may be called while
        earlier fires still run on the diagnostics thread, any other plugin only after they
        have finished (see :mod:`jno_core.concurrent`).
        """

    @hookspec
    def on_chunk_end(self, ctx: Any, epochs: Any, losses: Any) -> None:
        """Called after every device chunk with the per-epoch losses of the chunk, already on
        the host (no extra device-to-host copy). Early stopping and checkpointing decide here.

        :param ctx: the :class:`jno_core.context.SolveContext`.
        :param epochs: ``numpy`` int array ``(L,)`` of the chunk's global epochs.
        :param losses: ``numpy`` float array ``(L, 1 + N)``: total loss then each constraint's.
        Training thread; may call ``ctx.request_stop(reason)``. Blocking here stalls training
        (keep it to host-side bookkeeping; hand slow I/O to a thread).
        """

    @hookspec
    def on_solve_end(self, ctx: Any, history: Any) -> None:
        """Called once when ``solve()`` finishes (also after a non-finite stop or early stop),
        after the last chunk's metrics were queued and before they are flushed.

        :param ctx: the :class:`jno_core.context.SolveContext`.
        :param history: the :class:`jno_core.history.History` about to be returned.
        Training thread; may block (the solve is over; ``solve()`` returns after it).
        """

    # ------------------------------------------------------------------ sinks
    @hookspec
    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Deliver metrics to a sink. The only way metrics leave the core.

        Called for every batch the solve loop, trackers (``ctx.log``) and callbacks queue,
        in step order, from the first ``solve()`` of a run until ``close_run``.

        :param step: a monotone step counter shared by every sink (the global epoch the values
            belong to); it continues across repeated ``solve()`` calls. Calls arrive in
            non-decreasing ``step`` order; several calls may carry the same step.
        :param metrics: ``{key: MetricValue}`` with :mod:`jno_core.metrics` types.
        Metrics delivery thread; may block. An exception is reported once, naming the
        plugin, and the other sinks still receive the metrics (strict mode re-raises).
        """

    @hookspec
    def log_metrics_batch(self, records: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Deliver several steps' metrics to a sink in one call (optional; a sink that
        implements it must also implement :meth:`log_metrics`, which the solve loop uses to
        recognise sinks passed in ``solve(callbacks=[...])``).

        Called instead of :meth:`log_metrics` with everything that was queued when the
        delivery thread woke up (one call per wake-up rather than one per step), so a sink can
        write and flush its files once per batch and a sink with a fixed cost per call (a
        network round trip) pays it once. A sink without it gets one ``log_metrics`` call per
        record, in the same order. ``save_checkpoint`` calls are ordered with the records: a
        checkpoint queued between two steps ends one batch and starts the next. ``jno sync``
        (:func:`jno_core.replay.replay`) also calls it, with up to 256 records per call.

        :param records: a non-empty sequence of ``(step, metrics)`` pairs, exactly what
            :meth:`log_metrics` would have received one call at a time, in delivery order
            (non-decreasing ``step``; several records may carry the same step). ``metrics`` is
            ``{key: MetricValue}`` with :mod:`jno_core.metrics` types.
        Metrics delivery thread; may block (the training loop does not wait for it, only the
        final flush of ``solve()`` does). An exception is reported once, naming the plugin;
        the sink is skipped from then on (the records of that batch count as lost for it) and
        the other sinks still receive everything (strict mode re-raises). After a batch
        returns, what it delivered should be on disk or handed to the backend, so a killed
        process keeps it.
        """

    @hookspec
    def save_checkpoint(self, path: str, epoch: int, metadata: Mapping[str, Any]) -> None:
        """A checkpoint was written (atomically) to ``path``. Sinks may upload it (the W&B
        sink logs it as a versioned artifact of type ``checkpoint``).

        Called once per checkpoint, after the files are complete on disk.

        :param path: the checkpoint directory, complete on disk.
        :param epoch: the epoch it holds.
        :param metadata: ``epoch``, ``total_loss``, ``individual_losses``, ``checkpoint_dir``,
            ``timestamp`` (and ``best_value`` when ``best_fn`` is set).
        Metrics delivery thread (ordered with ``log_metrics``); may block.
        """

    @hookspec
    def flush_metrics(self) -> None:
        """Everything queued so far was delivered: write buffers out.

        Called at the end of every ``solve()`` and before ``close_run``.
        Metrics delivery thread; may block.
        """

    @hookspec
    def close_run(self) -> None:
        """The run ends: close files and remote runs.

        Called once per run, by ``jno.finish()``, a new ``jno.setup()`` or at interpreter
        exit, after a final ``flush_metrics``. Metrics delivery thread; may block.
        """
