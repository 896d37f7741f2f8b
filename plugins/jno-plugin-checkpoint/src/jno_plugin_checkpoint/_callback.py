"""The checkpoint callback: ``jno.callbacks.checkpoint(...)``."""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import os
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from jno_core.api import CheckpointError, ConfigError, deferred_interrupts, hookimpl, strict_mode

from . import _format as F
from ._writer import SaveJob, Writer
from ._restore import active_optimizers, apply_state, collect_plugin_state, load_into

__all__ = ["Checkpoint"]


def _positive_int(value: Any, what: str, example: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"checkpoint: {what} must be a positive integer{' or None' if allow_none else ''}, "
                         f"received {value!r}; e.g. {example}.")
    return int(value)


_YIELD_FIRST = 0.002  # seconds the writer waits before starting a job


def _stateful_concurrent_plugins(exclude: Any) -> bool:
    """Whether a registered plugin with ``jno_state`` may still be firing on the diagnostics
    thread (its state must then be complete before a save collects it)."""
    from jno_core.api import get_plugin_manager

    return any(p is not exclude and callable(getattr(p, "jno_state", None))
               and "on_epoch" in getattr(p, "concurrent_hooks", ())
               for _, p in get_plugin_manager().list_name_plugin())


class Checkpoint:
    """Saves the whole train state every ``save_interval_epochs`` epochs and at the end of
    every solve; restores it to resume training.

    :param directory: where checkpoints go (``<directory>/<epoch>/``). Default: the current
        run's ``<run dir>/checkpoints`` (``jno.setup`` must have been called).
    :param save_interval_epochs: save at every epoch ``e`` with ``e % save_interval_epochs ==
        0`` reached during a solve (the state *at* ``e``, before that epoch's step), except the
        epoch a solve starts from (nothing new to save). The last epoch of every solve is
        always saved, in ``on_solve_end``.
    :param max_to_keep: keep the newest ``max_to_keep`` checkpoints (None: keep all).
    :param best_fn: ``best_fn(metadata) -> float``; the ``max_to_keep`` checkpoints with the
        best value (lowest, or highest with ``best_mode="max"``) are kept *in addition to* the
        newest ones; the value is stored as ``metadata["best_value"]``.
    :param best_mode: ``"min"`` (default) or ``"max"``.
    :param fsync: fsync files and directories (durable against power loss; costs time per save,
        spent on the writer thread; figures in benchmarks/README.md).

    Saving costs the training thread the dispatch of one compiled pack of the state (one
    buffer per dtype; it does not wait for the device). A writer thread copies it to the host
    and writes ``state.safetensors`` into ``<directory>/.tmp-<epoch>-<pid>`` at once; the
    metadata needs the losses at the saved parameters, which the training loop computes as the
    first row of the chunk starting at that epoch, so ``metadata.json`` is written and the
    directory renamed to ``<epoch>`` as soon as that chunk ends. Files:
    ``<directory>/<epoch>/state.safetensors`` and ``metadata.json`` (see
    :mod:`jno_plugin_checkpoint._format`).

    **On time, bounded.** Before the state of a save epoch is copied, the previous save is
    complete on disk (the training thread waits for it there, which costs nothing unless the
    disk is slower than the save interval: then training slows to the disk's pace instead of
    queueing states). So a process killed at any moment keeps every checkpoint but possibly the
    newest due one (at most one interval lost), and at most two states (one being written, one
    being copied) are held in memory. The first save never waits behind a compilation: the loss
    function the final save needs is compiled on a thread of its own, started in
    ``on_solve_begin``.

    **Failures.** A write that fails (full disk, permissions, read-only file system) removes its
    temporary directory and is reported on the training thread at the next save epoch (or at
    the end of the solve, or in :meth:`close` for the final save), naming the plugin and the
    path: by default with a ``RuntimeWarning``, after which checkpointing is off for the rest
    of that solve while training goes on; in strict mode (``jno.setup(strict=True)`` or
    ``JNO_STRICT=1``) as a :class:`~jno_core.errors.CheckpointError` that stops the solve.
    An error of ``best_fn`` is always raised.

    Each completed save calls the ``save_checkpoint`` hook through the run's metrics bus (sinks,
    e.g. the W&B artifact upload, get it in order with the metrics) once the files are complete:
    at the next chunk boundary, or — for the final save, which ``solve()`` does not wait for —
    at :meth:`close` (the spec calls ``cb.close()`` after ``solve``), :meth:`restore`, the next
    solve, or interpreter exit (also after Ctrl-C or SIGTERM).

    ``metadata["total_loss"]`` / ``["individual_losses"]`` are the losses *at the saved
    parameters* (weighted as in training): the row ``history`` records for that epoch; the
    final save of a solve (whose epoch has no row) evaluates them once, on the writer thread.
    """

    name = "checkpoint"
    #: a save copies the train state (which fires never touch) and the state of plugins with
    #: ``jno_state``; ``on_epoch`` waits for in-flight fires only when such a plugin is itself
    #: concurrent (see :meth:`on_epoch`)
    concurrent_hooks = ("on_solve_begin", "on_epoch", "on_chunk_end")

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        save_interval_epochs: int = 500,
        max_to_keep: int | None = 3,
        best_fn: Callable[[dict[str, Any]], float] | None = None,
        *,
        best_mode: str = "min",
        fsync: bool = True,
    ) -> None:
        if directory is None:
            from jno_core.api import current_run

            run = current_run()
            if run is None:
                raise ConfigError(
                    "jno.callbacks.checkpoint: no directory given and no run is open; pass "
                    "directory='path/to/checkpoints', or call jno.setup(__file__) first (the "
                    "default is <run dir>/checkpoints)."
                )
            directory = Path(run.dir) / "checkpoints"
        self.directory = Path(directory).absolute()
        self.interval = _positive_int(save_interval_epochs, "save_interval_epochs", "save_interval_epochs=500")
        self.save_interval_epochs = self.interval
        self.max_to_keep = _positive_int(max_to_keep, "max_to_keep", "max_to_keep=3", allow_none=True)
        if best_fn is not None and not callable(best_fn):
            raise TypeError(f"checkpoint: best_fn must be callable (e.g. lambda m: m['total_loss']), received {best_fn!r}.")
        if best_mode not in ("min", "max"):
            raise ValueError(f"checkpoint: best_mode must be 'min' or 'max', received {best_mode!r}.")
        self.best_fn = best_fn
        self.best_mode = best_mode
        self.fsync = bool(fsync)
        self.saved: list[dict[str, Any]] = []  # metadata of every save of this object, in order
        self.save_times_ms: list[float] = []  # training-thread time per save
        self._writer: Writer | None = None
        self._jobs: list[SaveJob] = []  # submitted saves not yet delivered, in order
        #: why checkpointing is off for the rest of this solve (a failed write), or None
        self.disabled: str | None = None
        self._lock = threading.Lock()
        self._best: dict[int, float] = {}
        self._cleaned = False
        self._loss_fns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # crux -> fn
        self._structures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # crux -> {treedef: ...}
        self._atexit = False
        self._last_saved: tuple[int, int] | None = None  # (id(crux), epoch)
        # written checkpoints whose save_checkpoint hook the sinks have not run yet (an event
        # set when they have; None while not yet handed over): never pruned before (the W&B
        # sink reads the files to upload them as an artifact)
        self._undelivered: dict[int, threading.Event | None] = {}

    @property
    def plugin_name(self) -> str:
        return self.name

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def on_solve_begin(self, ctx: Any) -> None:
        """Describe the state's structure, start the writer thread and the compilation of the
        loss function the final save needs (on a thread of its own, so no save waits for it)."""
        self._settle(block=False)
        self.disabled = None
        self._structure(ctx.crux, ctx.state)
        self._start_writer()
        self._prepare_loss_fn(ctx.crux)

    @hookimpl
    def on_epoch(self, ctx: Any, epoch: int) -> None:
        """Wait until the previous save is on disk (see the class docstring), then copy the
        state at ``epoch`` and hand it to the writer (``state.safetensors`` is written now,
        ``metadata.json`` once the next chunk has computed this state's loss)."""
        if epoch == ctx.start_epoch:
            self._settle(block=False)
            return
        self._settle(block=True)
        if self.disabled:
            return
        if _stateful_concurrent_plugins(self):
            ctx.wait_for_diagnostics()
        self._save(ctx.crux, epoch, ctx.run, row_pending=True)

    @hookimpl
    def on_chunk_end(self, ctx: Any, epochs: Any, losses: Any) -> None:
        """Hand the saves waiting for their loss row the chunk's first row (the loss at the
        state the chunk started from), and deliver the finished saves."""
        if self._jobs:
            first = int(np.asarray(epochs)[0]) if len(epochs) else None
            for job in self._jobs:
                if not job.row.done():
                    job.set_row(np.asarray(losses[0], np.float64) if job.epoch == first else None)
        self._settle(block=False)

    @hookimpl
    def on_solve_end(self, ctx: Any, history: Any) -> None:
        """Wait for the periodic saves (a failure is reported here), then save the final state
        (unless this epoch was just saved). The final write finishes on the writer thread;
        :meth:`close`, :meth:`restore`, the next solve or interpreter exit wait for it and
        deliver its ``save_checkpoint`` hook."""
        crux = ctx.crux
        self._settle(block=True)
        if self.disabled:
            return
        if self._last_saved != (id(crux), int(crux.epoch)):
            self._save(crux, int(crux.epoch), ctx.run, final=True)
        self._settle(block=False)

    # ------------------------------------------------------------------ saving
    def save(self, crux: Any, wait: bool = True) -> None:
        """Save ``crux``'s current state now (outside a solve, or from a hook)."""
        from jno_core.api import current_run

        self._save(crux, int(crux.epoch), current_run())
        if wait:
            self._settle(block=True)

    def _prepare_loss_fn(self, crux: Any) -> None:
        """Start compiling :meth:`_loss_fn` (against the live state's shapes) on a thread of
        its own, once per solver. Only the writer calls it, for a save whose loss row was not
        recorded (the final one); it compiles while training runs, and no save waits for it
        in the writer's queue."""
        if crux in self._loss_fns:
            return
        st = crux.state
        args = (st.params, crux.points, crux.current_inputs(), crux.weights(st))
        f = crux.loss_fn
        fut: cf.Future = cf.Future()

        def compile_() -> None:
            try:
                fut.set_result(jax.jit(f).lower(*args).compile())
            except BaseException as exc:  # noqa: BLE001 - raised where it is used
                fut.set_exception(exc)

        self._loss_fns[crux] = fut
        threading.Thread(target=compile_, name="jno-checkpoint-compile", daemon=True).start()

    def _loss_fn(self, crux: Any) -> Any:
        """``f(params, points, inputs, weights) -> (N,)`` the constraint losses as training
        weighs them, compiled once per solver (see :meth:`_prepare_loss_fn`)."""
        fn = self._loss_fns.get(crux)
        if isinstance(fn, cf.Future):
            fn = self._loss_fns[crux] = fn.result()
        if fn is None:
            fn = self._loss_fns[crux] = jax.jit(crux.loss_fn)
        return fn

    def _structure(self, crux: Any, state: Any) -> tuple[Any, list[Any], list[dict[str, Any]], str]:
        """``(treedef, device leaves, leaf records, structure.json text)``; the records are
        computed once per solver and state structure."""
        canon = F.canonical_state(crux, state)
        leaves, treedef = jax.tree_util.tree_flatten(canon)
        per_crux = self._structures.setdefault(crux, {})
        optimizers = active_optimizers(crux)
        cache_key = (treedef, tuple(optimizers.items()))
        hit = per_crux.get(cache_key)
        if hit is None:
            paths, _, _ = F.flatten_state(crux, state)
            info = F.describe_leaves(paths, leaves)
            structure = {
                "format": F.FORMAT,
                "version": F.VERSION,
                "leaves": info,
                "trainables": [t.name for t in crux.trainables.values()],
                "trained": [crux.trainables[k].name for k in crux.trained_keys],
                "schemes": [s.name for s in crux.schemes.values()],
                "providers": [getattr(p, "name", type(p).__name__) for p in crux.providers.values()],
                "constraints": list(crux.constraint_names),
                "optimizers": optimizers,
            }
            hit = per_crux[cache_key] = (info, F.dumps(structure), F.HostCopier(leaves))
        self._copier = hit[2]
        return treedef, leaves, hit[0], hit[1]

    def _save(self, crux: Any, epoch: int, run: Any, row_pending: bool = False, final: bool = False) -> None:
        """Training thread: pack the state on the device and hand it to the writer thread
        (with ``row_pending``, its loss row follows in ``on_chunk_end``). Under
        ``jax.distributed`` only process 0 writes (the state is replicated)."""
        if jax.process_index() != 0:
            return
        t0 = time.perf_counter()
        state = crux.state
        treedef, leaves, info, structure = self._structure(crux, state)
        copier = self._copier
        flats = copier(leaves)
        job = SaveJob(epoch, (crux, treedef, copier, flats, info, structure, crux.current_inputs(),
                              collect_plugin_state(crux, exclude=self), time.time()), run, final=final)
        for earlier in self._jobs:  # nothing else will give them a row: never wait for one
            earlier.set_row(None)
        if not row_pending:
            job.set_row(None)
        self._last_saved = (id(crux), int(epoch))
        self._jobs.append(job)
        self._start_writer().submit(job)  # blocks while a save waits in the queue (back-pressure)
        self.save_times_ms.append((time.perf_counter() - t0) * 1e3)

    def _start_writer(self) -> Writer:
        if self._writer is None or not self._writer.alive():
            self._writer = Writer(lambda job: self._write(job))
            if not self._atexit:
                # runs before jno.finish() closes the run (atexit is LIFO), so the last save's
                # hook still reaches the sinks; the writer is a daemon thread, alive until then
                atexit.register(self._close_quietly)
                self._atexit = True
        return self._writer

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - interpreter exit: report, do not raise
            print(f"jno checkpoint: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _losses(self, crux: Any, treedef: Any, host: list[np.ndarray], info: list[dict[str, Any]], inputs: Any) -> np.ndarray:
        """Writer thread: the losses at the saved parameters, from the host copy."""
        state = F.state_from_canonical(crux, jax.tree_util.tree_unflatten(treedef, F.from_host(host, info)))
        return np.asarray(self._loss_fn(crux)(state[0], crux.points, inputs, crux.scheme_weights(state[2])),
                          np.float64)

    def _write(self, job: SaveJob) -> dict[str, Any]:
        """Writer thread: write the state file now, the metadata once the loss row arrives,
        then rename atomically and prune. A failure leaves no temporary directory behind.

        The ``time.sleep`` calls hand the GIL back: the training thread needs it only briefly
        between device chunks, but a thread waiting for the GIL gets it only after CPython's
        switch interval (``sys.getswitchinterval()``) unless the holder releases it."""
        time.sleep(_YIELD_FIRST)  # let the training thread launch the next chunk first
        epoch = job.epoch
        crux, treedef, copier, flats, info, structure, inputs, plugin_state, stamp = job.payload
        host = copier.split(flats)
        arrays = {d["path"]: a for d, a in zip(info, host)}
        if not self._cleaned:
            F.remove_stale_temporaries(self.directory)
            self._cleaned = True
        time.sleep(0)
        tmp = F.begin_checkpoint_dir(self.directory, epoch, arrays, structure, plugin_state, fsync=self.fsync)
        try:
            row = job.row.result()
            if row is None:
                vals = self._losses(crux, treedef, host, info, inputs)
                total = float(vals.sum())
            else:  # the row the training loop recorded for this epoch
                vals, total = row[1:], float(row[0])
            final = self.directory / str(epoch)
            meta: dict[str, Any] = {
                "epoch": epoch,
                "total_loss": total,
                "individual_losses": [float(v) for v in vals],
                "checkpoint_dir": str(final),
                "timestamp": stamp,
            }
            if self.best_fn is not None:
                try:
                    meta["best_value"] = float(self.best_fn(dict(meta)))
                except Exception as exc:
                    raise CheckpointError(
                        f"checkpoint best_fn failed on the metadata of epoch {epoch} ({type(exc).__name__}: {exc}); "
                        f"it receives a dict with keys {sorted(meta)}, e.g. best_fn=lambda m: m['total_loss']."
                    ) from exc
        except BaseException:
            F.discard(tmp)
            raise
        time.sleep(0)
        F.finish_checkpoint_dir(self.directory, tmp, epoch, meta, fsync=self.fsync)
        if "best_value" in meta:
            self._best[epoch] = meta["best_value"]
        with self._lock:
            self._undelivered[epoch] = None
        time.sleep(0)
        self._prune()
        return meta

    def _best_value(self, step: int) -> float | None:
        if step not in self._best:
            try:
                v = F._read_json(self.directory / str(step) / F.METADATA_FILE).get("best_value")
            except CheckpointError:
                v = None
            self._best[step] = float("nan") if v is None else float(v)
        v = self._best[step]
        return None if v != v else v

    def _pinned(self) -> set[int]:
        """Steps whose ``save_checkpoint`` hook is not yet delivered (not to be pruned)."""
        with self._lock:
            for s in [s for s, ev in self._undelivered.items() if ev is not None and ev.is_set()]:
                del self._undelivered[s]
            return set(self._undelivered)

    def _prune(self) -> None:
        if self.max_to_keep is None:
            return
        pinned = self._pinned()
        steps = F.list_steps(self.directory)
        keep = set(steps[-self.max_to_keep:])
        if self.best_fn is not None:
            scored = [(v, s) for s in steps if (v := self._best_value(s)) is not None]
            scored.sort(key=lambda t: (t[0] if self.best_mode == "min" else -t[0], -t[1]))
            keep |= {s for _, s in scored[: self.max_to_keep]}
        for s in steps:
            if s not in keep and s not in pinned:
                F.remove_checkpoint_dir(self.directory, s)
                self._best.pop(s, None)

    def _settle(self, block: bool) -> None:
        """Deliver finished saves (in order) to the sinks; with ``block`` wait for all (a save
        still waiting for its loss row gets none: the writer evaluates it). A failed write is
        reported here, on the training thread (see the class docstring)."""
        if block:
            for job in self._jobs:
                job.set_row(None)
        while self._jobs:
            job = self._jobs[0]
            if not job.queued and not (self._writer is not None and self._writer.accepted(job)):
                # interrupted before it reached the writer: never written
                self._jobs.pop(0)
                continue
            if not block and not job.done.done():
                return
            exc = job.done.exception()
            if exc is not None:
                self._jobs.pop(0)
                self._failed(job, exc)
                continue
            with deferred_interrupts():  # Ctrl-C here would lose the save's checkpoints.csv row
                self._jobs.pop(0)
                self._deliver(job)

    def _deliver(self, job: SaveJob) -> None:
        """Hand the written save ``job`` to the sinks' ``save_checkpoint`` hook (through the
        run's metrics bus) and keep it from pruning until they ran it."""
        meta = job.done.result()
        self.saved.append(meta)
        run = job.run
        bus = getattr(run, "bus", None) if run is not None else None
        done = bus.put_checkpoint(meta["checkpoint_dir"], job.epoch, meta) if bus is not None else None
        with self._lock:
            if done is None:
                self._undelivered.pop(job.epoch, None)
            else:
                self._undelivered[job.epoch] = done

    def _failed(self, job: SaveJob, exc: BaseException) -> None:
        """A save failed: raise (strict mode, or an error that is not the file system's), or
        warn and stop saving for the rest of this solve."""
        path = self.directory / str(job.epoch)
        if isinstance(exc, CheckpointError) or not isinstance(exc, OSError):
            if isinstance(exc, CheckpointError):
                raise exc
            raise CheckpointError(f"checkpoint plugin: writing checkpoint {path} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        msg = (f"checkpoint plugin: writing checkpoint {path} failed ({type(exc).__name__}: {exc}); its "
               "temporary files were removed.")
        if strict_mode():
            raise CheckpointError(msg + " Strict mode: the solve stops. Free space or fix the "
                                  "directory's permissions, then resume from the last checkpoint.") from exc
        self.disabled = msg
        warnings.warn(msg + " Checkpointing is off for the rest of this solve; training goes on "
                      "(jno.setup(strict=True) stops it instead). Free space or fix the directory's "
                      "permissions.", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------------ reading / resume
    def close(self) -> None:
        """Wait for pending writes, deliver their ``save_checkpoint`` hooks and stop the
        writer thread (idempotent; saving again starts a new one)."""
        try:
            self._settle(block=True)
            self._prune_delivered()
        finally:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None

    def _prune_delivered(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout`` seconds) until the sinks ran the ``save_checkpoint`` hooks
        of every delivered save, then prune what they had kept."""
        with self._lock:
            events = [ev for ev in self._undelivered.values() if ev is not None]
        if not events:
            return
        deadline = time.monotonic() + timeout
        for ev in events:
            ev.wait(max(0.0, deadline - time.monotonic()))
        self._prune()

    # Properties never block: pluggy's registration of a plugin object (every solve) reads
    # every attribute, properties included.
    @property
    def all_steps(self) -> list[int]:
        """Epochs of the checkpoints in :attr:`directory`, including saves still being written
        (:meth:`restore` waits for those; :meth:`close` first for a settled listing)."""
        pending = {job.epoch for job in self._jobs if not job.done.done()}
        return sorted(set(F.list_steps(self.directory)) | pending)

    @property
    def latest_step(self) -> int | None:
        """The newest step of :attr:`all_steps` (None when there is none)."""
        steps = self.all_steps
        return steps[-1] if steps else None

    @property
    def best_step(self) -> int | None:
        """The complete checkpoint with the best ``best_value`` (None without ``best_fn``)."""
        if self.best_fn is None:
            return None
        scored = [(v, s) for s in F.list_steps(self.directory) if (v := self._best_value(s)) is not None]
        if not scored:
            return None
        return (min if self.best_mode == "min" else max)(scored)[1]

    def restore(self, step: int | None = None, crux: Any = None, plugins: Sequence[Any] = ()) -> F.CheckpointData:
        """Read checkpoint ``step`` (default: the latest) and, with ``crux``, load it into that
        solver: parameters, optimizer states (their step counts drive optax schedules),
        weighting-scheme states, the epoch counter and the weight providers' state, so
        ``crux.solve(n)`` continues exactly where the saved run was. ``plugins`` with
        ``jno_load_state`` (e.g. an early-stopping callback) get their saved state too.

        :returns: the :class:`~jno_plugin_checkpoint._format.CheckpointData` (metadata and the
            flattened state as NumPy arrays).
        """
        self._settle(block=True)
        steps = F.list_steps(self.directory)
        if step is None:
            if not steps:
                raise CheckpointError(f"no checkpoints in {self.directory}; nothing to restore.")
            step = steps[-1]
        elif int(step) not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; available: {steps}.")
        data = F.read_checkpoint(self.directory / str(int(step)))
        if crux is not None:
            load_into(crux, data)
        apply_state(plugins, data)
        return data

    def __repr__(self) -> str:
        return (f"<jno checkpoint {self.directory} every {self.interval} epochs, "
                f"max_to_keep={self.max_to_keep}>")
