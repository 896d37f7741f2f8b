"""Reading the learning rate out of an optax optimizer, for the ``lr/<network>`` metric.

optax does not expose the learning rate of an arbitrary ``GradientTransformation``. Optimizers
built by optax's aliases (``optax.adam(lr)``, ``optax.sgd(schedule)``, ...) keep it in the
closure of their ``update`` function (``scale_by_learning_rate(learning_rate)``). This module
walks those closures and looks for a variable named ``learning_rate`` (a number or a schedule).
If none is found, the metric is left out; nothing else depends on it. An optimizer wrapped with
``optax.inject_hyperparams`` is read from its state instead.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["learning_rate_fn"]


def _walk(obj: Any, depth: int, seen: set[int]) -> Any:
    if depth > 8 or id(obj) in seen:
        return None
    seen.add(id(obj))
    fn = getattr(obj, "update", obj)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if name == "learning_rate" and (callable(v) or isinstance(v, (int, float))):
            return v
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        items = v if isinstance(v, (tuple, list)) else (v,)
        for x in items:
            if callable(x) or hasattr(x, "update"):
                found = _walk(x, depth + 1, seen)
                if found is not None:
                    return found
    return None


def learning_rate_fn(tx: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function ``counts (K,) -> learning rates (K,)`` for ``tx`` (one vectorised schedule
    call per chunk), or None if the learning rate cannot be read."""
    lr = _walk(tx, 0, set())
    if lr is None:
        return None
    if callable(lr):
        return lambda counts: np.abs(np.asarray(lr(np.asarray(counts)), dtype=np.float64)).reshape(-1)
    value = abs(float(lr))
    return lambda counts: np.full(np.shape(counts), value)
