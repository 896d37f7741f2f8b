"""``validation``: error of an expression on a test domain against reference values.

For predictions ``p`` and reference ``r`` (both flattened to ``M`` values):

* ``l2_rel = ||p - r||_2 / ||r||_2`` (DeepXDE's ``l2 relative error``),
* ``mae = mean |p - r|``,
* ``max_abs = max |p - r|``.

The expression is evaluated at the test domain's points (each variable's tag looked up in the
test domain, as ``crux.eval(expr, domain=test)`` does, via the public
:func:`jno_core.domain.points_on`), inside one function compiled when the solve starts, so a
fire is one warm kernel call. ``reference`` is an array with one value (row) per test point or a
function ``f(points) -> values`` called once with the test points ``(M, D)`` (columns: the
coordinates in ``variable()`` order). Diagnostics do not change training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import Domain, points_on
from jno_core.api import Placeholder, as_expr
from jno_core.api import Tracker

__all__ = ["Validation", "errors"]


def errors(pred: jax.Array, ref: jax.Array) -> dict[str, jax.Array]:
    """Traceable: ``{"l2_rel", "mae", "max_abs"}`` (float32 scalars) of ``pred`` vs ``ref``
    (same number of values; flattened)."""
    p = jnp.ravel(pred).astype(jnp.float32)
    r = jnp.ravel(ref).astype(jnp.float32)
    d = p - r
    return {"l2_rel": jnp.linalg.norm(d) / jnp.linalg.norm(r), "mae": jnp.mean(jnp.abs(d)),
            "max_abs": jnp.max(jnp.abs(d))}


class Validation(Tracker):
    """Test error of ``expr`` on ``domain`` every ``interval`` epochs.

    :param expr: a field expression (a network output such as ``u``, a derivative, a residual).
    :param domain: the test domain (``jno.domain.from_array({...})`` or any domain with the
        tags ``expr`` uses).
    :param reference: values ``(M,)`` / ``(M, k)`` matching ``expr`` at the ``M`` test points, or a
        callable ``f(points (M, D)) -> values``.
    :param name: metric prefix (``val`` gives ``val/l2_rel``, ``val/mae``, ``val/max_abs``).

    ``result``: ``epochs`` ``(S,)``, ``l2_rel`` / ``mae`` / ``max_abs`` ``(S,)`` float32.
    """

    name = "validation"
    result_keys = ("l2_rel", "mae", "max_abs")

    def __init__(self, expr: Any, domain: Any, reference: Any, interval: int = 100, name: str = "val") -> None:
        super().__init__(interval)
        if expr is None or domain is None or reference is None:
            raise TypeError(
                "validation needs expr, domain and reference, e.g. jno.trackers.validation(u, "
                "domain=jno.domain.from_array({'interior': pts}), reference=u_exact_values)."
            )
        self.expr: Placeholder = as_expr(expr)
        if not isinstance(domain, Domain):
            raise TypeError(
                f"validation(domain=...) expects a jno domain, received {type(domain).__name__}; e.g. "
                "jno.domain.from_array({'interior': test_points})."
            )
        self.domain = domain
        self.prefix = str(name)
        # look the tags up now: a missing tag is an error before anything compiles
        self.test_points = points_on([self.expr], domain)
        if len(self.test_points) != 1:
            raise ValueError(
                f"validation: expr must be a field on one point set; it uses {len(self.test_points)} "
                "(give a network output such as u = net(x, t), not a reduced loss)."
            )
        pts = next(iter(self.test_points.values()))
        if callable(reference):
            reference = reference(np.asarray(pts, dtype=np.float64))
        ref = np.asarray(reference, dtype=np.float32)
        if ref.ndim == 0 or ref.shape[0] != pts.shape[0]:
            raise ValueError(
                f"validation: reference has shape {ref.shape} but the test domain has {pts.shape[0]} points; "
                f"expected ({pts.shape[0]},) or ({pts.shape[0]}, k), one value (row) per test point."
            )
        self.reference = ref

    def fire_fn(self, ctx: Any) -> Any:
        """The test-error function (test points and reference are its constants)."""
        field_fn = ctx.expr_fn([self.expr])
        test = {k: jnp.asarray(v) for k, v in self.test_points.items()}
        ref = jnp.asarray(self.reference)
        if int(np.prod(jax.eval_shape(field_fn, ctx.params, {**ctx.points, **test}, ctx.inputs,
                                      ctx.weights)[0].shape)) != ref.size:
            raise ValueError(
                f"validation: the expression has a different number of values on the test domain than "
                f"reference ({ref.shape}); give one reference value per value of the expression."
            )

        def fn(params: Any, points: Any, inputs: Any, weights: Any) -> Any:
            (pred,) = field_fn(params, {**points, **test}, inputs, weights)
            return errors(pred, ref)

        return fn

    def metrics(self, value: dict[str, Any]) -> dict[str, Any]:
        return {f"{self.prefix}/{k}": float(value[k]) for k in self.result_keys}
