"""The csv sink's per-key array files: an append-only sequence of ``.npy`` arrays.

A file ``arrays/<key with "/" replaced by "__">.npys`` holds every heatmap, histogram and
array value logged under one key, as consecutive arrays in NumPy's ``.npy`` format (version
1.0, uncompressed), so plain NumPy reads it (``np.lib.format.read_array`` in a loop):

1. the key, a 0-d unicode array;
2. then one pair per logged value: ``meta``, int64 ``(3,)`` = ``(step, kind code, bins)``
   (kind codes index :data:`KINDS`; ``bins`` is ``-1`` except for histograms), followed by
   ``values``, the array as logged (dtype and shape kept).

Appending is cheap (one ``write`` per batch, no compression, no new file per step), and a
killed writer can leave only an incomplete last pair, which readers ignore and a writer that
reopens the file cuts off. Float arrays of diagnostics barely compress; compressing each small
array used to cost more than the training step it described.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SUFFIX", "KINDS", "encode_key", "encode_record", "read_array_file"]

#: file name suffix of an array file
SUFFIX = ".npys"
#: metric kinds stored in array files; a record's kind code is the index here
KINDS = ("heatmap", "histogram", "array")
_CODES = {k: i for i, k in enumerate(KINDS)}
_META_DTYPE = np.dtype("<i8")
_headers: dict[tuple[np.dtype, tuple[int, ...]], bytes] = {}


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` 1.0 header of a C-ordered array of ``dtype`` and ``shape`` (cached)."""
    k = (dtype, shape)
    h = _headers.get(k)
    if h is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        )
        h = buf.getvalue()
        if len(_headers) < 4096:
            _headers[k] = h
    return h


_META_HEADER = _header(_META_DTYPE, (3,))


def encode_key(key: str) -> bytes:
    """The first array of a new file: ``key`` as a 0-d unicode array."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(str(key)), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def encode_record(step: int, kind: str, values: Any, bins: int | None = None) -> bytes:
    """One ``(meta, values)`` pair as bytes.

    :param step: the step the value belongs to.
    :param kind: one of :data:`KINDS`.
    :param values: a numeric array of any shape.
    :param bins: the bin count of a histogram (``None`` otherwise).
    :raises TypeError: for an array of Python objects (not storable without pickling).
    """
    arr = np.ascontiguousarray(values)
    if arr.dtype.hasobject:
        raise TypeError(
            f"array metric values must be numeric, received dtype {arr.dtype}; convert them "
            "with np.asarray(values, dtype=float) before logging."
        )
    meta = np.array((int(step), _CODES.get(kind, _CODES["array"]), -1 if bins is None else int(bins)), _META_DTYPE)
    return b"".join((_META_HEADER, meta.tobytes(), _header(arr.dtype, arr.shape), arr.tobytes()))


def read_array_file(path: str | Path) -> tuple[str | None, list[tuple[int, str, int | None, np.ndarray]], int]:
    """Read an array file.

    :returns: ``(key, records, end)``: ``key`` is ``None`` when even the key is incomplete;
        ``records`` are ``(step, kind, bins or None, values)`` in file order; ``end`` is the
        byte offset after the last complete record (shorter than the file when a killed writer
        left an incomplete one).
    """
    data = Path(path).read_bytes()
    fh = io.BytesIO(data)
    try:
        key = str(np.lib.format.read_array(fh, allow_pickle=False))
    except Exception:  # noqa: BLE001 - an incomplete key: nothing usable
        return None, [], 0
    end = fh.tell()
    records: list[tuple[int, str, int | None, np.ndarray]] = []
    while end < len(data):
        try:
            meta = np.lib.format.read_array(fh, allow_pickle=False)
            values = np.lib.format.read_array(fh, allow_pickle=False)
            step, code, bins = (int(v) for v in meta)
        except Exception:  # noqa: BLE001 - a killed writer's incomplete last record
            break
        kind = KINDS[code] if 0 <= code < len(KINDS) else "array"
        records.append((step, kind, bins if bins >= 0 else None, values))
        end = fh.tell()
    return key, records, end
