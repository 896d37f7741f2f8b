"""Optimizers of a solve: any optax transformation in the compiled step, and optimizer phases.

**Any optax transformation.** The train step (:func:`jno_core.chunk.make_step`) updates each
trained network or parameter with :func:`apply_update`. A plain
``optax.GradientTransformation`` is called as ``tx.update(grads, state, params)``. A
``optax.GradientTransformationExtraArgs`` (``optax.lbfgs()``, any ``optax.chain(...)``, a chain
ending in ``optax.scale_by_zoom_linesearch``) also gets ``value`` (the total weighted training
loss at the current parameters), ``grad`` (that network's gradient) and ``value_fn`` (the
training loss as a function of *that* network's parameters, every other trainable, the loss
weights and the points of this epoch held fixed), so L-BFGS's zoom line search (Nocedal &
Wright, *Numerical Optimization*, 2nd ed., 2006, Alg. 3.5/3.6; Liu & Nocedal 1989 for L-BFGS)
evaluates the loss on the device inside the compiled chunk. Transformations that ignore the
extra arguments compile to the same program as before (the unused ``value_fn`` is never traced
into it).

**Reusing the line search's value.** A line search stores the loss and gradient at the
parameters it accepted (the next step's parameters); for one trained network without
weighting schemes, host-fed weights or mini-batches the step takes them from the state
(:func:`stored_value_key`, :func:`reuse_value_and_grad`) instead of evaluating afresh, when
they agree with this step's forward pass (points replaced between chunks or a loaded state
from other points fail that check).

**Optimizer phases.** ``net.optimizer(new_tx)`` between solves takes effect at the next
``solve()`` (:func:`sync_optimizers`, called by ``solve`` before it compiles): the new
optimizer's state is ``new_tx.init(current params)``, the compiled chunk is rebuilt once, and
everything else (epoch count, history, trackers, weighting-scheme states, points) continues.
Each change is a *phase* ``{"start_epoch": e, "optimizer": description}``, kept per network
(:attr:`Core.optimizer_phases`), written to ``config.json`` under ``"optimizers"`` and logged
as the metric ``optimizer/phase/<network>`` (the phase's index, 0 for the first optimizer) at
its start epoch. Calling ``net.optimizer(...)`` *during* a solve (from a hook) changes nothing
in that solve: it takes effect at the next ``solve()``.

**Learning rate of a line search.** For a transformation whose learning rate cannot be read
from its closure (:mod:`jno_core.lr`) but whose state holds a ``learning_rate`` leaf (the
step size ``optax.scale_by_zoom_linesearch`` accepted at the last step, e.g. in
``optax.lbfgs()``), the step returns that leaf and the loop logs it as ``lr/<network>``
(:func:`state_learning_rate`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .errors import ConfigError
from .lr import _walk, learning_rate_fn
from .state import TrainState

__all__ = ["is_extra_args", "apply_update", "stored_value_key", "reuse_value_and_grad", "state_learning_rate", "line_search_lr_keys",
           "split_line_search_lrs", "init_optimizers", "sync_optimizers", "describe_optimizer",
           "announce_phases"]

_log = logging.getLogger("jno")


def is_extra_args(tx: Any) -> bool:
    """Whether ``tx.update`` takes ``value`` / ``grad`` / ``value_fn`` keyword arguments
    (an ``optax.GradientTransformationExtraArgs``)."""
    return isinstance(tx, optax.GradientTransformationExtraArgs)


def apply_update(tx: Any, grad: Any, opt_state: Any, params: Any, value: jax.Array,
                 value_fn: Callable[[Any], jax.Array]) -> tuple[Any, Any]:
    """One optimizer step: ``(new params, new optimizer state)``.

    :param grad: the gradient of the training loss with respect to ``params`` (same pytree).
    :param value: the training loss (a scalar) at ``params``.
    :param value_fn: ``params -> training loss`` (traceable; called by line searches).
    """
    if is_extra_args(tx):
        upd, new_state = tx.update(grad, opt_state, params, value=value, grad=grad, value_fn=value_fn)
    else:
        upd, new_state = tx.update(grad, opt_state, params)
    return optax.apply_updates(params, upd), new_state


def _stored_leaves(state: Any) -> tuple[Any, Any] | None:
    """``(value, grad)`` kept in an optimizer state by a line search (``optax.lbfgs()``'s
    zoom line search, ``scale_by_backtracking_linesearch(store_grad=True)``), or None when
    the state holds no single such pair."""
    try:
        value = optax.tree_utils.tree_get(state, "value")
        grad = optax.tree_utils.tree_get(state, "grad")
    except (KeyError, ValueError):  # several line searches in one chain
        return None
    if value is None or grad is None or jnp.ndim(value) != 0:
        return None
    return value, grad


def stored_value_key(crux: Any, batchsize: int | None) -> str | None:
    """The trained key whose step takes the loss and gradient from its optimizer state
    (:func:`reuse_value_and_grad`), or None (every step computes them afresh).

    Only where the value a line search stored at the end of a step is the training loss the
    next step needs at the same parameters, whatever happens inside a chunk: exactly one
    trained network or parameter (with several, the line search of one holds the others at
    their values before a step in which they moved), no on-device weighting scheme (its
    weights change every step), no host-fed weights (they change between chunks), no
    mini-batches (the points change every step), and an optimizer state with one scalar
    ``value`` and a ``grad`` shaped like the parameters. What can change between chunks
    (points replaced by a resampler, a loaded state) is checked in the step itself."""
    keys = list(crux.trained_keys)
    if len(keys) != 1 or batchsize is not None or crux.schemes or crux._current_inputs():
        return None
    k = keys[0]
    params = crux._state[0][k]
    shapes = jax.eval_shape(crux.trainables[k].tx.init, params)
    found = _stored_leaves(shapes)
    if found is None:
        return None
    same = jax.tree_util.tree_structure(found[1]) == jax.tree_util.tree_structure(params) and all(
        jnp.shape(a) == jnp.shape(b) and jnp.result_type(a) == jnp.result_type(b)
        for a, b in zip(jax.tree_util.tree_leaves(found[1]), jax.tree_util.tree_leaves(params)))
    return k if same else None


#: a stored line-search value belongs to this step's loss when it is within this many units in
#: the last place of the forward total: the two are the same sum evaluated by two compiled
#: programs (the line search's ``value_and_grad`` and the step's forward pass), which XLA
#: fuses and reduces in different orders (1-2 ulps apart on the 2-D Poisson problem)
REUSE_ULPS = 64


def _belongs(stored: jax.Array, fresh: jax.Array) -> jax.Array:
    """Whether a stored line-search value is this step's loss (``fresh``: its forward total):
    finite and within :data:`REUSE_ULPS` ulps of it."""
    tol = REUSE_ULPS * jnp.finfo(fresh.dtype).eps * jnp.maximum(jnp.abs(stored), jnp.abs(fresh))
    return jnp.isfinite(stored) & (jnp.abs(stored - fresh) <= tol)


def reuse_value_and_grad(opt_state: Any, loss: Callable[[Any], Any], tp: dict[str, Any]) -> tuple[Any, ...]:
    """Traceable: ``(total, vals, scheme losses, grads)`` as ``jax.value_and_grad(loss,
    has_aux=True)(tp)`` gives them, with the total and the gradient taken from the line
    search's state when they belong to this loss (``tp``: ``{key: params}`` of the one
    trained key, see :func:`stored_value_key`).

    A line search (``optax.scale_by_zoom_linesearch``, Nocedal & Wright 2006, Alg. 3.5/3.6)
    ends its step having evaluated the loss and its gradient at the parameters it accepted,
    which are this step's parameters; ``optax.value_and_grad_from_state`` reuses them, which
    saves one forward and backward pass per step. The per-constraint losses (the history's
    row) still need a forward pass; its total is the check: the stored value is used only
    when it is finite and equals this forward total to rounding (:data:`REUSE_ULPS`), so a
    state from another loss (an optimizer's first step, where optax stores ``inf``; points
    replaced between chunks; a state loaded from elsewhere; a transformation chained after
    the line search that moves the parameters off the accepted point) falls back to
    ``jax.value_and_grad``. A change that moves the loss by less than that rounding would
    go unnoticed; the static conditions of :func:`stored_value_key` exclude the changes that
    happen inside a chunk."""
    (k,) = tp
    total_f, (vals, sl) = loss(tp)
    value, grad = _stored_leaves(opt_state)
    value = jnp.asarray(value, total_f.dtype)
    valid = _belongs(value, total_f)

    def stored() -> tuple[Any, Any, Any]:
        return value, vals, {k: grad}

    def fresh() -> tuple[Any, Any, Any]:
        (t, (v, _)), g = jax.value_and_grad(loss, has_aux=True)(tp)
        return t, v, g

    total, vals, grads = jax.lax.cond(valid, stored, fresh)
    return total, vals, sl, grads


def _has_lr_leaf(state: Any) -> bool:
    try:
        found = optax.tree_utils.tree_get(state, "learning_rate")
    except (KeyError, ValueError):
        return False
    return found is not None and jnp.ndim(found) == 0


def state_learning_rate(opt_state: Any) -> jax.Array:
    """Traceable: the ``learning_rate`` leaf of an optimizer state (a line search's accepted
    step size) as a float32 scalar."""
    return jnp.asarray(optax.tree_utils.tree_get(opt_state, "learning_rate"), jnp.float32)


def line_search_lr_keys(crux: Any) -> list[str]:
    """The trained keys whose learning rate the step returns from the optimizer state: those
    whose state (``tx.init``, shapes only) has a scalar ``learning_rate`` leaf (a zoom line
    search's accepted step size, ``optax.inject_hyperparams``' current rate). The others'
    rate is read from the optimizer's closure (:func:`jno_core.lr.learning_rate_fn`)."""
    out = []
    for k in crux.trained_keys:
        tx = crux.trainables[k].tx
        shapes = jax.eval_shape(tx.init, crux._state[0][k])
        if _has_lr_leaf(shapes):
            out.append(k)
    return out


def describe_optimizer(tx: Any, given: str | None) -> str:
    """A short description of ``tx``: ``given`` (``net.optimizer(tx, description=...)``),
    else the optax function that built it, the parts of a chain and, when readable, its
    learning rate (``"chain(scale_by_adam, lr=0.001)"``, ``"chain(scale_by_adam,
    scale_by_schedule, lr=schedule)"``)."""
    if given:
        return given
    fn = getattr(tx, "init", None)
    qual = (getattr(fn, "__qualname__", "") or "").split(".<locals>")[0] or type(tx).__name__
    cells = dict(zip(getattr(getattr(fn, "__code__", None), "co_freevars", ()), getattr(fn, "__closure__", None) or ()))
    parts = []
    try:
        if qual == "chain" and "init_fns" in cells:  # optax.chain and the aliases built on it
            parts = [getattr(f, "__qualname__", "?").split(".<locals>")[0] for f in cells["init_fns"].cell_contents]
            parts = [p for p in parts if p != "init_empty_state"]
        elif qual == "inject_hyperparams" and "inner_factory" in cells:
            parts = [getattr(cells["inner_factory"].cell_contents, "__name__", "?")]
    except ValueError:  # an empty closure cell
        parts = []
    # a line search picks the step itself (optax.lbfgs's final scale(-1) is no learning rate)
    if not any("linesearch" in p for p in parts):
        lr = _walk(tx, 0, set())
        if lr is None:
            lr = _walk(tx, 0, set(), "step_size")
        if callable(lr):
            parts.append("lr=schedule")
        elif isinstance(lr, (int, float)):
            parts.append(f"lr={abs(float(lr)):.4g}")
    return f"{qual}({', '.join(parts)})" if parts else qual


def _record_phase(crux: Any, key: str) -> dict[str, Any]:
    t = crux.trainables[key]
    phases = crux._optimizer_phases.setdefault(t.name, [])
    entry = {"start_epoch": int(crux.epoch), "optimizer": describe_optimizer(t.tx, t.tx_description)}
    phases.append(entry)
    return entry


def sync_optimizers(crux: Any) -> list[str]:
    """Make the train state's optimizer states those of the networks' current optimizers.

    For every trained network or parameter whose optimizer object changed since its state was
    built (``net.optimizer(new_tx)``), the state becomes ``new_tx.init(current params)``, a
    phase is recorded (``crux.optimizer_phases``), the compiled chunks are dropped (the next
    solve compiles once) and the learning-rate metric follows the new optimizer. Returns the
    names of the networks whose optimizer changed. Not called while solving."""
    from .sharding import replicate

    active = crux._active_txs
    changed = [k for k in crux.trained_keys if crux.trainables[k].tx is not active.get(k)]
    if not changed:
        return []
    missing = [crux.trainables[k].name for k in changed if crux.trainables[k].tx is None]
    if missing:
        raise ConfigError(
            f"the optimizer of {', '.join(repr(m) for m in missing)} was set to None; every trained "
            "network or parameter needs one, e.g. net.optimizer(optax.lbfgs())."
        )
    params, opt, wstates, epoch = crux._state
    opt = dict(opt)
    mesh = crux._layout.mesh
    for k in changed:
        tx = crux.trainables[k].tx
        st = tx.init(params[k])
        opt[k] = replicate(st, mesh) if mesh is not None else st
        active[k] = tx
        entry = _record_phase(crux, k)
        crux._phase_start[k] = int(crux.epoch)
        _log.info("jno: %s optimizer -> %s from epoch %d", crux.trainables[k].name, entry["optimizer"],
                  entry["start_epoch"])
    crux._state = TrainState(params, opt, wstates, epoch)
    crux._chunk_fns.clear()  # they captured the old optimizers
    crux._chunk_fn = None
    crux._ls_keys = line_search_lr_keys(crux)
    crux._lr_fns = _lr_fns(crux)
    crux._new_phases.extend(crux.trainables[k].name for k in changed)
    return [crux.trainables[k].name for k in changed]


def init_optimizers(crux: Any) -> None:
    """Record the optimizers the first train state was built with (phase 0 of each)."""
    crux._active_txs = {k: crux.trainables[k].tx for k in crux.trained_keys}
    crux._phase_start = {k: int(crux.epoch) for k in crux.trained_keys}
    crux._optimizer_phases = {}
    crux._new_phases = []
    for k in crux.trained_keys:
        _record_phase(crux, k)
        crux._new_phases.append(crux.trainables[k].name)
    crux._ls_keys = line_search_lr_keys(crux)
    crux._lr_fns = _lr_fns(crux)


def _lr_fns(crux: Any) -> dict[str, Any]:
    """``{network name: counts -> learning rates}`` where counts are epochs since
    ``crux._opt_start_epoch`` (the loop's convention): each network's schedule counts from
    the start of its own phase."""
    out = {}
    for k in crux.trained_keys:
        # a rate kept in the optimizer state comes from the step instead (line_search_lr_keys)
        fn = None if k in crux._ls_keys else learning_rate_fn(crux.trainables[k].tx)
        shift = crux._phase_start.get(k, crux._opt_start_epoch) - crux._opt_start_epoch
        if fn is not None and shift:
            fn = (lambda f, s: lambda counts: f(np.asarray(counts) - s))(fn, shift)
        out[crux.trainables[k].name] = fn
    return out


def announce_phases(crux: Any, session: Any) -> None:
    """At the start of a solve: log ``optimizer/phase/<network>`` (the phase's index) at the
    start epoch for every phase recorded since the last solve, and write every network's
    phases to the run's ``config.json`` under ``"optimizers"``."""
    from .metrics import Scalar

    names, crux._new_phases = list(dict.fromkeys(crux._new_phases)), []
    if not names:
        return
    session.buffer.add(int(crux.epoch), {f"optimizer/phase/{n}": Scalar(float(len(crux._optimizer_phases[n]) - 1))
                                         for n in names})
    if session.run is not None:
        session.run.update_config(optimizers={n: [dict(p) for p in ph] for n, ph in crux._optimizer_phases.items()})


def split_line_search_lrs(crux: Any, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(rows (L, N + 3), {network name: step sizes (L,)})``: a chunk's rows without the
    line-search step-size columns the step appended (see :func:`line_search_lr_keys`)."""
    keys = crux._ls_keys
    if not keys:
        return rows, {}
    width = len(crux.loss_terms) + 3
    return rows[:, :width], {crux.trainables[k].name: rows[:, width + i] for i, k in enumerate(keys)}
