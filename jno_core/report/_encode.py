"""Numeric arrays in the report's JSON: little-endian bytes in base64 (about 5.3 characters per
float32 value instead of ~12 as decimal text, and NaN/inf survive), decoded in the page into
typed arrays by ``report.js``."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["packed", "packed_steps"]


def packed(values: Any, dtype: str = "f4") -> dict[str, Any]:
    """``{"dtype", "shape", "b64"}`` of ``values`` as little-endian ``dtype`` (``"f4"``,
    ``"f8"``, ``"i4"``)."""
    a = np.ascontiguousarray(np.asarray(values), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def packed_steps(steps: Any) -> dict[str, Any]:
    """Steps as int32 when they fit, else float64 (exact up to 2**53)."""
    s = np.asarray(steps, dtype=np.int64)
    if s.size == 0 or (s.min() >= -(2**31) and s.max() < 2**31):
        return packed(s, "i4")
    return packed(s, "f8")
