"""Colour-map a 2-D array into an RGB image with NumPy only (no matplotlib).

The TensorBoard and W&B sinks render :class:`jno_core.metrics.Heatmap` values with
:func:`heatmap_to_rgb`: the finite values are scaled linearly from their minimum (dark purple)
to their maximum (yellow) along a viridis-like ramp, non-finite cells get a colour outside the
ramp (magenta by default), and small arrays are enlarged by pixel repetition so a 2x2 cosine
similarity matrix is still visible. Row 0 of the array is the top row of the image.
:func:`encode_png` turns such an image into PNG bytes with the standard library's ``zlib``
(no Pillow, and much cheaper than ``PIL.Image.save`` for these small images; see
benchmarks/README.md).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

__all__ = ["RAMP", "NAN_COLOR", "normalize", "apply_colormap", "heatmap_to_rgb", "encode_png"]

#: Ten evenly spaced anchor colours (0..255) of a perceptually uniform purple-blue-green-yellow
#: ramp (the published anchor colours of matplotlib's "viridis"); values in between are
#: interpolated linearly in RGB.
RAMP: np.ndarray = np.array(
    [
        [0x44, 0x01, 0x54],
        [0x48, 0x28, 0x78],
        [0x3E, 0x49, 0x89],
        [0x31, 0x68, 0x8E],
        [0x26, 0x82, 0x8E],
        [0x1F, 0x9E, 0x89],
        [0x35, 0xB7, 0x79],
        [0x6E, 0xCE, 0x58],
        [0xB5, 0xDE, 0x2B],
        [0xFD, 0xE7, 0x25],
    ],
    dtype=np.float64,
)

_RAMP_LO = RAMP[:-1]
_RAMP_STEP = RAMP[1:] - RAMP[:-1]

#: Colour of ``nan`` / ``inf`` cells: magenta, which the ramp never produces.
NAN_COLOR: tuple[int, int, int] = (255, 0, 255)


def normalize(values: Any) -> tuple[np.ndarray, float, float]:
    """Scale ``values`` to ``[0, 1]`` by the minimum and maximum of its finite entries.

    :param values: an array of any shape.
    :returns: ``(unit, vmin, vmax)``; ``unit`` has the shape of ``values`` with non-finite
        entries left as ``nan``. A constant array maps to ``0.5``; an array without finite
        entries returns ``vmin = vmax = nan``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size:
        lo, hi = arr.min(), arr.max()  # nan if any entry is nan
        if np.isfinite(lo) and np.isfinite(hi):  # every entry finite: the common, fast case
            vmin, vmax = float(lo), float(hi)
            unit = (arr - lo) / (hi - lo) if vmax > vmin else np.full(arr.shape, 0.5)
            return unit, vmin, vmax
    finite = np.isfinite(arr)
    if not finite.any():
        return np.full(arr.shape, np.nan), float("nan"), float("nan")
    vmin = float(arr[finite].min())
    vmax = float(arr[finite].max())
    unit = np.full(arr.shape, np.nan)
    if vmax > vmin:
        unit[finite] = (arr[finite] - vmin) / (vmax - vmin)
    else:
        unit[finite] = 0.5
    return unit, vmin, vmax


def apply_colormap(unit: Any, *, nan_color: tuple[int, int, int] = NAN_COLOR) -> np.ndarray:
    """Map values in ``[0, 1]`` to RGB along :data:`RAMP`.

    :param unit: an array of any shape ``S`` with values in ``[0, 1]`` (clipped) or ``nan``.
    :param nan_color: the RGB colour of ``nan`` entries.
    :returns: ``uint8`` array of shape ``(*S, 3)``.
    """
    u = np.asarray(unit, dtype=np.float64)
    bad = ~np.isfinite(u)
    any_bad = bool(bad.any())
    pos = np.clip(np.where(bad, 0.0, u) if any_bad else u, 0.0, 1.0) * (len(RAMP) - 1)
    lo = np.minimum(pos.astype(np.int64), len(RAMP) - 2)  # pos >= 0: truncation is floor
    frac = (pos - lo)[..., None]
    rgb = _RAMP_LO[lo] + _RAMP_STEP[lo] * frac
    out = np.rint(rgb).astype(np.uint8)
    if any_bad:
        out[bad] = np.asarray(nan_color, dtype=np.uint8)
    return out


def heatmap_to_rgb(
    values: Any,
    *,
    min_size: int = 64,
    max_scale: int = 32,
    nan_color: tuple[int, int, int] = NAN_COLOR,
) -> tuple[np.ndarray, float, float]:
    """Render a 2-D array as an RGB image.

    :param values: array of shape ``(H, W)``.
    :param min_size: the image's shorter side is enlarged by an integer factor ``k`` (each
        cell becomes a ``k x k`` block) until it is at least this many pixels, at most
        ``max_scale`` times; ``1`` keeps one pixel per cell.
    :param max_scale: the largest enlargement factor.
    :param nan_color: the colour of non-finite cells.
    :returns: ``(image, vmin, vmax)``: ``image`` is ``uint8`` of shape ``(k*H, k*W, 3)``
        (height, width, channel); ``vmin``/``vmax`` are the values mapped to the ends of the
        ramp (for a caption).
    :raises ValueError: when ``values`` is not 2-D.
    """
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(
            f"heatmap_to_rgb expects a 2-D array (rows, columns), received shape {arr.shape}; "
            "reshape the values first."
        )
    unit, vmin, vmax = normalize(arr)
    img = apply_colormap(unit, nan_color=nan_color)
    short = max(1, min(arr.shape))
    k = int(min(max(1, -(-int(min_size) // short)), max(1, int(max_scale))))
    if k > 1:  # each cell a k x k block (columns first: whole rows are then copied: faster)
        img = np.repeat(img, k, axis=1).repeat(k, axis=0)
    return img, vmin, vmax


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(image: Any, *, level: int = 1) -> bytes:
    """Encode an 8-bit RGB image as a PNG file (no filter, one ``IDAT`` chunk).

    :param image: ``uint8`` array of shape ``(H, W, 3)`` (as :func:`heatmap_to_rgb` returns).
    :param level: ``zlib`` compression level (default 1, the fastest: an enlarged heatmap is
        runs of equal pixels, a few hundred bytes at any level, and higher levels take longer
        for nothing; see benchmarks/README.md).
    :returns: the bytes of a complete PNG file.
    :raises ValueError: when ``image`` is not ``(H, W, 3)`` ``uint8``.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(
            f"encode_png expects a uint8 array of shape (H, W, 3), received {img.dtype} of shape "
            f"{img.shape}; render it with heatmap_to_rgb first."
        )
    h, w, _ = img.shape
    raw = np.zeros((h, 1 + 3 * w), np.uint8)  # each row: filter byte 0, then the RGB bytes
    raw[:, 1:] = img.reshape(h, 3 * w)
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)),
        _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)),
        _png_chunk(b"IEND", b""),
    ))
