"""jno_core.colormap (shared by the TensorBoard and W&B sinks)."""

from __future__ import annotations

import numpy as np
import pytest

from jno_core.colormap import NAN_COLOR, RAMP, apply_colormap, heatmap_to_rgb, normalize


def test_normalize_by_finite_min_max() -> None:
    unit, lo, hi = normalize([[-1.0, 0.0], [np.nan, 3.0]])
    assert (lo, hi) == (-1.0, 3.0)
    np.testing.assert_allclose(unit, [[0.0, 0.25], [np.nan, 1.0]])
    unit, lo, hi = normalize(np.full((2, 2), 7.0))
    np.testing.assert_array_equal(unit, np.full((2, 2), 0.5))
    unit, lo, hi = normalize([np.nan, np.inf])
    assert np.isnan(lo) and np.isnan(hi) and np.isnan(unit).all()


def test_ramp_end_points_interpolation_and_luminance() -> None:
    rgb = apply_colormap(np.linspace(0.0, 1.0, 10))
    np.testing.assert_array_equal(rgb, RAMP.astype(np.uint8))  # anchors hit exactly
    mid = apply_colormap([0.5 / 9])[0]  # half-way between the first two anchors
    np.testing.assert_array_equal(mid, np.rint((RAMP[0] + RAMP[1]) / 2).astype(np.uint8))
    lum = apply_colormap(np.linspace(0, 1, 101)).astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(lum) > 0)  # perceptually ordered: brighter for larger values
    np.testing.assert_array_equal(apply_colormap([np.nan, -1.0, 2.0]), [NAN_COLOR, RAMP[0], RAMP[-1]])


def test_heatmap_to_rgb_shape_and_enlargement() -> None:
    img, lo, hi = heatmap_to_rgb(np.array([[0.0, 1.0]]))
    assert img.dtype == np.uint8 and img.shape == (32, 64, 3)  # max_scale=32 caps 1-row arrays
    assert (lo, hi) == (0.0, 1.0)
    np.testing.assert_array_equal(img[:, :32], np.broadcast_to(RAMP[0], (32, 32, 3)))
    img, _, _ = heatmap_to_rgb(np.zeros((100, 3)), min_size=1)
    assert img.shape == (100, 3, 3)
    img, _, _ = heatmap_to_rgb(np.zeros((11, 11)))
    assert img.shape == (66, 66, 3)
    with pytest.raises(ValueError, match="2-D"):
        heatmap_to_rgb(np.zeros(3))


def test_encode_png_decodes_to_the_same_pixels() -> None:
    Image = pytest.importorskip("PIL.Image")
    import io

    from jno_core.colormap import encode_png

    img, _, _ = heatmap_to_rgb(np.array([[0.0, 1.0, np.nan], [0.5, 0.25, 2.0]]))
    png = encode_png(img)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == "RGB" and decoded.size == (img.shape[1], img.shape[0])
    np.testing.assert_array_equal(np.asarray(decoded), img)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((2, 2, 3)))
