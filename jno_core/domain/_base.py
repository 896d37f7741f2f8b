"""Point sets, the :class:`Domain` class and the registry variables use to find their points.

A variable refers to its points by a *point-set key*; :func:`point_set` returns the
:class:`PointSet` of a key. Each ``domain.variable(tag, sample=..., normals=...)`` call with
the same arguments returns variables of the same point set.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError
from ..expr import Stack, Variable
from . import samplers as S
from .shapes import Shape, grid_intervals
from .time import TimeAxis, with_time

__all__ = ["Domain", "PointSet", "point_set", "domain_records", "AXIS_NAMES"]

_dom_ids = itertools.count()
#: every point set by key (variables refer to their points by this key)
_POINT_SETS: dict[str, "PointSet"] = {}
#: what every domain drew (for ``config.json``): ``{domain label: description}``
_RECORDS: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()

AXIS_NAMES = ("x", "y", "z")


def point_set(key: str) -> "PointSet":
    """The :class:`PointSet` a variable's ``point_set`` key names."""
    return _POINT_SETS[key]


def domain_records() -> dict[str, dict[str, Any]]:
    """A copy of what every domain of this process drew (shape, time axis, seed, and per
    point set its tag, count and sampler). While a run is open (``jno.setup``), each domain
    that builds a point set is also written to its ``config.json`` under ``"domains"``."""
    with _lock:
        return {k: {**v, "sets": dict(v["sets"])} for k, v in _RECORDS.items()}


def _current_seed() -> int:
    from ..run import current_run

    run = current_run()
    if run is not None:
        try:
            return int(run.config.get("seed", 0))
        except (TypeError, ValueError):
            return 0
    return 0


class PointSet:
    """The points of one tag of a domain: ``points`` has shape ``(N, C)`` (float32), columns
    ``names`` (the coordinates in ``variable()`` order, then normal components ``n_x``, ...
    or data columns). Returned as the last element of ``domain.variable(tag)``."""

    def __init__(self, key: str, tag: str, points: np.ndarray, names: tuple[str, ...],
                 meta: dict[str, Any] | None = None) -> None:
        self.key = key
        self.tag = tag
        self.points = np.asarray(points, dtype=np.float32)
        self.names = tuple(names)
        self.meta = dict(meta or {})

    @property
    def n(self) -> int:
        return int(self.points.shape[0])

    def __repr__(self) -> str:
        return f"<PointSet {self.key}: {self.points.shape[0]} points x {self.points.shape[1]}>"


class Domain:
    """A domain with named point sets (tags): a spatial :class:`~.shapes.Shape`, an optional
    time axis, a grid resolution and a sampling seed.

    :param shape: the spatial shape (``None`` for a point cloud, see :class:`ArrayDomain`).
    :param mesh_size: grid spacing, one number or one per spatial axis.
    :param time: ``(t0, t1, nt)`` makes the domain time-dependent (see :mod:`.time`).
    :param seed: seed of the samplers (default: ``jno.setup(seed=...)``, else 0).
    """

    def __init__(self, shape: Shape | None, mesh_size: Any = 0.05, time: Any = None, seed: int | None = None,
                 kind: str | None = None) -> None:
        self.shape = shape
        self.kind = kind or (shape.kind if shape is not None else "points")
        self.id = next(_dom_ids)
        self.time = TimeAxis(time) if time is not None else None
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"seed must be an integer, received {seed!r}.")
        self.seed = None if seed is None else int(seed)
        self.mesh_size = mesh_size
        if shape is not None:
            self._h = self._check_mesh_size(mesh_size, shape.dim)
            if hasattr(shape, "lo") and hasattr(shape, "hi"):  # the grid is built lazily: check it now
                for lo, hi, h in zip(shape.lo, shape.hi, self._h):
                    grid_intervals(float(lo), float(hi), h)
            space = AXIS_NAMES[: shape.dim] if shape.dim <= 3 else tuple(f"x{i}" for i in range(shape.dim))
            self.coords: tuple[str, ...] = tuple(space) + (("t",) if self.time is not None else ())
        self._sets: dict[Any, PointSet] = {}
        self._grid_cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self.label = f"{self.kind}{self.id}"
        self._record()

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _check_mesh_size(mesh_size: Any, dim: int) -> tuple[float, ...]:
        items = mesh_size if isinstance(mesh_size, (tuple, list)) else [mesh_size]
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"mesh_size must be a number (the grid spacing, e.g. mesh_size=0.01) or one per "
                                f"spatial axis, received {type(v).__name__} {v!r}.")
        h = np.atleast_1d(np.asarray(mesh_size, dtype=np.float64))
        if h.ndim != 1 or len(h) not in (1, dim):
            raise ValueError(
                f"mesh_size must be one number or one per spatial axis ({dim}), received {mesh_size!r}; "
                "the time resolution is the nt of time=(t0, t1, nt)."
            )
        if not np.all(np.isfinite(h)) or not np.all(h > 0):
            raise ValueError(f"mesh_size must be > 0, received {mesh_size!r}.")
        return tuple(float(v) for v in np.broadcast_to(h, (dim,)))

    def describe(self) -> dict[str, Any]:
        """Shape, time axis, grid spacing and seed (for ``config.json``)."""
        out: dict[str, Any] = {"shape": self.shape.describe() if self.shape is not None else {"kind": self.kind}}
        if self.time is not None:
            out["time"] = self.time.describe()
        if self.shape is not None:
            out["mesh_size"] = list(self._h)
        out["seed"] = self.seed
        return out

    def _record(self, key: str | None = None, meta: dict[str, Any] | None = None) -> None:
        with _lock:
            rec = _RECORDS.setdefault(self.label, {**self.describe(), "sets": {}})
            if key is not None:
                rec["sets"][key] = meta
        if key is not None:
            from ..run import current_run

            run = current_run()
            if run is not None and not run.closed:
                with _lock:
                    rec = {**_RECORDS[self.label], "sets": dict(_RECORDS[self.label]["sets"])}
                run.config.setdefault("domains", {})[self.label] = rec
                run.write_config()

    # ------------------------------------------------------------------ tags
    @property
    def tags(self) -> list[str]:
        """The tags ``variable()`` accepts."""
        assert self.shape is not None
        out = ["interior", "boundary"] + [s for s in self.shape.sides if s != "boundary"]
        if self.time is not None:
            out.append("initial")
        return out

    def _check_tag(self, tag: str) -> None:
        if tag not in self.tags:
            raise ShapeError(
                f"unknown variable tag {tag!r} for a {self.kind} domain; valid tags are "
                f"{', '.join(repr(t) for t in self.tags)}."
            )

    def _is_boundary(self, tag: str) -> bool:
        return tag not in ("interior", "initial")

    def points(self, tag: str) -> np.ndarray:
        """The grid points of ``tag`` ``(N, len(coords))`` (float32)."""
        return self._default_set(tag).points

    def _point_set(self, tag: str) -> PointSet:
        return self._default_set(tag)

    def _default_set(self, tag: str) -> PointSet:
        return self._get_set(tag, None, "grid", False)

    # ------------------------------------------------------------------ grids
    def _grid(self, tag: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(points, normals or None)`` of ``tag``'s grid (space, then time)."""
        hit = self._grid_cache.get(tag)
        if hit is not None:
            return hit
        shape, h = self.shape, self._h
        assert shape is not None
        if tag == "interior":
            p, n = shape.grid_interior(h), None
            if self.time is not None:
                p = with_time(p, self.time.grid[1:])
        elif tag == "initial":
            bp = shape.grid_boundary(h)["boundary"][0]
            p = with_time(np.concatenate([shape.grid_interior(h), bp]), self.time.grid[:1])
            n = None
        else:
            p, n = shape.grid_boundary(h)[tag]
            if self.time is not None:
                T = self.time.grid
                p = with_time(p, T)
                n = np.tile(n, (len(T), 1))
        self._grid_cache[tag] = (p, n)
        return p, n

    # ------------------------------------------------------------------ sampling
    def _seed(self) -> int:
        return self.seed if self.seed is not None else _current_seed()

    def _sample(self, tag: str, n: int, sampler: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` points of ``tag`` drawn by ``sampler`` (exactly on the shape; rejection where
        the unit-cube map is not onto)."""
        shape = self.shape
        assert shape is not None
        timed = self.time is not None and tag != "initial"
        if tag in ("interior", "initial"):
            d = shape.dim
        else:
            d = shape.boundary_dims
        stream = S.UnitStream(sampler, d + (1 if timed else 0), rng)
        got_p, got_n, have, tries = [], [], 0, 0
        while have < n:
            # first exactly n (an n-point Latin hypercube stays one); then larger batches
            m = n if tries == 0 else max(2 * (n - have), 64)
            u = stream.draw(m)
            if tag in ("interior", "initial"):
                p, keep = shape.interior_map(u[:, :d])
                nr = None
            else:
                p, nr, keep = shape.boundary_map(u[:, :d], tag)
            if timed:
                p = np.concatenate([p, self.time.scale(u[:, d])[:, None]], axis=1)
            elif tag == "initial":
                p = np.concatenate([p, np.full((len(p), 1), self.time.t0)], axis=1)
            got_p.append(p[keep])
            if nr is not None:
                got_n.append(nr[keep])
            have += int(keep.sum())
            tries += 1
            if tries > 200 and have == 0:
                raise ValueError(f"no sample of tag {tag!r} fell on the {self.kind} domain after {tries * m} draws.")
        p = np.concatenate(got_p)[:n]
        nr = np.concatenate(got_n)[:n] if got_n else None
        return p, nr

    def _get_set(self, tag: str, n: int | None, sampler: Any, normals: bool) -> PointSet:
        self._check_tag(tag)
        if normals and not self._is_boundary(tag):
            raise ShapeError(
                f"normals=True needs a boundary tag; {tag!r} has no normals. Use e.g. "
                "dom.variable('boundary', normals=True)."
            )
        skey = (tag, n, sampler if isinstance(sampler, str) else id(sampler), bool(normals))
        hit = self._sets.get(skey)
        if hit is not None:
            return hit
        seed = self._seed()
        meta: dict[str, Any] = {"tag": tag, "sampler": S.sampler_name(sampler)}
        if sampler == "grid":
            p, nr = self._grid(tag)
            if n is not None and n != len(p):
                if n > len(p):
                    raise ValueError(
                        f"sample=({n}, 'grid') asks for {n} points of tag {tag!r}, but its grid has only "
                        f"{len(p)} (mesh_size={self.mesh_size}); lower n, refine mesh_size, or draw with "
                        "a sampler such as 'sobol' or 'uniform'."
                    )
                idx = np.sort(S.tag_rng(seed, tag).choice(len(p), size=n, replace=False))
                p, nr = p[idx], (nr[idx] if nr is not None else None)
                meta["seed"] = seed
        else:
            p, nr = self._sample(tag, int(n), sampler, S.tag_rng(seed, tag))
            meta["seed"] = seed
        meta["n"] = int(len(p))
        names = self.coords
        if normals:
            assert nr is not None
            p = np.concatenate([p, nr], axis=1)
            names = names + tuple(f"n_{c}" for c in self.coords if c != "t")
            meta["normals"] = True
        meta["columns"] = len(names)
        suffix = "" if (sampler == "grid" and n is None and not normals) else (
            f"[{n if n is not None else 'all'} {S.sampler_name(sampler)}{' normals' if normals else ''}]")
        key = f"{self.label}:{tag}{suffix}"
        ps = PointSet(key, tag, p, names, meta)
        _POINT_SETS[key] = ps
        self._sets[skey] = ps
        self._record(key, meta)
        return ps

    # ------------------------------------------------------------------ the spec's API
    def variable(self, tag: str, sample: Any = None, normals: bool = False) -> tuple[Any, ...]:
        """The coordinate variables of the points tagged ``tag`` followed by the
        :class:`PointSet`: ``x, _ = line.variable("interior")``, ``x, y, _ =
        rect.variable("boundary")``, ``x, t, _`` on a time-dependent line.

        :param tag: ``"interior"``, ``"boundary"``, a named side, ``"initial"`` (with time).
        :param sample: ``None`` (the grid) or ``(n, sampler)``: ``n`` points drawn by
            ``"grid"`` / ``"uniform"`` / ``"sobol"`` / ``"halton"`` / ``"lhs"`` or a callable
            (see :mod:`jno_core.domain.samplers`); ``(None, "grid")`` is the whole grid.
        :param normals: on a boundary tag, also return the outward unit normal's components
            ``nx, ny[, nz]`` after the coordinates: ``x, y, nx, ny, _``.
        """
        n, sampler = self._parse_sample(sample)
        ps = self._get_set(tag, n, sampler, normals)
        ncols = ps.meta.get("columns", len(ps.names))
        vars_ = tuple(Variable(ps.key, i, name) for i, name in enumerate(ps.names[:ncols]))
        return vars_ + (ps,)

    @staticmethod
    def _parse_sample(sample: Any) -> tuple[int | None, Any]:
        if sample is None:
            return None, "grid"
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise TypeError(
                f"sample must be a pair (n, sampler), received {sample!r}; e.g. sample=(4096, 'sobol')."
            )
        n, sampler = sample
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0):
            raise ValueError(f"sample=(n, sampler) needs a positive integer n, received n={n!r}.")
        if sampler is None:
            sampler = "grid" if n is None else "uniform"
        sampler = S.check_sampler(sampler)
        if sampler != "grid" and n is None:
            raise ValueError(f"sample=(None, {S.sampler_name(sampler)!r}): say how many points, e.g. (1024, 'sobol').")
        return (None if n is None else int(n)), sampler

    def normal(self, tag: str = "boundary", sample: Any = None) -> Any:
        """The outward unit normal of a boundary tag as one vector field ``(N, dim)`` (a
        ``Stack`` of the components ``variable(tag, normals=True)`` returns)."""
        vs = self.variable(tag, sample=sample, normals=True)
        k = len(self.coords) - (1 if self.time is not None else 0)
        return Stack(list(vs[len(self.coords): len(self.coords) + k]))

    def __sub__(self, other: "Domain") -> "Domain":
        """``plate - hole``: the difference of two shapes (grid spacing, time and seed of the
        left operand)."""
        from .shapes import Difference

        if not isinstance(other, Domain) or other.shape is None or self.shape is None:
            raise TypeError(f"cannot subtract {type(other).__name__} from a {self.kind} domain; "
                            "subtract another shape domain, e.g. rect(...) - disk((0.5, 0.5), 0.2).")
        return Domain(Difference(self.shape, other.shape), mesh_size=self.mesh_size,
                      time=None if self.time is None else (self.time.t0, self.time.t1, self.time.nt),
                      seed=self.seed)

    def __repr__(self) -> str:
        t = f" time={self.time.describe()}" if self.time is not None else ""
        return f"<jno {self.kind} domain mesh_size={self.mesh_size}{t}: tags {', '.join(self.tags)}>"
