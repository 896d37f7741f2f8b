"""Domains and their collocation point sets.

``jno.domain.line(mesh_size=0.05, x_range=(0, 1))`` and ``jno.domain.rect(mesh_size=0.02,
x_range=(0, 1), y_range=(0, 1))`` place points on a uniform grid of spacing ``mesh_size``
(``n = round(length / mesh_size)`` intervals per axis): deterministic for a given mesh size.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .errors import ShapeError
from .expr import Variable

__all__ = ["Domain", "PointSet", "line", "rect", "point_set"]

_dom_ids = itertools.count()
#: every point set by key (variables refer to their points by this key)
_POINT_SETS: dict[str, "PointSet"] = {}


def point_set(key: str) -> "PointSet":
    """The :class:`PointSet` a variable's ``point_set`` key names."""
    return _POINT_SETS[key]


class PointSet:
    """The points of one tag of a domain: ``points`` has shape ``(N, dim)`` (float32).
    Returned as the last element of ``domain.variable(tag)``."""

    def __init__(self, key: str, tag: str, points: np.ndarray, names: tuple[str, ...]) -> None:
        self.key = key
        self.tag = tag
        self.points = np.asarray(points, dtype=np.float32)
        self.names = names

    @property
    def n(self) -> int:
        return int(self.points.shape[0])

    def __repr__(self) -> str:
        return f"<PointSet {self.key}: {self.points.shape[0]} points x {self.points.shape[1]}>"


class Domain:
    """A domain with named point sets (tags)."""

    def __init__(self, kind: str, sets: dict[str, np.ndarray], coords: tuple[str, ...], mesh_size: float) -> None:
        self.kind = kind
        self.id = next(_dom_ids)
        self.coords = coords
        self.mesh_size = mesh_size
        self._sets = {
            tag: PointSet(f"{kind}{self.id}:{tag}", tag, pts, coords) for tag, pts in sets.items()
        }
        for ps in self._sets.values():
            _POINT_SETS[ps.key] = ps

    @property
    def tags(self) -> list[str]:
        return list(self._sets)

    def points(self, tag: str) -> np.ndarray:
        return self._point_set(tag).points

    def _point_set(self, tag: str) -> PointSet:
        if tag not in self._sets:
            raise ShapeError(
                f"unknown variable tag {tag!r} for a {self.kind} domain; valid tags are "
                f"{', '.join(repr(t) for t in self._sets)}."
            )
        return self._sets[tag]

    def variable(self, tag: str) -> tuple[Any, ...]:
        """The coordinate variables of the points tagged ``tag`` followed by the
        :class:`PointSet` (``x, _ = line.variable("interior")``,
        ``x, y, _ = rect.variable("boundary")``)."""
        ps = self._point_set(tag)
        vars_ = tuple(Variable(ps.key, i, name) for i, name in enumerate(self.coords))
        return vars_ + (ps,)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={s.n}" for t, s in self._sets.items())
        return f"<jno {self.kind} domain mesh_size={self.mesh_size}: {sizes}>"


def _intervals(lo: float, hi: float, mesh_size: float) -> int:
    if isinstance(mesh_size, bool) or not isinstance(mesh_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"mesh_size must be a number (the grid spacing, e.g. mesh_size=0.01), received "
                        f"{type(mesh_size).__name__} {mesh_size!r}.")
    if not np.isfinite(mesh_size) or not mesh_size > 0:
        raise ValueError(f"mesh_size must be > 0, received {mesh_size!r}.")
    if not hi > lo:
        raise ValueError(f"a range must have lo < hi, received ({lo}, {hi}).")
    if mesh_size > hi - lo:
        raise ValueError(f"mesh_size {mesh_size!r} is larger than the range ({lo}, {hi}) of length {hi - lo}; "
                         f"expected a grid spacing smaller than the domain, e.g. mesh_size={(hi - lo) / 100:g}.")
    return max(2, int(round((hi - lo) / mesh_size)))


def line(mesh_size: float = 0.01, x_range: tuple[float, float] = (0.0, 1.0)) -> Domain:
    """The interval ``x_range`` with ``n - 1`` interior grid points and the two end points
    as ``"boundary"`` (also ``"left"`` and ``"right"``)."""
    lo, hi = map(float, x_range)
    n = _intervals(lo, hi, mesh_size)
    xs = np.linspace(lo, hi, n + 1)
    return Domain(
        "line",
        {
            "interior": xs[1:-1, None],
            "boundary": np.array([[lo], [hi]]),
            "left": np.array([[lo]]),
            "right": np.array([[hi]]),
        },
        ("x",),
        mesh_size,
    )


def rect(
    mesh_size: float = 0.05,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
) -> Domain:
    """The rectangle ``x_range x y_range``: interior tensor grid, the four sides (each with
    its ``n + 1`` grid points, corners included) and ``"boundary"`` = all sides, corners once."""
    x0, x1 = map(float, x_range)
    y0, y1 = map(float, y_range)
    nx, ny = _intervals(x0, x1, mesh_size), _intervals(y0, y1, mesh_size)
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    X, Y = np.meshgrid(xs[1:-1], ys[1:-1], indexing="ij")
    interior = np.stack([X.ravel(), Y.ravel()], axis=1)
    left = np.stack([np.full_like(ys, x0), ys], 1)
    right = np.stack([np.full_like(ys, x1), ys], 1)
    bottom = np.stack([xs, np.full_like(xs, y0)], 1)
    top = np.stack([xs, np.full_like(xs, y1)], 1)
    boundary = np.concatenate([bottom, top, left[1:-1], right[1:-1]])
    return Domain(
        "rect",
        {
            "interior": interior,
            "boundary": boundary,
            "left": left,
            "right": right,
            "bottom": bottom,
            "top": top,
        },
        ("x", "y"),
        mesh_size,
    )
