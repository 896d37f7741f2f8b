"""jno_core.binning.histogram gives exactly numpy.histogram's counts and edges."""

from __future__ import annotations

import numpy as np
import pytest

from jno_core.binning import SMALL, finite_values, histogram, histogram_lists


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
            # the list form (pure Python below SMALL, NumPy above) gives the same numbers
            lc, le = histogram_lists(values, bins)
            assert lc == want_c.tolist() and le == want_e.tolist()


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


def test_pure_python_path_matches_numpy_on_edge_cases() -> None:
    """histogram_lists below SMALL (pure Python) against np.histogram, on values made to sit
    on and within an ulp of bin edges, tiny and huge magnitudes."""
    rng = np.random.default_rng(7)
    n = 0
    for t in range(3000):
        m, bins = int(rng.integers(1, 80)), int(rng.integers(1, 70))
        v = [rng.standard_normal(m), rng.integers(-3, 3, m).astype(float),
             rng.standard_normal(m) * 1e-300, 1e6 + rng.standard_normal(m) * 1e-7,
             np.round(rng.standard_normal(m), 2) * 10.0 ** float(rng.integers(-20, 20))][t % 5]
        if m + bins > SMALL:
            continue
        lc, le = histogram_lists(v, bins)
        try:
            want_c, want_e = np.histogram(v, bins)
        except ValueError:  # NumPy refuses a range too narrow: compare with the widening
            want_c, want_e = histogram(v, bins)
        assert lc == want_c.tolist() and le == want_e.tolist(), (t, m, bins)
        n += 1
    assert n > 2500


def test_constant_too_large_for_half_unit_widening_still_bins() -> None:
    """A constant 1.22e16: +-0.5 rounds back to the value (float64 spacing there is 2), which
    NumPy refuses; the range is widened until the edges are distinct."""
    v = np.array([-1.22e16])
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(v, 55)
    for f in (histogram, histogram_lists):
        counts, edges = f(v, 55)
        edges = np.asarray(edges)
        assert sum(counts) == 1 and np.all(np.diff(edges) > 0)
        assert edges[0] <= v[0] <= edges[-1]
