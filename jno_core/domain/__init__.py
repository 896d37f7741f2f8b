"""Domains and their collocation point sets.

Shapes: ``line``, ``rect``, ``box`` (3-D), ``disk``, ``poly`` (a simple polygon) and
differences (``rect(...) - disk(...)``, a plate with a hole); point clouds ``from_array``.
Each shape domain has the tags ``"interior"`` and ``"boundary"`` (plus its named sides, and
``"initial"`` with ``time=(t0, t1, nt)``). ``domain.variable(tag)`` gives the grid points
(uniform spacing ``mesh_size``, one number or one per axis, ``n = round(length /
mesh_size)`` intervals per axis); ``domain.variable(tag, sample=(n, "sobol"))`` draws ``n``
points exactly on the shape (see :mod:`.samplers`), reproducibly from the domain's
``seed`` (default: ``jno.setup(seed=...)``); ``normals=True`` adds the outward unit normal.

Modules: :mod:`.shapes` (geometry), :mod:`.samplers` (unit-cube samplers and seeds),
:mod:`.time` (the time axis), :mod:`.from_array` (point clouds and observation data),
:mod:`.remap` (evaluation on another domain).
"""

from __future__ import annotations

from typing import Any, Sequence

from . import samplers
from ._base import Domain, PointSet, domain_records, point_set
from .device import device_sampler
from .from_array import ArrayDomain, from_array
from .remap import points_on
from .samplers import SAMPLERS, tag_rng
from .shapes import Box, Difference, Disk, Interval, Polygon, Rectangle, Shape
from .time import TimeAxis

__all__ = [
    "Domain", "PointSet", "ArrayDomain", "point_set", "domain_records", "points_on",
    "line", "rect", "box", "disk", "poly", "difference", "from_array",
    "Shape", "Interval", "Rectangle", "Box", "Disk", "Polygon", "Difference", "TimeAxis",
    "SAMPLERS", "tag_rng", "samplers", "device_sampler",
]


def line(mesh_size: Any = 0.01, x_range: tuple[float, float] = (0.0, 1.0), *, time: Any = None,
         seed: int | None = None) -> Domain:
    """The interval ``x_range``: grid ``"interior"`` (the ``n - 1`` inner grid points),
    ``"boundary"`` (the two end points), ``"left"``, ``"right"``; with ``time=(t0, t1, nt)``
    coordinates ``(x, t)`` and the tag ``"initial"``."""
    return Domain(Interval(*_pair(x_range, "x_range")), mesh_size=mesh_size, time=time, seed=seed)


def rect(mesh_size: Any = 0.05, x_range: tuple[float, float] = (0.0, 1.0),
         y_range: tuple[float, float] = (0.0, 1.0), *, time: Any = None, seed: int | None = None) -> Domain:
    """The rectangle ``x_range x y_range``: interior tensor grid, the four sides ``"left"``,
    ``"right"``, ``"bottom"``, ``"top"`` (each with its grid points, corners included) and
    ``"boundary"`` = all sides, corners once. ``mesh_size=(dx, dy)`` sets each axis."""
    return Domain(Rectangle(x_range, y_range), mesh_size=mesh_size, time=time, seed=seed)


def box(mesh_size: Any = 0.1, x_range: tuple[float, float] = (0.0, 1.0),
        y_range: tuple[float, float] = (0.0, 1.0), z_range: tuple[float, float] = (0.0, 1.0), *,
        time: Any = None, seed: int | None = None) -> Domain:
    """The 3-D box: sides ``left``/``right`` (x), ``bottom``/``top`` (y), ``front``/``back`` (z)."""
    return Domain(Box(x_range, y_range, z_range), mesh_size=mesh_size, time=time, seed=seed)


def disk(center: Sequence[float] = (0.0, 0.0), radius: float = 1.0, *, mesh_size: Any = 0.05,
         time: Any = None, seed: int | None = None) -> Domain:
    """The disk of ``radius`` around ``center``: ``"interior"`` and ``"boundary"`` (the
    circle, outward normals ``(p - center) / radius``)."""
    return Domain(Disk(center, radius), mesh_size=mesh_size, time=time, seed=seed)


def poly(vertices: Any, *, mesh_size: Any = 0.05, time: Any = None, seed: int | None = None) -> Domain:
    """A simple polygon (e.g. an L-shape) from its vertices in boundary order (either
    orientation); a self-intersecting one is an error."""
    return Domain(Polygon(vertices), mesh_size=mesh_size, time=time, seed=seed)


def difference(outer: Domain, inner: Domain) -> Domain:
    """``outer - inner`` (same as the ``-`` operator): tags ``interior``, ``boundary``,
    ``outer``, ``inner`` and the outer shape's named sides."""
    return outer - inner


def _pair(r: Any, what: str) -> tuple[float, float]:
    try:
        lo, hi = map(float, r)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (lo, hi), received {r!r}.") from None
    return lo, hi
