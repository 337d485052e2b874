"""Session-scoped reference systems for the phonon tests."""

import jax
import numpy as np
import pytest
from ase.build import bulk
from phonopy_reference import A_CU, A_SI

from mldiff import potentials
from mldiff.structure import Structure


@pytest.fixture(scope="session")
def si_sw():
    """Stillinger-Weber Si: (potential, params, conventional 8-atom ASE cell)."""
    pot = potentials.get("sw")
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True)
    return pot, pot.init(jax.random.key(0), Structure.from_ase(atoms)), atoms


@pytest.fixture(scope="session")
def cu_emt():
    """JAX EMT Cu: (potential, params, primitive 1-atom ASE cell)."""
    pot = potentials.get("emt")
    atoms = bulk("Cu", "fcc", a=A_CU)
    return pot, pot.init(jax.random.key(0), Structure.from_ase(atoms)), atoms


@pytest.fixture(scope="session")
def si_phonopy(si_sw):
    """Phonopy's finite-displacement (0.01 Å) phonons of Si-SW.

    2×2×2 conventional supercell (64 atoms), forces from mldiff's ASE
    calculator, ASE masses.
    """
    from phonopy_reference import (
        FCC_PRIMITIVE,
        phonopy_finite_displacements,
        phonopy_object,
    )

    from mldiff.ase import Calculator
    from mldiff.units import masses_amu

    _, _, atoms = si_sw
    phonon = phonopy_object(
        atoms, np.diag([2, 2, 2]), FCC_PRIMITIVE, masses=masses_amu(atoms.numbers)
    )
    return phonopy_finite_displacements(phonon, Calculator("sw"))


@pytest.fixture(scope="session")
def si_phonons(si_sw):
    """Our phonons of the same Si-SW system (``phonons.run``)."""
    from phonopy_reference import FCC_PRIMITIVE

    from mldiff import phonons

    pot, params, atoms = si_sw
    return phonons.run(
        pot,
        params,
        Structure.from_ase(atoms),
        [2, 2, 2],
        primitive_matrix=FCC_PRIMITIVE,
    )
