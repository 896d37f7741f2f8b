"""Equal-width histograms for the metrics sinks, identical to ``numpy.histogram``.

The TensorBoard and W&B sinks bin every :class:`jno_core.metrics.Histogram` they receive.
:func:`histogram` returns exactly what ``np.histogram(values, bins)`` returns for finite
values, with a fraction of its Python overhead (which dominates for the small arrays that
diagnostics log: NumPy's general entry point has a fixed cost of argument handling whatever
the size; figures in benchmarks/README.md).
:func:`histogram_lists` bins small inputs in plain Python floats (the same float64
operations in the same order, so the same counts and edges), for sinks that need lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SMALL", "finite_values", "histogram", "histogram_lists", "histogram_of_list"]

#: :func:`histogram_lists` bins inputs with ``values.size + bins`` up to this in plain Python
SMALL = 160


def finite_values(values: Any) -> np.ndarray:
    """The finite entries of ``values`` as a flat float64 array (no copy when all are
    finite and the input already is flat float64)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(flat)
    return flat if ok.all() else flat[ok]


def histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of ``values`` in ``bins`` equal-width bins spanning their minimum
    to maximum, as ``np.histogram(values, bins)`` computes them (a constant array spans
    ``value - 0.5`` to ``value + 0.5``; the last bin includes its right edge). Where NumPy
    refuses (a range too narrow for ``bins`` distinct float64 edges, e.g. ``1e6`` plus noise of
    ``1e-9``, or a constant ``1.2e16`` whose +-0.5 rounds away), the range is widened around
    its middle, to 1 as for a constant array, or by powers of two until the edges are
    distinct.

    :param values: float64 array of shape ``(M,)``, ``M >= 1``, all finite (see
        :func:`finite_values`).
    :param bins: the number of bins, ``>= 1``.
    :returns: ``counts`` int64 ``(bins,)`` and ``edges`` float64 ``(bins + 1,)``.
    """
    a = values
    lo, hi, edges = _span(float(a.min()), float(a.max()), bins, _np_linspace)
    idx = ((a - lo) / (hi - lo) * bins).astype(np.intp)
    idx[idx == bins] -= 1
    # numpy's corrections for indices within an ulp of a bin edge
    idx[a < edges[idx]] -= 1
    idx[(a >= edges[idx + 1]) & (idx != bins - 1)] += 1
    return np.bincount(idx, minlength=bins), edges


def _np_linspace(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi, bins + 1)


def _increasing(edges: Any) -> bool:
    if isinstance(edges, np.ndarray):
        return bool((edges[1:] > edges[:-1]).all())
    return all(b > a for a, b in zip(edges, edges[1:]))


def _span(lo: float, hi: float, bins: int, linspace: Any) -> tuple[float, float, Any]:
    """``(lo, hi, edges)``: the binned range and its ``bins + 1`` edges from ``linspace``
    (NumPy's or :func:`_linspace`: the same values), widened as :func:`histogram` says."""
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = linspace(lo, hi, bins)
    half = 0.5
    while not hi > lo or (bins > 1 and not _increasing(edges)):
        mid = lo + (hi - lo) / 2
        lo, hi = mid - half, mid + half
        half *= 2.0
        edges = linspace(lo, hi, bins)
    return lo, hi, edges


def histogram_lists(values: np.ndarray, bins: int) -> tuple[list[int], list[float]]:
    """:func:`histogram` as Python lists ``(counts, edges)`` (what protobuf-based sinks
    need): for small inputs (``values.size + bins <= SMALL``) computed in plain Python,
    cheaper than a dozen NumPy calls on a few dozen values (see benchmarks/README.md)."""
    if values.size + bins > SMALL:
        counts, edges = histogram(values, bins)
        return counts.tolist(), edges.tolist()
    return histogram_of_list(values.tolist(), bins)


def histogram_of_list(a: list[float], bins: int) -> tuple[list[int], list[float]]:
    """:func:`histogram_lists` of the finite Python floats ``a`` (non-empty), in plain
    Python whatever the size (meant for small lists)."""
    lo, hi, edges = _span(min(a), max(a), bins, _linspace)
    width = hi - lo
    last = bins - 1
    counts = [0] * bins
    for v in a:
        i = int((v - lo) / width * bins)
        if i == bins:
            i -= 1
        if v < edges[i]:
            i -= 1
        if i != last and v >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return counts, edges


def _linspace(lo: float, hi: float, bins: int) -> list[float]:
    """``np.linspace(lo, hi, bins + 1).tolist()``: ``i * step + lo`` with ``step = (hi -
    lo) / bins`` (``i / bins * (hi - lo) + lo`` where that step underflows to 0), the last
    edge exactly ``hi``."""
    delta = hi - lo
    step = delta / bins
    if step == 0:
        edges = [i / bins * delta + lo for i in range(bins + 1)]
    else:
        edges = [i * step + lo for i in range(bins + 1)]
    edges[-1] = hi
    return edges
