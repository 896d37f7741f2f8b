"""Replacing a solver's collocation points between chunks without recompiling
(:meth:`jno_core.core.Core.set_points`, :meth:`jno_core.context.SolveContext.set_points`).

The compiled chunk takes the point sets as arguments (never as constants), so new points of
the same shape, dtype and placement run on the same executable. This module checks those three
and places the array on the solver's device layout (sharded along ``"data"`` like the set it
replaces, or on the default device); resampling strategies (``jno.resampling``) use it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .sharding import place_points

__all__ = ["replace_points"]


def replace_points(crux: Any, key: str, points: Any) -> jax.Array:
    """Replace the point set ``key`` of ``crux`` with ``points`` ``(N, C)`` and return the
    placed array. ``N``, ``C`` and the dtype must equal the current set's (the compiled chunk
    is reused; a different count would need a recompile and is an error). A device array
    already placed like the current set is used as is (no copy, no host round trip)."""
    if key not in crux._points:
        raise KeyError(
            f"set_points: no point set {key!r} in this solver; its point sets are "
            f"{sorted(crux._points)}. Pass the key of a variable's point set (PointSet.key)."
        )
    old = crux._points[key]
    shape = tuple(np.shape(points))
    dtype = jnp.result_type(points)
    if shape != tuple(old.shape) or dtype != old.dtype:
        raise ValueError(
            f"set_points({key!r}, ...): expected an array of shape {tuple(old.shape)} and dtype {old.dtype} "
            f"(the current points; the compiled step is reused, so the count and columns stay fixed), "
            f"received shape {shape} and dtype {dtype}. Draw exactly {old.shape[0]} points with "
            f"{old.shape[1]} columns as {old.dtype}."
        )
    mesh = crux._layout.mesh
    if isinstance(points, jax.Array) and points.sharding == old.sharding:
        new = points
    elif mesh is not None:
        new = place_points({key: points}, mesh)[key]
    else:
        new = jax.device_put(jnp.asarray(points), list(old.devices())[0])
    crux._points = {**crux._points, key: new}
    crux._base_points = {**crux._base_points, key: new}
    return new
