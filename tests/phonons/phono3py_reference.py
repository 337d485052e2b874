"""Helpers for the conductivity tests: phono3py run on mldiff's force constants."""

import numpy as np
from ase import Atoms

from mldiff.io.phono3py import to_phono3py_layout
from mldiff.io.phonopy import phonopy_order
from mldiff.structure import Structure


def phono3py_object(atoms, supercell_matrix, primitive_matrix=None, masses=None):
    """A ``phono3py.Phono3py`` for an ASE unit cell (defaults as phono3py's)."""
    from phono3py import Phono3py
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(),
        masses=masses,
    )
    return Phono3py(
        unit,
        supercell_matrix=supercell_matrix,
        primitive_matrix=primitive_matrix,
    )


def order_of(phonons, atoms, supercell_matrix):
    """Permutation from our supercell atom order to phonopy's."""
    return phonopy_order(phonons.supercell, Structure.from_ase(atoms), supercell_matrix)


def set_force_constants(ph3, fc2, fc3, perm):
    """Give phono3py our fc2 ``[n,3,n,3]`` and fc3 ``[n,3,n,3,n,3]`` (reordered)."""
    fc2 = np.asarray(fc2)[perm][:, :, perm]
    ph3.fc2 = np.ascontiguousarray(fc2.transpose(0, 2, 1, 3))
    fc3 = np.asarray(fc3)[perm][:, :, perm][:, :, :, :, perm]
    ph3.fc3 = to_phono3py_layout(fc3)


def kappa(
    ph3, mesh, temperatures, sigma, lbte=False, average_degenerate_weights=None, **options
):
    """phono3py's κ ``[T, 3, 3]`` (W/mK), Gaussian smearing ``sigma`` THz.

    ``sigma=None``: the linear tetrahedron method (phono3py's default).
    RTA, or with ``lbte=True`` the direct solution with the reducible
    collision matrix (``is_reducible_collision_matrix=True``; its other
    defaults: k-star symmetry, pseudo-inverse cutoff 1e-8).
    ``average_degenerate_weights`` goes to ``init_phph_interaction`` (phono3py's
    default when None); ``options`` go to ``run_thermal_conductivity``
    (``is_isotope``, ``boundary_mfp``, ``write_kappa``, ...).
    """
    ph3.mesh_numbers = mesh
    ph3.sigmas = [sigma]
    interaction = {}
    if average_degenerate_weights is not None:
        interaction["average_degenerate_weights"] = average_degenerate_weights
    ph3.init_phph_interaction(**interaction)
    ph3.run_thermal_conductivity(
        temperatures=temperatures,
        is_LBTE=lbte,
        is_reducible_collision_matrix=lbte,
        log_level=0,
        **options,
    )
    k6 = np.asarray(ph3.thermal_conductivity.kappa)[0]  # [T, 6] xx yy zz yz xz xy
    out = np.zeros((len(temperatures), 3, 3))
    for c, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        out[:, a, b] = out[:, b, a] = k6[:, c]
    return out


def finite_displacement_fc3(ph3, calculator, distance=0.03, compact=True):
    """phono3py's own fc3 (and fc2) from displacements, forces from ``calculator``.

    Returns phono3py's fc3 in its supercell order: compact ``[p, n, n, 3, 3, 3]``
    (first atoms ``ph3.primitive.p2s_map``; phono3py's default) or, with
    ``compact=False``, full ``[n, n, n, 3, 3, 3]``.
    """
    ph3.generate_displacements(distance=distance)
    forces = []
    for sc in ph3.supercells_with_displacements:
        atoms = Atoms(
            sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True
        )
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    ph3.forces = np.asarray(forces)
    ph3.produce_fc3(is_compact_fc=compact)
    return np.asarray(ph3.fc3)
