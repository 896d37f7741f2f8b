"""``input_sensitivity``: evaluate any jno expression at the collocation points.

The intended use is input-gradient saliency: for a scalar network output ``u`` and a
coordinate ``x``, ``u.d(x)`` measures how strongly the response at each point depends on that
input; ``jno.Jacobian(u, [x, y])`` gives the full input Jacobian ``(N, 2)``. This is the PINN
analogue of the class-saliency map of Simonyan, Vedaldi & Zisserman (arXiv:1312.6034, Sec. 3).

The expression is the tracker's device function (:meth:`InputSensitivity.fire_fn`, through the
same expression compiler as the constraints, ``ctx.expr_fn``); the core compiles it when the
solve starts and runs it once per chunk over the chunk's fires. The summary metrics are NumPy
on the host.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import expr as E
from jno_core.api import node_key, trainable_key
from jno_core.api import point_set
from jno_core.api import Histogram
from jno_core.api import TrainableParameter
from jno_core.api import Tracker

__all__ = ["InputSensitivity", "saliency_summary"]


def saliency_summary(values: np.ndarray) -> dict[str, float]:
    """``mean_abs``, ``max_abs``, ``std_abs``: mean, maximum and (population) standard
    deviation of ``|values|`` over every entry (float64 on the host)."""
    a = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    if a.size == 0:
        return {"mean_abs": float("nan"), "max_abs": float("nan"), "std_abs": float("nan")}
    return {"mean_abs": float(a.mean()), "max_abs": float(a.max()), "std_abs": float(a.std())}


class InputSensitivity(Tracker):
    """Record ``expr`` evaluated at its collocation points every ``interval`` epochs.

    :param expr: any jno expression, e.g. ``u.d(x)`` (shape ``(N,)``),
        ``jno.Jacobian(u, [x, y])`` (``(N, 2)``) or ``u.d(x)**2 + u.d(y)**2``. Networks and
        trainable parameters the solver trains are read at the current epoch; ones the solver
        does not know are read from their own (fixed) values, as ``crux.eval`` does. Point sets
        the solver does not use are taken from their domain.
    :param interval: fire every ``interval`` epochs (``epoch % interval == 0``).

    ``result``: ``epochs`` ``(S,)`` and ``values`` ``(S, *expr_shape)`` (``expr_shape`` is
    ``(N, ...)`` for a field: no batch axis). Metrics: ``explainability/saliency/mean_abs``,
    ``.../max_abs``, ``.../std_abs`` (of ``|values|``, see :func:`saliency_summary`) and
    ``explainability/saliency/histogram`` (a :class:`~jno_core.metrics.Histogram` of the raw,
    signed values).
    """

    name = "input_sensitivity"
    result_keys = ("values",)

    def __init__(self, expr: Any, interval: int = 100) -> None:
        super().__init__(interval)
        if not isinstance(expr, E.Placeholder) and not isinstance(getattr(expr, "_jno_expr", None), E.Placeholder):
            raise TypeError(
                f"input_sensitivity expects a jno expression as expr, received "
                f"{type(expr).__name__}; e.g. jno.trackers.input_sensitivity(u.d(x), interval=100) "
                "or jno.Jacobian(u, [x, y])."
            )
        self.expr: E.Placeholder = E.as_expr(expr)
        #: shape of one fire's value (known after :meth:`prepare`)
        self.shape: tuple[int, ...] | None = None
        self._keys: list[str] = []
        self._fixed: dict[str, Any] = {}
        self._points: list[str] = []
        self._extra_points: dict[str, jax.Array] = {}

    def fire_fn(self, ctx: Any) -> Any:
        """``expr`` over the solver's parameters and points (and what it reads outside them)."""
        nodes = list(E.walk([self.expr]))
        trainables: dict[str, Any] = {}
        for n in nodes:
            if isinstance(n, (E.NetworkCall, E.NetworkGradient)):
                trainables.setdefault(trainable_key(n.net), n.net)
            elif isinstance(n, TrainableParameter):
                trainables.setdefault(trainable_key(n), n)
        self._keys = sorted(trainables)
        live = ctx.params
        self._fixed = {k: t.params for k, t in trainables.items() if k not in live}
        self._points = sorted({n.point_set for n in nodes if isinstance(n, E.Variable)})
        self._extra_points = {k: jnp.asarray(point_set(k).points) for k in self._points if k not in ctx.points}
        f = ctx.expr_fn([self.expr])
        keys, fixed, names, extra = self._keys, self._fixed, self._points, self._extra_points

        def fn(params: Any, points: Any, inputs: Any, weights: Any) -> jax.Array:
            # the solver's params/points, plus what the expression reads outside them (an
            # untrained network's parameters, a point set the solver does not use)
            p = {k: params[k] if k in params else fixed[k] for k in keys}
            pts = {k: points[k] if k in points else extra[k] for k in names}
            return f(p, pts, inputs, weights)[0]

        try:
            out = jax.eval_shape(fn, ctx.params, ctx.points, ctx.inputs, ctx.weights)
        except KeyError as exc:
            raise ValueError(
                f"input_sensitivity could not compile {self.expr.describe()}: it refers to "
                f"{exc} which this solver does not provide. Pass an expression built from this "
                "solver's networks, variables, parameters and weighting schemes."
            ) from exc
        self.shape = tuple(out.shape)
        return fn

    def fire_key(self, ctx: Any) -> Any:
        return ("input_sensitivity", node_key(self.expr))

    def finish(self, out: Any, epoch: int) -> dict[str, Any]:
        return {"values": np.asarray(out)}

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {f"explainability/saliency/{k}": v for k, v in saliency_summary(value["values"]).items()}
        out["explainability/saliency/histogram"] = Histogram(value["values"])
        return out
