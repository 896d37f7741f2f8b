"""The loop's schedule: which epochs fire and how epochs are cut into device chunks.

Pure functions of integers (NumPy only for the slot tables), tested without JAX
(``tests/test_schedule.py``). Chunk boundaries depend on epochs only, never on timing, so
runs are reproducible chunk for chunk (early stopping decides at chunk boundaries).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["ChunkPlan", "TAPER_FRACTION", "deferred_epochs", "next_fire", "taper_epochs", "plan_chunk"]

#: the end-of-solve taper's shortest chunk: ``1 / TAPER_FRACTION`` of the chunk cap, at
#: least ``log_every`` epochs
TAPER_FRACTION = 16


class ChunkPlan(NamedTuple):
    """One chunk: ``n`` epochs; ``snap_epochs`` the epochs of its parameter snapshots
    (deferred fires); ``snap_at`` ``(K,)`` int32 the snapshot slot table (-1 = unused)."""

    n: int
    snap_epochs: list[int]
    snap_at: np.ndarray


def deferred_epochs(e: int, stop: int, intervals: Sequence[int], limit: int) -> list[int]:
    """The first ``limit`` epochs ``s`` with ``e < s < stop`` that are multiples of one of
    ``intervals``, ascending."""
    found: set[int] = set()
    for iv in set(intervals):
        first = (e // iv + 1) * iv
        found.update(range(first, min(stop, first + iv * limit), iv))
    return sorted(found)[:limit]


def next_fire(e: int, intervals: Sequence[int]) -> int | None:
    """The first epoch after ``e`` that is a multiple of one of ``intervals`` (None: none)."""
    best = None
    for iv in intervals:
        if iv:
            nxt = (e // iv + 1) * iv
            best = nxt if best is None else min(best, nxt)
    return best


def taper_epochs(cap: int, log_every: int) -> int:
    """The shortest chunk of the end-of-solve taper: ``ceil(cap / TAPER_FRACTION)``, at
    least ``log_every``."""
    return max(log_every, -(-cap // TAPER_FRACTION))


def plan_chunk(e: int, end: int, cap: int, *, host_intervals: Sequence[int], deferred_intervals: Sequence[int],
               postpone: bool, taper: int, log_every: int, slots: int) -> ChunkPlan:
    """The chunk starting at epoch ``e`` of a solve ending at ``end``.

    :param cap: the most epochs per chunk.
    :param host_intervals: intervals of what must run on the host at its epochs (a chunk
        ends there).
    :param deferred_intervals: intervals of the plugins fired after the chunk from its
        parameter snapshots (they do not end a chunk, unless the ``slots`` run out).
    :param postpone: deferred fires due at the chunk's first epoch are taken from a snapshot
        in this chunk too (instead of at the host visit before it).
    :param taper: ``> 0`` (``>= log_every``; 0: no taper): no chunk is longer than half of
        the epochs left (rounded up to a multiple of ``log_every``), nor shorter than
        ``taper`` epochs, nor followed by a shorter rest (2,000 epochs, ``cap=1000``,
        ``log_every=50``, ``taper=63``: chunks of 1000, 500, 250, 150, 100), so the wait for
        the last chunk's records at the end of a solve stays short.
    :param slots: ``K``, the snapshot slots of a chunk.
    """
    nxt = next_fire(e, host_intervals)
    stop_at = min(end, e + cap, nxt if nxt is not None else end)
    if taper > 0:
        rest = end - e
        half = -(-rest // 2)  # ceil(rest / 2)
        n = max(taper, -(-half // log_every) * log_every)  # rounded up to a multiple of log_every
        stop_at = min(stop_at, end if rest - n < taper else e + n)
    # near the end of the solve, fewer fires per chunk: the last chunk's fires run after
    # training has finished, so keep that tail short
    lo = e - 1 if postpone else e  # postponed: a snapshot at the chunk's first epoch
    left = deferred_epochs(lo, end, deferred_intervals, 3 * slots)
    k = slots if len(left) >= 3 * slots else max(2 if postpone else 1, min(slots, len(left) // 3))
    snap_epochs = deferred_epochs(lo, stop_at, deferred_intervals, k + 1)
    if len(snap_epochs) > k:  # out of snapshot slots: a host visit at the next one
        stop_at, snap_epochs = snap_epochs[k], snap_epochs[:k]
    snap_at = np.full(slots, -1, np.int32)
    snap_at[: len(snap_epochs)] = snap_epochs
    return ChunkPlan(stop_at - e, snap_epochs, snap_at)
