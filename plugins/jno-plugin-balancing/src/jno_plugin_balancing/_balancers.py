"""Loss weights computed on the host from trackers' live values, fed into the training step
as an input (:class:`jno_core.weighting.HostWeights`): changing them never recompiles the
step and costs no per-step host callback.

Staleness: the core reads :meth:`TrackerBalancer.current` at the start of every device chunk.
A tracker forces a chunk boundary at each of its fires (``epoch % interval == 0``), so new
weights take effect from the epoch the tracker measured at onwards, and stay fixed until its
next fire — the same staleness pattern as the spec's ReLoBRaLo description.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from jno_core.api import expr as E
from jno_core.api import JnoPluginError
from jno_core.api import HostWeightPlaceholder, HostWeights

__all__ = ["TrackerBalancer", "GradientNormBalanced", "NtkBalanced", "inverse_weights"]


def inverse_weights(values: Any, eps: float = 1e-12) -> np.ndarray:
    """``w_i = N (1/v_i) / sum_j (1/v_j)``: weights inversely proportional to ``values``
    ``(N,)``, summing to ``N`` (float64). Values below ``eps`` are raised to ``eps``."""
    v = np.maximum(np.asarray(values, np.float64).reshape(-1), eps)
    inv = 1.0 / v
    return v.size * inv / inv.sum()


def _check_tracker(t: Any, what: str) -> None:
    if not (hasattr(t, "value") and hasattr(t, "latest_epoch")):
        raise TypeError(
            f"{what} expects tracker objects with .value and .latest_epoch (e.g. "
            f"jno.trackers.gradient_norms(interval=50)); received {type(t).__name__}."
        )


class TrackerBalancer(HostWeights):
    """Base of the tracker-driven balancers.

    Subclasses implement :meth:`measure` (raw weights ``(K,)`` summing to ``K`` from the
    trackers' latest values). This class handles the cold start (uniform weights until every
    tracker has fired), the EMA ``w <- ema * w_prev + (1 - ema) * w_new`` applied once per new
    measurement (not per read), and the history in :attr:`result`.

    Calling the balancer with the ``K`` loss expressions it weights returns ``K`` weight
    placeholders to multiply into the constraints: ``w_pde, w_bc = w(pde.mse, bc.mse)``.
    """

    name = "tracker_balancer"

    def __init__(self, trackers: Sequence[Any], n: int | None, ema: float) -> None:
        try:
            ema_f = float(ema)
        except (TypeError, ValueError):
            ema_f = float("nan")
        if not 0.0 <= ema_f <= 1.0:
            raise ValueError(
                f"{self.name}: ema must be in [0, 1] (0 uses the latest measurement immediately), "
                f"received {ema!r}; e.g. ema=0.9."
            )
        super().__init__(n or 0)
        self.trackers = list(trackers)
        self.ema = ema_f
        self.losses: list[E.Placeholder] = []
        self._w: np.ndarray | None = None
        self._stamp: tuple | None = None
        self._warned = False
        self._epochs: list[int] = []
        self._weights: list[np.ndarray] = []

    # ------------------------------------------------------------------ usage
    def __call__(self, *losses: Any) -> tuple[HostWeightPlaceholder, ...]:
        """``w_pde, w_bc = w(pde_loss, bc_loss)`` (or ``w([pde_loss, bc_loss])``): one weight
        placeholder per loss, in order. The losses are not multiplied in: write
        ``w_pde * pde_loss`` in the constraint."""
        if len(losses) == 1 and isinstance(losses[0], (list, tuple)):
            losses = tuple(losses[0])
        if not losses:
            raise TypeError(f"{self.name}: pass the loss expressions to weight, e.g. w_pde, w_bc = w(pde.mse, bc.mse).")
        if self.n and len(losses) != self.n:
            raise ValueError(
                f"{self.name} weights {self.n} losses ({self._why_n()}), received {len(losses)}; "
                "pass one loss expression per weight, in the same order."
            )
        self.losses = [E.as_expr(l) for l in losses]
        self.n = len(self.losses)
        return self.placeholders()

    def _why_n(self) -> str:
        return "fixed by an earlier call"

    @property
    def weights(self) -> np.ndarray:
        """The weights ``(K,)`` the next chunk will use (same as :meth:`current`)."""
        return self.current()

    @property
    def result(self) -> dict[str, np.ndarray]:
        """``{"epochs": (S,), "weights": (S, K)}``: each new measurement's epoch (the latest
        fire among the trackers) and the weights it produced (after the EMA)."""
        return {
            "epochs": np.asarray(self._epochs, np.int64),
            "weights": np.stack(self._weights) if self._weights else np.zeros((0, self.n), np.float32),
        }

    # ------------------------------------------------------------------ to implement
    def measure(self) -> np.ndarray:
        """Raw weights ``(K,)`` summing to ``K`` from the trackers' ``.value``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ HostWeights
    def current(self) -> np.ndarray:
        """Weights ``(K,)`` float32: uniform until every tracker has fired, then the EMA of
        the measurements (updated when a tracker's ``latest_epoch`` changes)."""
        if not self.n:
            raise JnoPluginError(
                f"{self.name}: the balancer was not called with the losses it weights; write "
                "w_pde, w_bc = w(pde.mse, bc.mse) and use w_pde * pde.mse in the constraints."
            )
        if self._w is None or self._w.shape != (self.n,):
            self._w = np.ones(self.n, np.float64)
        if any(t.value is None or t.latest_epoch is None for t in self.trackers):
            return self._w.astype(np.float32)
        stamp = tuple(int(t.latest_epoch) for t in self.trackers)
        if stamp != self._stamp:
            self._stamp = stamp
            new = self.measure()
            if np.all(np.isfinite(new)):
                self._w = self.ema * self._w + (1.0 - self.ema) * new
                self._epochs.append(max(stamp))
                self._weights.append(self._w.astype(np.float32))
            elif not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.name}: non-finite tracker values at epoch {max(stamp)} ({new}); keeping "
                    "the previous weights.", RuntimeWarning, stacklevel=2,
                )
        return self._w.astype(np.float32)

    # ------------------------------------------------------------------ checkpoint state
    def jno_state(self) -> dict[str, Any]:
        """JSON-serialisable state (saved by the checkpoint plugin)."""
        return {
            "w": None if self._w is None else [float(v) for v in self._w],
            "stamp": None if self._stamp is None else list(self._stamp),
        }

    def jno_load_state(self, state: dict[str, Any]) -> None:
        self._w = None if state.get("w") is None else np.asarray(state["w"], np.float64)
        self._stamp = None if state.get("stamp") is None else tuple(state["stamp"])

    def __repr__(self) -> str:
        return f"<{self.name} K={self.n} ema={self.ema} trackers={len(self.trackers)}>"


class GradientNormBalanced(TrackerBalancer):
    """``w_i ∝ 1 / ||∇_θ L_i||``, normalised to sum to ``N`` (gradient-norm balancing; the
    gradient pathology it counters: Wang, Teng & Perdikaris, arXiv:2001.04536, Sec. 2.4).

    Reads ``tracker.value["norms"]`` ``(N,)`` of a ``jno.trackers.gradient_norms`` tracker: the
    norms of the **unweighted** constraint losses (the core evaluates the gradient matrix with
    every weight set to 1), so the weights do not feed back into their own measurement. The
    norms are in the order of the solver's constraints, so call the balancer with one loss per
    constraint, in the order of ``jno.core([...])``.

    :param tracker: the gradient-norm tracker; pass it to ``solve(callbacks=[...])`` too.
    :param ema: ``0`` (default) uses the latest measurement; higher values smooth toward
        history (``w <- ema * w_prev + (1 - ema) * w_new``, starting from uniform weights).
    :param eps: norms below ``eps`` count as ``eps`` (a constraint with no gradient).
    """

    name = "gradient_norm_balanced"

    def __init__(self, tracker: Any, ema: float = 0.0, eps: float = 1e-12) -> None:
        if isinstance(tracker, (list, tuple)):
            raise TypeError(
                "gradient_norm_balanced takes one gradient_norms tracker (it measures every "
                f"constraint), received a {type(tracker).__name__}; for one tracker per loss "
                "use ntk_balanced([...])."
            )
        _check_tracker(tracker, "gradient_norm_balanced")
        super().__init__([tracker], None, ema)
        self.tracker = tracker
        self.eps = float(eps)

    def measure(self) -> np.ndarray:
        norms = np.asarray(self.tracker.value["norms"], np.float64).reshape(-1)
        if norms.size != self.n:
            raise JnoPluginError(
                f"gradient_norm_balanced: the tracker measured {norms.size} constraint gradient "
                f"norms, but the balancer weights {self.n} losses. It weights the solver's "
                "constraints in order: call it with one loss per constraint of jno.core([...])."
            )
        return inverse_weights(norms, self.eps)


class NtkBalanced(TrackerBalancer):
    """``w_i = tr(K_total) / tr(K_i)`` with ``tr(K_total) = sum_j tr(K_j)``, normalised to sum
    to ``N`` (NTK-trace balancing: Wang, Yu & Perdikaris, *When and why PINNs fail to train: a
    neural tangent kernel perspective*, arXiv:2007.14527, Sec. 3 / Algorithm 1). Constraints
    whose kernel has a small trace converge slowly and receive more weight.

    Reads ``value["trace"]`` of one NTK tracker per loss term (``jno.trackers.ntk_spectrum`` of
    that loss's network output); the balancer weights ``len(trackers)`` losses, in the order
    of the trackers.

    :param trackers: one tracker per loss, each exposing ``value["trace"]``.
    :param ema: ``0`` (default) uses the latest measurement; higher values smooth toward
        history (same direction as ReLoBRaLo's ``alpha``), starting from uniform weights.
    :param eps: traces below ``eps`` count as ``eps``.
    """

    name = "ntk_balanced"

    def __init__(self, trackers: Sequence[Any], ema: float = 0.0, eps: float = 1e-12) -> None:
        if not isinstance(trackers, (list, tuple)) or not trackers:
            raise TypeError(
                "ntk_balanced expects a list with one NTK tracker per loss term, e.g. "
                f"ntk_balanced([ntk_pde, ntk_bc], ema=0.9); received {type(trackers).__name__}."
            )
        for t in trackers:
            _check_tracker(t, "ntk_balanced")
        super().__init__(trackers, len(trackers), ema)
        self.eps = float(eps)

    def _why_n(self) -> str:
        return "one per tracker"

    def measure(self) -> np.ndarray:
        traces = []
        for i, t in enumerate(self.trackers):
            if "trace" not in t.value:
                raise JnoPluginError(
                    f"ntk_balanced: tracker {i} ({type(t).__name__}) has no value['trace']; pass "
                    "NTK trackers (jno.trackers.ntk_spectrum), one per loss term."
                )
            traces.append(float(np.sum(np.asarray(t.value["trace"], np.float64))))
        traces_a = np.maximum(np.asarray(traces), self.eps)
        raw = traces_a.sum() / traces_a  # tr(K_total) / tr(K_i)
        return traces_a.size * raw / raw.sum()
