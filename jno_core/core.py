"""The solver: ``crux = jno.core([...])``, ``crux.solve(epochs)``, ``crux.eval([...])``.

The solve loop lives in rooms of its own: :mod:`jno_core.schedule` (which epochs fire and how
epochs are cut into chunks: pure functions of integers), :mod:`jno_core.chunk` (the compiled
step and chunk), :mod:`jno_core.loop` (the loop over chunks and the fires) and
:mod:`jno_core.session` (one solve's set-up and teardown). This module holds the problem (loss
terms, trainables, points), its train state (:class:`~jno_core.state.TrainState`, public
through :attr:`Core.state` / :meth:`Core.load_state`) and ``solve`` / ``eval``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import expr as E
from . import plugins as P
from .batching import check_batchsize
from .cache import SolverCache
from .chunk import compile_chunk
from .compile import Env, evaluate, trainable_key
from .concurrent import concurrency_enabled
from .context import SolveContext
from .domain import point_set, points_on
from .errors import ConfigError, JnoPluginError, NonFiniteLossError, ShapeError
from .history import History, TrackerHistory
from .interrupts import interruptible
from .loop import SolveLoop
from .optim import announce_phases, init_optimizers, sync_optimizers
from .nn import Network
from .parameter import TrainableParameter
from .progress import CompileNotice
from .session import SolveSession
from .sharding import Layout, make_mesh, place_points, replicate
from .state import TrainState
from .validation import check_callbacks, check_solve_memory
from .weighting import HostWeightPlaceholder, WeightPlaceholder
from ._startup import configure_jax

configure_jax()  # matmul precision and compilation cache, also without `import jno`

__all__ = ["Core", "core"]


def _check_callbacks(callbacks: Sequence[Any] | None) -> list[Any]:
    out = list(callbacks or [])
    for cb in out:
        iv = getattr(cb, "interval", None)
        if iv is not None and (isinstance(iv, bool) or not isinstance(iv, (int, np.integer)) or iv <= 0):
            raise JnoPluginError(
                f"callback {P.plugin_name(cb)!r} has interval {iv!r}; expected a positive "
                "integer number of epochs."
            )
    return out


def _check_positive_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, received {value!r}; e.g. {example}.")
    return int(value)


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
        self._cache = SolverCache()
        self._solving = False

    # ------------------------------------------------------------------ state
    def _init_params(self) -> dict[str, Any]:
        return {k: t.params for k, t in self.trainables.items()}

    def _ensure_state(self) -> None:
        if self._state is not None:
            if not self._solving:
                sync_optimizers(self)  # net.optimizer(new) since: a new phase (jno_core.optim)
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
        self._state = TrainState(params, opt, scheme_states, jnp.asarray(self.epoch, jnp.int32))
        self._opt_start_epoch = self.epoch
        init_optimizers(self)

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
    def _compile_chunk(self, batchsize: int | None = None, seed: int = 0) -> float:
        """Build (or reuse) the compiled chunk for this solve (see :func:`jno_core.chunk.compile_chunk`);
        returns the compile time in seconds."""
        return compile_chunk(self, batchsize, seed)

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
        epochs, log_every, cap, callbacks = self._check_solve_args(epochs, callbacks, log_every, chunk_size)
        self._ensure_state()
        if devices is not None:
            self._set_layout(make_mesh(devices))
        if batchsize is not None:
            check_batchsize(batchsize, self._points, self._constraint_point_sets())
        hist = History(list(self.constraint_names))
        for name, t in zip(self.tracker_names, self.tracker_exprs):
            hist.trackers[name] = TrackerHistory(name, t.interval)
        intr = interruptible(self, hist)
        try:
            self._run_session(hist, intr, epochs, callbacks, progress, log_every, cap, batchsize, seed)
        except NonFiniteLossError:
            self._merge_history(hist)
            raise
        self._merge_history(hist)
        intr.reraise()
        return hist

    def _check_solve_args(self, epochs: Any, callbacks: Any, log_every: Any,
                          chunk_size: Any) -> tuple[int, int, int, list[Any]]:
        """``solve``'s arguments checked (each error says what was expected and received):
        ``(epochs, log_every, chunk cap, callbacks)``."""
        epochs = _check_positive_int(epochs, "epochs", "crux.solve(2_000)")
        log_every = _check_positive_int(log_every, "log_every", "log_every=50")
        cap = self.chunk_size if chunk_size is None else min(
            _check_positive_int(chunk_size, "chunk_size", "chunk_size=500"), self.chunk_size)
        if self._solving:
            raise RuntimeError("solve() is already running on this solver (re-entrant call).")
        callbacks = _check_callbacks(check_callbacks(callbacks))
        check_solve_memory(epochs, len(self.loss_terms))
        return epochs, log_every, cap, callbacks

    def _run_session(self, hist: History, intr: Any, epochs: int, callbacks: list[Any], progress: bool | None,
                     log_every: int, cap: int, batchsize: int | None, seed: int) -> None:
        """One solve's session (:class:`~jno_core.session.SolveSession`): compile, prepare the
        plugins, run the loop, end; ``hist`` receives the rows."""
        from .run import current_run

        start = self.epoch
        with SolveSession(self, current_run(), callbacks, start, start + epochs) as session:
            run = session.run
            announce_phases(self, session)  # optimizer/phase/<net>, config.json "optimizers"
            notice = CompileNotice(progress if progress is not None else (run.progress if run else None)).start()
            try:
                hist.compile_time = self._compile_chunk(batchsize, seed)
                hist.compile_time += session.begin(self._describe(epochs, callbacks), self._concurrent_fires_allowed())
                notice.finish()  # "jno: compiled in 2.4 s (...)" (see jno_core.progress)
            finally:
                notice.close()
            with intr:  # Ctrl-C / SIGTERM: stop cleanly (jno_core.interrupts)
                SolveLoop(self, session.ctx, hist, session.pm, session.plan, session.buffer, cap,
                          log_every).run(progress)
            session.end(hist)

    def _concurrent_fires_allowed(self) -> bool:
        """Whether trackers may fire on a diagnostics thread (see :mod:`jno_core.concurrent`)."""
        if not concurrency_enabled() or self.providers or jax.process_count() > 1:
            return False
        mesh = self._layout.mesh
        return mesh is None or mesh.size == 1

    # ------------------------------------------------------------------ public state API
    @property
    def state(self) -> TrainState:
        """The train state (:class:`~jno_core.state.TrainState`: params, optimizer states,
        weighting-scheme states, epoch), created from the networks' current parameters on
        first access. Device arrays; read it, replace it with :meth:`load_state`."""
        self._ensure_state()
        return self._state

    @property
    def optimizer_phases(self) -> dict[str, list[dict[str, Any]]]:
        """``{network name: [{"start_epoch": e, "optimizer": description}, ...]}``: the
        optimizers each trained network used, in order (see :mod:`jno_core.optim`); a change
        made with ``net.optimizer(...)`` since the last solve is listed once it takes effect
        (at the next ``solve()``, ``state`` or ``load_state``)."""
        self._ensure_state()
        return {n: [dict(p) for p in ph] for n, ph in self._optimizer_phases.items()}

    @property
    def params(self) -> dict[str, Any]:
        """``{trainable key: params pytree}`` now (``state.params``)."""
        return self.state.params

    @property
    def points(self) -> dict[str, jax.Array]:
        """``{point-set key: (N, dim) array}``: the collocation points in use (placed on the
        current device layout)."""
        return self._points

    def set_points(self, key: str, points: Any) -> jax.Array:
        """Replace the collocation points of point set ``key`` (a variable's
        ``PointSet.key``; every constraint on that set sees them) with ``points`` of the same
        shape ``(N, C)`` and dtype, placed like the old set (sharded or not), so nothing
        recompiles. Allowed between solves and from hooks during a solve (resampling: the
        loop drops the chunk it started ahead and runs the next one on the new points).
        Returns the placed array. See :mod:`jno_core.points`."""
        from .points import replace_points

        return replace_points(self, key, points)

    @property
    def solving(self) -> bool:
        """Whether :meth:`solve` is running."""
        return self._solving

    def current_inputs(self) -> dict[str, jax.Array]:
        """``{provider key: (n,) float32}``: the loss weights host-side weight providers
        (:class:`~jno_core.weighting.HostWeights`) give now (inputs of the train step)."""
        return self._current_inputs()

    def weights(self, state: TrainState | None = None) -> dict[str, jax.Array]:
        """``{scheme key: weights}`` of the on-device weighting schemes at ``state`` (default:
        the current state)."""
        return self.scheme_weights((self.state if state is None else state).scheme_states)

    def loss_fn(self, params: dict[str, Any], points: dict[str, jax.Array], inputs: dict[str, jax.Array],
                weights: dict[str, jax.Array]) -> jax.Array:
        """Traceable: the constraint losses ``(N,)`` at ``params`` as training weighs them
        (``.sum()`` is the training loss). Pass ``crux.points``, ``crux.current_inputs()``
        and ``crux.weights(state)`` as arguments of a function you compile, not as constants."""
        env = Env(params, points, weights, inputs)
        return jnp.stack([evaluate(c, env) for c in self.loss_terms])

    def load_state(self, state: Any) -> None:
        """Replace the train state (a :class:`~jno_core.state.TrainState` or a 4-tuple
        ``(params, opt_states, scheme_states, epoch)``, e.g. from a checkpoint): it is placed
        on the current layout (replicated when sharded), the epoch counter continues from
        ``state.epoch``, and the parameters are written back to the networks. Not allowed
        while solving, except from hooks (early stopping's restore)."""
        state = TrainState(*state)
        if self._state is not None and not self._solving:
            sync_optimizers(self)  # the state to load is compared with the current optimizers'
        if self._state is not None:
            old = jax.tree_util.tree_structure(self._state)
            new = jax.tree_util.tree_structure(state)
            if old != new:
                raise ValueError(
                    f"load_state: the state's structure does not match this solver's: expected "
                    f"{old}, received {new}. Restore into a solver built from the same script, with "
                    "the same optimizers (net.optimizer(...) as when the state was saved)."
                )
        fresh = self._state is None
        self._state = replicate(state, self._layout.mesh) if self._layout.mesh is not None else state
        self.epoch = int(np.asarray(state.epoch))
        if fresh:  # loaded before any state: its optimizer states are the current optimizers'
            self._opt_start_epoch = 0
            init_optimizers(self)
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
        self._cache = SolverCache()

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
    def eval(self, exprs: Sequence[Any] | Any, domain: Any = None) -> list[np.ndarray] | np.ndarray:
        """Evaluate expressions at the current parameters (never advancing any state).

        ``domain=other`` evaluates at ``other``'s points instead: each variable's tag is looked
        up in ``other`` (see :func:`jno_core.domain.points_on`).

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
        if domain is not None:
            points.update({k: jnp.asarray(v) for k, v in points_on(items, domain).items()})
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
