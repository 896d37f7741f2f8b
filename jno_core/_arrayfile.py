"""The csv sink's array files: one compressed ``.npz`` per key and step.

A heatmap, histogram or array value logged under ``key`` at ``step`` is the file
``arrays/<folder of key>/<step:08d>.npz`` (``<step:08d>~<n>.npz`` for the n-th value of one
key at one step): a NumPy archive with one deflate-compressed member, ``values`` (the array as
logged, dtype and shape kept), so ``np.load(path)["values"]`` reads it. The archive's comment
(``zipfile.ZipFile(path).comment``) is JSON, ``{"key": ..., "kind": ..., "bins": ...}``: the
metric key, one of :data:`KINDS`, and a histogram's bin count (``null`` for other kinds).

Metadata lives in the comment rather than in more members because each member costs ~8 us of
``zipfile`` work and the delivery thread writes ~180 of these files per 2,000-epoch solve of the
spec's script 09. Files written by hand (``np.savez_compressed(path, values=...)``, optionally
with ``key``, ``kind``, ``bins`` or ``step`` members) are read too.

A file is written under a temporary name starting with ``"."`` and renamed into place, so a
killed writer never leaves a partial ``.npz`` (at most a temporary file, which readers skip and
a reopening writer removes).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SUFFIX", "KINDS", "TMP_PREFIX", "encode_array_file", "read_array_file", "step_filename", "parse_step"]

#: file name suffix of an array file
SUFFIX = ".npz"
#: first characters of a file being written (renamed into place when complete)
TMP_PREFIX = ".tmp-"
#: metric kinds stored in array files
KINDS = ("heatmap", "histogram", "array")
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


def step_filename(step: int, n: int = 1) -> str:
    """The file name of the ``n``-th value (1-based) logged under one key at ``step``."""
    return f"{int(step):08d}{SUFFIX}" if n == 1 else f"{int(step):08d}~{n}{SUFFIX}"


def parse_step(name: str) -> tuple[int, int] | None:
    """``(step, n)`` from a name made by :func:`step_filename`; ``None`` for other names."""
    if not name.endswith(SUFFIX) or name.startswith("."):
        return None
    stem, _, n = name[: -len(SUFFIX)].partition("~")
    try:
        return int(stem), int(n) if n else 1
    except ValueError:
        return None


def encode_array_file(key: str, kind: str, values: Any, bins: int | None = None) -> bytes:
    """The bytes of one array file (see the module docstring).

    :param key: the metric key.
    :param kind: one of :data:`KINDS` (other names are stored as ``"array"``).
    :param values: a numeric array of any shape.
    :param bins: the bin count of a histogram (``None`` otherwise).
    :raises TypeError: for an array of Python objects (not storable without pickling).
    """
    arr = np.ascontiguousarray(values)
    if arr.dtype.hasobject:
        raise TypeError(
            f"array metric values must be numeric, received dtype {arr.dtype} for {key!r}; "
            "convert them with np.asarray(values, dtype=float) before logging."
        )
    meta = {"key": str(key), "kind": kind if kind in KINDS else "array", "bins": None if bins is None else int(bins)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(_member("values.npy", zipfile.ZIP_DEFLATED), _header(arr.dtype, arr.shape) + arr.tobytes(),
                   compresslevel=1)
        z.comment = json.dumps(meta).encode()
    return buf.getvalue()


def _member(name: str, compress_type: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    """A member with a fixed date (the same value gives the same bytes) and mode 0644."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def read_array_file(path: str | Path) -> tuple[str | None, int, str, int | None, np.ndarray]:
    """Read an array file.

    :returns: ``(key, step, kind, bins or None, values)``; ``key`` is ``None`` when the file
        does not say (a file written by hand), the step is the file name's unless the file
        holds a ``step`` member.
    :raises OSError, ValueError, KeyError, zipfile.BadZipFile: for an unreadable file.
    """
    p = Path(path)
    with np.load(p, allow_pickle=False) as z:
        meta: dict[str, Any] = {}
        if z.zip.comment:
            loaded = json.loads(z.zip.comment)
            meta = loaded if isinstance(loaded, dict) else {}
        for name in ("key", "kind", "bins", "step"):
            if name in z.files:
                meta[name] = z[name].item()
        values = np.asarray(z["values"])
    parsed = parse_step(p.name)
    key = meta.get("key")
    kind = meta.get("kind")
    bins = meta.get("bins")
    step = int(meta["step"]) if meta.get("step") is not None else (parsed[0] if parsed else 0)
    return (None if key is None else str(key), step, kind if kind in KINDS else "array",
            int(bins) if bins is not None and int(bins) > 0 else None, values)
