"""How the engine calls hooks: through pluggy, never a hand-written loop.

Every broadcast hook (``on_solve_begin``, ``on_epoch``, ``on_chunk_end``, ``on_solve_end``,
``log_metrics``, ``log_metrics_batch``, ``save_checkpoint``, ``flush_metrics``,
``close_run``) is called as ``pm.hook.<name>(...)`` or through a caller from
``pm.subset_hook_caller`` (the plugins not due at an epoch, or the sinks of another bus, are
left out). So ``tryfirst`` / ``trylast``, new-style ``wrapper=True`` and old-style
``hookwrapper=True`` implementations behave as pluggy documents: implementations run in
pluggy's order (last registered first, ``tryfirst`` before, ``trylast`` after), and a wrapper
wraps the whole call.

What the engine adds on top is the error: an exception raised by an implementation is
re-raised as :class:`~jno_core.errors.JnoPluginError` naming the plugin (found by matching the
traceback's frames against the implementations of the call), so a failing plugin is named
whatever the order it ran in.
"""

from __future__ import annotations

from typing import Any, Iterable

import pluggy

from .errors import JnoPluginError

__all__ = ["call", "failing_impl", "subset", "implementations"]


def _code(fn: Any) -> Any:
    return getattr(getattr(fn, "__func__", fn), "__code__", None)


def failing_impl(impls: Iterable[Any], exc: BaseException) -> Any:
    """The hook implementation (a ``pluggy.HookImpl``) of ``impls`` in whose code ``exc`` was
    raised: the deepest frame of the traceback that runs one of their functions (for a method
    shared by several plugins, the one whose ``self`` is that frame's). None if no frame
    matches (the exception came from pluggy itself)."""
    by_code: dict[Any, list[Any]] = {}
    for impl in impls:
        code = _code(impl.function)
        if code is not None:
            by_code.setdefault(code, []).append(impl)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        cands = by_code.get(tb.tb_frame.f_code)
        if cands:
            me = tb.tb_frame.f_locals.get("self", None)
            found = next((i for i in cands if i.plugin is me), cands[0])
        tb = tb.tb_next
    return found


def call(caller: Any, hook_name: str, *, where: str = "", **kwargs: Any) -> list[Any]:
    """``caller(**kwargs)`` (a pluggy hook caller); an exception from an implementation is
    re-raised as :class:`JnoPluginError` naming its plugin and ``hook_name`` (``where``, e.g.
    ``" at epoch 100"``, is added to the message)."""
    try:
        return caller(**kwargs)
    except JnoPluginError:
        raise
    except Exception as exc:
        from .plugins import plugin_name

        impl = failing_impl(caller.get_hookimpls(), exc)
        who = plugin_name(impl.plugin) if impl is not None else f"(a {hook_name} hook wrapper)"
        raise JnoPluginError(
            f"jno plugin {who!r} failed in {hook_name}{where}: {type(exc).__name__}: {exc}"
        ) from exc


def implementations(pm: pluggy.PluginManager, hook_name: str) -> list[Any]:
    """The plugins implementing ``hook_name`` (not as a wrapper), in pluggy's call order."""
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    return [i.plugin for i in reversed(impls) if not (i.wrapper or i.hookwrapper)]


def subset(pm: pluggy.PluginManager, hook_name: str, keep: Iterable[Any]) -> Any:
    """A caller of ``hook_name`` for the plugins in ``keep`` plus every wrapper: the other
    non-wrapper implementations are removed (``pm.subset_hook_caller``)."""
    keep_ids = {id(p) for p in keep}
    remove = [i.plugin for i in getattr(pm.hook, hook_name).get_hookimpls()
              if not (i.wrapper or i.hookwrapper) and id(i.plugin) not in keep_ids]
    return pm.subset_hook_caller(hook_name, remove)
