"""Unit constants agree with ase.units (the reference mldiff matches)."""

import numpy as np
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


@pytest.mark.parametrize(
    "ours, name",
    [
        (units.e_C, "_e"),
        (units.amu_kg, "_amu"),
        (units.kB_J_K, "_k"),
        (units.h_J_s, "_hplanck"),
        (units.me_kg, "_me"),
        (units.avogadro, "_Nav"),
        (units.Bohr, "Bohr"),
    ],
)
def test_si_constants_are_ase_codata_2014(ours, name):
    # ase.units' CODATA 2014 set, the one mldiff states
    assert ase_units.__codata_version__ == "2014"
    assert ours == pytest.approx(getattr(ase_units, name), rel=1e-15)


def test_gas_constant_is_avogadro_times_boltzmann():
    # R = N_A k_B; CODATA 2014 recommends 8.3144598(48) J/(mol K)
    assert units.gas_constant_j_mol_k == pytest.approx(8.3144598, abs=5e-6)
    assert units.gas_constant_j_mol_k == pytest.approx(
        ase_units._Nav * ase_units._k, rel=1e-15
    )


@pytest.mark.parametrize(
    "ours, name",
    [
        (units.PHONOPY_KB_EV_K, "KB"),
        (units.PHONOPY_THZ_TO_EV, "THzToEv"),
        (units.PHONOPY_EV_TO_KJ_MOL, "EvTokJmol"),
        (units.PHONOPY_THZ_PER_SQRT_EV_A2_AMU, "DefaultToTHz"),
        (units.PHONOPY_EV_PER_A3_TO_GPA, "EVAngstromToGPa"),
        (units.PHONOPY_AMU_KG, "AMU"),
        (units.PHONOPY_EV_J, "EV"),
        (units.PHONOPY_KB_J_K, "KB_J"),
        (units.PHONOPY_PLANCK_EV_S, "PlanckConstant"),
        (units.PHONOPY_AVOGADRO, "Avogadro"),
    ],
)
def test_phonopy_constants_are_phonopy_defaults(ours, name):
    # phonopy's default physical units (set_physical_units' defaults, whatever
    # another test set globally), from which its frequencies and QHA are computed
    import inspect

    from phonopy import physical_units as pu

    defaults = {
        k: v.default
        for k, v in inspect.signature(pu.set_physical_units).parameters.items()
    }
    assert getattr(pu.PhysicalUnitsGenerator(**defaults), name) == ours


def test_hbar_is_phonopys():
    import inspect

    from phonopy import physical_units as pu

    d = {
        k: v.default
        for k, v in inspect.signature(pu.set_physical_units).parameters.items()
    }
    ref = pu.PhysicalUnitsGenerator(**d)
    assert units.PHONOPY_HBAR_J_S == pytest.approx(ref.Hbar * ref.EV, rel=1e-15)


def test_masses_are_ases():
    # ase.data.atomic_masses, what ase.Atoms.get_masses() gives
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2)
    m = units.masses_amu(atoms.numbers)
    assert m.dtype == np.float64
    np.testing.assert_array_equal(m, atoms.get_masses())
