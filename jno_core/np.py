"""``jno.np``: NumPy-style functions that build expressions (``jno.np.sin(pi * x)``)."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from . import expr as E
from .parameter import parameter

__all__ = [
    "pi", "e", "sin", "cos", "tan", "exp", "log", "tanh", "sinh", "cosh", "sqrt", "abs",
    "square", "arctan", "arcsin", "arccos", "sigmoid", "relu", "sign", "log1p", "expm1",
    "mean", "sum", "max", "min", "std", "var", "prod", "norm", "dot", "matmul",
    "maximum", "minimum", "arctan2", "concat", "concatenate", "stack", "transpose",
    "function", "parameter", "tracker", "stop_gradient", "Jacobian",
]

pi = math.pi
e = math.e


def _unary(op: str) -> Callable[[Any], E.Placeholder]:
    def f(x: Any) -> E.Placeholder:
        return E.Unary(op, E.as_expr(x))

    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}`` (a field stays a field)."
    return f


sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
exp = _unary("exp")
log = _unary("log")
tanh = _unary("tanh")
sinh = _unary("sinh")
cosh = _unary("cosh")
sqrt = _unary("sqrt")
abs = _unary("abs")  # noqa: A001 - numpy name
square = _unary("square")
arctan = _unary("arctan")
arcsin = _unary("arcsin")
arccos = _unary("arccos")
sigmoid = _unary("sigmoid")
relu = _unary("relu")
sign = _unary("sign")
log1p = _unary("log1p")
expm1 = _unary("expm1")


def _reduce(op: str) -> Callable[..., E.Placeholder]:
    def f(x: Any, axis: Any = None, **kw: Any) -> E.Placeholder:
        return E.Reduce(op, E.as_expr(x), axis=axis, **kw)

    f.__name__ = op
    f.__doc__ = (
        f"``{op}`` over all values (``axis=None``) or along ``axis`` of the array (a field is "
        "seen as ``(B, N, ...)``); the result is global."
    )
    return f


mean = _reduce("mean")
sum = _reduce("sum")  # noqa: A001
max = _reduce("max")  # noqa: A001
min = _reduce("min")  # noqa: A001
std = _reduce("std")
var = _reduce("var")
prod = _reduce("prod")
norm = _reduce("norm")


def _binary(op: str) -> Callable[[Any, Any], E.Placeholder]:
    def f(a: Any, b: Any) -> E.Placeholder:
        return E.Binary(op, E.as_expr(a), E.as_expr(b))

    f.__name__ = op
    f.__doc__ = f"Elementwise ``{op}``."
    return f


maximum = _binary("maximum")
minimum = _binary("minimum")
arctan2 = _binary("arctan2")


def dot(a: Any, b: Any) -> E.Placeholder:
    """``jnp.dot`` of two arrays (global result)."""
    return E.Binary("matmul", E.as_expr(a), E.as_expr(b))


def matmul(a: Any, b: Any) -> E.Placeholder:
    """``a @ b`` (fields are seen as ``(B, N, ...)``)."""
    return E.Binary("matmul", E.as_expr(a), E.as_expr(b))


def concat(xs: Sequence[Any], axis: int = -1) -> E.Placeholder:
    """Concatenate along ``axis`` (``-1``: per-point values of fields)."""
    return E.Concat(xs, axis=axis)


concatenate = concat


def stack(xs: Sequence[Any], axis: int = -1) -> E.Placeholder:
    """Stack along a new axis (``-1``: per point)."""
    return E.Stack(xs, axis=axis)


def transpose(x: Any) -> E.Placeholder:
    return E.Unary("transpose", E.as_expr(x))


def function(fn: Callable[..., Any], args: Sequence[Any]) -> E.Placeholder:
    """``jno.np.function(fn, [args])``: lift a JAX function into the expression graph.
    ``fn`` receives the arguments' arrays (fields as ``(N, ...)``); gradients flow through it."""
    if not isinstance(args, (list, tuple)):
        args = [args]
    return E.FunctionNode(fn, list(args))


def tracker(x: Any, interval: int = 1, name: str | None = None) -> E.TrackerExpr:
    """``jno.numpy.tracker(expr, interval=...)``: a non-loss expression logged every
    ``interval`` epochs when passed to ``jno.core([...])``."""
    return E.TrackerExpr(E.as_expr(x), interval=interval, name=name)


def stop_gradient(x: Any) -> E.Placeholder:
    return E.StopGradient(E.as_expr(x))


Jacobian = E.Jacobian
