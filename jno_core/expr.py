"""Symbolic expressions (placeholders) of the spec's API.

An expression is a small graph built with Python operators and ``jno.np`` functions. It is
compiled by :mod:`jno_core.compile` into a pure JAX function of the parameters and of the
collocation point arrays (points are inputs, never baked-in constants).

Shapes. A *field* expression depends on the points of one point set (a domain tag such as
``"interior"``) and has one value per point: its array is ``(N, *value_shape)``; a scalar
network output is ``(N,)``. Field-level operations (integer/slice indexing, ``axis=``
reductions, ``@``, ``jno.np.function``) see a field as the spec's ``(B, N, *value_shape)``
array with batch ``B = 1``; ``crux.eval`` returns fields without ``B``. Indexing that starts
with ``...`` (``u[..., 0]``) and elementwise operations act per point and keep a field a field.
Everything else is *global* (a constant array, e.g. ``pde.mse`` or a trainable parameter).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ShapeError

__all__ = [
    "Placeholder",
    "Constant",
    "Variable",
    "Unary",
    "Binary",
    "Reduce",
    "Index",
    "Derivative",
    "JacobianNode",
    "FunctionNode",
    "NetworkCall",
    "NetworkGradient",
    "StopGradient",
    "TrackerExpr",
    "Concat",
    "Stack",
    "as_expr",
    "Jacobian",
    "walk",
]

_ids = itertools.count()


class Placeholder:
    """Base class of every symbolic expression."""

    #: the point-set key of a field expression, or None for a global expression
    point_set: Any = None
    children: tuple["Placeholder", ...] = ()

    def __init__(self) -> None:
        self.uid = next(_ids)

    # ---------------------------------------------------------------- structure
    @property
    def is_field(self) -> bool:
        return self.point_set is not None

    def _key(self) -> tuple:
        """Structural identity (used to match ``pde.mse`` built twice)."""
        return (type(self).__name__, tuple(c._key() for c in self.children))

    def __hash__(self) -> int:
        return self.uid

    # ``==`` must stay identity: placeholders are dictionary keys and list members.
    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return self is other

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, o: Any) -> "Placeholder":
        return Binary("add", self, as_expr(o))

    def __radd__(self, o: Any) -> "Placeholder":
        return Binary("add", as_expr(o), self)

    def __sub__(self, o: Any) -> "Placeholder":
        return Binary("sub", self, as_expr(o))

    def __rsub__(self, o: Any) -> "Placeholder":
        return Binary("sub", as_expr(o), self)

    def __mul__(self, o: Any) -> "Placeholder":
        return Binary("mul", self, as_expr(o))

    def __rmul__(self, o: Any) -> "Placeholder":
        return Binary("mul", as_expr(o), self)

    def __truediv__(self, o: Any) -> "Placeholder":
        return Binary("div", self, as_expr(o))

    def __rtruediv__(self, o: Any) -> "Placeholder":
        return Binary("div", as_expr(o), self)

    def __pow__(self, o: Any) -> "Placeholder":
        return Binary("pow", self, as_expr(o))

    def __rpow__(self, o: Any) -> "Placeholder":
        return Binary("pow", as_expr(o), self)

    def __matmul__(self, o: Any) -> "Placeholder":
        return Binary("matmul", self, as_expr(o))

    def __rmatmul__(self, o: Any) -> "Placeholder":
        return Binary("matmul", as_expr(o), self)

    def __neg__(self) -> "Placeholder":
        return Unary("neg", self)

    def __pos__(self) -> "Placeholder":
        return self

    def __abs__(self) -> "Placeholder":
        return Unary("abs", self)

    def __getitem__(self, key: Any) -> "Placeholder":
        return Index(self, key)

    @property
    def T(self) -> "Placeholder":
        """Transpose (reverses the axes of the array; a field is seen as ``(B, N, ...)``)."""
        return Unary("transpose", self)

    # ---------------------------------------------------------------- calculus
    def d(self, var: "Variable", order: int = 1) -> "Placeholder":
        """Derivative ``d^order self / d var^order`` at every point (forward mode)."""
        return Derivative(self, var, order)

    def d2(self, var: "Variable") -> "Placeholder":
        """Second derivative with respect to ``var``."""
        return Derivative(self, var, 2)

    def grad(self, net: Any) -> "Placeholder":
        """Parameter Jacobian ``d self / d theta`` of a network or trainable parameter.

        Shapes: a scalar field gives ``(N, P)`` (the spec's ``(B, N, P)`` without ``B``), a
        vector field ``(N, D, P)``, a global scalar (``pde.mse``) ``(P,)``. ``P`` counts the
        parameters selected by the mask stored with ``net.mask(...)`` at this call (all when
        none). Differentiating it again (as a loss term) is second-order AD; see
        :attr:`stop_gradient`.
        """
        return NetworkGradient(self, net)

    @property
    def mse(self) -> "Placeholder":
        """Mean of the squared values (a fresh placeholder on each access)."""
        return Reduce("mse", self)

    @property
    def stop_gradient(self) -> "StopGradient":
        """The same values with gradients blocked (usable as ``e.stop_gradient`` or
        ``e.stop_gradient()``)."""
        return StopGradient(self)

    def tracker(self, interval: int = 1, name: str | None = None) -> "TrackerExpr":
        """A non-loss expression evaluated and logged every ``interval`` epochs."""
        return TrackerExpr(self, interval=interval, name=name)

    # ---------------------------------------------------------------- display
    def describe(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        kind = f"field on {self.point_set!r}" if self.is_field else "global"
        return f"<{self.describe()} ({kind})>"

    def __bool__(self) -> bool:
        raise TypeError(
            "a jno expression has no truth value before it is evaluated; use crux.eval([...]) "
            "to get arrays, or jno.np functions (jno.np.max, ...) inside expressions."
        )


def _common_point_set(nodes: Sequence[Placeholder], what: str) -> Any:
    sets = {n.point_set for n in nodes if n.point_set is not None}
    if len(sets) > 1:
        names = ", ".join(sorted(repr(s) for s in sets))
        raise ShapeError(
            f"{what} combines fields on different point sets ({names}); expected expressions "
            "on one point set. Build the expression from variables of a single "
            "domain.variable(...) tag, or reduce each field first (e.g. a.mse + b.mse)."
        )
    return next(iter(sets)) if sets else None


class Constant(Placeholder):
    """A constant array (Python numbers, NumPy or JAX arrays)."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = np.asarray(value, dtype=np.float32) if np.ndim(value) == 0 or isinstance(
            value, (list, tuple)
        ) else value

    def _key(self) -> tuple:
        v = np.asarray(self.value)
        return ("Constant", v.shape, v.tobytes())

    def describe(self) -> str:
        return f"Constant{np.shape(self.value)}"


class Variable(Placeholder):
    """Coordinate ``index`` of the points of a point set (per-point scalar)."""

    def __init__(self, point_set: Any, index: int, name: str) -> None:
        super().__init__()
        self.point_set = point_set
        self.index = index
        self.name = name

    def _key(self) -> tuple:
        return ("Variable", self.point_set, self.index)

    def describe(self) -> str:
        return f"Variable {self.name}"


class Unary(Placeholder):
    def __init__(self, op: str, x: Placeholder, **kw: Any) -> None:
        super().__init__()
        self.op, self.kw = op, kw
        self.children = (x,)
        # transpose sees the (B, N, ...) view and yields a global array
        self.point_set = None if op == "transpose" else x.point_set

    def _key(self) -> tuple:
        return ("Unary", self.op, tuple(sorted(self.kw.items())), self.children[0]._key())

    def describe(self) -> str:
        return f"{self.op}(...)"


class Binary(Placeholder):
    def __init__(self, op: str, a: Placeholder, b: Placeholder) -> None:
        super().__init__()
        self.op = op
        self.children = (a, b)
        if op == "matmul":
            self.point_set = None
        else:
            self.point_set = _common_point_set((a, b), f"the operation {op!r}")

    def _key(self) -> tuple:
        return ("Binary", self.op, self.children[0]._key(), self.children[1]._key())

    def describe(self) -> str:
        return f"{self.op}(...)"


class Reduce(Placeholder):
    """A reduction: ``mse``, ``mean``, ``sum``, ``max``, ``min``, ``norm`` (global result)."""

    def __init__(self, op: str, x: Placeholder, axis: Any = None, **kw: Any) -> None:
        super().__init__()
        self.op, self.axis, self.kw = op, axis, kw
        self.children = (x,)

    def _key(self) -> tuple:
        return ("Reduce", self.op, repr(self.axis), self.children[0]._key())

    def describe(self) -> str:
        return f"{self.op}(...)"


class Index(Placeholder):
    """``x[key]``. A key starting with ``...`` indexes each point's value (a field stays a
    field); any other key indexes the ``(B, N, ...)`` array (the result is global)."""

    def __init__(self, x: Placeholder, key: Any) -> None:
        super().__init__()
        self.key = key
        self.children = (x,)
        k0 = key[0] if isinstance(key, tuple) and key else key
        self.per_point = k0 is Ellipsis
        self.point_set = x.point_set if self.per_point else None

    def _key(self) -> tuple:
        return ("Index", repr(self.key), self.children[0]._key())


class Derivative(Placeholder):
    """``d^order expr / d var^order`` per point, by nested forward-mode JVPs."""

    def __init__(self, x: Placeholder, var: Any, order: int = 1) -> None:
        super().__init__()
        if not isinstance(var, Variable):
            raise TypeError(
                f"d()/d2() expect a coordinate variable from domain.variable(...), received "
                f"{type(var).__name__}. Differentiate with respect to x from "
                "`x, _ = domain.variable('interior')`."
            )
        if int(order) != order or order < 1:
            raise ValueError(f"derivative order must be an integer >= 1, received {order!r}.")
        if x.point_set is not None and x.point_set != var.point_set:
            raise ShapeError(
                f"cannot differentiate a field on {x.point_set!r} with respect to a variable on "
                f"{var.point_set!r}; use the variable of the same domain tag."
            )
        self.var, self.order = var, int(order)
        self.children = (x,)
        self.point_set = var.point_set

    def _key(self) -> tuple:
        return ("Derivative", self.order, self.var._key(), self.children[0]._key())


class JacobianNode(Placeholder):
    """Input Jacobian: stacks ``expr.d(v)`` over ``vars`` along a new last axis
    (shape ``(N, len(vars))`` for a scalar field)."""

    def __init__(self, x: Placeholder, variables: Sequence[Variable]) -> None:
        super().__init__()
        if not variables:
            raise ValueError("Jacobian needs at least one variable, e.g. Jacobian(u, [x, y]).")
        self.parts = tuple(Derivative(x, v, 1) for v in variables)
        self.children = self.parts
        self.point_set = _common_point_set(self.parts, "Jacobian")

    def _key(self) -> tuple:
        return ("Jacobian", tuple(p._key() for p in self.parts))


def Jacobian(expr: Placeholder, variables: Sequence[Variable]) -> Placeholder:
    """``jno.Jacobian(u, [x, y])``: the input Jacobian of ``u`` at every point."""
    return JacobianNode(as_expr(expr), list(variables))


class Concat(Placeholder):
    """Concatenation along ``axis`` (``-1``, the default, joins per-point values)."""

    def __init__(self, xs: Sequence[Placeholder], axis: int = -1) -> None:
        super().__init__()
        self.children = tuple(as_expr(x) for x in xs)
        self.axis = axis
        self.point_set = (
            _common_point_set(self.children, "concat") if axis == -1 else None
        )

    def _key(self) -> tuple:
        return ("Concat", self.axis, tuple(c._key() for c in self.children))


class Stack(Concat):
    """Stack along a new last axis (per point)."""

    def _key(self) -> tuple:
        return ("Stack",) + super()._key()


class FunctionNode(Placeholder):
    """``jno.np.function(fn, [args])``: ``fn`` is called with the arguments' arrays (fields
    as ``(N, ...)``, i.e. mapped over the batch axis). A result whose leading axis has the
    field's ``N`` stays a field; anything else is global. Derivatives with respect to
    coordinates treat ``fn`` as acting point by point."""

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any]) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"jno.np.function expects a callable, received {type(fn).__name__}.")
        self.fn = fn
        self.children = tuple(as_expr(a) for a in args)
        self.arg_point_set = _common_point_set(self.children, f"function {getattr(fn, '__name__', fn)}")
        # decided at compile time from the output shape (see compile.py); default: field
        self.point_set = self.arg_point_set

    def _key(self) -> tuple:
        return ("Function", id(self.fn), tuple(c._key() for c in self.children))

    def describe(self) -> str:
        return f"function {getattr(self.fn, '__name__', 'fn')}"


class NetworkCall(Placeholder):
    """``net(a, b, ...)``: the network applied at every point to the concatenated per-point
    values of the arguments. A single-output network gives a scalar field ``(N,)``."""

    def __init__(self, net: Any, args: Sequence[Any]) -> None:
        super().__init__()
        self.net = net
        self.children = tuple(as_expr(a) for a in args)
        if not self.children:
            raise TypeError(f"{net!r} was called with no inputs; call it as net(x) or net(x, y).")
        self.point_set = _common_point_set(self.children, f"network {net.name!r} call")

    def _key(self) -> tuple:
        return ("NetworkCall", id(self.net), tuple(c._key() for c in self.children))

    def describe(self) -> str:
        return f"{self.net.name}(...)"


class NetworkGradient(Placeholder):
    """Parameter Jacobian of ``expr`` with respect to a network's (masked) parameters or a
    trainable parameter. See :meth:`Placeholder.grad` for shapes."""

    def __init__(self, x: Placeholder, net: Any) -> None:
        super().__init__()
        from .nn import Network  # local import: nn imports expr
        from .parameter import TrainableParameter

        target = getattr(net, "_jno_trainable", None)
        if not isinstance(target, (Network, TrainableParameter)):
            raise TypeError(
                f".grad() expects a network from jno.nn.wrap(...) (optionally .mask(...)) or a "
                f"jno.np.parameter, received {type(net).__name__}."
            )
        self.net = target
        self.mask = getattr(net, "_jno_mask", None)
        self.children = (x,)
        self.point_set = x.point_set

    def _key(self) -> tuple:
        return ("NetworkGradient", id(self.net), id(self.mask), self.children[0]._key())


class StopGradient(Placeholder):
    def __init__(self, x: Placeholder) -> None:
        super().__init__()
        self.children = (x,)
        self.point_set = x.point_set

    def __call__(self) -> "StopGradient":
        return self


class TrackerExpr(Placeholder):
    """A non-loss expression logged every ``interval`` epochs when passed to ``jno.core``."""

    def __init__(self, x: Placeholder, interval: int = 1, name: str | None = None) -> None:
        super().__init__()
        x = as_expr(x)
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval <= 0:
            raise ValueError(
                f"tracker interval must be a positive integer number of epochs, received "
                f"{interval!r}; e.g. .tracker(100) logs every 100 epochs."
            )
        self.children = (x,)
        self.interval = int(interval)
        self.name = name
        self.point_set = x.point_set

    @property
    def expr(self) -> Placeholder:
        return self.children[0]


def as_expr(v: Any) -> Placeholder:
    """Wrap numbers and arrays as :class:`Constant`; placeholders pass through."""
    if isinstance(v, Placeholder):
        return v
    w = getattr(v, "_jno_expr", None)
    if isinstance(w, Placeholder):
        return w
    if callable(v):
        raise TypeError(
            f"cannot use {type(v).__name__} {v!r} in a jno expression; wrap functions with "
            "jno.np.function(fn, [args])."
        )
    return Constant(v)


def walk(roots: Sequence[Placeholder]):
    """Yield every node reachable from ``roots`` once (children before parents)."""
    seen: set[int] = set()
    order: list[Placeholder] = []

    def visit(n: Placeholder) -> None:
        stack = [(n, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if node.uid in seen:
                continue
            seen.add(node.uid)
            stack.append((node, True))
            for c in reversed(node.children):
                if c.uid not in seen:
                    stack.append((c, False))

    for r in roots:
        visit(r)
    return order
