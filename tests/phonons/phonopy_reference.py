"""Helpers shared by the phonon tests: phonopy references and small systems."""

import numpy as np
from ase import Atoms

from mldiff import neighbors
from mldiff.structure import Structure

FCC_PRIMITIVE = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]  # conventional -> fcc
A_SI = 5.431  # Å, Stillinger-Weber's lattice constant
A_CU = 3.6  # Å, close to EMT's equilibrium


def phonopy_object(
    atoms, supercell_matrix, primitive_matrix=None, masses=None, is_symmetry=True
):
    """A ``phonopy.Phonopy`` for an ASE unit cell (masses default: phonopy's).

    ``is_symmetry=False``: phonopy uses no crystal symmetry (every atom
    displaced by ±d, no symmetrisation), as for a potential that does not
    share the crystal's improper symmetries.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(),
        masses=masses,
    )
    return Phonopy(
        unit,
        supercell_matrix=supercell_matrix,
        primitive_matrix=primitive_matrix,
        is_symmetry=is_symmetry,
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


def finite_strain_elastic_constants(
    atoms, calculator, relax_ions, columns=range(6), strain=1e-3, fmax=1e-7
):
    """``[6, 6]`` ∂σ/∂η by central differences of the stress (GPa).

    Voigt strain ``η = ±strain`` (engineering shear) on one column at a time,
    ASE's stress from ``calculator``; with ``relax_ions`` the atoms are relaxed
    at each strain by ASE's BFGS to ``fmax`` eV/Å (at most 200 steps).
    Columns not asked for are zero.
    """
    from ase.optimize import BFGS

    from mldiff.units import eV_per_A3_to_GPa

    c = np.zeros((6, 6))
    for j in columns:
        sig = []
        for sign in (1, -1):
            eta = np.zeros(6)
            eta[j] = sign * strain
            e = np.array(
                [
                    [eta[0], eta[5] / 2, eta[4] / 2],
                    [eta[5] / 2, eta[1], eta[3] / 2],
                    [eta[4] / 2, eta[3] / 2, eta[2]],
                ]
            )
            a = atoms.copy()
            a.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + e), scale_atoms=True)
            a.calc = calculator
            if relax_ions:
                BFGS(a, logfile=None).run(fmax=fmax, steps=200)
            sig.append(a.get_stress())  # Voigt xx yy zz yz xz xy, eV/Å³
        c[:, j] = (sig[0] - sig[1]) / (2 * strain) * eV_per_A3_to_GPa
    return c
