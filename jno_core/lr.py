"""Reading the learning rate out of an optax optimizer, for the ``lr/<network>`` metric.

optax does not expose the learning rate of an arbitrary ``GradientTransformation``. Optimizers
built by optax's aliases (``optax.adam(lr)``, ``optax.sgd(schedule)``, ...) keep it in the
closure of their ``update`` function (``scale_by_learning_rate(learning_rate)``). This module
walks those closures and looks for a variable named ``learning_rate`` (a number or a schedule),
then, for a constant rate, for the ``step_size`` of the final ``optax.scale(-learning_rate)``.
If none is found, the metric is left out; nothing else depends on it. An optimizer wrapped with
``optax.inject_hyperparams`` is read from its state instead.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

__all__ = ["learning_rate_fn"]


def _walk(obj: Any, depth: int, seen: set[int], name: str = "learning_rate") -> Any:
    if depth > 8 or id(obj) in seen:
        return None
    seen.add(id(obj))
    fn = getattr(obj, "update", obj)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if var == name and (callable(v) or isinstance(v, (int, float))):
            return v
    for _, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        items = v if isinstance(v, (tuple, list)) else (v,)
        for x in items:
            if callable(x) or hasattr(x, "update"):
                found = _walk(x, depth + 1, seen, name)
                if found is not None:
                    return found
    return None


def learning_rate_fn(tx: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function ``counts (K,) -> learning rates (K,)`` for ``tx`` (one vectorised schedule
    call per chunk), or None if the learning rate cannot be read."""
    lr = _walk(tx, 0, set())
    if lr is None:
        # a constant rate: optax's aliases end in scale(-learning_rate), whose update keeps
        # it as ``step_size`` (optax.adam(1e-2), as in the spec's scripts)
        lr = _walk(tx, 0, set(), "step_size")
        if lr is None or callable(lr):
            return None
    if callable(lr):
        return _vectorised(lr)
    value = abs(float(lr))
    return lambda counts: np.full(np.shape(counts), value)


def _vectorised(schedule: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``counts (K,) -> |schedule(counts)|`` as float64: one compiled call on ``counts`` padded
    to a power-of-two length, so a process compiles the schedule once per length bucket (one
    XLA compile) rather than each of its ops eagerly for every new length (one compile per
    op, several times dearer for an exponential decay, at every solve with a new number of
    logged epochs; see benchmarks/README.md). A schedule that cannot be traced (e.g. NumPy
    calls on its argument) is called eagerly, as before."""
    jitted = jax.jit(schedule)
    state = {"traceable": True}

    def f(counts: Any) -> np.ndarray:
        c = np.asarray(counts).reshape(-1)
        n = c.size
        if state["traceable"] and n:
            padded = np.zeros(1 << (n - 1).bit_length(), dtype=c.dtype)
            padded[:n] = c
            try:
                return np.abs(np.asarray(jitted(padded), dtype=np.float64)).reshape(-1)[:n]
            except Exception:  # noqa: BLE001 - not traceable: eager from now on
                state["traceable"] = False
        return np.abs(np.asarray(schedule(c), dtype=np.float64)).reshape(-1)

    return f
