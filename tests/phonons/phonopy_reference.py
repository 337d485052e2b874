"""Helpers shared by the phonon tests: phonopy references and small systems."""

import numpy as np
from ase import Atoms

from mldiff import neighbors
from mldiff.structure import Structure

FCC_PRIMITIVE = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]  # conventional -> fcc
A_SI = 5.431  # Å, Stillinger-Weber's lattice constant
A_CU = 3.6  # Å, close to EMT's equilibrium


def phonopy_object(atoms, supercell_matrix, primitive_matrix=None, masses=None):
    """A ``phonopy.Phonopy`` for an ASE unit cell (masses default: phonopy's)."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(),
        masses=masses,
    )
    return Phonopy(
        unit, supercell_matrix=supercell_matrix, primitive_matrix=primitive_matrix
    )


def phonopy_finite_displacements(phonon, calculator, distance=0.01):
    """Phonopy's own force constants from displacements of ``distance`` Å.

    Forces come from an ASE ``calculator``; returns the same object, ready
    for frequencies.
    """
    phonon.generate_displacements(distance=distance)
    forces = []
    for sc in phonon.supercells_with_displacements:
        atoms = Atoms(
            sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True
        )
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    phonon.forces = forces
    phonon.produce_force_constants()
    return phonon


def phonopy_frequencies(phonon, qpoints, with_eigenvectors=False):
    """``[k, 3p]`` THz (and ``[k, 3p, 3p]`` eigenvectors) from phonopy."""
    phonon.run_qpoints(
        np.asarray(qpoints, dtype=float), with_eigenvectors=with_eigenvectors
    )
    d = phonon.get_qpoints_dict()
    if with_eigenvectors:
        return d["frequencies"], d["eigenvectors"]
    return d["frequencies"]


def structure_of(phonopy_atoms):
    """A float64 :class:`Structure` from a ``PhonopyAtoms``."""
    return Structure.create(
        phonopy_atoms.positions, phonopy_atoms.cell, phonopy_atoms.numbers
    )


def graph_for(pot, s):
    """A neighbor graph for ``s`` at the potential's cutoff, checked."""
    return neighbors.check(neighbors.allocate(s, pot.cutoff))
