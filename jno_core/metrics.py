"""Typed metric values.

Every metric that leaves the core goes through the ``log_metrics`` hook as a mapping
``key -> MetricValue``. The type tells each sink how to render the value natively
(a W&B image or histogram, a TensorBoard image or histogram, a CSV row or an array file).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Union

import attrs
import numpy as np

__all__ = [
    "Scalar",
    "Heatmap",
    "Histogram",
    "Array",
    "MetricValue",
    "as_metric",
    "as_metrics",
    "METRIC_TYPES",
]


def _to_float(v: Any) -> float:
    return float(np.asarray(v).reshape(()))


def _to_array(v: Any) -> np.ndarray:
    return np.asarray(v)


@attrs.frozen
class Scalar:
    """One number. Non-finite values are kept as they are (``nan``/``inf``), never dropped."""

    value: float = attrs.field(converter=_to_float)
    kind = "scalar"

    @property
    def is_finite(self) -> bool:
        return math.isfinite(self.value)


@attrs.frozen
class Heatmap:
    """A 2-D array rendered as a colour-mapped image (e.g. a cosine-similarity matrix or
    a loss landscape). ``values`` has shape ``(H, W)``."""

    values: np.ndarray = attrs.field(converter=_to_array, eq=attrs.cmp_using(eq=np.array_equal))
    kind = "heatmap"

    def __attrs_post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(
                f"Heatmap expects a 2-D array, received shape {self.values.shape}; "
                "reshape the values to (rows, columns) first."
            )


@attrs.frozen
class Histogram:
    """A sample of values whose distribution is rendered as a histogram (e.g. pointwise
    residuals). ``values`` is flattened to shape ``(M,)``; ``bins`` is the bin count sinks use."""

    values: np.ndarray = attrs.field(
        converter=lambda v: np.asarray(v, dtype=np.float64).ravel(),
        eq=attrs.cmp_using(eq=np.array_equal),
    )
    bins: int = 64
    kind = "histogram"


@attrs.frozen
class Array:
    """An arbitrary array kept as it is (e.g. an eigenvalue spectrum). Sinks store it
    (CSV: an array file) or render it as a histogram where they cannot store arrays."""

    values: np.ndarray = attrs.field(converter=_to_array, eq=attrs.cmp_using(eq=np.array_equal))
    kind = "array"


MetricValue = Union[Scalar, Heatmap, Histogram, Array]
METRIC_TYPES = (Scalar, Heatmap, Histogram, Array)


def as_metric(value: Any, *, key: str = "?", source: str = "?") -> MetricValue:
    """Wrap ``value`` as a metric: metric values pass through, Python/NumPy/JAX numbers and
    0-d (or size-1) arrays become :class:`Scalar`. Anything else is an error naming ``source``."""
    if isinstance(value, METRIC_TYPES):
        return value
    if isinstance(value, (bool, int, float, np.number)):
        return Scalar(value)
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects
        arr = None
    if arr is not None and arr.dtype.kind in "fiub" and arr.size == 1:
        return Scalar(arr)
    raise TypeError(
        f"{source} produced metric {key!r} of type {type(value).__name__}"
        f"{'' if arr is None else f' with shape {arr.shape}'}; expected a number or one of "
        "jno_core.metrics.Scalar/Heatmap/Histogram/Array. Wrap arrays in the metric type "
        "that says how to render them, e.g. Histogram(values)."
    )


def as_metrics(metrics: Mapping[str, Any], *, source: str = "?") -> dict[str, MetricValue]:
    """Wrap every value of ``metrics`` with :func:`as_metric`; keys must be strings."""
    out: dict[str, MetricValue] = {}
    for k, v in metrics.items():
        if not isinstance(k, str):
            raise TypeError(f"{source} produced a metric key {k!r}; metric keys must be str.")
        out[k] = as_metric(v, key=k, source=source)
    return out
