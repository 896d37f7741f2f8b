"""jno-plugin-relobralo: the ReLoBRaLo loss-weighting scheme for jno.

Installs ``jno.fn.adaptive.relobralo`` through the entry point
``relobralo = "jno_plugin_relobralo"`` of the group ``"jno"``::

    w_pde, w_bc = jno.fn.adaptive.relobralo([pde.mse, bc.mse])
    crux = jno.core([w_pde * pde.mse, w_bc * bc.mse, w_pde.tracker(), w_bc.tracker()])

See :class:`ReLoBRaLo` for the update rule and its reference.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from jno_core.api import hookimpl
from jno_core.api import WeightPlaceholder

from ._scheme import ALPHA, BETA, TAU, ReLoBRaLo, lookback_uniform, relobralo_step

__all__ = ["relobralo", "ReLoBRaLo", "relobralo_step", "lookback_uniform", "ALPHA", "BETA", "TAU", "jno_register_weightings"]


def relobralo(
    losses: Sequence[Any],
    alpha: float = ALPHA,
    beta: float = BETA,
    tau: float = TAU,
    *,
    lookback: str = "bernoulli",
    seed: int = 0,
    eps: float = 1e-12,
) -> tuple[WeightPlaceholder, ...]:
    """``jno.fn.adaptive.relobralo(losses, alpha=0.999, beta=0.99, tau=0.1)``: ReLoBRaLo weights
    for the ``K`` loss expressions ``losses`` (Bischof & Kraus 2021, arXiv:2110.09813, Sec. 3).

    Returns ``K`` weight placeholders (global scalars, gradients stopped) to multiply into the
    constraints; each has ``.tracker(interval)`` to log its value. The scheme's state (weights,
    previous and initial losses) lives in the train state and is advanced only by training steps.
    Arguments as in :class:`ReLoBRaLo`.
    """
    return ReLoBRaLo(losses, alpha=alpha, beta=beta, tau=tau, lookback=lookback, seed=seed, eps=eps).placeholders()


@hookimpl
def jno_register_weightings(register: Callable[..., None]) -> None:
    """Register ``relobralo`` (``jno.fn.adaptive.relobralo``)."""
    register("relobralo", relobralo)
