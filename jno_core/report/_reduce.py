"""Reduce logged values to what a report displays, and say how (never silently).

- :func:`minmax_downsample`: a long scalar series becomes the minimum and the maximum of each of
  ``max_points // 2`` equal-count buckets of consecutive steps (the "min-max" decimation of
  time-series plotting, which keeps every spike and dip visible; Jugel et al., "M4: A
  Visualization-Oriented Time Series Data Aggregation", PVLDB 7(10), 2014, sec. 4).
- :func:`pick_frames`: evenly spaced steps of a heatmap or histogram history, first and last kept.
- :func:`block_mean`: a large heatmap becomes the mean of ``f x f`` blocks.
- :func:`histogram_frames`: the values logged at each step binned over that step's range (in
  log10 of the value when the values are positive and span more than :data:`LOG_SPAN`:
  spectra), and their percentiles, which show the distribution over steps.
- :func:`color_range`: the colour scale of a heatmap over all its frames.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

__all__ = ["LOG_SPAN", "minmax_downsample", "pick_frames", "block_mean", "histogram_frames", "color_range",
           "wants_log", "QUANTILES", "display_bins"]

#: a positive quantity whose max/min ratio exceeds this is shown on a log scale
LOG_SPAN = 100.0


def wants_log(values: np.ndarray, prefer: bool = False) -> bool:
    """Whether ``values`` go on a log axis: all finite values positive, and spanning more than
    :data:`LOG_SPAN` (or ``prefer``, e.g. for losses and gradient norms, which are positive
    quantities whose decades matter even when a short run spans fewer)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.min() <= 0:
        return False
    return prefer or float(v.max()) / float(v.min()) > LOG_SPAN


def minmax_downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of the series ``(steps, values)``: unchanged when it is
    short enough, else for each of ``max_points // 2`` buckets of consecutive points (equal
    counts, the last ones one longer) the point of its minimum and the point of its maximum,
    in step order. Non-finite values are never picked unless a bucket holds nothing else.

    :param steps: ``(N,)`` increasing steps.
    :param values: ``(N,)`` values.
    :returns: ``(steps, values)`` of length ``<= max_points``.
    """
    s = np.asarray(steps)
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    if n <= max_points:
        return s, v
    nb = max(1, max_points // 2)
    bucket = (np.arange(n, dtype=np.int64) * nb) // n  # 0..nb-1, equal counts
    finite = np.isfinite(v)
    lo_key = np.where(finite, v, np.inf)
    hi_key = np.where(finite, -v, np.inf)
    first = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    lo = np.lexsort((lo_key, bucket))[first]  # per bucket: the index of its smallest value
    hi = np.lexsort((hi_key, bucket))[first]  # ... and of its largest
    keep = np.unique(np.concatenate([lo, hi]))
    return s[keep], v[keep]


def pick_frames(n: int, max_frames: int) -> np.ndarray:
    """Indices of at most ``max_frames`` of ``n`` frames, evenly spaced, first and last kept."""
    if n <= max_frames:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(2, max_frames)).round().astype(np.int64))


def block_mean(img: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each ``factor x factor`` block of the 2-D ``img`` (edge blocks averaging the
    cells they hold; non-finite cells ignored, a block of only non-finite cells is NaN)."""
    a = np.asarray(img, dtype=np.float64)
    if factor <= 1:
        return a
    h, w = a.shape
    H, W = -(-h // factor), -(-w // factor)
    pad = np.full((H * factor, W * factor), np.nan)
    pad[:h, :w] = np.where(np.isfinite(a), a, np.nan)
    blocks = pad.reshape(H, factor, W, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        return np.nanmean(blocks, axis=(1, 3))


#: the percentiles drawn as a histogram's distribution over steps
QUANTILES = (0.0, 5.0, 25.0, 50.0, 75.0, 95.0, 100.0)


def display_bins(bins: int, n: int) -> int:
    """Bins for ``n`` values per step: the logged ``bins``, but at most ``max(10, 2 sqrt(n))``
    (64 bins for 19 values leave most bins empty and the shape unreadable)."""
    return max(1, min(int(bins), max(10, int(2 * math.sqrt(max(n, 1))))))


def histogram_frames(values: Sequence[np.ndarray], bins: int) -> dict[str, Any]:
    """Bin each step's values over that step's own range, and take their percentiles.

    :param values: one array per step (any shape; flattened).
    :param bins: the number of equal-width bins per step.
    :returns: ``{"edges": (S, bins+1), "counts": (S, bins) int64, "quantiles": (S, 7) of the
        :data:`QUANTILES` percentiles (NaN for a step without finite values), "log": bool,
        "nonfinite": int, "zeros": int}``. With ``log`` (no negative value, at least half of them
        positive, and the positive ones spanning more than :data:`LOG_SPAN`: spectra, whose
        rank-deficient part is 0) the edges are in log10 of the value, and ``zeros`` values equal
        to 0 are left out of the bins and percentiles; the percentiles are never in log10.
        A step's edges span its minimum to maximum, as ``np.histogram(v, bins)`` chooses them
        (a constant step spans value - 0.5 to value + 0.5); ``nonfinite`` counts values left out.
    """
    flats = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    finite = [f[np.isfinite(f)] for f in flats]
    nonfinite = int(sum(f.size - g.size for f, g in zip(flats, finite)))
    allv = np.concatenate(finite) if finite else np.zeros(0)
    pos = allv[allv > 0]
    log = bool(allv.size) and allv.min() >= 0 and 2 * pos.size >= allv.size and wants_log(pos)
    zeros = int(allv.size - pos.size) if log else 0
    if log:
        finite = [g[g > 0] for g in finite]
    S = len(finite)
    edges = np.zeros((S, int(bins) + 1))
    counts = np.zeros((S, int(bins)), dtype=np.int64)
    quantiles = np.full((S, len(QUANTILES)), np.nan)
    for i, g in enumerate(finite):
        if g.size == 0:
            edges[i] = np.linspace(0.0, 1.0, int(bins) + 1)
            continue
        quantiles[i] = np.percentile(g, QUANTILES)
        x = np.log10(g) if log else g
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges[i] = np.linspace(lo, hi, int(bins) + 1)
        counts[i] = np.histogram(x, bins=edges[i])[0]
    return {"edges": edges, "counts": counts, "quantiles": quantiles, "log": log, "nonfinite": nonfinite,
            "zeros": zeros}


def color_range(frames: np.ndarray, symmetric: bool = False) -> dict[str, Any]:
    """The colour scale shared by all ``frames``: ``{"scale": "linear" | "log" | "diverging",
    "low", "high"}``. Signed values (or ``symmetric``) get a diverging scale centred on 0; positive
    values spanning more than :data:`LOG_SPAN` a log scale; others a linear one."""
    v = np.asarray(frames, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"scale": "linear", "low": 0.0, "high": 1.0}
    lo, hi = float(v.min()), float(v.max())
    if symmetric or (lo < 0 < hi):
        m = max(abs(lo), abs(hi)) or 1.0
        return {"scale": "diverging", "low": -m, "high": m}
    if lo > 0 and hi / lo > LOG_SPAN:
        return {"scale": "log", "low": lo, "high": hi}
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return {"scale": "linear", "low": lo, "high": hi}


def block_factor(shape: tuple[int, ...], max_side: int) -> int:
    """The smallest block size making both sides of ``shape`` at most ``max_side``."""
    return max(1, math.ceil(max(shape) / max_side)) if shape else 1
