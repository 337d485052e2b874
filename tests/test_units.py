"""Unit constants agree with ase.units (the reference mldiff matches)."""

import pytest
from ase import units as ase_units

from mldiff import units


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (units.kB, ase_units.kB),
        (units.fs, ase_units.fs),
        (units.GPa, ase_units.GPa),
        (units.eV_per_A3_to_GPa, 1.0 / ase_units.GPa),
    ],
)
def test_constants_equal_ase(ours, theirs):
    assert ours == pytest.approx(theirs, rel=1e-12)
