"""Train / validation / test splits, reproducible from a seed.

Example:
    >>> train, val, test = split(10, (0.8, 0.1, 0.1), seed=0)
    >>> len(train), len(val), len(test)
    (8, 1, 1)
"""

from collections.abc import Sequence

import numpy as np

from mldiff.errors import DataError

__all__ = ["split", "take", "split_items"]


def _counts(n: int, fractions: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of ``n * fractions`` to integers summing to n."""
    exact = n * fractions
    counts = np.floor(exact).astype(int)
    short = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def split(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Random disjoint index sets covering ``range(n)``.

    Args:
        n: number of items.
        fractions: share of each part (any number of parts), non-negative and
            summing to 1. Counts are ``n * fraction`` rounded by largest
            remainder, so they always add up to ``n``.
        seed: seed of the permutation; the same seed gives the same split.

    Returns:
        One sorted ``[n_k]`` int64 index array per fraction; together they
        hold every index in ``range(n)`` exactly once.

    Raises:
        DataError: negative ``n``, negative fractions or fractions that do not
            sum to 1.

    Example:
        >>> [len(p) for p in split(5, (0.5, 0.5), seed=1)]
        [3, 2]
    """
    if int(n) != n or n < 0:
        raise DataError(f"split needs a non-negative integer n, got {n!r}")
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.size == 0 or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise DataError(
            f"split fractions must be non-negative and sum to 1, got "
            f"{list(fractions)} (sum {f.sum():.6g}); e.g. (0.8, 0.1, 0.1)"
        )
    perm = np.random.default_rng(seed).permutation(int(n))
    bounds = np.cumsum(_counts(int(n), f))[:-1]
    return tuple(np.sort(part) for part in np.split(perm, bounds))


def take(items: Sequence, indices) -> list:
    """``[items[i] for i in indices]``.

    Args:
        items: any sequence (e.g. a list of labeled structures).
        indices: ``[k]`` integer indices.

    Returns:
        The selected items, in the order of ``indices``.

    Example:
        >>> take("abcd", [3, 0])
        ['d', 'a']
    """
    return [items[int(i)] for i in np.asarray(indices, dtype=np.int64).reshape(-1)]


def split_items(
    items: Sequence, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list, ...]:
    """Split a sequence into parts with :func:`split`.

    Args:
        items: the sequence to split.
        fractions: share of each part, summing to 1.
        seed: seed of the permutation.

    Returns:
        One list per fraction, items in their original order.

    Example:
        >>> split_items(list(range(4)), (0.5, 0.5), seed=0)
        ([0, 2], [1, 3])
    """
    return tuple(take(items, idx) for idx in split(len(items), fractions, seed))
