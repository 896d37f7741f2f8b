"""Point clouds from arrays: ``jno.domain.from_array({"obs": points})``, optionally with
measured values at those points (observation data for inverse problems and data
assimilation)::

    dom = jno.domain.from_array({"obs": np.stack([x, t], 1)}, values={"obs": u_measured})
    xo, to, _ = dom.variable("obs")
    u_obs = dom.values("obs")                     # a field on the same points
    data = (u_net(xo, to) - u_obs).mse

The columns of each array are the coordinates in the order ``variable()`` returns them (for
a time-dependent problem: space, then time), so a ``from_array`` domain with the tags of a
training domain is a test set for ``crux.eval(exprs, domain=...)``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ShapeError
from ..expr import Stack, Variable
from . import samplers as S
from ._base import AXIS_NAMES, Domain, PointSet

__all__ = ["ArrayDomain", "from_array"]


def _as_points(tag: str, a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ShapeError(
            f"from_array: tag {tag!r} has an array of rank {arr.ndim} (shape {arr.shape}); expected rank 2, "
            "(N, D) with one row per point and one column per coordinate. For 1-D points use "
            "x.reshape(-1, 1); for several coordinates np.stack([x, t], axis=1)."
        )
    if arr.shape[0] == 0:
        raise ShapeError(f"from_array: tag {tag!r} has no points (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise ShapeError(f"from_array: tag {tag!r} has non-finite coordinates (NaN or inf).")
    return arr


class ArrayDomain(Domain):
    """A domain whose tags are given point arrays (and optional per-point values)."""

    def __init__(self, tags: Mapping[str, Any], values: Mapping[str, Any] | None = None,
                 names: Sequence[str] | None = None, seed: int | None = None) -> None:
        if not isinstance(tags, Mapping) or not tags:
            raise TypeError(
                f"from_array expects a dict {{tag: (N, D) array}}, received {type(tags).__name__}; e.g. "
                "jno.domain.from_array({'obs': np.stack([x, t], 1)})."
            )
        arrays = {str(t): _as_points(str(t), a) for t, a in tags.items()}
        dims = {a.shape[1] for a in arrays.values()}
        if len(dims) != 1:
            raise ShapeError(
                "from_array: the tags have different numbers of coordinates "
                f"({', '.join(f'{t}: {a.shape[1]}' for t, a in arrays.items())}); every tag of one domain "
                "has the same columns."
            )
        D = dims.pop()
        if names is None:
            names = AXIS_NAMES[:D] if D <= 3 else tuple(f"x{i}" for i in range(D))
        names = tuple(names)
        if len(names) != D:
            raise ShapeError(f"from_array: names={names} has {len(names)} entries for {D} columns.")
        self._arrays = arrays
        self._values: dict[str, np.ndarray] = {}
        for t, v in (values or {}).items():
            if t not in arrays:
                raise ShapeError(
                    f"from_array: values for tag {t!r}, which has no points; tags: {sorted(arrays)}."
                )
            va = np.asarray(v, dtype=np.float64)
            if va.ndim == 1:
                va = va[:, None]
            if va.ndim != 2 or va.shape[0] != arrays[t].shape[0]:
                raise ShapeError(
                    f"from_array: values of tag {t!r} have shape {np.shape(v)} but the tag has "
                    f"{arrays[t].shape[0]} points (shape {arrays[t].shape}); expected ({arrays[t].shape[0]},) "
                    f"or ({arrays[t].shape[0]}, k): one value (row) per point."
                )
            self._values[t] = va
        super().__init__(None, time=None, seed=seed, kind="points")
        self.coords = names

    @property
    def tags(self) -> list[str]:
        return list(self._arrays)

    def _is_boundary(self, tag: str) -> bool:
        return False

    def _grid(self, tag: str) -> tuple[np.ndarray, np.ndarray | None]:
        return self._arrays[tag], None

    def _sample(self, tag: str, n: int, sampler: Any, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        raise ValueError(
            f"tag {tag!r} of a from_array domain is a fixed point cloud; sample=(n, 'grid') draws a "
            f"subset of its points, {S.sampler_name(sampler)!r} cannot place new ones."
        )

    def _get_set(self, tag: str, n: int | None, sampler: Any, normals: bool) -> PointSet:
        ps = super()._get_set(tag, n, sampler, normals)
        if tag in self._values and ps.points.shape[1] == len(self.coords):
            vals = self._values[tag]
            if n is not None and n != len(vals):
                idx = np.sort(S.tag_rng(self._seed(), tag).choice(len(vals), size=n, replace=False))
                vals = vals[idx]
            ps.points = np.concatenate([ps.points, vals.astype(np.float32)], axis=1)
            ps.names = ps.names + tuple(f"value{j}" for j in range(vals.shape[1]))
        return ps

    def values(self, tag: str, sample: Any = None) -> Any:
        """The measured values of ``tag`` as a field on the same points as
        ``variable(tag, sample)``: ``(N,)`` for one value per point, ``(N, k)`` for ``k``."""
        if tag not in self._values:
            raise ShapeError(
                f"tag {tag!r} has no values; pass them as from_array({{...}}, values={{{tag!r}: array}}). "
                f"Tags with values: {sorted(self._values)}."
            )
        n, sampler = self._parse_sample(sample)
        ps = self._get_set(tag, n, sampler, False)
        D = len(self.coords)
        k = self._values[tag].shape[1]
        cols = [Variable(ps.key, D + j, f"{tag}_value{j}") for j in range(k)]
        return cols[0] if k == 1 else Stack(cols)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["tags"] = {t: list(a.shape) for t, a in getattr(self, "_arrays", {}).items()}
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={len(a)}" for t, a in self._arrays.items())
        return f"<jno from_array domain ({', '.join(self.coords)}): {sizes}>"


def from_array(tags: Mapping[str, Any], values: Mapping[str, Any] | None = None, *,
               names: Sequence[str] | None = None, seed: int | None = None) -> ArrayDomain:
    """``jno.domain.from_array({"obs": points})``: a point-cloud domain, one tag per array
    ``(N, D)`` (columns: the coordinates in ``variable()`` order, space then time).

    :param values: ``{tag: (N,) or (N, k)}`` measured values at a tag's points, read back as a
        field with :meth:`ArrayDomain.values`.
    :param names: coordinate names (default ``x, y, z``).
    """
    return ArrayDomain(tags, values=values, names=names, seed=seed)
