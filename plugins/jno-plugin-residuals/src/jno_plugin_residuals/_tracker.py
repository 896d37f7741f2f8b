"""``residual_stats``: statistics of each constraint's pointwise residual field.

For a constraint loss such as ``pde.mse`` the residual is the field the loss reduces, i.e.
``pde`` itself (the signed values ``r_i(x_k)``, **not** their squares), found by
:func:`jno_core.compile.residual_of` (``ctx.residual_exprs``); for ``w * pde.mse`` it is the same
``pde``. A constraint that reduces no field is its own (scalar) residual. Vector-valued residuals
are flattened: the statistics run over every value of the field.

Per constraint and fire: mean, standard deviation (population, ``ddof=0``), maximum (of the
signed values, not of ``|r|``) and the 99th percentile with linear interpolation between order
statistics (NumPy's default ``method="linear"``). They are computed **on the device** with
``jnp.mean`` / ``jnp.std`` / ``jnp.max`` / ``jnp.percentile`` inside the tracker's device
function (:meth:`ResidualStats.fire_fn`), together with the residual fields themselves (which
come back to the host for the histogram metric); the core compiles it when the solve starts
and runs it once per chunk over the chunk's fires (``jno_core.fires``).

Per-point residual magnitudes as a diagnostic / sampling signal: Sec. 3 of arXiv:2207.10289.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import Placeholder
from jno_core.api import Histogram
from jno_core.api import Tracker

__all__ = ["ResidualStats", "residual_statistics"]

STATS = (("means", "mean"), ("stds", "std"), ("maxes", "max"), ("p99", "p99"))


def residual_statistics(residuals: Sequence[jax.Array]) -> dict[str, jax.Array]:
    """Traceable: ``{"means", "stds", "maxes", "p99"}``, each ``(K,)`` float32, of the ``K``
    residual arrays (each flattened; any shapes)."""
    flat = [jnp.ravel(r).astype(jnp.float32) for r in residuals]
    return {
        "means": jnp.stack([jnp.mean(r) for r in flat]),
        "stds": jnp.stack([jnp.std(r) for r in flat]),
        "maxes": jnp.stack([jnp.max(r) for r in flat]),
        "p99": jnp.stack([jnp.percentile(r, 99.0) for r in flat]),
    }


class ResidualStats(Tracker):
    """Mean, std, max and 99th percentile of every (or the selected) constraint's pointwise
    residual, every ``interval`` epochs.

    :param interval: fire every ``interval`` epochs (``epoch % interval == 0``).
    :param constraints: ``None`` (every loss constraint of the solver) or a list of constraint
        expressions to track. An entry is matched to the solver's constraints by identity and
        otherwise structurally (``pde.mse`` builds a new placeholder on every access, and an
        equal rebuilt expression matches); an expression that is not one of the solver's
        constraints raises a :class:`ValueError` when the solve starts.

    ``result``: ``epochs`` ``(S,)``, ``means`` / ``stds`` / ``maxes`` / ``p99`` ``(S, K)``
    float32, ``indices`` ``(K,)`` the solver-side constraint index of each column (set when the
    solve starts). Metrics, with the solver-side index ``i``:
    ``explainability/residual/constraint_{i}/{mean,std,max,p99}`` and
    ``explainability/residual/constraint_{i}/histogram`` (a :class:`~jno_core.metrics.Histogram`
    of the raw residual values).
    """

    name = "residual_stats"
    result_keys = ("means", "stds", "maxes", "p99")

    def __init__(self, interval: int = 100, constraints: Sequence[Placeholder] | None = None) -> None:
        super().__init__(interval)
        if constraints is not None:
            if isinstance(constraints, Placeholder) or not isinstance(constraints, (list, tuple)):
                raise TypeError(
                    f"residual_stats(constraints=...) expects a list of constraint expressions or "
                    f"None, received {type(constraints).__name__}; e.g. constraints=[pde_loss] with "
                    "pde_loss = pde.mse, the object passed to jno.core([...])."
                )
            if not constraints:
                raise ValueError(
                    "residual_stats(constraints=[]) selects nothing; pass None to track every "
                    "constraint or list the ones to track."
                )
            bad = [f"#{k}: {type(c).__name__}" for k, c in enumerate(constraints) if not isinstance(c, Placeholder)]
            if bad:
                raise TypeError(
                    f"residual_stats(constraints=...) entries must be jno expressions (the "
                    f"constraints passed to jno.core); received {', '.join(bad)}."
                )
        self.constraints = None if constraints is None else list(constraints)
        #: solver-side indices of the tracked constraints (after :meth:`prepare`)
        self.indices: list[int] | None = None
        #: the flattened residual values ``[(M_k,)]`` of the latest fire (host arrays)
        self.last_residuals: list[np.ndarray] | None = None

    def _resolve(self, ctx: Any) -> list[int]:
        if self.constraints is None:
            return list(range(ctx.n_constraints))
        out = []
        for k, c in enumerate(self.constraints):
            try:
                out.append(ctx.constraint_index(c))
            except ValueError as exc:
                raise ValueError(
                    f"residual_stats(constraints=...): entry #{k} ({c.describe()}) is not a loss "
                    f"constraint of this solver. {exc}"
                ) from exc
        return out

    def prepare(self, ctx: Any) -> None:
        """Resolve the constraints."""
        self.indices = self._resolve(ctx)
        self.static_result = {"indices": np.asarray(self.indices, dtype=np.int64)}

    def fire_fn(self, ctx: Any) -> Any:
        """Residuals and their statistics in one device function."""
        field_fn = ctx.expr_fn(ctx.residual_exprs(self.indices))

        def fn(params: Any, points: Any, inputs: Any, weights: Any) -> Any:
            residuals = field_fn(params, points, inputs, weights)
            return residual_statistics(residuals), [jnp.ravel(r) for r in residuals]

        return fn

    def fire_key(self, ctx: Any) -> Any:
        return ("residual_stats", tuple(self.indices))

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        stats, residuals = out
        self.last_residuals = [np.asarray(r) for r in residuals]
        return {k: np.asarray(v) for k, v in stats.items()}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, i in enumerate(self.indices or []):
            base = f"explainability/residual/constraint_{i}"
            for key, label in STATS:
                out[f"{base}/{label}"] = float(value[key][col])
            out[f"{base}/histogram"] = Histogram(self.last_residuals[col])
        return out
