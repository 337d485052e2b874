"""Splits: disjoint, covering, reproducible (reference: set algebra on indices)."""

import numpy as np
import pytest

from mldiff.data import DataError, split, split_items, take


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 101])
@pytest.mark.parametrize(
    "fractions", [(0.8, 0.1, 0.1), (0.5, 0.5), (1.0,), (0.7, 0.0, 0.3)]
)
def test_parts_cover_and_do_not_overlap(n, fractions):
    parts = split(n, fractions, seed=3)
    assert len(parts) == len(fractions)
    joined = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))  # cover, no repeats
    for part, f in zip(parts, fractions, strict=True):
        assert abs(len(part) - f * n) < 1.0  # largest-remainder rounding
        assert part.dtype.kind == "i"


def test_same_seed_same_split_other_seed_other_split():
    a = split(50, seed=1)
    b = split(50, seed=1)
    c = split(50, seed=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_split_items_and_take():
    items = [f"s{k}" for k in range(10)]
    train, val, test = split_items(items, (0.6, 0.2, 0.2), seed=0)
    idx = split(10, (0.6, 0.2, 0.2), seed=0)
    assert train == take(items, idx[0]) and val == take(items, idx[1])
    assert sorted(train + val + test) == sorted(items)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (1.2, -0.2), ()])
def test_bad_fractions(fractions):
    with pytest.raises(DataError, match="must be non-negative and sum to 1"):
        split(10, fractions)
