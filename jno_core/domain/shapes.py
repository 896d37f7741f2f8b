"""Exact geometry of the spatial shapes: membership, maps from the unit cube onto the interior
and onto the boundary (by length / area, with outward unit normals), and uniform grids.

Every shape has ``dim``, a bounding box ``lo``/``hi``, ``contains(p)`` (strict interior),
``interior_map(u) -> (points, keep)`` from ``u`` in ``[0, 1)^dim`` (``keep`` marks the points
inside; maps that are not onto reject), and boundary *pieces*: ``(side name, measure,
map)`` with ``map(u) -> (points, normals)`` from the piece's own unit coordinates. Sampling
the boundary draws one unit coordinate for the position along the whole boundary (length in
2-D, area in 3-D): the pieces get points in proportion to their measure and no corner is
counted twice (each piece is half-open).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Shape", "Interval", "Rectangle", "Box", "Disk", "Polygon", "Difference", "Piece",
           "grid_intervals"]


class Piece:
    """One part of a boundary: its side ``name``, ``measure`` (length / area / count) and
    ``map(u) -> (points (m, dim), normals (m, dim))`` from ``u`` of shape ``(m, k)`` in
    ``[0, 1)^k`` (``k = dim - 1``)."""

    def __init__(self, name: str, measure: float, map_: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        self.name, self.measure, self.map = name, float(measure), map_


def grid_intervals(lo: float, hi: float, h: float) -> int:
    """Number of grid intervals of spacing about ``h`` on ``[lo, hi]`` (at least 2)."""
    if not np.isfinite(h) or not h > 0:
        raise ValueError(f"mesh_size must be > 0, received {h!r}.")
    if not hi > lo:
        raise ValueError(f"a range must have lo < hi, received ({lo}, {hi}).")
    if h > hi - lo:
        raise ValueError(f"mesh_size {h!r} is larger than the range ({lo}, {hi}) of length {hi - lo}; "
                         f"expected a grid spacing smaller than the domain, e.g. mesh_size={(hi - lo) / 100:g}.")
    return max(2, int(round((hi - lo) / h)))


class Shape:
    """Base class of the spatial shapes (see the module docstring)."""

    dim: int
    kind: str = "shape"
    #: side names besides "boundary" (the tags a domain of this shape offers)
    sides: tuple[str, ...] = ()

    lo: np.ndarray
    hi: np.ndarray

    def contains(self, p: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def interior_map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Default: affine onto the bounding box, keep the points inside."""
        p = self.lo + (self.hi - self.lo) * u[:, : self.dim]
        return p, self.contains(p)

    def pieces(self) -> list[Piece]:
        raise NotImplementedError

    def boundary_keep(self, p: np.ndarray, piece: int) -> np.ndarray:
        """Which points of piece ``piece`` lie on the boundary (all, except for differences)."""
        return np.ones(len(p), dtype=bool)

    @property
    def boundary_dims(self) -> int:
        """Unit-cube dimensions one boundary sample uses (``max(dim - 1, 1)``)."""
        return max(self.dim - 1, 1)

    def boundary_map(self, u: np.ndarray, side: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``u`` ``(m, boundary_dims)`` -> ``(points, normals, keep)`` spread over the pieces
        (of side ``side``, or all) by measure: ``u[:, 0]`` runs along the boundary."""
        pieces = [(i, pc) for i, pc in enumerate(self.pieces()) if side in (None, "boundary", pc.name)]
        meas = np.array([pc.measure for _, pc in pieces])
        cum = np.concatenate([[0.0], np.cumsum(meas)])
        s = u[:, 0] * cum[-1]
        which = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(pieces) - 1)
        pts = np.zeros((len(u), self.dim))
        nrm = np.zeros((len(u), self.dim))
        keep = np.zeros(len(u), dtype=bool)
        for j, (i, pc) in enumerate(pieces):
            sel = which == j
            if not sel.any():
                continue
            if self.dim == 1:
                loc = np.zeros((int(sel.sum()), 0))
            else:
                first = np.clip((s[sel] - cum[j]) / pc.measure, 0.0, np.nextafter(1.0, 0.0))
                loc = np.concatenate([first[:, None], u[sel, 1:]], axis=1)
            p, n = pc.map(loc)
            pts[sel], nrm[sel] = p, n
            keep[sel] = self.boundary_keep(p, i)
        return pts, nrm, keep

    # grids --------------------------------------------------------------------
    def grid_interior(self, h: Sequence[float]) -> np.ndarray:
        axes = [np.linspace(l, u, grid_intervals(l, u, hh) + 1)[1:-1] for l, u, hh in zip(self.lo, self.hi, h)]
        mesh = np.meshgrid(*axes, indexing="ij")
        p = np.stack([m.ravel() for m in mesh], axis=1)
        return p[self.contains(p)]

    def grid_boundary(self, h: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{side: (points, normals)}`` plus ``"boundary"`` (all sides, no point twice):
        points about ``min(h)`` apart along each piece."""
        step = float(min(h))
        out: dict[str, list[Any]] = {}
        for i, pc in enumerate(self.pieces()):
            m = max(1, int(round(pc.measure / step))) if self.dim == 2 else 1
            u = (np.arange(m) / m)[:, None] if self.dim == 2 else np.zeros((1, 0))
            p, n = pc.map(u)
            k = self.boundary_keep(p, i)
            out.setdefault(pc.name, []).append((p[k], n[k]))
        sides = {name: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for name, v in out.items()}
        sides["boundary"] = (np.concatenate([v[0] for v in sides.values()]),
                             np.concatenate([v[1] for v in sides.values()]))
        return sides

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


# ---------------------------------------------------------------------------- 1-D / boxes
class Interval(Shape):
    """``[lo, hi]``; sides ``"left"`` and ``"right"`` (outward normals -1 and +1)."""

    kind, dim, sides = "line", 1, ("left", "right")

    def __init__(self, lo: float, hi: float) -> None:
        lo, hi = float(lo), float(hi)
        if not hi > lo:
            raise ValueError(f"x_range must have lo < hi, received ({lo}, {hi}).")
        self.lo, self.hi = np.array([lo]), np.array([hi])

    def contains(self, p: np.ndarray) -> np.ndarray:
        return (p[:, 0] > self.lo[0]) & (p[:, 0] < self.hi[0])

    def pieces(self) -> list[Piece]:
        lo, hi = self.lo[0], self.hi[0]
        return [Piece("left", 1.0, lambda u: (np.full((len(u), 1), lo), np.full((len(u), 1), -1.0))),
                Piece("right", 1.0, lambda u: (np.full((len(u), 1), hi), np.full((len(u), 1), 1.0)))]

    def grid_interior(self, h: Sequence[float]) -> np.ndarray:
        n = grid_intervals(self.lo[0], self.hi[0], h[0])
        return np.linspace(self.lo[0], self.hi[0], n + 1)[1:-1, None]

    def grid_boundary(self, h: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        lo, hi = self.lo[0], self.hi[0]
        return {"boundary": (np.array([[lo], [hi]]), np.array([[-1.0], [1.0]])),
                "left": (np.array([[lo]]), np.array([[-1.0]])),
                "right": (np.array([[hi]]), np.array([[1.0]]))}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "x_range": [float(self.lo[0]), float(self.hi[0])]}


def _check_range(r: Any, what: str) -> tuple[float, float]:
    try:
        lo, hi = map(float, r)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (lo, hi) of numbers, received {r!r}.") from None
    if not hi > lo:
        raise ValueError(f"{what} must have lo < hi, received ({lo}, {hi}).")
    return lo, hi


class Rectangle(Shape):
    """``x_range x y_range``; sides ``left``/``right`` (x = x0 / x1), ``bottom``/``top``
    (y = y0 / y1)."""

    kind, dim, sides = "rect", 2, ("left", "right", "bottom", "top")

    def __init__(self, x_range: Any, y_range: Any) -> None:
        x0, x1 = _check_range(x_range, "x_range")
        y0, y1 = _check_range(y_range, "y_range")
        self.lo, self.hi = np.array([x0, y0]), np.array([x1, y1])

    def contains(self, p: np.ndarray) -> np.ndarray:
        return np.all((p > self.lo) & (p < self.hi), axis=1)

    def interior_map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lo + (self.hi - self.lo) * u[:, :2], np.ones(len(u), dtype=bool)

    def pieces(self) -> list[Piece]:
        (x0, y0), (x1, y1) = self.lo, self.hi
        W, H = x1 - x0, y1 - y0

        def side(p0: Sequence[float], d: Sequence[float], n: Sequence[float]) -> Callable[[np.ndarray], Any]:
            return lambda u: (np.asarray(p0) + u[:, :1] * np.asarray(d), np.tile(n, (len(u), 1)).astype(float))

        # counter-clockwise, each side half-open: corners once
        return [Piece("bottom", W, side((x0, y0), (W, 0), (0, -1))),
                Piece("right", H, side((x1, y0), (0, H), (1, 0))),
                Piece("top", W, side((x1, y1), (-W, 0), (0, 1))),
                Piece("left", H, side((x0, y1), (0, -H), (-1, 0)))]

    def grid_interior(self, h: Sequence[float]) -> np.ndarray:
        xs, ys = self._axes(h)
        X, Y = np.meshgrid(xs[1:-1], ys[1:-1], indexing="ij")
        return np.stack([X.ravel(), Y.ravel()], axis=1)

    def _axes(self, h: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        (x0, y0), (x1, y1) = self.lo, self.hi
        nx, ny = grid_intervals(x0, x1, h[0]), grid_intervals(y0, y1, h[1])
        return np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)

    def grid_boundary(self, h: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each side with its grid points (corners included); ``"boundary"`` = bottom, top,
        then left and right without their corners."""
        (x0, y0), (x1, y1) = self.lo, self.hi
        xs, ys = self._axes(h)

        def nr(n: Sequence[float], m: int) -> np.ndarray:
            return np.tile(np.asarray(n, float), (m, 1))

        left = np.stack([np.full_like(ys, x0), ys], 1)
        right = np.stack([np.full_like(ys, x1), ys], 1)
        bottom = np.stack([xs, np.full_like(xs, y0)], 1)
        top = np.stack([xs, np.full_like(xs, y1)], 1)
        sides = {"left": (left, nr((-1, 0), len(ys))), "right": (right, nr((1, 0), len(ys))),
                 "bottom": (bottom, nr((0, -1), len(xs))), "top": (top, nr((0, 1), len(xs)))}
        order = [("bottom", slice(None)), ("top", slice(None)), ("left", slice(1, -1)), ("right", slice(1, -1))]
        sides["boundary"] = (np.concatenate([sides[k][0][s] for k, s in order]),
                             np.concatenate([sides[k][1][s] for k, s in order]))
        return sides

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "x_range": [float(self.lo[0]), float(self.hi[0])],
                "y_range": [float(self.lo[1]), float(self.hi[1])]}


class Box(Shape):
    """``x_range x y_range x z_range``; sides ``left``/``right`` (x), ``bottom``/``top`` (y),
    ``front``/``back`` (z = z0 / z1)."""

    kind, dim, sides = "box", 3, ("left", "right", "bottom", "top", "front", "back")

    def __init__(self, x_range: Any, y_range: Any, z_range: Any) -> None:
        r = [_check_range(v, w) for v, w in ((x_range, "x_range"), (y_range, "y_range"), (z_range, "z_range"))]
        self.lo, self.hi = np.array([a for a, _ in r]), np.array([b for _, b in r])

    def contains(self, p: np.ndarray) -> np.ndarray:
        return np.all((p > self.lo) & (p < self.hi), axis=1)

    def interior_map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lo + (self.hi - self.lo) * u[:, :3], np.ones(len(u), dtype=bool)

    def pieces(self) -> list[Piece]:
        out = []
        names = (("left", "right"), ("bottom", "top"), ("front", "back"))
        for axis in range(3):
            a, b = [k for k in range(3) if k != axis]
            area = (self.hi[a] - self.lo[a]) * (self.hi[b] - self.lo[b])
            for side, val, sign in ((0, self.lo[axis], -1.0), (1, self.hi[axis], 1.0)):
                def f(u: np.ndarray, axis: int = axis, a: int = a, b: int = b, val: float = val,
                      sign: float = sign) -> tuple[np.ndarray, np.ndarray]:
                    p = np.empty((len(u), 3))
                    p[:, axis] = val
                    p[:, a] = self.lo[a] + (self.hi[a] - self.lo[a]) * u[:, 0]
                    p[:, b] = self.lo[b] + (self.hi[b] - self.lo[b]) * u[:, 1]
                    n = np.zeros((len(u), 3))
                    n[:, axis] = sign
                    return p, n
                out.append(Piece(names[axis][side], area, f))
        return out

    def grid_boundary(self, h: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each face with its grid points (edges included); ``"boundary"`` = all faces with
        every point once (edge and corner points take the normal of the first face listing
        them)."""
        axes = [np.linspace(l, u, grid_intervals(l, u, hh) + 1) for l, u, hh in zip(self.lo, self.hi, h)]
        sides: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        names = (("left", "right"), ("bottom", "top"), ("front", "back"))
        for axis in range(3):
            a, b = [k for k in range(3) if k != axis]
            A, B = np.meshgrid(axes[a], axes[b], indexing="ij")
            for side, val, sign in ((0, self.lo[axis], -1.0), (1, self.hi[axis], 1.0)):
                p = np.empty((A.size, 3))
                p[:, axis], p[:, a], p[:, b] = val, A.ravel(), B.ravel()
                n = np.zeros_like(p)
                n[:, axis] = sign
                sides[names[axis][side]] = (p, n)
        allp = np.concatenate([v[0] for v in sides.values()])
        alln = np.concatenate([v[1] for v in sides.values()])
        _, first = np.unique(np.round(allp, 12), axis=0, return_index=True)
        first = np.sort(first)
        sides["boundary"] = (allp[first], alln[first])
        return sides

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "ranges": [[float(a), float(b)] for a, b in zip(self.lo, self.hi)]}


# ---------------------------------------------------------------------------- disk, polygon
class Disk(Shape):
    """The open disk of ``radius`` around ``center``; boundary = the circle. Interior
    samples use the area-preserving polar map ``r = R sqrt(u0)``, ``phi = 2 pi u1`` (every
    unit point lands inside: no rejection)."""

    kind, dim, sides = "disk", 2, ()

    def __init__(self, center: Any, radius: float) -> None:
        c = np.asarray(center, dtype=np.float64)
        if c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ValueError(f"disk center must be a pair (cx, cy) of finite numbers, received {center!r}.")
        r = float(radius)
        if not (np.isfinite(r) and r > 0):
            raise ValueError(f"disk radius must be > 0, received {radius!r}; e.g. jno.domain.disk((0, 0), 1.0).")
        self.center, self.radius = c, r
        self.lo, self.hi = c - r, c + r

    def contains(self, p: np.ndarray) -> np.ndarray:
        return np.sum((p[:, :2] - self.center) ** 2, axis=1) < self.radius**2

    def interior_map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.radius * np.sqrt(u[:, 0])
        phi = 2 * np.pi * u[:, 1]
        p = self.center + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        return p, np.ones(len(u), dtype=bool)

    def pieces(self) -> list[Piece]:
        def f(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            phi = 2 * np.pi * u[:, 0]
            n = np.stack([np.cos(phi), np.sin(phi)], axis=1)
            return self.center + self.radius * n, n

        return [Piece("boundary", 2 * np.pi * self.radius, f)]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": self.center.tolist(), "radius": self.radius}


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _on_segment(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def _segments_touch(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    o1, o2, o3, o4 = _orient(p1, p2, q1), _orient(p1, p2, q2), _orient(q1, q2, p1), _orient(q1, q2, p2)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return ((o1 == 0 and _on_segment(p1, p2, q1)) or (o2 == 0 and _on_segment(p1, p2, q2))
            or (o3 == 0 and _on_segment(q1, q2, p1)) or (o4 == 0 and _on_segment(q1, q2, p2)))


class Polygon(Shape):
    """A simple polygon from its ``vertices`` ``(V, 2)`` (either orientation; stored
    counter-clockwise). Membership by the even-odd ray-casting rule; edges are the pieces
    ``"boundary"`` with outward normals ``(dy, -dx) / |e|`` of each counter-clockwise edge."""

    kind, dim, sides = "poly", 2, ()

    def __init__(self, vertices: Any) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise ValueError(
                f"poly expects vertices of shape (V, 2) with V >= 3, received shape {v.shape}; e.g. "
                "jno.domain.poly([(0, 0), (1, 0), (1, 1), (0, 1)])."
            )
        if not np.all(np.isfinite(v)):
            raise ValueError("poly vertices must be finite numbers.")
        if np.allclose(v[0], v[-1]):
            v = v[:-1]  # a closed ring repeating its first vertex
        V = len(v)
        e = np.roll(v, -1, axis=0) - v
        if np.any(np.hypot(e[:, 0], e[:, 1]) == 0):
            raise ValueError("poly vertices repeat consecutively (an edge of length 0); remove the duplicate.")
        for i in range(V):
            for j in range(i + 1, V):
                if j == i + 1 or (i == 0 and j == V - 1):
                    continue
                if _segments_touch(v[i], v[(i + 1) % V], v[j], v[(j + 1) % V]):
                    raise ValueError(
                        f"poly: the polygon self-intersects (edge {i} {v[i].tolist()}->{v[(i + 1) % V].tolist()} "
                        f"meets edge {j} {v[j].tolist()}->{v[(j + 1) % V].tolist()}); give the vertices of a "
                        "simple polygon in boundary order."
                    )
        area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
        if area2 == 0:
            raise ValueError("poly: the vertices enclose no area (all collinear).")
        if area2 < 0:
            v = v[::-1].copy()
        self.vertices = v
        self.area = abs(area2) / 2
        self.lo, self.hi = v.min(axis=0), v.max(axis=0)

    def contains(self, p: np.ndarray) -> np.ndarray:
        x, y = p[:, :1], p[:, 1:2]
        a, b = self.vertices, np.roll(self.vertices, -1, axis=0)
        ay, by = a[None, :, 1], b[None, :, 1]
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = a[None, :, 0] + (y - ay) * (b[None, :, 0] - a[None, :, 0]) / (by - ay)
        inside = (np.sum(crosses & (x < xint), axis=1) % 2) == 1
        return inside & ~self._on_boundary(p)

    def _on_boundary(self, p: np.ndarray, tol: float = 1e-12) -> np.ndarray:
        a, b = self.vertices, np.roll(self.vertices, -1, axis=0)
        d = b - a
        L2 = np.sum(d**2, axis=1)
        t = np.clip(((p[:, None, :2] - a[None]) * d[None]).sum(-1) / L2[None], 0, 1)
        q = a[None] + t[..., None] * d[None]
        dist2 = np.sum((p[:, None, :2] - q) ** 2, axis=-1)
        scale = float(np.max(self.hi - self.lo)) ** 2
        return np.any(dist2 <= tol * scale, axis=1)

    def pieces(self) -> list[Piece]:
        out = []
        v = self.vertices
        for i in range(len(v)):
            a, b = v[i], v[(i + 1) % len(v)]
            d = b - a
            L = float(np.hypot(*d))
            n = np.array([d[1], -d[0]]) / L

            def f(u: np.ndarray, a: np.ndarray = a, d: np.ndarray = d, n: np.ndarray = n) -> tuple[np.ndarray, np.ndarray]:
                return a + u[:, :1] * d, np.tile(n, (len(u), 1))

            out.append(Piece("boundary", L, f))
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "vertices": self.vertices.tolist()}


class Difference(Shape):
    """``outer`` minus ``inner`` (e.g. a plate with a hole). Interior: inside ``outer`` and
    not inside ``inner``. Boundary: the part of ``outer``'s boundary outside ``inner`` (side
    ``"outer"``) and the part of ``inner``'s boundary inside ``outer`` (side ``"inner"``,
    normals flipped so they point out of the difference, i.e. into the hole). ``outer``'s
    named sides stay available where they are not cut away."""

    kind = "difference"

    def __init__(self, outer: Shape, inner: Shape) -> None:
        if outer.dim != inner.dim:
            raise ValueError(f"cannot subtract a {inner.dim}-D shape from a {outer.dim}-D shape.")
        if outer.dim == 1:
            raise ValueError("differences of 1-D intervals are not supported; use a 2-D or 3-D shape.")
        self.outer, self.inner, self.dim = outer, inner, outer.dim
        self.lo, self.hi = outer.lo, outer.hi
        self.sides = tuple(outer.sides) + ("outer", "inner")

    def contains(self, p: np.ndarray) -> np.ndarray:
        return self.outer.contains(p) & ~self.inner.contains(p)

    def interior_map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, keep = self.outer.interior_map(u)
        return p, keep & ~self.inner.contains(p)

    def pieces(self) -> list[Piece]:
        out = list(self.outer.pieces())
        for pc in self.inner.pieces():
            out.append(Piece("inner", pc.measure, lambda u, f=pc.map: (lambda pn: (pn[0], -pn[1]))(f(u))))
        return out

    def _n_outer(self) -> int:
        return len(self.outer.pieces())

    def boundary_keep(self, p: np.ndarray, piece: int) -> np.ndarray:
        if piece < self._n_outer():
            return ~self.inner.contains(p)
        return self.outer.contains(p)

    def boundary_map(self, u: np.ndarray, side: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if side == "outer":
            n_out = self._n_outer()
            return self._restricted(u, lambda i: i < n_out)
        return super().boundary_map(u, side)

    def _restricted(self, u: np.ndarray, which: Callable[[int], bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pieces = [(i, pc) for i, pc in enumerate(self.pieces()) if which(i)]
        meas = np.array([pc.measure for _, pc in pieces])
        cum = np.concatenate([[0.0], np.cumsum(meas)])
        s = u[:, 0] * cum[-1]
        idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(pieces) - 1)
        pts, nrm = np.zeros((len(u), self.dim)), np.zeros((len(u), self.dim))
        keep = np.zeros(len(u), dtype=bool)
        for j, (i, pc) in enumerate(pieces):
            sel = idx == j
            if sel.any():
                first = np.clip((s[sel] - cum[j]) / pc.measure, 0.0, np.nextafter(1.0, 0.0))
                p, n = pc.map(np.concatenate([first[:, None], u[sel, 1:]], axis=1))
                pts[sel], nrm[sel], keep[sel] = p, n, self.boundary_keep(p, i)
        return pts, nrm, keep

    def grid_interior(self, h: Sequence[float]) -> np.ndarray:
        p = self.outer.grid_interior(h)
        return p[~self.inner.contains(p)]

    def grid_boundary(self, h: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        o = self.outer.grid_boundary(h)
        step = float(min(h))
        inner_parts = []
        for pc in self.inner.pieces():
            if self.dim == 2:
                m = max(3, int(round(pc.measure / step)))
                u = (np.arange(m) / m)[:, None]
            else:
                k = max(2, int(round(np.sqrt(pc.measure) / step)))
                g = (np.arange(k) + 0.5) / k
                A, B = np.meshgrid(g, g, indexing="ij")
                u = np.stack([A.ravel(), B.ravel()], 1)
            p, n = pc.map(u)
            keep = self.outer.contains(p)
            inner_parts.append((p[keep], -n[keep]))
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (p, n) in o.items():
            keep = ~self.inner.contains(p)
            out["outer" if name == "boundary" else name] = (p[keep], n[keep])
        out["inner"] = (np.concatenate([a for a, _ in inner_parts]), np.concatenate([b for _, b in inner_parts]))
        out["boundary"] = (np.concatenate([out["outer"][0], out["inner"][0]]),
                           np.concatenate([out["outer"][1], out["inner"][1]]))
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "outer": self.outer.describe(), "inner": self.inner.describe()}
