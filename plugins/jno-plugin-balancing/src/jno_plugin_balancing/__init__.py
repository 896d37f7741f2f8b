"""jno-plugin-balancing: loss weights driven by trackers.

Registers (entry point ``balancing = "jno_plugin_balancing"``, group ``"jno"``) the weighting
names ``gradient_norm_balanced`` and ``ntk_balanced``, importable as the spec shows::

    from jno.utils.adaptive.weights import gradient_norm_balanced, ntk_balanced

    gn = jno.trackers.gradient_norms(interval=50)
    w = gradient_norm_balanced(gn)
    w_pde, w_bc = w(pde.mse, bc.mse)          # weight placeholders, one per loss
    crux = jno.core([w_pde * pde.mse, w_bc * bc.mse])
    crux.solve(10_000, callbacks=[gn])

Both are :class:`jno_core.weighting.HostWeights`: the weights are read on the host at every
chunk start and enter the compiled step as an input (no recompile, no per-step callback).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from jno_core.api import hookimpl

from ._balancers import GradientNormBalanced, NtkBalanced, TrackerBalancer, inverse_weights

__all__ = [
    "gradient_norm_balanced",
    "ntk_balanced",
    "GradientNormBalanced",
    "NtkBalanced",
    "TrackerBalancer",
    "inverse_weights",
    "jno_register_weightings",
]


def gradient_norm_balanced(tracker: Any, ema: float = 0.0, eps: float = 1e-12) -> GradientNormBalanced:
    """Weights ``w_i ∝ 1/||∇L_i||`` (summing to ``N``) from a ``gradient_norms`` tracker's
    ``value["norms"]``; uniform until it has fired. Call the result with the loss expressions
    to get the weight placeholders. See :class:`GradientNormBalanced`."""
    return GradientNormBalanced(tracker, ema=ema, eps=eps)


def ntk_balanced(trackers: Sequence[Any], ema: float = 0.0, eps: float = 1e-12) -> NtkBalanced:
    """Weights ``w_i = tr(K_total)/tr(K_i)`` (summing to ``N``) from one NTK tracker per loss
    (``value["trace"]``); uniform until every tracker has fired; ``ema=0`` uses the latest
    measurement. Call the result with the loss expressions. See :class:`NtkBalanced`."""
    return NtkBalanced(trackers, ema=ema, eps=eps)


@hookimpl
def jno_register_weightings(register: Callable[..., None]) -> None:
    """Register ``gradient_norm_balanced`` and ``ntk_balanced``."""
    register("gradient_norm_balanced", gradient_norm_balanced)
    register("ntk_balanced", ntk_balanced)
