"""Shared test setup: float64, NaN debugging, strict promotion, reference systems."""

import itertools

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_debug_nans", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def keys():
    """``next(keys)`` gives a fresh PRNG key."""
    return (jax.random.key(i) for i in itertools.count())


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(20261125)


def rattled_bulk(symbol, crystal, a, repeat, stdev, seed, cubic=False):
    """An ASE bulk crystal repeated and rattled (reference-system helper)."""
    from ase.build import bulk

    atoms = bulk(symbol, crystal, a=a, cubic=cubic).repeat(repeat)
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms
