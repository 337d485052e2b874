"""Autodiff phonons of SevenNet-0 against phonopy driving sevenn's calculator.

Reference: phonopy's finite-displacement force constants (0.01 Å) from
``sevenn.calculator.SevenNetCalculator`` (torch, float32 forces), the way a
phonopy user computes them; ours are the float64 Hessian of the JAX port.
"""

import numpy as np
import pytest
from ase.build import bulk

from mldiff import phonons, potentials
from mldiff.structure import Structure

QPOINTS = np.array(
    [[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.1, 0.2, 0.35]]
)  # Γ, X, L (fcc primitive, reduced) and a general point


def phonopy_frequencies(atoms, supercell, qpoints, distance, symmetry):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    from sevenn.calculator import SevenNetCalculator

    calc = SevenNetCalculator(model="7net-0", device="cpu")
    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    ph = Phonopy(unit, supercell_matrix=np.diag(supercell), is_symmetry=symmetry)
    ph.generate_displacements(distance=distance, is_plusminus=True)  # central
    forces = []
    for sc in ph.supercells_with_displacements:
        a = atoms.__class__(
            sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True
        )
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    if symmetry:
        ph.symmetrize_force_constants()
    return np.array([ph.get_frequencies(q) for q in qpoints])


@pytest.mark.parametrize(
    "atoms,distance,symmetry",
    [
        # Si at 5.43 Å has its third-neighbour shell at 4.503 Å, 3 mÅ past the
        # start of SevenNet-0's XPLOR switch (4.5 Å), where the energy is only
        # C¹: 0.01 Å displacements straddle the kink and phonopy is off by
        # 0.2 THz (measured); at 0.002 Å it agrees with the exact Hessian to
        # 4e-4 THz. SevenNet-0 is SE(3)-equivariant only (no parity), so the
        # crystal's improper symmetries are not the model's: no symmetry used.
        (bulk("Si", "diamond", a=5.43), 0.002, False),
        (bulk("GaAs", "zincblende", a=5.65), 0.01, True),
    ],
    ids=["Si", "GaAs"],
)
def test_frequencies_equal_phonopy_with_sevenn(atoms, distance, symmetry):
    supercell = (2, 2, 2)
    ref = phonopy_frequencies(atoms, supercell, QPOINTS, distance, symmetry)
    pot = potentials.get("sevennet-0")
    ph = phonons.run(
        pot,
        None,
        Structure.from_ase(atoms),
        supercell_matrix=supercell,
        use_symmetry=symmetry,
    )
    ours = np.asarray(phonons.frequencies(ph, QPOINTS))
    # issue bound 0.03 THz; phonopy's float32 finite differences dominate
    np.testing.assert_allclose(ours, ref, atol=0.03)
    assert ours[1:].min() > 1.0  # a stable crystal away from Γ, THz
