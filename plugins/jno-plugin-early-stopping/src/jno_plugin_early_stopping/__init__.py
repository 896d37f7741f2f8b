"""jno-plugin-early-stopping: ``jno.callbacks.early_stopping``.

Entry point ``early_stopping = "jno_plugin_early_stopping"`` (group ``"jno"``)::

    es = jno.callbacks.early_stopping(patience=500, min_delta=1e-7, restore_best=True, interval=500)
    hist = crux.solve(50_000, callbacks=[es])
    es.stopped_epoch, es.best_metric, es.best_epoch, hist.stopped

See :class:`EarlyStopping`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jno_core.api import hookimpl

from ._callback import EarlyStopping

__all__ = ["early_stopping", "EarlyStopping", "jno_register_callbacks"]


def early_stopping(
    patience: int = 100,
    min_delta: float = 0.0,
    mode: str = "min",
    metric_fn: Callable[[np.ndarray], Any] | None = None,
    restore_best: bool = False,
    interval: int | None = None,
) -> EarlyStopping:
    """``jno.callbacks.early_stopping(patience=..., min_delta=0.0, mode="min", metric_fn=None,
    restore_best=False, interval=None)``. See :class:`EarlyStopping`."""
    return EarlyStopping(patience, min_delta, mode, metric_fn, restore_best, interval)


@hookimpl
def jno_register_callbacks(register: Callable[..., None]) -> None:
    """Register ``early_stopping`` (``jno.callbacks.early_stopping``)."""
    register("early_stopping", early_stopping)
