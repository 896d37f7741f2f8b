"""The compiled step and chunk: one ``lax.while_loop`` over a fixed per-chunk loss buffer
(so any chunk length reuses one compilation) that trains epoch by epoch and keeps parameter
snapshots at the epochs the schedule asks for (:mod:`jno_core.schedule`); deferred fires read
them after the chunk (:class:`ChunkSlots`).

:func:`compile_chunk` builds and AOT-compiles it for a solver (cached per batch size, seed,
device layout and gradient selectors); :class:`Chunk` is one dispatched (asynchronous) run.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .batching import sample_points
from .compile import Env, evaluate
from .optim import apply_update, reuse_value_and_grad, state_learning_rate, stored_value_key
from .state import TrainState

__all__ = ["ChunkSlots", "Chunk", "make_step", "make_chunk", "snapshot_slots", "make_take_slot", "compile_chunk",
           "dispatch_chunk"]


class ChunkSlots:
    """What one chunk's deferred fires share: its parameter snapshots (``snaps``: the
    ``(params, scheme_states)`` pytrees with a leading axis of ``K`` slots), the epoch of each
    used slot, and the trackers' device functions run over all of the chunk's slots in one
    call each (:meth:`slot_values`, see :mod:`jno_core.fires`), each computed once, by the
    first fire that asks, and copied to the host (thread-safe)."""

    def __init__(self, snaps: Any, points: Any, inputs: Any, epochs: Sequence[int], n_slots: int) -> None:
        self.snaps, self.points, self.inputs = snaps, points, inputs
        self.epochs = [int(e) for e in epochs]
        self.n_slots = n_slots
        self._lock = threading.Lock()
        self._locks: dict[Any, threading.Lock] = {}
        self._memo: dict[Any, Any] = {}

    def wanted(self, interval: int) -> np.ndarray:
        """``(K,)`` bool: the used slots whose epoch is a multiple of ``interval``."""
        w = np.zeros(self.n_slots, bool)
        w[: len(self.epochs)] = [e % interval == 0 for e in self.epochs]
        return w

    def batch(self, key: Any, compute: Any) -> Any:
        """The host copy (NumPy leaves, leading slot axis) of ``compute()``, a device call
        over the chunk's slots, computed once per ``key``."""
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None:
                return hit
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._memo.get(key)
            if hit is None:
                hit = jax.tree_util.tree_map(np.asarray, compute())
                with self._lock:
                    self._memo[key] = hit
        return hit

    def slot_values(self, pending: Any, interval: int, j: int) -> Any:
        """Slot ``j`` of the compiled slot-batch function behind ``pending`` (a tracker's
        device function over the slots, :func:`jno_core.fires.prepare_fire`), run over the
        slots where ``interval`` fires."""
        def compute() -> Any:
            epochs = np.zeros(self.n_slots, np.int32)
            epochs[: len(self.epochs)] = self.epochs
            return pending.result()(self.snaps[0], self.snaps[1], self.points, self.inputs, epochs,
                                    self.wanted(interval))

        out = self.batch((id(pending), interval), compute)
        return jax.tree_util.tree_map(lambda a: a[j], out)


class Chunk:
    """One dispatched chunk: where it starts (``e``), its planned length ``n``, its
    snapshot plan, what it started from (``before``, ``points``, ``inputs``), the
    (future) outputs of the chunk function and when it was dispatched."""

    __slots__ = ("e", "n", "snap_epochs", "snap_at", "before", "points", "inputs", "outs", "t_dispatch")

    def __init__(self, e: int, n: int, snap_epochs: list[int], snap_at: np.ndarray, before: Any,
                 points: Any, inputs: Any, outs: Any, t_dispatch: float) -> None:
        self.e, self.n, self.snap_epochs, self.snap_at = e, n, snap_epochs, snap_at
        self.before, self.points, self.inputs, self.outs, self.t_dispatch = before, points, inputs, outs, t_dispatch


def make_step(crux: Any, batchsize: int | None = None, seed: int = 0) -> Any:
    """The train step ``step(state, points, inputs, log_every) -> (state, row)``: one
    optimizer update of every trained network and parameter and one update of every
    weighting scheme; ``row`` ``(N + 3 + M,)`` = total loss, the ``N`` constraint losses, (at
    logged epochs, else NaN) the global gradient and parameter norms, and the step sizes of
    the ``M`` line-search optimizers (:func:`jno_core.optim.line_search_lr_keys`)."""
    terms = crux.loss_terms
    trained = list(crux.trained_keys)
    txs = {k: crux.trainables[k].tx for k in trained}
    schemes = dict(crux.schemes)
    ls_keys = list(crux._ls_keys)  # their lr/<network> comes from the optimizer state
    reuse = stored_value_key(crux, batchsize)  # see jno_core.optim.reuse_value_and_grad

    def step(state: Any, points: Any, inputs: Any, log_every: jax.Array) -> tuple[Any, jax.Array]:
        params, opt, wstates, epoch = state
        weights = crux.scheme_weights(wstates)
        if batchsize is not None:
            points = sample_points(points, batchsize, seed, epoch)

        def loss_fn(p: Any) -> Any:
            env = Env(p, points, weights, inputs)
            vals = jnp.stack([evaluate(c, env) for c in terms])
            sl = {k: jnp.stack([evaluate(l, env) for l in s.losses]) for k, s in schemes.items()}
            return jnp.sum(vals), (vals, sl)

        tp = {k: params[k] for k in trained}

        def loss_trained(tp_: Any) -> Any:
            return loss_fn({**params, **tp_})

        if reuse is None:
            (total, (vals, sl)), grads = jax.value_and_grad(loss_trained, has_aux=True)(tp)
        else:  # the line search's value and gradient at these params, when still valid
            total, vals, sl, grads = reuse_value_and_grad(opt[reuse], loss_trained, tp)
        new_params = dict(params)
        new_opt = {}
        for k in trained:
            # value_fn: the training loss in network k's parameters, the others held fixed
            # (used by line searches, e.g. optax.lbfgs; see jno_core.optim)
            new_params[k], new_opt[k] = apply_update(
                txs[k], grads[k], opt[k], params[k], total,
                lambda pk, k=k: loss_fn({**params, k: pk})[0])
        new_w = {k: s.update(wstates[k], jax.lax.stop_gradient(sl[k]), epoch) for k, s in schemes.items()}
        # the global norms are a noticeable share of a tiny PINN step (benchmarks/README.md):
        # only at logged epochs
        norms = jax.lax.cond(
            epoch % log_every == 0,
            lambda: jnp.stack([optax.global_norm(grads), optax.global_norm(tp)]),
            lambda: jnp.full((2,), jnp.nan, jnp.float32),
        )
        row = jnp.concatenate([total[None], vals, norms]).astype(jnp.float32)
        if ls_keys:  # the line searches' step sizes after the norms (the loop takes them off)
            row = jnp.concatenate([row, jnp.stack([state_learning_rate(new_opt[k]) for k in ls_keys])])
        return TrainState(new_params, new_opt, new_w, epoch + 1), row

    return step


def _run_until(step: Any, n_terms: int, points: Any, inputs: Any, log_every: jax.Array, c: Any,
               stop: jax.Array) -> Any:
    """Train steps from ``c = (i, state, buf, ok)`` until epoch index ``stop`` (or a
    non-finite loss): the per-epoch loop, free of snapshot conditionals."""
    def cond(ci: Any) -> jax.Array:
        return (ci[0] < stop) & ci[3]

    def body(ci: Any) -> Any:
        i, s, b, _ = ci
        s2, row = step(s, points, inputs, log_every)
        ok = jnp.all(jnp.isfinite(row[: n_terms + 1]))
        b = jax.lax.dynamic_update_slice(b, row[None], (i, 0))
        # on a non-finite loss the loop stops; the host recomputes the state before that
        # step by re-running the chunk (cheaper than selecting)
        return i + 1, s2, b, ok

    return jax.lax.while_loop(cond, body, c)


def _take_snapshot(sn: Any, k: jax.Array, take: jax.Array, state: Any) -> Any:
    """Slot ``k`` of the snapshot buffers ``sn`` set to ``state``'s parameters and scheme
    states where ``take``."""
    return jax.lax.cond(
        take,
        lambda x: jax.tree_util.tree_map(lambda buf_, v: buf_.at[k].set(v), x, (state[0], state[2])),
        lambda x: x,
        sn,
    )


def make_chunk(crux: Any, batchsize: int | None = None, seed: int = 0) -> Any:
    """The chunk function ``chunk(state, points, inputs, n, log_every, snap_at) -> (state,
    rows (L, N + 3), epochs run, ok, snapshots, slots used)``: up to ``n`` train steps (stopping
    at a non-finite loss), with the parameters and scheme states at the epochs of ``snap_at``
    kept in ``K`` snapshot slots."""
    step = make_step(crux, batchsize, seed)
    L = crux.chunk_size
    n_terms = len(crux.loss_terms)
    width = n_terms + 3 + len(crux._ls_keys)
    K = snapshot_slots(crux)

    def chunk(state: Any, points: Any, inputs: Any, n: jax.Array, log_every: jax.Array,
              snap_at: jax.Array) -> Any:
        buf = jnp.full((L, width), jnp.nan, jnp.float32)
        # parameters and scheme states at the epochs in ``snap_at`` (ascending, padded
        # with -1): deferred fires read them after the chunk (jno_core.fires); what they
        # compute from them (gradient matrices included) runs after the chunk, all slots
        # in one call, not in here (benchmarks/README.md: it slowed every epoch)
        snaps = jax.tree_util.tree_map(lambda x: jnp.zeros((K,) + jnp.shape(x), jnp.result_type(x)),
                                       (state[0], state[2]))
        e0 = state[3]

        def outer_body(c: Any) -> Any:
            # one segment: train up to the next snapshot epoch, then take the snapshot there
            i, s, b, ok, sn, slot = c
            k = jnp.minimum(slot, K - 1)
            has = (slot < K) & (snap_at[k] >= 0)
            stop = jnp.where(has, jnp.clip(snap_at[k] - e0, 0, n), n)
            i, s, b, ok = _run_until(step, n_terms, points, inputs, log_every, (i, s, b, ok), stop)
            take = has & ok & (s[3] == snap_at[k])
            sn = _take_snapshot(sn, k, take, s)
            # a snapshot epoch outside (start, start + n) is skipped, never waited for
            skip = has & ok & ~take & (i < n)
            return i, s, b, ok, sn, slot + (take | skip).astype(jnp.int32)

        init = (jnp.int32(0), state, buf, jnp.bool_(True), snaps, jnp.int32(0))
        i, s, b, ok, sn, slot = jax.lax.while_loop(lambda c: (c[0] < n) & c[3], outer_body, init)
        return s, b, i, ok, sn, slot

    return chunk


def snapshot_slots(crux: Any) -> int:
    """How many parameter snapshots one chunk keeps for deferred fires: up to 8, within a
    64 MiB budget (at least 1)."""
    nbytes = sum(np.dtype(jnp.result_type(x)).itemsize * int(np.prod(jnp.shape(x)))
                 for x in jax.tree_util.tree_leaves((crux._state[0], crux._state[2])))
    return int(max(1, min(8, (64 << 20) // max(nbytes, 1))))


def make_take_slot(crux: Any) -> Any:
    """``take(snaps, j) -> (params, scheme_states, weights)`` of snapshot slot ``j``."""
    def take(snaps: Any, j: jax.Array) -> Any:
        params, wstates = jax.tree_util.tree_map(lambda b: b[j], snaps)
        return params, wstates, crux.scheme_weights(wstates)

    return take


def compile_chunk(crux: Any, batchsize: int | None = None, seed: int = 0) -> float:
    """Build (or reuse: cached per batch size, seed and device layout) the compiled chunk of
    ``crux`` and its snapshot-slot reader; returns the compile time in seconds."""
    key = (batchsize, seed if batchsize else None, crux._layout.key)
    if key in crux._chunk_fns:
        crux._chunk_fn, crux._take_slot, crux._n_slots, crux._snap_template = crux._chunk_fns[key]
        return 0.0
    t0 = time.perf_counter()
    fn = jax.jit(make_chunk(crux, batchsize, seed))
    K = snapshot_slots(crux)
    args = (crux._state, crux._points, crux._current_inputs(), np.int32(1), np.int32(1),
            np.full(K, -1, np.int32))
    crux._chunk_fn = fn.lower(*args).compile()
    # compile the slot reader against real (placed/sharded) snapshot buffers: a 0-epoch run
    empty = crux._chunk_fn(*args[:3], np.int32(0), np.int32(1), args[5])[4]
    crux._take_slot = jax.jit(make_take_slot(crux))
    jax.block_until_ready(crux._take_slot(empty, np.int32(0)))
    crux._n_slots = K
    crux._snap_template = empty  # shapes and placement of a chunk's snapshots
    crux._chunk_fns[key] = (crux._chunk_fn, crux._take_slot, K, empty)
    return time.perf_counter() - t0


def dispatch_chunk(crux: Any, e: int, before: Any, plan: Any, log_every: int) -> Chunk:
    """Start the chunk at epoch ``e`` from train state ``before`` with ``plan`` (a
    :class:`~jno_core.schedule.ChunkPlan`); asynchronous: the outputs are futures, and
    ``before`` may itself be the future of a running chunk."""
    inputs = crux.current_inputs()
    points = crux.points
    outs = crux._chunk_fn(before, points, inputs, np.int32(plan.n), np.int32(log_every), plan.snap_at)
    return Chunk(e, plan.n, plan.snap_epochs, plan.snap_at, before, points, inputs, outs,
                 time.perf_counter())
