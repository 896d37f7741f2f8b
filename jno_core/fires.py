"""How the core prepares and runs a tracker's fire: :func:`prepare_fire` and :func:`fire_output`.

The tracker contract (:class:`jno_core.tracker.Tracker`): a tracker declares one pure device
function ``fn(params, points, inputs, weights, **needs) -> pytree of arrays``
(:meth:`Tracker.fire_fn`) and host-side :meth:`Tracker.finish` / :meth:`Tracker.metrics`. The
core alone compiles ``fn`` (in ``on_solve_begin``, on the background compile pool of
:mod:`jno_core.compile_pool`, plus one warm-up call, so the first fire compiles nothing) and
runs it:

* when every fire of the solve reads a chunk's on-device parameter snapshots (the usual case,
  see :mod:`jno_core.loop`), ``fn`` is compiled over all ``K`` snapshot slots of a chunk as one
  function (``lax.map`` over the slots; a slot whose epoch is not a multiple of the tracker's
  interval is skipped by ``lax.cond`` and gives zeros) and called once per chunk by the first
  fire that asks (:class:`jno_core.chunk.ChunkSlots`);
* otherwise (a host-side plugin that must see every fire in step, weight providers) ``fn`` is
  compiled for one fire and called on the context's state; its output is memoised per epoch.

``needs`` (:attr:`Tracker.needs`) adds keyword arguments computed on the device beside ``fn``:
``gradient_matrix`` (``G`` ``(N, P)``: the gradients of the unweighted constraint losses with
respect to the parameters ``tracker.mask`` selects, :func:`jno_core.context.constraint_gradients`)
and ``epoch`` (int32 scalar: the fire's epoch). Trackers whose device functions have the same
:meth:`Tracker.fire_key` (and argument shapes) share one executable and one call per chunk: the
three gradient trackers compute ``G`` once.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp
import numpy as np

from . import compile_pool
from .context import constraint_gradients

__all__ = ["NEEDS", "Fire", "batches", "prepare_fire", "fire_output"]

#: the ``needs`` a tracker may declare (see the module docstring)
NEEDS = ("gradient_matrix", "epoch")


class Fire:
    """A tracker's device function prepared for one solve: the :class:`compile_pool.Pending`
    of its executable, whether it runs over a chunk's snapshot slots (``batched``) and the
    output's ``jax.ShapeDtypeStruct`` pytree of one fire (``out_info``)."""

    __slots__ = ("key", "pending", "batched", "out_info", "call")

    def __init__(self, key: Hashable, pending: Any, batched: bool, out_info: Any,
                 call: Callable[..., Any]) -> None:
        self.key, self.pending, self.batched, self.out_info, self.call = key, pending, batched, out_info, call

    def ready(self) -> bool:
        """Whether the compilation succeeded (waits for it)."""
        try:
            self.pending.result()
        except Exception:  # noqa: BLE001 - prepare again (and report it there)
            return False
        return True


def _check_needs(owner: str, needs: Any) -> tuple[str, ...]:
    needs = tuple(needs or ())
    bad = [n for n in needs if n not in NEEDS]
    if bad:
        raise ValueError(
            f"tracker {owner!r} declares needs={needs!r}; {bad} are not provided. A tracker's "
            f"device function can ask for {', '.join(NEEDS)} (keyword arguments of fire_fn's function)."
        )
    return needs


def _with_needs(ctx: Any, fn: Callable[..., Any], needs: tuple[str, ...], mask: Any) -> Callable[..., Any]:
    """``one(params, points, inputs, weights, epoch)``: ``fn`` with its ``needs`` computed."""
    terms = list(ctx.crux.loss_terms)
    sel = ctx.selector(mask) if "gradient_matrix" in needs else None

    def one(params: Any, points: Any, inputs: Any, weights: Any, epoch: jax.Array) -> Any:
        extra: dict[str, Any] = {}
        if sel is not None:
            extra["gradient_matrix"] = constraint_gradients(terms, sel, params, points, inputs).astype(jnp.float32)
        if "epoch" in needs:
            extra["epoch"] = epoch
        return fn(params, points, inputs, weights, **extra)

    return one


def _over_slots(crux: Any, one: Callable[..., Any], out_info: Any) -> Callable[..., Any]:
    """``one`` over a chunk's snapshot slots: ``(snap_params, snap_scheme_states, points,
    inputs, epochs (K,), wanted (K,) bool) -> pytree with a leading K axis``."""

    def zeros(_: Any) -> Any:
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), out_info)

    def fire_slots(snap_params: Any, snap_wstates: Any, points: Any, inputs: Any, epochs: jax.Array,
                wanted: jax.Array) -> Any:
        def slot(args: Any) -> Any:
            params, wstates, epoch, want = args
            return jax.lax.cond(
                want, lambda _: one(params, points, inputs, crux.scheme_weights(wstates), epoch), zeros, None)

        return jax.lax.map(slot, (snap_params, snap_wstates, epochs, wanted))

    return fire_slots


def batches(ctx: Any, tracker: Any) -> bool:
    """Whether ``tracker``'s fires in this solve run as one call per chunk over its snapshot
    slots: the solve fires from snapshots and the tracker did not opt out
    (:attr:`jno_core.tracker.Tracker.batch_fires`)."""
    return bool(getattr(ctx, "_from_snapshots", False)) and bool(getattr(tracker, "batch_fires", True))


def prepare_fire(ctx: Any, tracker: Any, fn: Callable[..., Any], key: Hashable | None = None) -> Fire:
    """Start compiling ``tracker``'s device function ``fn`` for this solve (see the module
    docstring) and return its :class:`Fire`. ``fn`` is traced here, on the calling thread (a
    tracing error surfaces in the plugin that caused it); the XLA compilation and a warm-up
    call run on the compile pool, and the core waits for them after ``on_solve_begin``."""
    owner = getattr(tracker, "name", type(tracker).__name__)
    needs = _check_needs(owner, getattr(tracker, "needs", ()))
    one = _with_needs(ctx, fn, needs, getattr(tracker, "mask", None))
    key = (owner, id(tracker)) if key is None else key
    crux = ctx.crux
    live = (ctx.params, ctx.points, ctx.inputs, ctx.weights, np.int32(ctx.epoch))
    out_info = jax.eval_shape(one, *live)
    if batches(ctx, tracker):
        snaps = crux._snap_template
        K = crux._n_slots
        pending = compile_pool.compile_async(
            ctx, f"fire_batch:{key!r}", _over_slots(crux, one, out_info), snaps[0], snaps[1], ctx.points,
            ctx.inputs, np.zeros(K, np.int32), np.ones(K, bool), owner=owner)
        return Fire(key, pending, True, out_info, one)
    pending = compile_pool.compile_async(ctx, f"fire:{key!r}", one, *live, owner=owner)
    return Fire(key, pending, False, out_info, one)


def fire_output(ctx: Any, fire: Fire, interval: int) -> Any:
    """The output of ``fire`` at ``ctx``'s epoch, NumPy leaves: this epoch's slice of the
    chunk's slot-batch call (made once per chunk and interval) in a fire from a chunk
    snapshot, else one call on ``ctx``'s state (memoised per epoch, shared by trackers with
    the same key). A fire from the live state after a slot-batch preparation (a tool calling
    ``Tracker._fire`` directly) compiles the one-fire function then."""
    chunk = getattr(ctx, "_chunk", None)
    if fire.batched and chunk is not None:
        return chunk.slot_values(fire.pending, interval, ctx._slot)
    memo_key = ("fire", fire.key, ctx.epoch)
    with ctx._memo_lock:
        hit = ctx._memo.get(memo_key)
        if hit is None:
            args = (ctx.params, ctx.points, ctx.inputs, ctx.weights, np.int32(ctx.epoch))
            compiled = (ctx.compile(f"fire:{fire.key!r}", fire.call, *args) if fire.batched
                        else fire.pending.result())
            hit = ctx._memo[memo_key] = jax.tree_util.tree_map(np.asarray, compiled(*args))
        return hit
