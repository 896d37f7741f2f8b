"""What plugins see during a solve: :class:`SolveContext`.

The context gives plugins the live parameters and points, a way to log metrics, and
compiled building blocks shared by every plugin (so the gradient trackers share one
per-constraint gradient matrix per fired epoch)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import compile_pool
from . import expr as E
from .compile import Env, evaluate, node_key, residual_of
from .errors import MaskError
from .masks import check_mask, flatten_selected, mask_size, unflatten_selected
from .metrics import as_metrics

__all__ = ["SolveContext", "ParamSelector", "constraint_gradients"]


class ParamSelector:
    """Selects a subset of the parameters dict ``{trainable key: pytree}`` as a flat vector.

    ``mask=None`` selects every parameter of every trained network/parameter; a bool pytree
    matching one network's ``params`` (or ``module``) selects those leaves of that network.
    """

    def __init__(self, params: dict[str, Any], trained: Sequence[str], mask: Any = None, names: dict[str, str] | None = None) -> None:
        self.keys = list(trained)
        self.masks: dict[str, Any] = {k: None for k in self.keys}
        if mask is not None:
            matches = []
            errors = []
            for k in self.keys:
                try:
                    matches.append((k, check_mask(mask, params[k], owner=(names or {}).get(k, k))))
                except MaskError as exc:
                    errors.append(str(exc))
            if not matches:
                raise MaskError(
                    "the mask matches none of the trained networks' parameters. "
                    + (errors[0] if len(errors) == 1 else " | ".join(errors))
                )
            k, m = matches[0]
            self.keys = [k]
            self.masks = {k: m}
        self.size = int(sum(mask_size(params[k], self.masks[k]) for k in self.keys))

    def flatten(self, params: dict[str, Any]) -> jax.Array:
        parts = [flatten_selected(params[k], self.masks[k]) for k in self.keys]
        return jnp.concatenate(parts) if len(parts) > 1 else parts[0]

    def unflatten(self, params: dict[str, Any], flat: jax.Array) -> dict[str, Any]:
        out = dict(params)
        i = 0
        for k in self.keys:
            n = mask_size(params[k], self.masks[k])
            out[k] = unflatten_selected(params[k], self.masks[k], flat[i : i + n])
            i += n
        return out


class SolveContext:
    """The solve as plugins see it.

    Attributes: ``crux`` (the :class:`~jno_core.core.Core`), ``run`` (the current
    :class:`~jno_core.run.Run` or None), ``epoch`` (the global epoch), ``start_epoch`` and
    ``end_epoch`` of this solve, ``constraints`` (the loss expressions), ``constraint_names``.
    """

    def __init__(self, crux: Any, run: Any, start_epoch: int, end_epoch: int, logger: Callable[[int, dict], None]) -> None:
        self.crux = crux
        self.run = run
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self._epoch: int | None = None  # a snapshot's own epoch; the live context reads the solver's
        self._logger = logger
        self.stop_reason: str | None = None
        self._memo: dict[Any, Any] = {}
        # guards _memo (and a snapshot's materialisation): fires of one epoch may run on
        # two threads (see jno_core.concurrent) and must compute shared quantities once
        self._memo_lock = threading.RLock()
        # compiled gradient-matrix functions by selector id, kept with the solver's other
        # compiled functions (reset when the device layout changes); skips re-deriving
        # ctx.compile's cache key (a measurable cost) at every fire; see benchmarks/README.md
        self._g_fns: dict[int, Callable[..., Any]] = crux._cache.gradient_fns
        # the background worker of this solve's concurrent fires (None: run them inline)
        self._worker: Any = None
        self._snapshot: Any = None
        # every deferred fire of this solve reads a chunk snapshot (set by the core before
        # on_solve_begin): trackers' device functions are then prepared over a chunk's
        # snapshot slots (jno_core.fires)
        self._from_snapshots = False

    # ------------------------------------------------------------------ state
    @property
    def epoch(self) -> int:
        """The global epoch: the solver's (``crux.epoch``, stored only there) for the live
        context, the frozen epoch for a snapshot."""
        return self.crux.epoch if self._epoch is None else self._epoch

    @property
    def setup_token(self) -> object:
        """An object that is the same for every solve of this solver on the same device
        layout (what compiled functions depend on: parameter shapes, points, placement) and
        different otherwise. A plugin that compiled in ``on_solve_begin`` for this token may
        skip compiling again (:class:`~jno_core.tracker.Tracker` does)."""
        return self.crux._cache.token

    @property
    def params(self) -> dict[str, Any]:
        """``{trainable key: params pytree}`` at :attr:`epoch` (device arrays)."""
        return self.crux._state[0]

    @property
    def state(self) -> Any:
        """The whole train state ``(params, opt_states, scheme_states, epoch)``."""
        return self.crux._state

    @property
    def points(self) -> dict[str, jax.Array]:
        return self.crux._points

    @property
    def inputs(self) -> dict[str, jax.Array]:
        return self.crux._current_inputs()

    @property
    def weights(self) -> dict[str, jax.Array]:
        return self.crux._current_weights(self.crux._state)

    @property
    def constraints(self) -> list[E.Placeholder]:
        return list(self.crux.loss_terms)

    @property
    def constraint_names(self) -> list[str]:
        return list(self.crux.constraint_names)

    @property
    def n_constraints(self) -> int:
        return len(self.crux.loss_terms)

    @property
    def trained_keys(self) -> list[str]:
        return list(self.crux.trained_keys)

    # ------------------------------------------------------------------ actions
    def log(self, metrics: dict[str, Any], step: int | None = None, source: str = "plugin") -> None:
        """Send ``metrics`` to every sink at ``step`` (default: the current epoch)."""
        self._logger(self.epoch if step is None else int(step), as_metrics(metrics, source=source))

    def request_stop(self, reason: str) -> None:
        """Stop the solve at the end of the current chunk."""
        self.stop_reason = reason

    def set_points(self, key: str, points: Any) -> jax.Array:
        """Replace point set ``key`` with ``points`` of the same shape and dtype (placed like
        the old set; nothing recompiles): the next chunk and every later fire use them. Call
        it from ``on_epoch`` (a host visit), not from work handed to :meth:`submit`. See
        :meth:`jno_core.core.Core.set_points`."""
        return self.crux.set_points(key, points)

    # ------------------------------------------------------------------ concurrency
    def snapshot(self) -> "SolveContext":
        """A frozen copy of this context at the current epoch: same solver, run and logger,
        but ``params``/``state``/``points``/``inputs``/``weights``/``epoch`` fixed to their
        values now (device arrays are immutable, so this copies nothing). Use it for work
        handed to :meth:`submit`. One snapshot per epoch and state is shared by every
        plugin firing then, so memoised quantities (:meth:`gradient_matrix`) are shared."""
        snap = self._snapshot
        if snap is None or snap.epoch != self.epoch or snap._values()[0] is not self.crux._state:
            snap = self._snapshot = _Snapshot(self)
        return snap

    def deferred_snapshot(self, epoch: int, materialize: Callable[[], Any], inputs: Any,
                          chunk: Any = None, slot: int = 0) -> "SolveContext":
        """A context frozen at an earlier ``epoch`` of the chunk just run (deferred fires, see
        ``Tracker.deferred_fire``): ``materialize()`` returns ``(params, scheme_states,
        weights)`` of that epoch and is called on first use; ``chunk`` and ``slot``: the
        chunk's shared results (the trackers' slot-batch outputs, :mod:`jno_core.fires`)
        and this epoch's slot. Its
        :meth:`submit` goes to this solve's diagnostics thread."""
        return _Snapshot(self, epoch, materialize, inputs, chunk, slot)

    def submit(self, epoch: int, label: str, job: Callable[[], None]) -> None:
        """Run ``job`` (a fire of plugin ``label`` at ``epoch``) on the diagnostics thread
        when the solve has one (see :mod:`jno_core.concurrent`), else now. A failing job is
        raised as :class:`~jno_core.errors.JnoPluginError` naming ``label`` and ``epoch``."""
        if self._worker is None:
            job()
        else:
            self._worker.submit(epoch, label, job)

    def wait_for_diagnostics(self) -> None:
        """Block until every fire handed to :meth:`submit` so far has finished (a no-op
        without a diagnostics thread). Plugins whose hooks read other plugins' live state
        and are declared concurrent call this first."""
        if self._worker is not None:
            self._worker.wait()

    # ------------------------------------------------------------------ shared building blocks
    def selector(self, mask: Any = None) -> ParamSelector:
        """A :class:`ParamSelector` for ``mask`` (cached per mask object)."""
        selectors = self.crux._cache.selectors
        if id(mask) not in selectors:
            names = {k: t.name for k, t in self.crux.trainables.items()}
            selectors[id(mask)] = (mask, ParamSelector(self.params, self.crux.trained_keys, mask, names))
        return selectors[id(mask)][1]

    def constraint_index(self, expr: E.Placeholder) -> int:
        """The solver-side index of ``expr`` among the constraints, matched by identity and
        else structurally (``.mse`` builds a new placeholder on each access)."""
        for i, c in enumerate(self.crux.loss_terms):
            if c is expr:
                return i
        k = node_key(expr)
        for i, c in enumerate(self.crux.loss_terms):
            if node_key(c) == k:
                return i
        raise ValueError(
            f"{expr!r} is not one of the solver's constraints ({', '.join(self.constraint_names)}). "
            "Pass the same expressions given to jno.core([...]) (assign them to variables first)."
        )

    def loss_vector(self, params: dict[str, Any], *, unweighted: bool = True, indices: Sequence[int] | None = None,
                    points: Any = None, inputs: Any = None, weights: Any = None) -> jax.Array:
        """Traceable: the constraint losses ``(N,)`` (or the selected ``indices``) at
        ``params``; unweighted = weighting-scheme weights set to 1. ``points``, ``inputs`` and
        ``weights`` default to this context's: pass them as arguments of a function you
        compile, or they are baked into it as constants (and weights go stale)."""
        env = Env(params, self.points if points is None else points,
                  self.weights if weights is None else weights,
                  self.inputs if inputs is None else inputs, unweighted=unweighted)
        terms = self.crux.loss_terms if indices is None else [self.crux.loss_terms[i] for i in indices]
        return jnp.stack([evaluate(c, env) for c in terms])

    def total_loss(self, params: dict[str, Any], *, points: Any = None, inputs: Any = None,
                   weights: Any = None) -> jax.Array:
        """Traceable: the training loss (weighted as in training) at ``params`` (see
        :meth:`loss_vector` for the optional arguments)."""
        return jnp.sum(self.loss_vector(params, unweighted=False, points=points, inputs=inputs, weights=weights))

    def compile(self, name: str, fn: Callable[..., Any], *example_args: Any) -> Callable[..., Any]:
        """AOT-compile ``fn`` for ``example_args`` once per solve set-up and cache it under
        ``name`` on the solver (recompiled only when argument shapes change)."""
        key = compile_pool.cache_key(name, example_args)
        hit = self.crux._cache.compiled.get(key)
        if hit is None:
            hit = jax.jit(fn).lower(*example_args).compile()
            self.crux._cache.compiled[key] = hit
        return hit

    def gradient_matrix(self, mask: Any = None) -> np.ndarray:
        """Per-constraint gradients ``G`` ``(N, P)`` of the unweighted constraint losses with
        respect to the parameters selected by ``mask``, at the current epoch. Memoised per
        epoch and mask, so every tracker asking at the same epoch shares one computation."""
        sel = self.selector(mask)
        memo_key = ("G", self.epoch, id(sel))
        with self._memo_lock:
            if memo_key in self._memo:
                return self._memo[memo_key]
            fn = self._g_fns.get(id(sel)) or self.prepare_gradient_matrix(mask)
            G = np.asarray(fn(self.params, self.points, self.inputs))
            self._memo = {k: v for k, v in self._memo.items() if k[1] == self.epoch}
            self._memo[memo_key] = G
            return G

    def prepare_gradient_matrix(self, mask: Any = None) -> Callable[..., Any]:
        """Compile (once) the function behind :meth:`gradient_matrix`; call it from
        ``on_solve_begin`` so the first fire runs a warm kernel."""
        sel = self.selector(mask)
        terms = self.crux.loss_terms

        def G_fn(params: dict[str, Any], points: dict[str, jax.Array], inputs: dict[str, jax.Array]) -> jax.Array:
            return constraint_gradients(terms, sel, params, points, inputs)

        fn = self.compile(f"gradient_matrix:{id(sel)}", G_fn, self.params, self.points, self.inputs)
        self._g_fns[id(sel)] = fn
        return fn

    def residual_exprs(self, indices: Sequence[int] | None = None) -> list[E.Placeholder]:
        """The pointwise residual field of each constraint (see
        :func:`jno_core.compile.residual_of`)."""
        idx = range(self.n_constraints) if indices is None else indices
        return [residual_of(self.crux.loss_terms[i]) for i in idx]

    def expr_fn(self, exprs: Sequence[E.Placeholder]) -> Callable[..., list[jax.Array]]:
        """A traceable ``f(params, points, inputs, weights) -> [arrays]`` evaluating
        ``exprs`` (pass ``ctx.params, ctx.points, ctx.inputs, ctx.weights``)."""
        exprs = list(exprs)

        def f(params: dict[str, Any], points: dict[str, jax.Array], inputs: dict[str, jax.Array],
              weights: dict[str, jax.Array]) -> list[jax.Array]:
            env = Env(params, points, weights, inputs, unweighted=False)
            return [evaluate(e, env) for e in exprs]

        return f


def constraint_gradients(terms: Sequence[E.Placeholder], sel: ParamSelector, params: dict[str, Any],
                         points: dict[str, jax.Array], inputs: dict[str, jax.Array]) -> jax.Array:
    """Traceable: ``G`` ``(N, P_sel)``, the gradients of the unweighted losses of ``terms``
    with respect to the parameters ``sel`` selects (one ``jacrev``)."""
    def losses(theta: jax.Array) -> jax.Array:
        env = Env(sel.unflatten(params, theta), points, {}, inputs, unweighted=True)
        return jnp.stack([evaluate(c, env) for c in terms])

    return jax.jacrev(losses)(sel.flatten(params))


class _Snapshot(SolveContext):
    """:meth:`SolveContext.snapshot`: the context frozen at one epoch (from the live state,
    or lazily from a chunk's on-device snapshot slot: :meth:`SolveContext.deferred_snapshot`)."""

    def __init__(self, parent: SolveContext, epoch: int | None = None,
                 materialize: Callable[[], Any] | None = None, inputs: Any = None,
                 chunk: Any = None, slot: int = 0) -> None:
        self.__dict__.update(parent.__dict__)
        self._parent = parent
        self._memo = {}
        self._memo_lock = threading.RLock()
        self._snapshot = None
        crux = parent.crux
        if materialize is None:
            self._epoch = parent.epoch
            self._worker = None  # work submitted from inside a fire runs where the fire runs
            self._frozen = (crux._state, crux._points, crux._current_inputs(), crux._current_weights(crux._state))
        else:
            self._epoch = int(epoch)
            self._frozen = None
            self._materialize = materialize
            self._deferred_inputs = inputs
        self._chunk = chunk
        self._slot = slot

    def _values(self) -> tuple[Any, Any, Any, Any]:
        f = self._frozen
        if f is None:  # read the snapshot slot on first use (on the diagnostics thread)
            with self._memo_lock:
                f = self._frozen
                if f is None:
                    params, wstates, weights = self._materialize()
                    pts = self._chunk.points if self._chunk is not None else self.crux._points
                    f = self._frozen = ((params, None, wstates, np.int32(self.epoch)), pts,
                                        self._deferred_inputs, weights)
        return f

    @property
    def params(self) -> dict[str, Any]:
        return self._values()[0][0]

    @property
    def state(self) -> Any:
        """``(params, None, scheme_states, epoch)`` for a deferred snapshot (optimizer states
        are not kept per epoch)."""
        return self._values()[0]

    @property
    def points(self) -> dict[str, jax.Array]:
        return self._values()[1]

    @property
    def inputs(self) -> dict[str, jax.Array]:
        return self._values()[2]

    @property
    def weights(self) -> dict[str, jax.Array]:
        return self._values()[3]

    def snapshot(self) -> SolveContext:
        return self

    def request_stop(self, reason: str) -> None:
        self._parent.request_stop(reason)
