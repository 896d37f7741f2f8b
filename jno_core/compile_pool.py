"""Background compilation for ``on_solve_begin``: :func:`compile_async`, :func:`run_async`,
:func:`settle`, :func:`drain`.

Plugins compile their functions in ``on_solve_begin`` against the live shapes, so that the
first fire runs a warm kernel. One compilation has a Python part, tracing and lowering to
StableHLO (holds the GIL), and an XLA part, HLO optimisation and LLVM code generation, which
releases the GIL and dominates on CPU (XLA spreads a module's kernels over the cores without
keeping them all busy; figures in benchmarks/README.md). Done one plugin after the other,
cores sit idle whenever a compilation is in a single-threaded phase (tracing, HLO passes,
thunk emission, the warm-up call).

:func:`compile_async` lowers ``fn`` on the calling thread (so tracing errors surface in the
plugin that caused them) and hands the XLA compilation, plus one warm-up call, to a small
thread pool; the next plugin traces while it compiles. The core prepares every tracker's
device function this way (:func:`jno_core.fires.prepare_fire`) and calls :func:`drain` after
``on_solve_begin``, so every function is compiled and warmed up before the first chunk and the
first fire compiles nothing. Kept for trackers written against the previous release:
:func:`settle` (drain at the end of a plugin's ``on_solve_begin`` unless a later plugin
declares ``compiles_in_background = True``) and :func:`run_async` (a whole compile-and-warm-up
step behind another API, on the pool the same way).

The compiled programs are the same as with ``ctx.compile``, so results are bitwise the same;
what changes is only when and on which thread they compile. The gain is bounded by the idle
core time: on a busy machine the set-up costs its CPU time whichever thread spends it.

Executables are cached on the solver under the same key as
:meth:`jno_core.context.SolveContext.compile` (a later ``ctx.compile`` with the same name and
argument shapes gets the same executable, and a second solve recompiles nothing).

``JNO_COMPILE_THREADS`` sets the pool size (default 2; 0 compiles on the calling thread).
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .errors import JnoPluginError

__all__ = ["Pending", "compile_async", "run_async", "settle", "drain", "cache_key", "pool_size",
           "DEFAULT_COMPILER_OPTIONS"]

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_size = 0
# solve context -> the compilations started for it and not yet drained
_pending: "weakref.WeakKeyDictionary[Any, list[Pending]]" = weakref.WeakKeyDictionary()
# solve context -> {key: Pending} of run_async jobs (one per key and solve)
_jobs: "weakref.WeakKeyDictionary[Any, dict[Any, Pending]]" = weakref.WeakKeyDictionary()
_UNSET = object()

#: XLA options of the executables compiled here unless the caller passes its own: backend
#: optimisation level 1 (XLA's CPU default is 2). Diagnostics run once per ``interval``
#: epochs, so their compile time weighs more than their run time: on script 09's trackers
#: level 1 compiled markedly faster than level 2 with fires as fast (level 0 compiled faster
#: still but ran the Hessian's fire much slower); figures in benchmarks/README.md (issue #20).
DEFAULT_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 1}


def pool_size() -> int:
    """Worker threads of the compile pool (``JNO_COMPILE_THREADS``, default 2)."""
    raw = os.environ.get("JNO_COMPILE_THREADS", "").strip()
    if not raw:
        return 2
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(
            f"JNO_COMPILE_THREADS must be a non-negative integer, received {raw!r}; e.g. "
            "JNO_COMPILE_THREADS=2 (0 compiles on the calling thread)."
        ) from None
    return max(n, 0)


def _pool() -> ThreadPoolExecutor | None:
    global _executor, _executor_size
    n = pool_size()
    if n == 0:
        return None
    with _lock:
        if _executor is None or _executor_size != n:
            if _executor is not None:  # JNO_COMPILE_THREADS changed: let the old threads end
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="jno-compile")
            _executor_size = n
        return _executor


def cache_key(name: str, example_args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The solver-cache key of ``name`` compiled for ``example_args`` (the key
    :meth:`~jno_core.context.SolveContext.compile` uses: name, pytree structure, and each
    leaf's shape and dtype)."""
    leaves, treedef = jax.tree_util.tree_flatten(example_args)
    return ("compiled", name, treedef, tuple((jnp.shape(a), str(jnp.result_type(a))) for a in leaves))


class Pending:
    """An executable being compiled (and warmed up) on the compile pool, or a
    :func:`run_async` job.

    :meth:`result` returns the ``jax.stages.Compiled`` (waiting if needed) and re-raises a
    compilation failure as :class:`~jno_core.errors.JnoPluginError` naming the owner;
    :attr:`out_info` is the output's ``jax.ShapeDtypeStruct`` pytree, known at once."""

    __slots__ = ("name", "owner", "out_info", "_future", "_value")

    def __init__(self, name: str, owner: str, out_info: Any, future: Future | None = None,
                 value: Any = _UNSET) -> None:
        self.name = name
        self.owner = owner
        self.out_info = out_info
        self._future = future
        self._value = value

    def done(self) -> bool:
        return self._value is not _UNSET or (self._future is not None and self._future.done())

    def result(self) -> Any:
        value = self._value
        if value is _UNSET:
            try:
                value = self._future.result()
            except Exception as exc:
                raise JnoPluginError(
                    f"jno plugin {self.owner!r} failed to compile {self.name!r} in on_solve_begin: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._value = value
        return value

    def __repr__(self) -> str:
        return f"<jno Pending {self.name!r} of {self.owner!r} {'done' if self.done() else 'compiling'}>"


def _compile_and_warm(lowered: Any, warm_args: tuple[Any, ...] | None, cache: Any, key: tuple,
                      compiler_options: dict[str, Any] | None = None) -> Any:
    try:
        compiled = lowered.compile(compiler_options=compiler_options) if compiler_options else lowered.compile()
        if warm_args is not None:
            # one warm-up run: the first execution of an executable pays one-off set-up costs
            jax.tree_util.tree_map(np.asarray, compiled(*warm_args))
        cache.compiled[key] = compiled
    finally:
        cache.compiling.pop(key, None)
    return compiled


def compile_async(ctx: Any, name: str, fn: Callable[..., Any], *example_args: Any, owner: str = "plugin",
                  warm_up: bool = True, compiler_options: dict[str, Any] | None = None) -> Pending:
    """Start compiling ``fn`` for ``example_args`` (the AOT compile of
    :meth:`SolveContext.compile`) and return a :class:`Pending` for it.

    :param ctx: the solve's :class:`~jno_core.context.SolveContext` (its solver holds the cache).
    :param name: cache name, e.g. ``f"hessian_spectrum:{id(self)}"``.
    :param fn: the traceable function; it is traced and lowered here, on the calling thread.
    :param example_args: arguments with the live shapes; also the warm-up call's arguments.
    :param owner: the plugin's name, used in errors.
    :param warm_up: call the new executable once with ``example_args`` after compiling (only
        on a cache miss: a cached executable has run before).
    :param compiler_options: XLA options for this executable (``Lowered.compile``); default
        :data:`DEFAULT_COMPILER_OPTIONS` (``{}``: XLA's defaults, which compile slower).

    A cache hit returns a finished :class:`Pending` at once. Call :func:`settle` at the end of
    ``on_solve_begin``.
    """
    cache = ctx.crux._cache
    key = cache_key(name, example_args)
    hit = cache.compiled.get(key)
    if hit is not None:
        return Pending(name, owner, hit.out_info, value=hit)
    busy = cache.compiling.get(key)
    if busy is not None:  # started by another plugin of this solve
        return busy
    lowered = jax.jit(fn).lower(*example_args)
    if compiler_options is None:
        compiler_options = DEFAULT_COMPILER_OPTIONS
    warm_args = tuple(example_args) if warm_up else None
    pending = Pending(name, owner, lowered.out_info)
    cache.compiling[key] = pending  # before the worker can finish (it removes the entry)
    pool = _pool()
    if pool is None:
        fut: Future = Future()
        try:
            fut.set_result(_compile_and_warm(lowered, warm_args, cache, key, compiler_options))
        except Exception as exc:  # raised by Pending.result, naming the owner
            fut.set_exception(exc)
    else:
        fut = pool.submit(_compile_and_warm, lowered, warm_args, cache, key, compiler_options)
    pending._future = fut
    with _lock:
        _pending.setdefault(ctx, []).append(pending)
    return pending


def run_async(ctx: Any, key: Any, job: Callable[[], Any], *, owner: str = "plugin") -> Pending:
    """Run ``job()`` on the compile pool, once per ``key`` and solve, and return a
    :class:`Pending` for its return value; :func:`drain` waits for it like for a compilation.

    For a compile step behind another API that traces, compiles and warms up in one call
    (e.g. ``lambda: ctx.prepare_gradient_matrix(mask)``). ``job`` runs on a pool thread while
    the calling thread goes on with the next plugin: it may trace, compile and run functions
    against ``ctx``'s current state, and must not change the solver's state."""
    with _lock:
        jobs = _jobs.setdefault(ctx, {})
        hit = jobs.get(key)
        if hit is not None:
            return hit
        pending = jobs[key] = Pending(str(key), owner, None)
    pool = _pool()
    if pool is None:
        fut: Future = Future()
        try:
            fut.set_result(job())
        except Exception as exc:  # raised by Pending.result, naming the owner
            fut.set_exception(exc)
    else:
        fut = pool.submit(job)
    pending._future = fut
    with _lock:
        _pending.setdefault(ctx, []).append(pending)
    return pending


def drain(ctx: Any) -> None:
    """Wait for every compilation and job started for ``ctx`` by :func:`compile_async` and
    :func:`run_async`; raise the first failure (a :class:`~jno_core.errors.JnoPluginError`
    naming its plugin). Idempotent; the core calls it after ``on_solve_begin``."""
    with _lock:
        todo = _pending.pop(ctx, [])
    first: BaseException | None = None
    for p in todo:
        try:
            p.result()
        except BaseException as exc:  # wait for the others before raising
            first = first or exc
    if first is not None:
        raise first


def _later_background_compiler(plugin: Any) -> bool:
    """Whether a plugin after ``plugin`` in the ``on_solve_begin`` call order (pluggy's:
    the hook implementations from last to first) compiles in the background too."""
    from .plugins import get_plugin_manager

    try:
        impls = get_plugin_manager().hook.on_solve_begin.get_hookimpls()
    except Exception:  # noqa: BLE001 - no plugin manager: nobody else will drain
        return False
    plugins = [impl.plugin for impl in reversed(impls)]  # pluggy calls from the end
    idx = next((i for i, p in enumerate(plugins) if p is plugin), None)
    if idx is None:
        return False
    return any(getattr(p, "compiles_in_background", False) for p in plugins[idx + 1:])


def settle(ctx: Any, plugin: Any) -> None:
    """End of ``plugin``'s ``on_solve_begin``: :func:`drain` unless a later plugin in the
    ``on_solve_begin`` order declares ``compiles_in_background = True`` (it drains then)."""
    if not _later_background_compiler(plugin):
        drain(ctx)
