"""Minibatches of collocation points drawn on the device inside the scanned loop.

``solve(n, batchsize=B)``: at every epoch each point set with more than ``B`` points is
replaced by ``B`` of its points drawn **without replacement** (a random permutation's first
``B`` entries), from the key ``fold_in(PRNGKey(seed), epoch)`` folded again with the point
set's position. The draw depends only on ``seed``, the epoch and the point set, so a run is
reproducible and resumable. Sets with at most ``B`` points (e.g. a line's two end points) are
used whole; a ``B`` not smaller than any constraint's point count is an error naming them.
"""

from __future__ import annotations

from typing import Any

import jax

from .errors import ConfigError

__all__ = ["sample_points", "check_batchsize"]


def check_batchsize(batchsize: int, points: dict[str, Any], constraint_sets: dict[str, list[str]]) -> None:
    """``batchsize`` must be a positive int smaller than some constraint's point count
    (otherwise minibatching would do nothing); the error names each constraint's count."""
    if isinstance(batchsize, bool) or not isinstance(batchsize, int) or batchsize <= 0:
        raise ConfigError(f"batchsize must be a positive integer, received {batchsize!r}.")
    counts = {name: max((int(points[k].shape[0]) for k in sets), default=0)
              for name, sets in constraint_sets.items()}
    if counts and all(batchsize >= n for n in counts.values()):
        listing = ", ".join(f"{name} has {n}" for name, n in counts.items())
        raise ConfigError(
            f"batchsize={batchsize} is not smaller than any constraint's point count ({listing}); "
            f"use batchsize < {max(counts.values())} or a finer mesh."
        )


def sample_points(points: dict[str, jax.Array], batchsize: int, seed: int, epoch: jax.Array) -> dict[str, jax.Array]:
    """Traceable: ``{key: (min(N, B), D)}`` minibatches for ``epoch`` (see module docstring)."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), epoch)
    out = {}
    for i, (k, v) in enumerate(sorted(points.items())):
        n = v.shape[0]
        if n <= batchsize:
            out[k] = v
            continue
        idx = jax.random.permutation(jax.random.fold_in(key, i), n)[:batchsize]
        out[k] = v[idx]
    return out
