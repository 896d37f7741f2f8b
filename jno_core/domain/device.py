"""Uniform sampling of a domain's interior on the device (:func:`device_sampler`), for
strategies that redraw collocation points between chunks (``jno.resampling``).

``device_sampler(domain, tag, n)`` returns a traceable ``sample(key) -> (n, C)`` float32
array (``jax.random``; ``C`` = the domain's coordinates, space then time), exact per shape:

* ``line`` / ``rect`` / ``box``: the affine map of uniform unit-cube points;
* ``disk``: the area-preserving polar map ``r = R sqrt(u0)``, ``phi = 2 pi u1`` (the same map
  as :mod:`jno_core.domain.shapes` uses for host sampling);
* any other shape (``poly``, differences ``a - b``): a **candidate pool** of
  ``pool_size`` points (default ``max(16 n, 65536)``), drawn once on the host by rejection
  (uniform in the bounding box, kept where ``shape.contains``; seeded by ``pool_seed``) and
  kept on the device; each call picks ``n`` distinct pool points uniformly
  (``jax.random.choice`` without replacement). The result is uniform over the pool, a dense
  uniform sample of the shape, so no host work or shape-dependent rejection runs inside
  training.

With ``time=(t0, t1, nt)`` the time column is uniform in ``[t0, t1]`` for ``"interior"``
and ``t0`` for ``"initial"``. Only these two tags are supported (boundary resampling is not).
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .shapes import Box, Disk, Interval, Rectangle

__all__ = ["device_sampler", "DEFAULT_POOL"]

#: the smallest candidate pool for shapes sampled from a pool (poly, differences)
DEFAULT_POOL = 65536


def _host_pool(shape: Any, m: int, seed: int) -> np.ndarray:
    """``m`` points uniform in ``shape`` by rejection from its bounding box (host, once)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(b"device-pool")])
    lo, hi = np.asarray(shape.lo, np.float64), np.asarray(shape.hi, np.float64)
    got, have, tries = [], 0, 0
    while have < m:
        u = rng.random((max(2 * (m - have), 1024), shape.dim))
        p = lo + (hi - lo) * u
        keep = np.asarray(shape.contains(p), bool)
        got.append(p[keep])
        have += int(keep.sum())
        tries += 1
        if tries > 200 and have == 0:
            raise ValueError(f"device_sampler: no uniform point of the bounding box fell inside the {shape.kind} shape.")
    return np.concatenate(got)[:m].astype(np.float32)


def device_sampler(domain: Any, tag: str, n: int, *, pool_size: int | None = None,
                   pool_seed: int = 0) -> Callable[[jax.Array], jax.Array]:
    """A traceable ``sample(key) -> (n, C)`` float32: ``n`` points uniform on ``tag``
    (``"interior"`` or ``"initial"``) of ``domain`` (see the module docstring for each shape).

    :param domain: a shape domain (``jno.domain.line/rect/box/disk/poly`` or a difference),
        with or without ``time=``.
    :param tag: ``"interior"`` (space and, with time, ``t`` uniform in ``[t0, t1]``) or
        ``"initial"`` (``t = t0``).
    :param n: points per call.
    :param pool_size: candidate-pool size for pool-sampled shapes (``>= n``; default
        ``max(16 n, 65536)``).
    :param pool_seed: seed of the host draw of that pool.
    """
    shape, time, n = _checked(domain, tag, n)
    space, pool = _space_sampler(shape, n, pool_size, pool_seed)
    sample = _with_time(space, time, tag, n)
    sample.pool = pool  # type: ignore[attr-defined]  # the host pool (None: exact per-shape map)
    return sample


def _checked(domain: Any, tag: str, n: Any) -> tuple[Any, Any, int]:
    """``(shape, time or None, n)`` of a :func:`device_sampler` call, or a ``ValueError``
    saying which argument is not what it expects and what to pass instead."""
    shape = getattr(domain, "shape", None)
    if shape is None:
        raise ValueError(
            f"device_sampler needs a shape domain (line, rect, box, disk, poly or a difference), received "
            f"{type(domain).__name__} {getattr(domain, 'kind', '')!r}: a point cloud (from_array) has no region to "
            "draw from."
        )
    if tag not in ("interior", "initial"):
        raise ValueError(
            f"device_sampler draws the 'interior' (or 'initial' of a time domain) uniformly; received tag "
            f"{tag!r}. Resample the PDE residual's interior points; boundary sets stay fixed."
        )
    time = getattr(domain, "time", None)
    if tag == "initial" and time is None:
        raise ValueError("device_sampler: tag 'initial' needs a time-dependent domain (time=(t0, t1, nt)).")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"device_sampler: n must be a positive integer number of points, received {n!r}.")
    return shape, time, int(n)


def _space_sampler(shape: Any, n: int, pool_size: int | None,
                   pool_seed: int) -> tuple[Callable[[jax.Array], jax.Array], np.ndarray | None]:
    """``(space, pool)``: ``space(key) -> (n, d)`` uniform points of ``shape`` (exact map for
    intervals, rectangles, boxes and disks; ``n`` distinct points of a host-drawn candidate
    pool otherwise, ``pool`` being that ``(m, d)`` pool, else ``None``)."""
    d = shape.dim
    if isinstance(shape, (Interval, Rectangle, Box)):
        lo = jnp.asarray(shape.lo, jnp.float32)
        span = jnp.asarray(shape.hi - shape.lo, jnp.float32)

        def space(key: jax.Array) -> jax.Array:
            return lo + span * jax.random.uniform(key, (n, d), jnp.float32)
        return space, None
    if isinstance(shape, Disk):
        center = jnp.asarray(shape.center, jnp.float32)
        radius = float(shape.radius)

        def space(key: jax.Array) -> jax.Array:
            u = jax.random.uniform(key, (n, 2), jnp.float32)
            r = radius * jnp.sqrt(u[:, 0])
            phi = 2 * jnp.pi * u[:, 1]
            return center + jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi)], axis=1)
        return space, None
    m = max(16 * n, DEFAULT_POOL) if pool_size is None else int(pool_size)
    if m < n:
        raise ValueError(f"device_sampler: pool_size={m} is smaller than n={n}; pass pool_size >= n.")
    pool = _host_pool(shape, m, pool_seed)

    def space(key: jax.Array) -> jax.Array:
        idx = jax.random.choice(key, m, (n,), replace=False)
        return jnp.asarray(pool)[idx]
    return space, pool


def _with_time(space: Callable[[jax.Array], jax.Array], time: Any, tag: str,
               n: int) -> Callable[[jax.Array], jax.Array]:
    """``sample(key) -> (n, C)`` float32: ``space``'s points, with a time column appended for
    a time domain (uniform in ``[t0, t1]`` for ``"interior"``, ``t0`` for ``"initial"``)."""
    if time is None:
        def sample(key: jax.Array) -> jax.Array:
            return space(key).astype(jnp.float32)
        return sample
    t0, t1 = float(time.t0), float(time.t1)

    def sample(key: jax.Array) -> jax.Array:
        ks, kt = jax.random.split(key)
        if tag == "initial":
            t = jnp.full((n, 1), t0, jnp.float32)
        else:
            t = t0 + (t1 - t0) * jax.random.uniform(kt, (n, 1), jnp.float32)
        return jnp.concatenate([space(ks), t], axis=1).astype(jnp.float32)
    return sample
