"""The solver: ``crux = jno.core([...])``, ``crux.solve(epochs)``, ``crux.eval([...])``.

The loop runs epochs on the device in chunks (one compiled ``lax.while_loop`` over a fixed
per-chunk loss buffer, so any chunk length reuses one compilation) and returns to the host
only at epochs where a non-tracker plugin or a tracker expression asked to run
(``epoch % interval == 0``), when the per-chunk buffer is full, or when the chunk's
parameter-snapshot slots for tracker fires are used up. Tracker plugins (``deferred_fire``)
fire after the chunk from those snapshots (and, for ``needs_gradient_matrix`` trackers, from
the gradient matrices of all the chunk's snapshots computed in one call), on the diagnostics
thread of
:mod:`jno_core.concurrent`. Per-epoch losses come back once per chunk.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import expr as E
from . import plugins as P
from .compile import Env, evaluate, trainable_key
from . import compile_pool
from .concurrent import DiagnosticsWorker, concurrency_enabled
from .context import SolveContext, constraint_gradients
from .domain import point_set
from .errors import ConfigError, JnoPluginError, NonFiniteLossError, ShapeError
from .history import History, TrackerHistory
from .interrupts import interruptible
from .validation import check_callbacks, check_solve_memory
from .metrics import Array, Scalar
from .nn import Network
from .parameter import TrainableParameter
from .batching import check_batchsize, sample_points
from .lr import learning_rate_fn
from .progress import Progress
from .sharding import Layout, make_mesh, place_points, replicate
from .weighting import HostWeightPlaceholder, WeightPlaceholder

__all__ = ["Core", "core"]


def _check_positive_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, received {value!r}; e.g. {example}.")
    return int(value)


class _MetricsBuffer:
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


class _ChunkSlots:
    """What one chunk's deferred fires share: its parameter snapshots (``snaps``: the
    ``(params, scheme_states)`` pytrees with a leading axis of ``K`` slots), the epoch of each
    used slot, and results computed for all of the chunk's slots in one device call
    (:meth:`batch`: the gradient matrices, :meth:`SolveContext.slot_values`), each computed
    once, by the first fire that asks, and copied to the host (thread-safe)."""

    def __init__(self, snaps: Any, points: Any, inputs: Any, epochs: Sequence[int], n_slots: int,
                 slot_grads: Any = None, gsel: Sequence[Any] = (), g_at: np.ndarray | None = None) -> None:
        self.snaps, self.points, self.inputs = snaps, points, inputs
        self.epochs = [int(e) for e in epochs]
        self.n_slots = n_slots
        self._slot_grads, self._gsel = slot_grads, list(gsel)
        self._g_at = np.zeros(n_slots, bool) if g_at is None else g_at.copy()
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

    def gradient_matrix(self, j: int, sel: Any) -> np.ndarray | None:
        """``G`` ``(N, P_sel)`` of selector ``sel`` at slot ``j`` if the chunk computes it
        there (all wanted slots in one call), else None."""
        if self._slot_grads is None or not self._g_at[j]:
            return None
        for k, g in enumerate(self._gsel):
            if g is sel:
                gs = self.batch("G", lambda: self._slot_grads(self.snaps[0], self.points, self.inputs, self._g_at))
                return gs[k][j]
        return None

    def slot_values(self, pending: Any, interval: int, j: int) -> Any:
        """Slot ``j`` of the compiled slot-batch function behind ``pending`` (see
        :meth:`SolveContext.compile_slot_batch`), run over the slots where ``interval`` fires."""
        out = self.batch(("slot_batch", id(pending)), lambda: pending.result()(
            self.snaps[0], self.snaps[1], self.points, self.inputs, self.wanted(interval)))
        return jax.tree_util.tree_map(lambda a: a[j], out)


#: the end-of-solve taper's shortest chunk: ``1 / _TAPER_FRACTION`` of the chunk cap, at
#: least ``log_every`` epochs. Epochs, not seconds: chunk boundaries must not depend on
#: timing (early stopping decides, and keeps restore candidates, at chunk boundaries)
_TAPER_FRACTION = 16


def _deferred_epochs(e: int, stop: int, intervals: Sequence[int], limit: int) -> list[int]:
    """The first ``limit`` epochs ``s`` with ``e < s < stop`` that are multiples of one of
    ``intervals``, ascending."""
    found: set[int] = set()
    for iv in set(intervals):
        first = (e // iv + 1) * iv
        found.update(range(first, min(stop, first + iv * limit), iv))
    return sorted(found)[:limit]


class _LrTable:
    """Learning rates of every network at the logged epochs of one solve, from one
    vectorised schedule call per network (a schedule call per chunk cost ~0.2 ms)."""

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


class _Chunk:
    """One dispatched chunk: where it starts (``e``), its planned length ``n``, its
    snapshot plan, what it started from (``before``, ``points``, ``inputs``), the
    (future) outputs of the chunk function and when it was dispatched."""

    __slots__ = ("e", "n", "snap_epochs", "snap_at", "g_at", "before", "points", "inputs", "outs", "t_dispatch")

    def __init__(self, e: int, n: int, snap_epochs: list[int], snap_at: np.ndarray, g_at: np.ndarray, before: Any,
                 points: Any, inputs: Any, outs: Any, t_dispatch: float) -> None:
        self.e, self.n, self.snap_epochs, self.snap_at, self.g_at = e, n, snap_epochs, snap_at, g_at
        self.before, self.points, self.inputs, self.outs, self.t_dispatch = before, points, inputs, outs, t_dispatch


class Core:
    """A PINN problem: loss constraints, tracker expressions and their trainables.

    :param constraints: loss expressions (each must evaluate to a scalar, e.g. ``pde.mse``)
        and tracker expressions (``jno.numpy.tracker(...)`` / ``expr.tracker(n)``), which are
        logged but not trained on.
    :param chunk_size: the largest number of epochs run on the device between host visits.
    """

    def __init__(self, constraints: Sequence[Any], chunk_size: int = 1000) -> None:
        if isinstance(constraints, E.Placeholder) or not isinstance(constraints, (list, tuple)):
            raise TypeError(
                "jno.core expects a list of constraint expressions, e.g. jno.core([pde.mse, "
                f"bc.mse]); received {type(constraints).__name__}."
            )
        self.loss_terms: list[E.Placeholder] = []
        self.tracker_exprs: list[E.TrackerExpr] = []
        for i, c in enumerate(constraints):
            c = E.as_expr(c)
            (self.tracker_exprs if isinstance(c, E.TrackerExpr) else self.loss_terms).append(c)
        if not self.loss_terms:
            raise ValueError("jno.core needs at least one loss constraint (e.g. pde.mse).")
        self.constraint_names = [f"constraint_{i}" for i in range(len(self.loss_terms))]
        self.tracker_names = [t.name or f"tracker_{i}" for i, t in enumerate(self.tracker_exprs)]
        self.chunk_size = _check_positive_int(chunk_size, "chunk_size", "chunk_size=1000")

        nodes = E.walk(self.loss_terms + self.tracker_exprs)
        loss_nodes = E.walk(self.loss_terms)
        self.trainables: dict[str, Any] = {}
        for n in nodes:
            t = None
            if isinstance(n, (E.NetworkCall, E.NetworkGradient)):
                t = n.net
            elif isinstance(n, TrainableParameter):
                t = n
            if t is not None:
                self.trainables.setdefault(trainable_key(t), t)
        trained = set()
        for n in loss_nodes:
            if isinstance(n, E.NetworkCall):
                trained.add(trainable_key(n.net))
            elif isinstance(n, TrainableParameter):
                trained.add(trainable_key(n))
        self.trained_keys = [k for k in self.trainables if k in trained]
        self.point_keys = sorted({n.point_set for n in nodes if isinstance(n, E.Variable)})
        self._points = {k: jnp.asarray(point_set(k).points) for k in self.point_keys}
        self.schemes = {}
        self.providers = {}
        for n in nodes:
            if isinstance(n, WeightPlaceholder):
                self.schemes.setdefault(n.scheme.key, n.scheme)
            elif isinstance(n, HostWeightPlaceholder):
                self.providers.setdefault(n.provider.key, n.provider)
        self.epoch = 0
        self.history = History(list(self.constraint_names))
        for name, t in zip(self.tracker_names, self.tracker_exprs):
            self.history.trackers[name] = TrackerHistory(name, t.interval)
        self._state: Any = None
        self._chunk_fn: Any = None
        self._chunk_fns: dict[Any, Any] = {}
        self._layout = Layout(None)
        self._base_points = dict(self._points)
        self._tracker_fns: dict[int, Any] = {}
        self._eval_cache: dict[Any, Any] = {}
        self._shared: dict[Any, Any] = {}
        self._solving = False

    # ------------------------------------------------------------------ state
    def _init_params(self) -> dict[str, Any]:
        return {k: t.params for k, t in self.trainables.items()}

    def _ensure_state(self) -> None:
        if self._state is not None:
            return
        missing = [self.trainables[k].name for k in self.trained_keys if self.trainables[k].tx is None]
        if missing:
            raise ConfigError(
                f"no optimizer set for {', '.join(repr(m) for m in missing)}; every trained network "
                "or parameter needs one, e.g. jno.nn.wrap(module).optimizer(optax.adam(1e-3)) or "
                "param.optimizer(optax.adam(1e-2))."
            )
        params = self._init_params()
        opt = {k: self.trainables[k].tx.init(params[k]) for k in self.trained_keys}
        self._check_shapes(params)
        scheme_states = {}
        if self.schemes:
            env = Env(params, self._points, {}, self._current_inputs())
            for k, s in self.schemes.items():
                l0 = jnp.stack([evaluate(l, env) for l in s.losses])
                scheme_states[k] = s.init(l0)
        self._state = (params, opt, scheme_states, jnp.asarray(self.epoch, jnp.int32))
        self._opt_start_epoch = self.epoch
        self._lr_fns = {self.trainables[k].name: learning_rate_fn(self.trainables[k].tx)
                        for k in self.trained_keys}

    def _check_shapes(self, params: dict[str, Any]) -> None:
        def shapes(p: Any) -> list[Any]:
            env = Env(p, self._points, {}, self._current_inputs())
            return [evaluate(c, env) for c in self.loss_terms]

        out = jax.eval_shape(shapes, params)
        for name, c, s in zip(self.constraint_names, self.loss_terms, out):
            if s.shape != ():
                raise ShapeError(
                    f"{name} ({c.describe()}) evaluates to shape {s.shape}; a loss constraint must "
                    "be a scalar. Reduce it, e.g. pde.mse instead of pde."
                )

    def _current_inputs(self) -> dict[str, jax.Array]:
        out = {}
        for k, prov in self.providers.items():
            v = np.asarray(prov.current(), dtype=np.float32)
            if v.shape != (prov.n,):
                raise JnoPluginError(
                    f"weight provider {prov.name!r} returned shape {v.shape}, expected ({prov.n},)."
                )
            out[k] = jnp.asarray(v)
        return out

    def scheme_weights(self, scheme_states: dict[str, Any]) -> dict[str, jax.Array]:
        """Traceable: ``{scheme key: loss weights}`` of every weighting scheme, from the
        schemes' states (``state[2]`` of the train state, or one snapshot slot's)."""
        return {k: s.weights(scheme_states[k]) for k, s in self.schemes.items()}

    def _current_weights(self, state: Any) -> dict[str, jax.Array]:
        if state is None:
            return {}
        return self.scheme_weights(state[2])

    # ------------------------------------------------------------------ the compiled step
    def _make_chunk(self, batchsize: int | None = None, seed: int = 0, gsel: Sequence[Any] = ()) -> Any:
        terms = self.loss_terms
        trained = list(self.trained_keys)
        txs = {k: self.trainables[k].tx for k in trained}
        schemes = dict(self.schemes)
        L = self.chunk_size
        n_terms = len(terms)

        def step(state: Any, points: Any, inputs: Any, log_every: jax.Array) -> tuple[Any, jax.Array]:
            params, opt, wstates, epoch = state
            weights = self.scheme_weights(wstates)
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

            (total, (vals, sl)), grads = jax.value_and_grad(loss_trained, has_aux=True)(tp)
            new_params = dict(params)
            new_opt = {}
            for k in trained:
                upd, new_opt[k] = txs[k].update(grads[k], opt[k], params[k])
                new_params[k] = optax.apply_updates(params[k], upd)
            new_w = {k: s.update(wstates[k], jax.lax.stop_gradient(sl[k]), epoch) for k, s in schemes.items()}
            # the global norms cost ~10% of a tiny PINN step: only at logged epochs
            norms = jax.lax.cond(
                epoch % log_every == 0,
                lambda: jnp.stack([optax.global_norm(grads), optax.global_norm(tp)]),
                lambda: jnp.full((2,), jnp.nan, jnp.float32),
            )
            row = jnp.concatenate([total[None], vals, norms]).astype(jnp.float32)
            return (new_params, new_opt, new_w, epoch + 1), row

        K = self._snapshot_slots(gsel)

        def chunk(state: Any, points: Any, inputs: Any, n: jax.Array, log_every: jax.Array,
                  snap_at: jax.Array) -> Any:
            buf = jnp.full((L, n_terms + 3), jnp.nan, jnp.float32)
            # parameters and scheme states at the epochs in ``snap_at`` (ascending, padded
            # with -1): deferred fires read them after the chunk (see _loop). The gradient
            # matrices of those epochs are computed after the chunk too, all slots in one
            # call (_make_slot_gradients): computed in here, they made every epoch of the
            # chunk ~8 us slower on script 09 (same HLO for the per-epoch loop; measured by
            # timing 1,000-epoch chunks compiled with and without them, interleaved), more
            # than they cost to compute.
            snaps = jax.tree_util.tree_map(lambda x: jnp.zeros((K,) + jnp.shape(x), jnp.result_type(x)),
                                           (state[0], state[2]))

            e0 = state[3]

            def run_until(c: Any, stop: jax.Array) -> Any:
                """Train steps from ``c = (i, state, buf, ok)`` until epoch index ``stop``
                (or a non-finite loss): the per-epoch loop, free of snapshot conditionals."""
                def cond(ci: Any) -> jax.Array:
                    return (ci[0] < stop) & ci[3]

                def body(ci: Any) -> Any:
                    i, s, b, _ = ci
                    s2, row = step(s, points, inputs, log_every)
                    ok = jnp.all(jnp.isfinite(row[: n_terms + 1]))
                    b = jax.lax.dynamic_update_slice(b, row[None], (i, 0))
                    # on a non-finite loss the loop stops; the host recomputes the state
                    # before that step by re-running the chunk (cheaper than selecting)
                    return i + 1, s2, b, ok

                return jax.lax.while_loop(cond, body, c)

            def outer_cond(c: Any) -> jax.Array:
                return (c[0] < n) & c[3]

            def outer_body(c: Any) -> Any:
                # one segment: train up to the next snapshot epoch, then take the snapshot
                # (and the gradient matrices) there
                i, s, b, ok, sn, slot = c
                k = jnp.minimum(slot, K - 1)
                has = (slot < K) & (snap_at[k] >= 0)
                stop = jnp.where(has, jnp.clip(snap_at[k] - e0, 0, n), n)
                i, s, b, ok = run_until((i, s, b, ok), stop)
                take = has & ok & (s[3] == snap_at[k])
                sn = jax.lax.cond(
                    take,
                    lambda x: jax.tree_util.tree_map(lambda buf_, v: buf_.at[k].set(v), x, (s[0], s[2])),
                    lambda x: x,
                    sn,
                )
                # a snapshot epoch outside (start, start + n) is skipped, never waited for
                skip = has & ok & ~take & (i < n)
                return i, s, b, ok, sn, slot + (take | skip).astype(jnp.int32)

            init = (jnp.int32(0), state, buf, jnp.bool_(True), snaps, jnp.int32(0))
            i, s, b, ok, sn, slot = jax.lax.while_loop(outer_cond, outer_body, init)
            return s, b, i, ok, sn, slot

        return chunk

    def _snapshot_slots(self, gsel: Sequence[Any] = ()) -> int:
        """How many parameter snapshots (and gradient matrices) one chunk keeps for deferred
        fires: up to 8, within a 64 MiB budget (at least 1)."""
        nbytes = sum(np.dtype(jnp.result_type(x)).itemsize * int(np.prod(jnp.shape(x)))
                     for x in jax.tree_util.tree_leaves((self._state[0], self._state[2])))
        nbytes += sum(4 * len(self.loss_terms) * sel.size for sel in gsel)
        return int(max(1, min(8, (64 << 20) // max(nbytes, 1))))

    def _make_take_slot(self) -> Any:
        def take(snaps: Any, j: jax.Array) -> Any:
            params, wstates = jax.tree_util.tree_map(lambda b: b[j], snaps)
            return params, wstates, self.scheme_weights(wstates)

        return take

    def _make_slot_gradients(self, gsel: Sequence[Any]) -> Any:
        """``f(snap_params, points, inputs, wanted) -> [G]``: for each selector, the gradient
        matrices ``(K, N, P_sel)`` of the unweighted constraint losses at the ``K`` snapshot
        slots of a chunk (``snap_params`` has a leading ``K`` axis), in one call; slots where
        the bool ``wanted`` ``(K,)`` is false are skipped (zeros): a chunk often uses fewer
        than ``K`` slots (script 09: 5 of 8 on average; vectorising all 8 cost more)."""
        terms = self.loss_terms

        def slot_gradients(snap_params: Any, points: Any, inputs: Any, wanted: jax.Array) -> list[jax.Array]:
            out = []
            for sel in gsel:
                def one(params: Any, sel: Any = sel) -> jax.Array:
                    return constraint_gradients(terms, sel, params, points, inputs).astype(jnp.float32)

                def slot(args: Any, one: Any = one, sel: Any = sel) -> jax.Array:
                    params, want = args
                    return jax.lax.cond(want, one, lambda _: jnp.zeros((len(terms), sel.size), jnp.float32),
                                        params)

                out.append(jax.lax.map(slot, (snap_params, wanted)))
            return out

        return slot_gradients

    def _compile_chunk(self, batchsize: int | None = None, seed: int = 0, gsel: Sequence[Any] = ()) -> float:
        key = (batchsize, seed if batchsize else None, self._layout.key, tuple(id(g) for g in gsel))
        if key in self._chunk_fns:
            (self._chunk_fn, self._take_slot, self._slot_grads, self._n_slots, self._gsel,
             self._snap_template) = self._chunk_fns[key]
            return 0.0
        t0 = time.perf_counter()
        fn = jax.jit(self._make_chunk(batchsize, seed, gsel))
        K = self._snapshot_slots(gsel)
        args = (self._state, self._points, self._current_inputs(), np.int32(1), np.int32(1),
                np.full(K, -1, np.int32))
        self._chunk_fn = fn.lower(*args).compile()
        # compile the slot readers against real (placed/sharded) snapshot buffers: a 0-epoch run
        empty = self._chunk_fn(*args[:3], np.int32(0), np.int32(1), args[5])[4]
        self._take_slot = jax.jit(self._make_take_slot())
        jax.block_until_ready(self._take_slot(empty, np.int32(0)))
        self._slot_grads = None
        if gsel:
            wanted = np.ones(K, bool)
            self._slot_grads = jax.jit(self._make_slot_gradients(list(gsel))).lower(
                empty[0], self._points, args[2], wanted).compile()
            # an executable's first run pays one-off set-up: not in the first fire
            jax.block_until_ready(self._slot_grads(empty[0], self._points, args[2], wanted))
        self._n_slots = K
        self._gsel = list(gsel)
        self._snap_template = empty  # shapes and placement of a chunk's snapshots
        self._chunk_fns[key] = (self._chunk_fn, self._take_slot, self._slot_grads, K, self._gsel, empty)
        return time.perf_counter() - t0

    def _gradient_selectors(self, ctx: SolveContext, plugins_: Sequence[Any]) -> list[Any]:
        """Selectors of the deferred plugins that read the gradient matrix
        (``needs_gradient_matrix``): the chunk computes it on the device at their fires. A
        mask that fails to resolve is left to the plugin's ``on_solve_begin`` to report."""
        if self.providers:
            return []
        out: list[Any] = []
        for p in plugins_:
            if getattr(p, "deferred_fire", False) and getattr(p, "needs_gradient_matrix", False):
                try:
                    sel = ctx.selector(getattr(p, "mask", None))
                except Exception:
                    continue
                if not any(sel is g for g in out):
                    out.append(sel)
        return out

    def _tracker_fn(self, i: int) -> Any:
        fn = self._tracker_fns.get(i)
        if fn is None:
            t = self.tracker_exprs[i]

            def f(params: Any, points: Any, inputs: Any, weights: Any) -> jax.Array:
                return evaluate(t, Env(params, points, weights, inputs))

            fn = jax.jit(f).lower(self._state[0], self._points, self._current_inputs(),
                                  self._current_weights(self._state)).compile()
            self._tracker_fns[i] = fn
        return fn

    # ------------------------------------------------------------------ solve
    def solve(
        self,
        epochs: int,
        callbacks: Sequence[Any] | None = None,
        *,
        progress: bool | None = None,
        log_every: int = 50,
        chunk_size: int | None = None,
        devices: Any = None,
        batchsize: int | None = None,
        seed: int = 0,
    ) -> History:
        """Train for ``epochs`` epochs (continuing the epoch count and optimizer state of
        earlier solves) and return the :class:`History` of this solve.

        :param callbacks: plugin objects (trackers, checkpointing, ...) registered for this
            solve; ``on_epoch`` fires at ``epoch % cb.interval == 0``.
        :param progress: show a progress line (default: only on a terminal outside CI).
        :param log_every: send the training metrics to the sinks every this many epochs.
        :param chunk_size: cap on epochs per device chunk for this solve (``<=`` the
            solver's ``chunk_size``).
        :param devices: shard the collocation points over several devices (a count, a list of
            devices or a mesh with a ``"data"`` axis; see :mod:`jno_core.sharding`). ``None``
            keeps the current placement (one device unless an earlier solve sharded).
        :param batchsize: draw this many points per point set and epoch on the device
            (without replacement, from ``seed``; see :mod:`jno_core.batching`).
        :param seed: the minibatch sampling seed.
        """
        epochs = _check_positive_int(epochs, "epochs", "crux.solve(2_000)")
        log_every = _check_positive_int(log_every, "log_every", "log_every=50")
        cap = self.chunk_size if chunk_size is None else min(
            _check_positive_int(chunk_size, "chunk_size", "chunk_size=500"), self.chunk_size)
        if self._solving:
            raise RuntimeError("solve() is already running on this solver (re-entrant call).")
        callbacks = check_callbacks(callbacks)
        check_solve_memory(epochs, len(self.loss_terms))
        for cb in callbacks:
            iv = getattr(cb, "interval", None)
            if iv is not None and (isinstance(iv, bool) or not isinstance(iv, (int, np.integer)) or iv <= 0):
                raise JnoPluginError(
                    f"callback {P.plugin_name(cb)!r} has interval {iv!r}; expected a positive "
                    "integer number of epochs."
                )
        from .run import current_run

        run = current_run()
        pm = P.get_plugin_manager()
        self._ensure_state()
        if devices is not None:
            self._set_layout(make_mesh(devices))
        if batchsize is not None:
            check_batchsize(batchsize, self._points, self._constraint_point_sets())
        start = self.epoch
        end = start + epochs
        hist = History(list(self.constraint_names))
        for name, t in zip(self.tracker_names, self.tracker_exprs):
            hist.trackers[name] = TrackerHistory(name, t.interval)
        bus = run.bus if run is not None else None
        own_bus = None
        log_sinks = [cb for cb in callbacks if hasattr(cb, "log_metrics") or hasattr(cb, "log_metrics_batch")]
        if log_sinks:
            from .delivery import MetricsBus

            if bus is None:
                own_bus = bus = MetricsBus(strict=P.strict_mode())
            for cb in log_sinks:
                bus.add_sink(cb, P.plugin_name(cb))
        buffer = _MetricsBuffer(bus)
        ctx = SolveContext(self, run, start, end, buffer.add)
        gsel = self._gradient_selectors(ctx, [p for _, p in pm.list_name_plugin()] + callbacks)
        hist.compile_time = self._compile_chunk(batchsize, seed, gsel)
        registered: list[Any] = []
        worker = None
        self._solving = True
        try:
            for cb in callbacks:
                if not pm.is_registered(cb):
                    P.register_plugin(cb)
                    registered.append(cb)
            if run is not None:
                run.record_solve(self._describe(epochs, callbacks))
            plan = self._plan_fires(pm, callbacks)
            ctx._from_snapshots = plan[3]  # see SolveContext.fires_from_snapshots
            t_begin = time.perf_counter()
            P.call_hook(pm, "on_solve_begin", ctx=ctx)
            # every background compilation started in on_solve_begin is finished (and its
            # failure raised, naming the plugin) before the first fire, whatever the hook order
            compile_pool.drain(ctx)
            setup_time = time.perf_counter() - t_begin
            hist.compile_time += setup_time
            if self._concurrent_fires_allowed():
                worker = ctx._worker = buffer.worker = DiagnosticsWorker()
            with interruptible(self, hist) as intr:  # Ctrl-C / SIGTERM: stop cleanly (jno_core.interrupts)
                self._loop(ctx, hist, pm, plan, buffer, start, end, cap, log_every, progress, run)
            ctx.wait_for_diagnostics()
            ctx.epoch = self.epoch
            P.call_hook(pm, "on_solve_end", ctx=ctx, history=hist)
        finally:
            self._solving = False
            if worker is not None:
                worker.close()
                ctx._worker = buffer.worker = None
            try:
                self._sync_back()
                try:
                    buffer.emit_before(None)
                finally:
                    if bus is not None:
                        try:
                            bus.flush()
                        finally:
                            for cb in log_sinks:
                                bus._sinks = [(s, l) for s, l in bus._sinks if s is not cb]
                            if own_bus is not None:
                                own_bus.close()
            finally:
                for cb in registered:
                    P.unregister_plugin(cb)
        self._merge_history(hist)
        intr.reraise()
        return hist

    def _concurrent_fires_allowed(self) -> bool:
        """Whether trackers may fire on a diagnostics thread (see :mod:`jno_core.concurrent`)."""
        if not concurrency_enabled() or self.providers or jax.process_count() > 1:
            return False
        mesh = self._layout.mesh
        return mesh is None or mesh.size == 1

    def load_state(self, state: Any) -> None:
        """Replace the train state ``(params, opt_states, scheme_states, epoch)`` (e.g. from a
        checkpoint): it is placed on the current layout (replicated when sharded), the epoch
        counter continues from ``state[3]``, and the parameters are written back to the
        networks. Not allowed while solving, except from hooks (early stopping's restore)."""
        if self._state is not None:
            old = jax.tree_util.tree_structure(self._state)
            new = jax.tree_util.tree_structure(state)
            if old != new:
                raise ValueError(
                    f"load_state: the state's structure does not match this solver's: expected "
                    f"{old}, received {new}. Restore into a solver built from the same script."
                )
        self._state = replicate(state, self._layout.mesh) if self._layout.mesh is not None else state
        self.epoch = int(np.asarray(state[3]))
        self._sync_back()

    def _set_layout(self, mesh: Any) -> None:
        """Move points (sharded) and the train state (replicated) onto ``mesh``."""
        layout = Layout(mesh)
        if layout.key == self._layout.key:
            return
        self._layout = layout
        self._points = place_points(self._base_points, mesh) if mesh is not None else dict(self._base_points)
        self._state = replicate(self._state, mesh)
        self._tracker_fns = {}
        self._shared = {}

    def _constraint_point_sets(self) -> dict[str, list[str]]:
        return {
            name: sorted({n.point_set for n in E.walk([c]) if isinstance(n, E.Variable)})
            for name, c in zip(self.constraint_names, self.loss_terms)
        }

    def _describe(self, epochs: int, callbacks: Sequence[Any]) -> dict[str, Any]:
        return {
            "start_epoch": self.epoch,
            "epochs": epochs,
            "constraints": [c.describe() for c in self.loss_terms],
            "networks": {
                t.name: {
                    "type": type(getattr(t, "module", t)).__name__,
                    "shapes": t.shapes() if isinstance(t, Network) else list(t.shape),
                    "n_params": t.n_params(),
                    "optimizer": t.tx_description,
                }
                for t in self.trainables.values()
            },
            "points": {k: list(v.shape) for k, v in self._points.items()},
            "callbacks": [P.plugin_name(c) for c in callbacks],
        }

    def _next_fire(self, e: int, plugins_: Sequence[Any]) -> int | None:
        best = None
        for iv in [getattr(p, "interval", None) for p in plugins_] + [t.interval for t in self.tracker_exprs]:
            if iv:
                nxt = (e // iv + 1) * iv
                best = nxt if best is None else min(best, nxt)
        return best

    def _fire(self, ctx: SolveContext, hist: History, pm: Any, plugins_: Sequence[Any], e: int, buffer: _MetricsBuffer) -> None:
        ctx.epoch = e
        ctx._memo = {}
        for i, t in enumerate(self.tracker_exprs):
            if e % t.interval == 0:
                fn = self._tracker_fn(i)
                v = np.asarray(fn(self._state[0], self._points, self._current_inputs(),
                                  self._current_weights(self._state)))
                name = self.tracker_names[i]
                hist.trackers[name].append(e, v)
                buffer.add(e, {f"tracker/{name}": Scalar(v) if v.size == 1 else Array(v)})
        due = [p for p in plugins_ if getattr(p, "interval", None) and e % p.interval == 0]
        trace = os.environ.get("JNO_TRACE_PLUGINS", "").strip() not in {"", "0"}
        if ctx._worker is not None:
            ctx._worker.check()
        for p in due:
            self._call_on_epoch(ctx, p, e, trace)

    def _call_on_epoch(self, ctx: SolveContext, p: Any, e: int, trace: bool) -> None:
        """Call ``p.on_epoch`` (waiting first for in-flight fires unless ``p`` is concurrent),
        naming ``p`` in any error."""
        if getattr(p, "on_epoch", None) is None:
            return
        concurrent = "on_epoch" in getattr(p, "concurrent_hooks", ())
        if not concurrent:
            ctx.wait_for_diagnostics()
        t0 = time.perf_counter()
        if trace:
            sys.stderr.write(f"jno hook on_epoch -> {P.plugin_name(p)} (epoch {e})\n")
        try:
            p.on_epoch(ctx=ctx, epoch=e)
        except Exception as exc:
            raise JnoPluginError(
                f"plugin {P.plugin_name(p)!r} failed in on_epoch at epoch {e}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        fire_times = getattr(p, "fire_times_ms", None)
        if isinstance(fire_times, list) and not concurrent:  # concurrent ones time themselves
            fire_times.append((time.perf_counter() - t0) * 1e3)

    def _fire_deferred(self, ctx: SolveContext, deferred: Sequence[Any], snaps: Any, epochs: Sequence[int],
                       g_at: np.ndarray, inputs: dict[str, Any]) -> None:
        """Fire the deferred plugins due at each of ``epochs`` (inside the chunk just run),
        each with a context frozen at that epoch from the chunk's snapshot ``slot``; the
        gradient matrices (where ``g_at[slot]``) of all slots come from one call, made by the
        first fire that needs one (on the diagnostics thread), and so do the results of
        trackers' slot-batch functions (:meth:`SolveContext.slot_values`)."""
        trace = os.environ.get("JNO_TRACE_PLUGINS", "").strip() not in {"", "0"}
        chunk = _ChunkSlots(snaps, self._points, inputs, epochs, self._n_slots, self._slot_grads, self._gsel, g_at)
        for j, s_ep in enumerate(epochs):
            s_ep = int(s_ep)

            def materialize(j: int = j) -> Any:
                return self._take_slot(snaps, np.int32(j))

            snap = ctx.deferred_snapshot(s_ep, materialize, inputs, chunk=chunk, slot=j)
            for p in deferred:
                if s_ep % p.interval == 0:
                    self._call_on_epoch(snap, p, s_ep, trace)

    def _plan_fires(self, pm: Any, callbacks: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any], bool]:
        """``(plugins, deferred, host_plugins, postpone)`` of a solve: the plugins with an
        interval; those that fire after the chunk from an on-device snapshot (trackers: they
        do not end a chunk, so the host is visited only for the others); the others; and
        whether deferred fires due at a host-visit epoch ``e`` (the solve's first epoch, a
        checkpoint epoch, ...) are taken from a snapshot at the start of the next chunk too.
        That is allowed when every host plugin declares ``on_epoch`` concurrent (it reads no
        tracker's value), so none can tell; then every deferred fire reads the chunk's
        snapshots and gradient matrices (see :meth:`SolveContext.gradient_matrix_on_device`)."""
        plugins_ = [p for _, p in pm.list_name_plugin() if getattr(p, "interval", None)]
        for cb in callbacks:
            if cb not in plugins_ and getattr(cb, "interval", None):
                plugins_.append(cb)
        deferred = [p for p in plugins_ if getattr(p, "deferred_fire", False)] if not self.providers else []
        host_plugins = [p for p in plugins_ if not any(p is d for d in deferred)]
        postpone = bool(deferred) and all("on_epoch" in getattr(p, "concurrent_hooks", ()) for p in host_plugins)
        return plugins_, deferred, host_plugins, postpone

    def _chunk_plan(self, e: int, end: int, cap: int, host_plugins: Sequence[Any], deferred: Sequence[Any],
                    g_plugins: Sequence[Any], postpone: bool, taper: int, log_every: int
                    ) -> tuple[int, list[int], np.ndarray, np.ndarray]:
        """``(n, snap_epochs, snap_at, g_at)`` of the chunk starting at epoch ``e``: its
        length, the epochs of its parameter snapshots (deferred fires), the snapshot slot
        table ``(K,)`` (-1 = unused) and which slots need gradient matrices. A function of
        ``e`` only, so the next chunk can be planned (and dispatched) before this one ends.

        ``taper > 0`` (``>= log_every``; 0: no taper): no chunk is longer than half of the
        epochs left (rounded up to a multiple of ``log_every``), nor shorter than ``taper``
        epochs, nor followed by a shorter rest. A chunk's records reach the sinks only after it
        ends and ``solve()`` waits for the last chunk's, so halving the chunks towards the end
        keeps that wait to about ``taper`` epochs' worth of records (2,000 epochs,
        ``cap=1000``, ``log_every=50``, ``taper=63``: chunks of 1000, 500, 250, 150, 100). A
        function of the epochs only (never of timing), so runs are reproducible chunk for
        chunk."""
        K = self._n_slots
        nxt = self._next_fire(e, host_plugins)
        stop_at = min(end, e + cap, nxt if nxt is not None else end)
        if taper > 0:
            rest = end - e
            half = -(-rest // 2)  # ceil(rest / 2)
            n = max(taper, -(-half // log_every) * log_every)  # rounded up to a multiple of log_every
            stop_at = min(stop_at, end if rest - n < taper else e + n)
        # near the end of the solve, fewer fires per chunk: the last chunk's fires run
        # after training has finished, so keep that tail short
        lo = e - 1 if postpone else e  # postponed: a snapshot at the chunk's first epoch
        intervals = [p.interval for p in deferred]
        left = _deferred_epochs(lo, end, intervals, 3 * K)
        k = K if len(left) >= 3 * K else max(2 if postpone else 1, min(K, len(left) // 3))
        snap_epochs = _deferred_epochs(lo, stop_at, intervals, k + 1)
        if len(snap_epochs) > k:  # out of snapshot slots: a host visit at the next one
            stop_at, snap_epochs = snap_epochs[k], snap_epochs[:k]
        snap_at = np.full(K, -1, np.int32)
        snap_at[: len(snap_epochs)] = snap_epochs
        g_at = np.zeros(K, bool)
        g_at[: len(snap_epochs)] = [any(s_ % p.interval == 0 for p in g_plugins) for s_ in snap_epochs]
        return stop_at - e, snap_epochs, snap_at, g_at

    def _dispatch_chunk(self, e: int, before: Any, plan: tuple[int, list[int], np.ndarray, np.ndarray],
                        log_every: int) -> "_Chunk":
        """Start the chunk at epoch ``e`` from train state ``before`` (asynchronous: the
        outputs are futures; ``before`` may itself be the future of a running chunk)."""
        n, snap_epochs, snap_at, g_at = plan
        inputs = self._current_inputs()
        points = self._points
        outs = self._chunk_fn(before, points, inputs, np.int32(n), np.int32(log_every), snap_at)
        return _Chunk(e, n, snap_epochs, snap_at, g_at, before, points, inputs, outs, time.perf_counter())

    def _loop(self, ctx: SolveContext, hist: History, pm: Any, plan: tuple[list[Any], list[Any], list[Any], bool],
              buffer: _MetricsBuffer, start: int, end: int, cap: int, log_every: int, progress: bool | None,
              run: Any) -> None:
        """Run epochs ``start..end`` chunk by chunk. The next chunk is dispatched before the
        current one's results are read (one chunk ahead), so the host's per-chunk work
        (losses, metrics, deferred fires, host-visit plugins, waiting for the GIL while the
        diagnostics thread runs Python) overlaps the device instead of idling it. The chunk
        started ahead is used only if, after the host visit, the train state, the points and
        the epoch are still those it started from (a plugin that restored a state, resampled
        points or stopped the solve makes the loop drop it and start again from the live
        state); with weight providers (inputs that host-side plugins set between chunks)
        nothing is started ahead."""
        plugins_, deferred, host_plugins, postpone = plan
        # fired at host visits (the deferred ones too unless postponed to the next chunk)
        at_host = host_plugins if postpone else plugins_
        g_plugins = [p for p in deferred if getattr(p, "needs_gradient_matrix", False)] if self._gsel else []
        wait_chunk_end = any(hasattr(p, "on_chunk_end") and "on_chunk_end" not in getattr(p, "concurrent_hooks", ())
                             for _, p in pm.list_name_plugin())
        lr_table = _LrTable(self._lr_fns, self._opt_start_epoch, start, end, log_every)
        show = Progress(end - start, enabled=progress if progress is not None else (run.progress if run else None))
        ahead_ok = not self.providers  # provider inputs change between chunks
        e = start
        t_loop = time.perf_counter()
        if e < end:
            self._fire(ctx, hist, pm, at_host, e, buffer)
        n_terms = len(self.loss_terms)

        # shorter chunks towards the end (see _chunk_plan), with sinks attached or not: chunk
        # boundaries (where early stopping decides) must not depend on the sinks
        taper = max(log_every, -(-cap // _TAPER_FRACTION))

        def plan_at(epoch: int) -> tuple[int, list[int], np.ndarray, np.ndarray]:
            return self._chunk_plan(epoch, end, cap, host_plugins, deferred, g_plugins, postpone, taper, log_every)

        pending = self._dispatch_chunk(e, self._state, plan_at(e), log_every) if e < end else None
        t_done = t_loop
        while pending is not None:
            c = pending
            e = c.e
            state, buf, n_done, ok, snaps, n_slots = c.outs
            ahead = (self._dispatch_chunk(e + c.n, state, plan_at(e + c.n), log_every)
                     if ahead_ok and e + c.n < end else None)
            rows = np.asarray(buf)
            self._state = state
            n_done = int(n_done)
            ok = bool(ok)
            rows = rows[:n_done]
            epochs_arr = np.arange(e, e + n_done)
            hist._append(epochs_arr, rows)
            t_prev, t_done = t_done, time.perf_counter()
            dt = t_done - max(c.t_dispatch, t_prev)  # queued behind the previous chunk until t_prev
            ep_s = n_done / dt if dt > 0 else float("inf")
            logged = [j for j in range(n_done) if (e + j) % log_every == 0 or (not ok and j == n_done - 1)]
            if logged and buffer.bus is not None:
                lrs = lr_table.lookup([e + j for j in logged])
                keys = ["loss/total"] + [f"loss/{n}" for n in self.constraint_names]
                for t, j in enumerate(logged):
                    m = {k: Scalar(v) for k, v in zip(keys, rows[j, : n_terms + 1].tolist())}
                    m["train/grad_norm"] = Scalar(float(rows[j, -2]))
                    m["train/param_norm"] = Scalar(float(rows[j, -1]))
                    for name, vals in lrs.items():
                        m[f"lr/{name}"] = Scalar(float(vals[t]))
                    buffer.add(e + j, m)
            # the chunk's speed at its last logged epoch (a step the sinks get anyway: one
            # more step per chunk cost TensorBoard an event and W&B a log call each)
            buffer.add(e + (logged[-1] if logged else max(n_done - 1, 0)), {"perf/epochs_per_s": Scalar(ep_s)})
            if c.snap_epochs:
                self._fire_deferred(ctx, deferred, snaps, c.snap_epochs[: int(n_slots)], c.g_at, c.inputs)
            if not ok:
                # the state before the failing step: replay the good steps from the chunk start
                self._state = self._chunk_fn(c.before, c.points, c.inputs, np.int32(n_done - 1),
                                             np.int32(log_every), c.snap_at)[0]
                self.epoch = e + n_done - 1
                ctx.epoch = self.epoch
                bad = [self.constraint_names[i] for i in range(n_terms) if not np.isfinite(rows[-1, 1 + i])]
                msg = (
                    f"non-finite loss at epoch {self.epoch} in {', '.join(bad) or 'the total loss'} "
                    f"({rows[-1, 0]!r}); training stopped there and the parameters are those before "
                    "that step. The history up to that epoch is kept. Lower the learning rate or "
                    "check the constraint for divisions by zero / logs of negatives."
                )
                hist.stopped = msg
                buffer.emit_before(None)
                if P.strict_mode():
                    hist.wall_time += time.perf_counter() - t_loop
                    self._merge_history(hist)
                    raise NonFiniteLossError(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=3)
                break
            e = e + n_done
            self.epoch = e
            ctx.epoch = e
            if wait_chunk_end:
                ctx.wait_for_diagnostics()
            P.call_hook(pm, "on_chunk_end", ctx=ctx, epochs=epochs_arr, losses=rows[:, : n_terms + 1])
            buffer.emit_before(e)
            show.update(e - start, float(rows[-1, 0]), ep_s)
            if ctx.stop_reason:
                hist.stopped = ctx.stop_reason
                break
            pending = None
            if e < end:
                self._fire(ctx, hist, pm, at_host, e, buffer)
                if (ahead is not None and ahead.e == e and self._state is state and self._points is ahead.points
                        and self.epoch == e):
                    pending = ahead
                else:  # a plugin changed what the chunk started ahead started from
                    pending = self._dispatch_chunk(self.epoch, self._state, plan_at(self.epoch), log_every)
        show.close()
        hist.wall_time += time.perf_counter() - t_loop

    def _sync_back(self) -> None:
        """Write the trained values back to the networks and parameters (so ``eval`` and
        new solvers see them)."""
        if self._state is None:
            return
        import equinox as eqx

        for k, t in self.trainables.items():
            p = self._state[0][k]
            if isinstance(t, Network):
                t.module = eqx.combine(p, t.static)
            else:
                t.initial = p

    def _merge_history(self, hist: History) -> None:
        self.history._epochs.extend(hist._epochs)
        self.history._rows.extend(hist._rows)
        for name, th in hist.trackers.items():
            for ep, v in zip(th.epochs, th._values):
                self.history.trackers[name].append(ep, v)
        self.history.wall_time += hist.wall_time
        self.history.compile_time += hist.compile_time
        self.history.stopped = hist.stopped

    # ------------------------------------------------------------------ eval
    def eval(self, exprs: Sequence[Any] | Any) -> list[np.ndarray] | np.ndarray:
        """Evaluate expressions at the current parameters (never advancing any state).

        A list gives a list of arrays; fields come without the batch axis (``(N, ...)``), as
        do single expressions (the spec's ``[J] = crux.eval([J_expr])``). A bare expression
        (not in a list) returns its array.
        """
        single = not isinstance(exprs, (list, tuple))
        items = [E.as_expr(x) for x in ([exprs] if single else exprs)]
        state_params = self._state[0] if self._state is not None else {}
        params: dict[str, Any] = {}
        for n in E.walk(items):
            t = n.net if isinstance(n, (E.NetworkCall, E.NetworkGradient)) else (
                n if isinstance(n, TrainableParameter) else None)
            if t is not None:
                k = trainable_key(t)
                params[k] = state_params[k] if k in state_params else t.params
        points = dict(self._points)
        for n in E.walk(items):
            if isinstance(n, E.Variable) and n.point_set not in points:
                points[n.point_set] = jnp.asarray(point_set(n.point_set).points)
        key = tuple(id(x) for x in items)
        hit = self._eval_cache.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[1], items)):
            def f(p: Any, pts: Any, inputs: Any, weights: Any) -> list[jax.Array]:
                env = Env(p, pts, weights, inputs)
                return [evaluate(x, env) for x in items]

            hit = (jax.jit(f), items)
            self._eval_cache[key] = hit
        out = hit[0](params, points, self._current_inputs(), self._current_weights(self._state))
        arrays = [np.asarray(a) for a in out]
        return arrays[0] if single else arrays


def core(constraints: Sequence[Any], **kwargs: Any) -> Core:
    """``jno.core([pde.mse, bc.mse, tracker, ...])``: build a solver."""
    return Core(constraints, **kwargs)
