"""Early, clear errors for arguments the engine would otherwise fail on late or obscurely.

Each check is one call from the engine (``solve``, the tracker contract), so the rules live
here and the engine stays readable.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import ConfigError, JnoPluginError

__all__ = ["callable_attrs", "check_callbacks", "check_solve_memory", "check_tracker_value", "history_bytes", "warn_unmarked_hooks"]

_NOT_PLUGINS = (bool, int, float, complex, str, bytes, np.generic, np.ndarray)


def check_callbacks(callbacks: Any) -> list[Any]:
    """``callbacks`` as a list, or a :class:`~jno_core.errors.ConfigError` saying what is
    wrong: a single plugin object instead of a list, a number or string, or a class instead of
    an instance."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        what = type(callbacks).__name__
        raise ConfigError(
            f"solve(callbacks=...) expects a list of plugin objects, received a single {what} "
            f"({callbacks!r:.80}); wrap it in a list: callbacks=[cb]."
        )
    out = list(callbacks)
    for i, cb in enumerate(out):
        if cb is None or isinstance(cb, _NOT_PLUGINS) or isinstance(cb, (list, tuple, dict, set)):
            raise ConfigError(
                f"solve(callbacks=...)[{i}] is {cb!r:.80} ({type(cb).__name__}); expected a plugin object "
                "such as jno.callbacks.checkpoint(...) or jno.trackers.gradient_norm(...)."
            )
        if isinstance(cb, type):
            raise ConfigError(
                f"solve(callbacks=...)[{i}] is the class {cb.__name__}, not an instance; pass {cb.__name__}(...)."
            )
    return out


def history_bytes(epochs: int, n_constraints: int) -> int:
    """Host memory the history of a solve of ``epochs`` epochs takes: ``epochs`` rows of
    ``n_constraints + 3`` float64 values (total, each loss, two norms) and an int64 epoch."""
    return int(epochs) * ((n_constraints + 3) * 8 + 8)


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_solve_memory(epochs: int, n_constraints: int, limit: int | None = None) -> None:
    """Refuse (before compiling anything) a solve whose per-epoch history would not fit in
    the machine's memory (``limit`` bytes; default the physical memory)."""
    need = history_bytes(epochs, n_constraints)
    limit = _physical_memory() if limit is None else limit
    if limit is not None and need > limit:
        raise ConfigError(
            f"solve({epochs}) would record {epochs:,} epochs of history, about {need / 2**30:,.1f} GiB "
            f"({n_constraints + 3} values per epoch), more than this machine's {limit / 2**30:,.1f} GiB of memory. "
            "Train in shorter solve() calls (each continues where the last ended) or fewer epochs."
        )


def check_tracker_value(name: str, value: Any) -> dict[str, Any]:
    """A tracker's ``compute`` result, which must be a dict ``{key: array}``."""
    if not isinstance(value, dict):
        raise JnoPluginError(
            f"tracker {name!r}: compute() returned {type(value).__name__} ({value!r:.60}); expected a dict "
            "{result key: array}, e.g. return {'value': norm}."
        )
    return value



def callable_attrs(plugin: Any) -> Iterator[tuple[str, Any]]:
    """``(name, function)`` for each callable attribute of ``plugin``, looked up without running
    properties (a plugin's properties may be slow or fail before a solve; hookimpls are plain
    functions on the class or module); static and class methods give their function."""
    import inspect

    for attr in dir(plugin):
        try:
            raw = inspect.getattr_static(plugin, attr)
        except AttributeError:
            continue
        if isinstance(raw, (staticmethod, classmethod)):
            raw = raw.__func__
        if callable(raw):
            yield attr, raw


def warn_unmarked_hooks(plugin: Any, label: str, hook_names: Sequence[str]) -> list[str]:
    """Warn when ``plugin`` marks no method with ``@hookimpl`` but defines methods named like
    hooks (pluggy calls only marked ones, so they would silently never run); returns them.
    ``on_epoch`` of a plugin with an ``interval`` is exempt (the loop calls it directly)."""
    import warnings

    if isinstance(plugin, type):
        return []
    marked, named = False, []
    for attr, raw in callable_attrs(plugin):
        if hasattr(raw, "jno_impl"):
            marked = True
            break
        if attr in hook_names and not (attr == "on_epoch" and getattr(plugin, "interval", None)):
            named.append(attr)
    if marked or not named:
        return []
    warnings.warn(
        f"jno plugin {label!r} defines {named} but marks no method with @hookimpl, so they are never "
        "called; decorate them: from jno import hookimpl, then @hookimpl above each hook method.",
        UserWarning, stacklevel=4)
    return named
