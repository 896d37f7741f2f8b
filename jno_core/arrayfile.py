"""The csv sink's array files: compressed ``.npz`` archives named by key and step.

Every delivery writes, for each key with heatmap, histogram or array values in it, one file
``arrays/<folder of key>/<first step:08d>-<last step:08d>.npz`` (``<step:08d>.npz`` when it
holds one step; ``...~<n>.npz`` when a name is taken), a NumPy archive that ``np.load`` reads:

``steps``
    int64 ``(S,)``: the step of each value, in the order logged;
``values``
    ``(S, *shape)``: the values as logged (dtype kept), deflate-compressed; values of different
    shapes or dtypes are ``values_0`` ... ``values_<S-1>`` instead.

The archive's comment (``zipfile.ZipFile(path).comment``) is JSON: ``{"key": ..., "kind":
..., "bins": ...}``, the metric key, one of :data:`KINDS` (a list of S kinds when they differ)
and the histogram bin counts (``null``, one int, or a list of S).

One file per key and delivery (not per step) because creating a file is what costs (see
benchmarks/README.md), and the spec's script 09 logs 180 arrays per 2,000-epoch solve in a
handful of deliveries. A file is written under a temporary name starting with
:data:`TMP_PREFIX` and then given its name (a hard link, so an existing file is never
replaced), so a killed writer never leaves a partial ``.npz``
(at most a temporary file, which readers skip and a reopening writer removes). Files written
by hand (``np.savez_compressed(path, values=...)``, optionally with ``key``, ``kind``, ``bins``
or ``step`` members) are read as one value each.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["SUFFIX", "KINDS", "TMP_PREFIX", "ArrayRecord", "file_name", "parse_name", "encode_array_file",
           "read_array_file"]

#: file name suffix of an array file
SUFFIX = ".npz"
#: first characters of a file being written (``.tmp-<pid>-<name>``; named when complete)
TMP_PREFIX = ".tmp-"
#: metric kinds stored in array files
KINDS = ("heatmap", "histogram", "array")
#: ``(step, kind, values, bins or None)``: one logged value
ArrayRecord = tuple[int, str, Any, "int | None"]
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


def _npy(arr: np.ndarray) -> bytes:
    return _header(arr.dtype, arr.shape) + arr.tobytes()


def file_name(first: int, last: int, n: int = 1) -> str:
    """The name of the ``n``-th file (1-based) of one key holding steps ``first..last``."""
    stem = f"{int(first):08d}" if first == last else f"{int(first):08d}-{int(last):08d}"
    return stem + SUFFIX if n == 1 else f"{stem}~{n}{SUFFIX}"


_NAME = re.compile(r"(-?\d+)(?:-(-?\d+))?(?:~(\d+))?" + re.escape(SUFFIX))


def parse_name(name: str) -> tuple[int, int, int] | None:
    """``(first, last, n)`` from a name made by :func:`file_name`; ``None`` for other names."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    first = int(m.group(1))
    return first, int(m.group(2)) if m.group(2) else first, int(m.group(3)) if m.group(3) else 1


def _member(name: str, compress_type: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    """A member with a fixed date (the same values give the same bytes) and mode 0644."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def _same(values: Sequence[Any]) -> Any:
    """The one element of ``values`` if they are all equal, else the list."""
    return values[0] if all(v == values[0] for v in values) else list(values)


def encode_array_file(key: str, records: Sequence[ArrayRecord]) -> bytes:
    """The bytes of one array file (see the module docstring) holding ``records``.

    :param key: the metric key.
    :param records: ``(step, kind, values, bins or None)`` in the order logged (at least one);
        kinds other than :data:`KINDS` are stored as ``"array"``.
    :raises TypeError: for an array of Python objects (not storable without pickling).
    """
    arrays = [np.ascontiguousarray(r[2]) for r in records]
    for arr in arrays:
        if arr.dtype.hasobject:
            raise TypeError(
                f"array metric values must be numeric, received dtype {arr.dtype} for {key!r}; "
                "convert them with np.asarray(values, dtype=float) before logging."
            )
    meta = {
        "key": str(key),
        "kind": _same([r[1] if r[1] in KINDS else "array" for r in records]),
        "bins": _same([None if r[3] is None else int(r[3]) for r in records]),
    }
    steps = np.asarray([int(r[0]) for r in records], np.int64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(_member("steps.npy"), _npy(steps))
        first = arrays[0]
        if all(a.shape == first.shape and a.dtype == first.dtype for a in arrays):
            data = _header(first.dtype, (len(arrays), *first.shape)) + b"".join(a.tobytes() for a in arrays)
            z.writestr(_member("values.npy", zipfile.ZIP_DEFLATED), data, compresslevel=1)
        else:
            for i, a in enumerate(arrays):
                z.writestr(_member(f"values_{i}.npy", zipfile.ZIP_DEFLATED), _npy(a), compresslevel=1)
        z.comment = json.dumps(meta).encode()
    return buf.getvalue()


def _per_record(value: Any, n: int) -> list[Any]:
    return list(value) if isinstance(value, list) and len(value) == n else [value] * n


def read_array_file(path: str | Path) -> tuple[str | None, list[tuple[int, str, int | None, np.ndarray]]]:
    """Read an array file.

    :returns: ``(key, records)``: ``key`` is ``None`` when the file does not say (a file written
        by hand); ``records`` are ``(step, kind, bins or None, values)`` in file order. A file
        without ``steps`` holds one value (``values``), at its ``step`` member or the step in its
        name.
    :raises OSError, ValueError, KeyError, zipfile.BadZipFile: for an unreadable file.
    """
    p = Path(path)
    with np.load(p, allow_pickle=False) as z:
        meta: dict[str, Any] = {}
        if z.zip.comment:
            loaded = json.loads(z.zip.comment)
            meta = loaded if isinstance(loaded, dict) else {}
        names = set(z.files)
        for name in ("key", "kind", "bins", "step"):
            if name in names:
                meta[name] = z[name].item()
        if "steps" in names:
            steps = [int(s) for s in z["steps"]]
            if "values" in names:
                stacked = np.asarray(z["values"])
                values = [stacked[i] for i in range(len(steps))]
            else:
                values = [np.asarray(z[f"values_{i}"]) for i in range(len(steps))]
        else:
            parsed = parse_name(p.name)
            step = meta.get("step")
            steps = [int(step) if step is not None else (parsed[0] if parsed else 0)]
            values = [np.asarray(z["values"])]
    n = len(steps)
    kinds = [k if k in KINDS else "array" for k in _per_record(meta.get("kind"), n)]
    bins = [int(b) if b is not None and int(b) > 0 else None for b in _per_record(meta.get("bins"), n)]
    key = meta.get("key")
    return None if key is None else str(key), list(zip(steps, kinds, bins, values))
