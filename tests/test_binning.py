"""jno_core.binning.histogram gives exactly numpy.histogram's counts and edges."""

from __future__ import annotations

import numpy as np
import pytest

from jno_core.binning import finite_values, histogram


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_histogram_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [
        rng.standard_normal(19),
        rng.standard_normal(1000) * 1e-3 + 5.0,
        np.full(7, 3.25),  # constant: spans value +- 0.5
        rng.integers(-5, 5, 200).astype(float),  # many values exactly on bin edges
        np.linspace(-1.0, 1.0, 101) * 1e150,
        np.array([2.0]),
    ]
    for values in cases:
        for bins in (1, 2, 3, 10, 17, 64, 512):
            want_c, want_e = np.histogram(values, bins)
            got_c, got_e = histogram(values, bins)
            np.testing.assert_array_equal(got_c, want_c)
            np.testing.assert_array_equal(got_e, want_e)
            assert got_c.dtype == want_c.dtype and got_c.sum() == values.size


def test_too_narrow_range_is_widened_instead_of_failing() -> None:
    values = 1e6 + np.random.default_rng(0).standard_normal(50) * 1e-9
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(values, 97)
    counts, edges = histogram(values, 97)
    assert counts.sum() == 50 and np.all(np.diff(edges) > 0)
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    np.testing.assert_allclose(edges[-1] - edges[0], 1.0)


def test_finite_values_drops_nan_and_inf_and_flattens() -> None:
    got = finite_values([[1.0, np.nan], [np.inf, -2.0]])
    np.testing.assert_array_equal(got, [1.0, -2.0])
    assert got.dtype == np.float64
    assert finite_values(np.array([np.nan])).size == 0
