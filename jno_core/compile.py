"""Compile expressions into pure JAX functions.

``evaluate(node, env)`` computes a node's array from an :class:`Env` holding the parameters
(``{trainable key: pytree}``), the point arrays (``{point-set key: (N, D)}``), the weights of
weighting schemes and host-fed inputs. Everything that changes between calls is an input,
so a compiled function never retraces when values change.

Derivatives with respect to coordinates are computed by forward-mode JVPs of the whole field
along one coordinate column: for pointwise expressions (each point's value depends only on that
point) this gives exactly the per-point derivative, and nesting JVPs gives higher orders.
"""

from __future__ import annotations

import os
import itertools
import threading
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from . import expr as E
from .errors import ShapeError
from .masks import flatten_selected, unflatten_selected

__all__ = ["Env", "evaluate", "node_key", "trainable_key", "check_pointwise", "residual_of"]

UNARY: dict[str, Callable[..., Any]] = {
    "neg": jnp.negative,
    "abs": jnp.abs,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "exp": jnp.exp,
    "log": jnp.log,
    "tanh": jnp.tanh,
    "sinh": jnp.sinh,
    "cosh": jnp.cosh,
    "sqrt": jnp.sqrt,
    "square": jnp.square,
    "arctan": jnp.arctan,
    "arcsin": jnp.arcsin,
    "arccos": jnp.arccos,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "sign": jnp.sign,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
}

BINARY: dict[str, Callable[..., Any]] = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div": jnp.divide,
    "pow": jnp.power,
    "maximum": jnp.maximum,
    "minimum": jnp.minimum,
    "arctan2": jnp.arctan2,
}


_key_serials = itertools.count()
_key_lock = threading.Lock()


def trainable_key(t: Any) -> str:
    """The key of a network or trainable parameter in ``Env.params``: ``"<name>#<n>"``, ``n``
    counting the trainables that got a key in this process (unique even for equal names).

    A serial rather than ``id(t)``: the keys name the compiled programs' arguments and
    results, so a key that changed from process to process (an address) made every rerun
    of the same script a new program for the persistent compilation cache
    (:mod:`jno_core.compile_cache`)."""
    key = vars(t).get("_jno_key")
    if key is None:
        with _key_lock:
            key = vars(t).get("_jno_key")
            if key is None:
                key = f"{t.name}#{next(_key_serials)}"
                t._jno_key = key
    return key


class Env:
    """What one evaluation sees. Cheap to copy with :meth:`replace` (a fresh memo cache)."""

    __slots__ = ("params", "points", "weights", "inputs", "unweighted", "cache", "planned")

    def __init__(
        self,
        params: Mapping[str, Any],
        points: Mapping[str, jax.Array],
        weights: Mapping[str, jax.Array] | None = None,
        inputs: Mapping[str, jax.Array] | None = None,
        unweighted: bool = False,
    ) -> None:
        self.params = params
        self.points = points
        self.weights = weights or {}
        self.inputs = inputs or {}
        self.unweighted = unweighted
        self.cache: dict[Any, Any] = {}
        self.planned: set[int] = set()

    def replace(self, **kw: Any) -> "Env":
        new = Env(
            kw.get("params", self.params),
            kw.get("points", self.points),
            kw.get("weights", self.weights),
            kw.get("inputs", self.inputs),
            kw.get("unweighted", self.unweighted),
        )
        return new


def node_key(node: E.Placeholder) -> tuple:
    """Structural key of ``node`` (memoised on the node); equal keys compute equal values,
    so ``pde.mse`` built twice is evaluated once."""
    k = node.__dict__.get("_jno_key")
    if k is None:
        k = node._key()
        node.__dict__["_jno_key"] = k
    return k


def _view(a: jax.Array, node: E.Placeholder) -> jax.Array:
    """The ``(B, N, ...)`` view of a field (``B = 1``); globals unchanged."""
    return a[None] if node.point_set is not None else a


def _align(arrays: list[jax.Array], nodes: tuple[E.Placeholder, ...]) -> list[jax.Array]:
    """Right-align per-point shapes so fields broadcast point by point."""
    per_point = [a.ndim - 1 if n.point_set is not None else a.ndim for a, n in zip(arrays, nodes)]
    k = max(per_point)
    out = []
    for a, n, d in zip(arrays, nodes, per_point):
        if n.point_set is not None and d < k:
            a = a.reshape(a.shape[:1] + (1,) * (k - d) + a.shape[1:])
        out.append(a)
    return out


def _shape_error(node: E.Placeholder, arrays: list[jax.Array], exc: Exception) -> ShapeError:
    shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
    return ShapeError(
        f"cannot evaluate {node.describe()}: its operands have incompatible shapes ({shapes}) "
        f"[{exc}]. Fields are (N, ...) per point set; index or reduce one operand so the "
        "per-point shapes broadcast (e.g. u[..., 0] for one output component)."
    )


def check_pointwise(node: E.Derivative) -> None:
    """A coordinate derivative is only per-point exact when nothing below it mixes points."""
    for n in E.walk([node.children[0]]):
        if n.point_set is None and any(c.point_set is not None for c in n.children):
            raise ShapeError(
                f"cannot differentiate with respect to {node.var.name}: the expression contains "
                f"{n.describe()}, which combines values of different points (a reduction, "
                "'@' or a non-'...' index). Differentiate the pointwise field first, then reduce."
            )


def evaluate(node: E.Placeholder, env: Env) -> jax.Array:
    """The array of ``node`` under ``env`` (memoised per env by structural key)."""
    key = node_key(node)
    hit = env.cache.get(key)
    if hit is not None:
        return hit
    if node.uid not in env.planned:
        plan_derivatives([node], env)
        hit = env.cache.get(key)
        if hit is not None:
            return hit
    val = _evaluate(node, env)
    env.cache[key] = val
    return val


def _evaluate(node: E.Placeholder, env: Env) -> jax.Array:
    """Compute ``node``'s array under ``env`` (no memo lookup: :func:`evaluate` does that),
    dispatching on the node's type; an extension node's own ``jno_evaluate`` comes first."""
    ext = getattr(node, "jno_evaluate", None)
    if ext is not None:
        return ext(env, evaluate)
    if isinstance(node, E.Constant):
        return jnp.asarray(node.value)
    if isinstance(node, E.Variable):
        return _variable(node, env)
    if isinstance(node, E.TrackerExpr) or type(node) is E.Placeholder:
        return evaluate(node.children[0], env)
    if isinstance(node, E.StopGradient):
        return jax.lax.stop_gradient(evaluate(node.children[0], env))
    if isinstance(node, E.Unary):
        return _unary(node, env)
    if isinstance(node, E.Binary):
        return _binary(node, env)
    if isinstance(node, E.Reduce):
        return _reduce(node, evaluate(node.children[0], env))
    if isinstance(node, E.Index):
        return _index(node, env)
    if isinstance(node, E.Derivative):
        return _derivative(node, env)
    if isinstance(node, E.JacobianNode):
        parts = [evaluate(p, env) for p in node.parts]
        return jnp.stack(parts, axis=-1)
    if isinstance(node, E.Concat):
        return _concat(node, env)
    if isinstance(node, E.FunctionNode):
        return _function(node, env)
    if isinstance(node, E.NetworkCall):
        return _network_call(node, env)
    if isinstance(node, E.NetworkGradient):
        return _network_gradient(node, env)
    from .parameter import TrainableParameter

    if isinstance(node, TrainableParameter):
        return env.params[trainable_key(node)]
    raise TypeError(f"jno cannot evaluate expression node {type(node).__name__}.")


def _variable(node: E.Variable, env: Env) -> jax.Array:
    """The coordinate column ``(N,)`` of ``node`` in its point set's ``(N, D)`` array."""
    try:
        pts = env.points[node.point_set]
    except KeyError:
        raise ShapeError(
            f"no points for variable {node.name} of point set {node.point_set!r}; the "
            f"solver knows {sorted(env.points)}."
        ) from None
    return pts[:, node.index]


def _unary(node: E.Unary, env: Env) -> jax.Array:
    """An elementwise function of one operand, or ``transpose`` of its ``(B, N, ...)`` view."""
    x = evaluate(node.children[0], env)
    if node.op == "transpose":
        return jnp.transpose(_view(x, node.children[0]))
    return UNARY[node.op](x)


def _binary(node: E.Binary, env: Env) -> jax.Array:
    """An elementwise operator of two operands broadcast point by point (per-point shapes
    right-aligned), or ``matmul`` of their ``(B, N, ...)`` views; incompatible shapes raise
    :class:`ShapeError` naming them."""
    a, b = (evaluate(c, env) for c in node.children)
    try:
        if node.op == "matmul":
            return jnp.matmul(_view(a, node.children[0]), _view(b, node.children[1]))
        a, b = _align([a, b], node.children)
        return BINARY[node.op](a, b)
    except (TypeError, ValueError) as exc:
        raise _shape_error(node, [a, b], exc) from exc


def _index(node: E.Index, env: Env) -> jax.Array:
    """``x[key]``: per point (``u[..., 0]``) or on the ``(B, N, ...)`` view (mixes points)."""
    x = evaluate(node.children[0], env)
    try:
        return x[node.key] if node.per_point else _view(x, node.children[0])[node.key]
    except (IndexError, TypeError) as exc:
        raise ShapeError(
            f"index {node.key!r} does not fit an array of shape "
            f"{tuple(_view(x, node.children[0]).shape)} [{exc}]."
        ) from exc


def _concat(node: E.Concat, env: Env) -> jax.Array:
    """Concatenate (or, for :class:`~jno_core.expr.Stack`, stack) the operands along
    ``node.axis``; in a field, ``(N,)`` operands become ``(N, 1)`` and globals are broadcast
    to ``(N, ...)``."""
    xs = [evaluate(c, env) for c in node.children]
    if node.point_set is not None:
        xs = [x[:, None] if (c.point_set is not None and x.ndim == 1) else x
              for x, c in zip(xs, node.children)]
        n = xs[0].shape[0] if node.children[0].point_set is not None else None
        xs = [x if c.point_set is not None else jnp.broadcast_to(x, (n,) + x.shape[-1:])
              for x, c in zip(xs, node.children)]
    if isinstance(node, E.Stack):
        return jnp.stack(xs, axis=node.axis)
    return jnp.concatenate(xs, axis=node.axis)


def _reduce(node: E.Reduce, x: jax.Array) -> jax.Array:
    child = node.children[0]
    op, axis = node.op, node.axis
    if op == "mse":
        return jnp.mean(jnp.square(x))
    v = _view(x, child) if axis is not None else x
    if op == "norm":
        if axis is None:
            return jnp.linalg.norm(jnp.ravel(v))
        return jnp.linalg.norm(v, axis=axis, **node.kw)
    fn = {"mean": jnp.mean, "sum": jnp.sum, "max": jnp.max, "min": jnp.min,
          "std": jnp.std, "var": jnp.var, "prod": jnp.prod}[op]
    return fn(v, axis=axis, **node.kw)


#: how coordinate derivatives are computed (see :func:`_derivative`); benchmarks switch it
DERIVATIVE_MODE = os.environ.get("JNO_DERIVATIVES", "chain")


def _derivative(node: E.Derivative, env: Env) -> jax.Array:
    check_pointwise(node)
    if DERIVATIVE_MODE == "nested":
        return _nested(node, env)
    _derivative_chain(node.children[0], node.var, node.order, env)
    return env.cache[node_key(node)]


def _nested(node: E.Derivative, env: Env) -> jax.Array:
    var = node.var
    pts = env.points[var.point_set]
    col = pts[:, var.index]
    child = node.children[0]

    def field(c: jax.Array) -> jax.Array:
        sub = env.replace(points={**env.points, var.point_set: pts.at[:, var.index].set(c)})
        return evaluate(child, sub)

    f = field
    for _ in range(node.order):
        f = (lambda g: lambda c: jax.jvp(g, (c,), (jnp.ones_like(c),))[1])(f)
    return f(col)


def _with_column(pts: jax.Array, idx: int, c: jax.Array) -> jax.Array:
    """``pts`` with column ``idx`` replaced by ``c`` (a concatenation: Taylor mode has no rule
    for scatter)."""
    return jnp.concatenate([pts[:, :idx], c[:, None].astype(pts.dtype), pts[:, idx + 1:]], axis=1)


def _chain_key(child: E.Placeholder, var: E.Variable, j: int) -> tuple:
    return node_key(child) if j == 0 else ("Derivative", j, node_key(var), node_key(child))


def _derivative_chain(child: E.Placeholder, var: E.Variable, order: int, env: Env) -> None:
    """Cache ``child`` and its derivatives of orders ``1..order`` with respect to ``var``
    from one pass: ``order`` nested JVPs of the field along the coordinate column, each
    level returning the whole chain ``(f, f', ..., f^(j))`` (so ``u``, ``u.d(x)`` and
    ``u.d2(x)`` share one computation), or one Taylor-mode pass (``jax.experimental.jet``,
    Bettencourt et al. 2019) in mode ``"jet"``."""
    if env.cache.get(_chain_key(child, var, order)) is not None:
        return
    pts = env.points[var.point_set]
    col = pts[:, var.index]

    def field(c: jax.Array) -> jax.Array:
        sub = env.replace(points={**env.points, var.point_set: _with_column(pts, var.index, c)})
        return evaluate(child, sub)

    ones = jnp.ones_like(col)
    if DERIVATIVE_MODE == "jet" and order >= 2:
        from jax.experimental import jet

        primal, series = jet.jet(field, (col,), ((ones,) + (jnp.zeros_like(col),) * (order - 1),))
        vals = [primal] + list(series)
    else:
        def lift(g: Any) -> Any:
            def h(c: jax.Array) -> tuple:
                p, t = jax.jvp(g, (c,), (ones,))
                return p + (t[-1],)
            return h

        g: Any = lambda c: (field(c),)
        for _ in range(order):
            g = lift(g)
        vals = list(g(col))
    for j, v in enumerate(vals):
        env.cache.setdefault(_chain_key(child, var, j), v)


def plan_derivatives(roots: Any, env: Env) -> None:
    """Before evaluating ``roots``: compute every coordinate derivative chain they need at
    its highest order first (``u.d2(x)`` before ``u.d(x)`` and ``u``), so lower orders come
    from the same pass. Called by :func:`evaluate` on the first miss of a subtree."""
    groups: dict[tuple, tuple[E.Placeholder, E.Variable, int]] = {}
    for n in E.walk(list(roots)):
        env.planned.add(n.uid)
        if isinstance(n, E.Derivative):
            k = (node_key(n.children[0]), node_key(n.var))
            prev = groups.get(k)
            if prev is None or prev[2] < n.order:
                groups[k] = (n.children[0], n.var, n.order)
    if DERIVATIVE_MODE == "nested":
        return
    for child, var, order in groups.values():
        if env.cache.get(_chain_key(child, var, order)) is None and env.points.get(var.point_set) is not None:
            check_pointwise(E.Derivative(child, var, order))
            _derivative_chain(child, var, order, env)


def _function(node: E.FunctionNode, env: Env) -> jax.Array:
    args = [evaluate(c, env) for c in node.children]
    out = jnp.asarray(node.fn(*args))
    if node.arg_point_set is not None:
        n = env.points[node.arg_point_set].shape[0]
        is_field = out.ndim >= 1 and out.shape[0] == n
        node.point_set = node.arg_point_set if is_field else None
    return out


def _network_call(node: E.NetworkCall, env: Env) -> jax.Array:
    net = node.net
    cols = []
    n = env.points[node.point_set].shape[0]
    for c in node.children:
        a = evaluate(c, env)
        if c.point_set is None:
            a = jnp.broadcast_to(jnp.ravel(a), (n, jnp.size(a)))
        elif a.ndim == 1:
            a = a[:, None]
        else:
            a = a.reshape(n, -1)
        cols.append(a)
    inputs = jnp.concatenate(cols, axis=1) if len(cols) > 1 else cols[0]
    return net.apply(env.params[trainable_key(net)], inputs)


def _is_pointwise(field: E.Placeholder) -> bool:
    """Whether every value of ``field`` depends only on its own point (no reduction, ``@`` or
    non-``...`` index mixes points below it)."""
    return not any(n.point_set is None and any(c.point_set is not None for c in n.children)
                   for n in E.walk([field]))


def _network_gradient(node: E.NetworkGradient, env: Env) -> jax.Array:
    """``d field / d theta`` ``(N, ..., P)``. A pointwise field is differentiated one point at
    a time (``vmap`` over points of ``jacrev`` of that point's value): cost and memory
    ``O(N * P)``; ``jacrev`` of the whole field would run ``N`` backward passes through all
    ``N`` points (``O(N^2)``). Other expressions use ``jacrev`` of the whole value."""
    key = trainable_key(node.net)
    p = env.params[key]
    flat = flatten_selected(p, node.mask)
    child = node.children[0]

    def params_at(theta: jax.Array) -> dict[str, Any]:
        return {**env.params, key: unflatten_selected(p, node.mask, theta)}

    ps = child.point_set
    if ps is not None and _is_pointwise(child):
        pts = env.points[ps]

        def at_point(pt: jax.Array) -> jax.Array:
            def f(theta: jax.Array) -> jax.Array:
                sub = env.replace(params=params_at(theta), points={**env.points, ps: pt[None]})
                return evaluate(child, sub)[0]

            return jax.jacrev(f)(flat)

        return jax.vmap(at_point)(pts)

    def f(theta: jax.Array) -> jax.Array:
        return evaluate(child, env.replace(params=params_at(theta)))

    return jax.jacrev(f)(flat)


def residual_of(constraint: E.Placeholder) -> E.Placeholder:
    """The pointwise field a constraint loss reduces: for ``pde.mse`` that is ``pde`` (the
    residual itself, not its square); for ``w * pde.mse`` the same ``pde``. A constraint with
    no reduction of a field is its own residual (a scalar)."""
    frontier = [constraint]
    while frontier:
        nxt = []
        for n in frontier:
            if isinstance(n, E.Reduce) and n.children[0].point_set is not None:
                return n.children[0]
            nxt.extend(n.children)
        frontier = nxt
    return constraint
