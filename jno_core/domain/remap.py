"""Evaluation on another domain: ``crux.eval(exprs, domain=other)``.

Each variable of the expressions belongs to a point set with a tag (``"interior"``,
``"boundary"``, ...). :func:`points_on` looks every such tag up in ``other`` and returns the
points that replace the training points of that set, so a network, a derivative or a whole
residual is evaluated at ``other``'s points (a test set or a reference grid).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError
from ..expr import Placeholder, Variable, walk
from ._base import Domain, point_set

__all__ = ["points_on"]


def points_on(exprs: Sequence[Placeholder], domain: Domain) -> dict[str, np.ndarray]:
    """``{point-set key: (M, C) float32}``: for every point set the variables of ``exprs``
    use, the points of the same tag in ``domain`` (its grid, or its array for
    ``from_array``). Raises :class:`~jno_core.errors.ShapeError` before anything compiles
    when ``domain`` lacks a tag or has too few columns (e.g. normals or values)."""
    if not isinstance(domain, Domain):
        raise TypeError(
            f"eval(domain=...) expects a jno domain (e.g. jno.domain.from_array({{'interior': pts}})), "
            f"received {type(domain).__name__}."
        )
    needed: dict[str, int] = {}
    for n in walk(list(exprs)):
        if isinstance(n, Variable):
            needed[n.point_set] = max(needed.get(n.point_set, 0), n.index + 1)
    out: dict[str, np.ndarray] = {}
    for key, ncols in needed.items():
        tag = point_set(key).tag
        if tag not in domain.tags:
            raise ShapeError(
                f"eval(domain=...): the expressions use points tagged {tag!r}, which the given domain "
                f"does not have; its tags are {', '.join(repr(t) for t in domain.tags)}. Add a {tag!r} "
                f"entry, e.g. jno.domain.from_array({{{tag!r}: points}})."
            )
        pts = domain._default_set(tag).points
        src = point_set(key)
        if pts.shape[1] < ncols:
            missing = ", ".join(src.names[pts.shape[1]:ncols])
            raise ShapeError(
                f"eval(domain=...): tag {tag!r} of the given domain has {pts.shape[1]} columns "
                f"({', '.join(domain._default_set(tag).names)}) but the expressions read {ncols} "
                f"({', '.join(src.names[:ncols])}); missing: {missing}."
            )
        out[key] = pts
    return out
