"""Early stopping decided on the per-epoch losses the solve loop already returns."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from jno_core.api import hookimpl

__all__ = ["EarlyStopping"]


def _positive_int(value: Any, what: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"early_stopping: {what} must be a positive integer, received {value!r}; e.g. {example}.")
    return int(value)


class EarlyStopping:
    """Stop a solve once the monitored value has not improved for ``patience`` epochs.

    :param patience: epochs without improvement before stopping.
    :param min_delta: an epoch improves on the best value only by more than ``min_delta``
        (``v < best - min_delta`` in ``"min"`` mode, ``v > best + min_delta`` in ``"max"``).
    :param mode: ``"min"`` (default) or ``"max"``.
    :param metric_fn: ``metric_fn(losses) -> (L,)`` with ``losses`` the chunk's ``(L, 1 + N)``
        array (column 0 the total loss, then each constraint's, weighted as in training);
        default: the total loss. Vectorised, so it costs nothing per epoch.
    :param restore_best: replace the parameters by the best ones seen when the solve stops
        early (and at a normal end if they beat the last recorded epoch). See the granularity
        note below.
    :param interval: force a decision at least every ``interval`` epochs (any plugin with an
        ``interval`` makes the loop return to the host at its multiples). Default ``None``: no
        extra host round trips; decisions happen at the chunk boundaries the loop makes anyway
        (other plugins' intervals, at most ``chunk_size`` = 1000 epochs apart by default, closer
        towards the end of each solve; a function of the epochs and plugins only). A
        round trip costs as much as several epochs of a small MLP such as the spec's 1-D
        Poisson, so a small ``interval`` slows such a solve noticeably and a large one hardly
        (figures in benchmarks/README.md).

    How it decides: ``on_chunk_end`` receives the losses of every epoch of the chunk, already
    on the host (no device-to-host copy per epoch, nothing added to the step). It walks them
    epoch by epoch with the usual rule (a counter of epochs since the last improvement) and,
    when the counter reaches ``patience`` at epoch ``e``, records ``stopped_epoch = e`` and
    calls ``ctx.request_stop``: the loop stops at the end of that chunk, so training runs on
    for at most one chunk (``interval - 1`` epochs, or ``chunk_size - 1`` without it) after
    ``e``.

    Granularity of ``restore_best``: the parameters of every epoch stay on the device, so only
    the parameters at chunk boundaries can be kept. At each boundary the plugin holds a
    reference to the parameters (device arrays are immutable: no copy, no transfer); the
    first row of the next chunk is exactly their metric. A boundary whose metric is the best
    so far becomes the restore candidate. The restored parameters are therefore the best among
    the boundary epochs (chunk starts: multiples of ``interval``, solve starts), which may differ from
    ``best_epoch`` (the best over every epoch) by up to ``interval - 1`` epochs; use
    ``interval=1`` for the exact best epoch (a host round trip per epoch). Only the
    parameters are restored: optimizer and weighting-scheme states and the epoch counter
    continue.

    Results: ``stopped_epoch`` (None when the patience never ran out), ``best_metric``,
    ``best_epoch``, ``restored_epoch`` (the boundary whose parameters were restored, or None),
    ``wait`` (epochs since the last improvement). At a stop it logs
    ``early_stopping/stopped_epoch``, ``early_stopping/best_metric`` and
    ``early_stopping/best_epoch``. The counters start afresh at every solve, unless the
    plugin's state was loaded from a checkpoint (``jno_load_state``) since the last one.
    """

    name = "early_stopping"
    #: decides on the loss rows only, never on trackers: no need to wait for in-flight fires
    concurrent_hooks = ("on_solve_begin", "on_epoch", "on_chunk_end")

    def __init__(
        self,
        patience: int = 100,
        min_delta: float = 0.0,
        mode: str = "min",
        metric_fn: Callable[[np.ndarray], Any] | None = None,
        restore_best: bool = False,
        interval: int | None = None,
    ) -> None:
        self.patience = _positive_int(patience, "patience", "patience=200")
        try:
            self.min_delta = float(min_delta)
        except (TypeError, ValueError):
            raise ValueError(f"early_stopping: min_delta must be a number, received {min_delta!r}.") from None
        if not self.min_delta >= 0:  # also NaN
            raise ValueError(f"early_stopping: min_delta must be >= 0 (the improvement that counts), received "
                             f"{min_delta!r}; e.g. min_delta=1e-6.")
        if mode not in ("min", "max"):
            raise ValueError(f"early_stopping: mode must be 'min' or 'max', received {mode!r}.")
        if metric_fn is not None and not callable(metric_fn):
            raise TypeError(
                "early_stopping: metric_fn must be callable, e.g. metric_fn=lambda losses: losses[:, 1] "
                f"(the first constraint's loss); received {metric_fn!r}."
            )
        self.mode = mode
        self.metric_fn = metric_fn
        self.restore_best = bool(restore_best)
        if interval is not None:
            self.interval = _positive_int(interval, "interval", "interval=100")
        self._reset()
        self._resumed = False

    @property
    def plugin_name(self) -> str:
        return self.name

    def _reset(self) -> None:
        self.best_metric = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.restored_epoch: int | None = None
        self._candidate: tuple[int, Any] | None = None  # (epoch, params) at the last boundary
        self._best_params: tuple[int, float, Any] | None = None  # (epoch, metric, params)

    def _better(self, v: float, ref: float, delta: float) -> bool:
        if not math.isfinite(v):
            return False
        return v < ref - delta if self.mode == "min" else v > ref + delta

    def metric(self, losses: np.ndarray) -> np.ndarray:
        """The monitored value of each epoch ``(L,)`` from a chunk's losses ``(L, 1 + N)``."""
        if self.metric_fn is None:
            return np.asarray(losses[:, 0], np.float64)
        out = np.asarray(self.metric_fn(losses), np.float64).reshape(-1)
        if out.shape != (losses.shape[0],):
            raise ValueError(
                f"early_stopping: metric_fn returned shape {np.shape(out)} for losses of shape "
                f"{losses.shape}; expected ({losses.shape[0]},), one value per epoch, e.g. "
                "metric_fn=lambda losses: losses[:, 1]."
            )
        return out

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def on_solve_begin(self, ctx: Any) -> None:
        if not self._resumed:
            self._reset()
        self._resumed = False
        self.stopped_epoch = None
        self.restored_epoch = None
        self._candidate = (int(ctx.epoch), ctx.params) if self.restore_best else None

    @hookimpl
    def on_chunk_end(self, ctx: Any, epochs: Any, losses: Any) -> None:
        epochs = np.asarray(epochs)
        if epochs.size == 0 or self.stopped_epoch is not None:
            return
        vals = self.metric(np.asarray(losses))
        if self._candidate is not None and self._candidate[0] == int(epochs[0]):
            v0 = float(vals[0])
            if self._best_params is None or self._better(v0, self._best_params[1], 0.0):
                self._best_params = (int(epochs[0]), v0, self._candidate[1])
        for e, v in zip(epochs.tolist(), vals.tolist()):
            if self._better(v, self.best_metric, self.min_delta):
                self.best_metric, self.best_epoch, self.wait = v, int(e), 0
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.stopped_epoch = int(e)
                    break
        self._candidate = (int(ctx.epoch), ctx.params) if self.restore_best else None
        if self.stopped_epoch is not None:
            reason = (
                f"early stopping at epoch {self.stopped_epoch}: the monitored value has not improved "
                f"by more than {self.min_delta} for {self.patience} epochs (best {self.best_metric:.6g} "
                f"at epoch {self.best_epoch}, mode {self.mode!r})"
            )
            ctx.log({
                "early_stopping/stopped_epoch": self.stopped_epoch,
                "early_stopping/best_metric": self.best_metric,
                "early_stopping/best_epoch": -1 if self.best_epoch is None else self.best_epoch,
            }, step=self.stopped_epoch, source="early_stopping")
            ctx.request_stop(reason)
            if self.restore_best:
                self._restore(ctx)
        elif self.restore_best and int(ctx.epoch) >= int(ctx.end_epoch):
            last = float(vals[-1])
            if self._best_params is not None and self._better(self._best_params[1], last, 0.0):
                self._restore(ctx)

    def _restore(self, ctx: Any) -> None:
        """Put the best boundary parameters into the train state (other states continue)."""
        if self._best_params is None:
            return
        epoch, _, params = self._best_params
        crux = ctx.crux
        crux.load_state(crux.state._replace(params=params))
        self.restored_epoch = epoch

    # ------------------------------------------------------------------ checkpoint state
    def jno_state(self) -> dict[str, Any]:
        """The counters (saved by jno-plugin-checkpoint)."""
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch, "wait": self.wait}

    def jno_load_state(self, state: dict[str, Any]) -> None:
        """Continue from saved counters: the next solve does not reset them."""
        self.best_metric = float(state["best_metric"])
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state["wait"])
        self._resumed = True

    def __repr__(self) -> str:
        return (f"<jno early_stopping patience={self.patience} mode={self.mode!r} best={self.best_metric:.6g} "
                f"stopped_epoch={self.stopped_epoch}>")
