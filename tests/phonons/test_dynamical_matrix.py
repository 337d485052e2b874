"""Dynamical matrix, frequencies and eigenvectors against phonopy.

References: phonopy 4.10 — its shortest vectors and multiplicities, its
dynamical matrix and frequencies given our force constants (isolates the
conventions), and its own finite-displacement (0.01 Å) phonons with forces from
ASE's EMT (Cu) or mldiff's ASE calculator (Si-SW).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from phonopy_reference import (
    A_CU,
    A_SI,
    FCC_PRIMITIVE,
    graph_for,
    phonopy_finite_displacements,
    phonopy_frequencies,
    phonopy_object,
    structure_of,
)

from mldiff import phonons, units
from mldiff.errors import StructureError
from mldiff.phonons import dynamical_matrix as dm
from mldiff.phonons import force_constants as fcm
from mldiff.structure import Structure

# fcc Brillouin zone, reduced coordinates of the primitive reciprocal lattice of
# FCC_PRIMITIVE (phonopy / seekpath conventions), plus generic points
HIGH_SYMMETRY = {
    "G": [0, 0, 0],
    "X": [0.5, 0, 0.5],
    "L": [0.5, 0.5, 0.5],
    "W": [0.5, 0.25, 0.75],
    "K": [0.375, 0.375, 0.75],
}
GENERIC = [
    [0.1, 0.2, 0.3],
    [0.37, 0.11, -0.23],
    [0.23, -0.41, 0.07],
    [0.45, 0.05, 0.31],
]
QPOINTS = np.array(list(HIGH_SYMMETRY.values()) + GENERIC, dtype=float)
NONDIAGONAL = [[-1, 1, 1], [1, -1, 1], [1, 1, -1]]  # fcc primitive -> cube


def _ours_on_phonopy_supercell(pot, params, phonon):
    """Our force constants on phonopy's own supercell (phonopy's atom order)."""
    s = structure_of(phonon.supercell)
    fc_fn = fcm.force_constants(pot.energy, symmetry=fcm.site_symmetry(s))
    fc = jax.jit(lambda *a: fcm.symmetrize(fc_fn(*a)))(params, s, graph_for(pot, s))
    return s, fc


@pytest.mark.parametrize("matrix", [np.diag([2, 2, 2]), NONDIAGONAL])
def test_images_and_atom_maps_match_phonopy(si_sw, matrix):
    # reference: phonopy's Primitive.get_smallest_vectors, p2s and s2p maps
    _, _, conv = si_sw
    unit = bulk("Si", "diamond", a=A_SI) if matrix is NONDIAGONAL else conv
    pmat = None if matrix is NONDIAGONAL else FCC_PRIMITIVE
    phonon = phonopy_object(unit, matrix, pmat)
    s = structure_of(phonon.supercell)
    prim = dm.primitive(Structure.from_ase(unit), pmat)
    im = dm.images(s, prim)
    assert im.representative.tolist() == list(phonon.primitive.p2s_map)
    s2p = np.asarray(phonon.primitive.s2p_map)
    assert np.array_equal(np.asarray(im.representative)[im.primitive_of], s2p)
    svecs, multi = phonon.primitive.get_smallest_vectors()  # dense: [n, p, 2]
    count = (im.weights > 0).sum(-1)  # [p, n]
    assert np.array_equal(count.T, multi[:, :, 0])
    for i in range(len(prim)):
        for k in range(len(s)):
            m, start = multi[k, i]
            ours = np.asarray(im.vectors[i, k, :m])
            theirs = svecs[start : start + m]
            # same set of vectors, any order
            d = np.abs(ours[:, None, :] - theirs[None, :, :]).max(-1)
            assert np.all(d.min(1) < 1e-8), (i, k)


@pytest.mark.parametrize("matrix", [np.diag([2, 2, 2]), NONDIAGONAL])
def test_dynamical_matrix_and_frequencies_match_phonopy_given_our_fc(si_sw, matrix):
    # reference: phonopy's DynamicalMatrix fed our force constants, to 1e-6 THz
    pot, params, conv = si_sw
    unit = bulk("Si", "diamond", a=A_SI) if matrix is NONDIAGONAL else conv
    pmat = None if matrix is NONDIAGONAL else FCC_PRIMITIVE
    masses = units.masses_amu(unit.numbers)
    phonon = phonopy_object(unit, matrix, pmat, masses=masses)
    s, fc = _ours_on_phonopy_supercell(pot, params, phonon)
    phonon.force_constants = np.ascontiguousarray(np.transpose(fc, (0, 2, 1, 3)))
    im = dm.images(s, dm.primitive(Structure.from_ase(unit), pmat))
    sc_masses = jnp.asarray(units.masses_amu(np.asarray(s.numbers)))
    dynmat = jax.jit(dm.dynamical_matrix)
    for q in QPOINTS:
        phonon.dynamical_matrix.run(q)
        ours = dynmat(fc, sc_masses, jnp.asarray(q), im)
        np.testing.assert_allclose(
            ours, phonon.dynamical_matrix.dynamical_matrix, rtol=0, atol=1e-12
        )
    q = np.array(GENERIC)  # away from Γ, where √ of ~1e-16 eigenvalues is noise
    freqs, vecs = dm.phonon_modes(fc, sc_masses, im)(q)
    ref_f, ref_v = phonopy_frequencies(phonon, q, with_eigenvectors=True)
    np.testing.assert_allclose(freqs, ref_f, rtol=0, atol=1e-6)
    # eigenvectors of non-degenerate modes agree up to a phase
    gaps = np.diff(ref_f, axis=1)
    for k in range(len(q)):
        for nu in range(ref_f.shape[1]):
            left = gaps[k, nu - 1] if nu > 0 else np.inf
            right = gaps[k, nu] if nu < ref_f.shape[1] - 1 else np.inf
            if min(left, right) > 1e-3:
                overlap = abs(np.vdot(np.asarray(vecs[k, :, nu]), ref_v[k, :, nu]))
                assert abs(overlap - 1) < 1e-8


def test_si_sw_frequencies_match_phonopy_finite_displacements(si_phonopy, si_phonons):
    # reference: phonopy 0.01 Å displacements, 2×2×2 conventional (64 atoms),
    # forces from mldiff's ASE calculator; Γ, X, L, W, K and generic q, 0.01 THz
    ours = phonons.frequencies(si_phonons, QPOINTS)
    np.testing.assert_allclose(
        ours, phonopy_frequencies(si_phonopy, QPOINTS), rtol=0, atol=0.01
    )


def test_si_sw_force_constants_match_phonopy_finite_displacements(si_sw, si_phonopy):
    # reference: phonopy's finite-displacement force constants (O(h²) ≈ 1e-3 eV/Å²)
    pot, params, _ = si_sw
    _, fc = _ours_on_phonopy_supercell(pot, params, si_phonopy)
    np.testing.assert_allclose(
        np.transpose(np.asarray(fc), (0, 2, 1, 3)),
        si_phonopy.force_constants,
        rtol=0,
        atol=2e-3,
    )


def test_acoustic_frequencies_vanish_at_gamma(si_phonons):
    # reference: translational invariance (acoustic sum rule), analytic
    f = phonons.frequencies(si_phonons, [[0, 0, 0]])[0]
    assert np.abs(np.asarray(f[:3])).max() < 1e-4
    assert np.asarray(f[3:]).min() > 10.0  # optical modes stay finite


def _cu_against_phonopy(cu_emt, unit, matrix, pmat):
    pot, params, _ = cu_emt
    masses = units.masses_amu(unit.numbers)
    phonon = phonopy_finite_displacements(
        phonopy_object(unit, matrix, pmat, masses=masses), EMT()
    )
    ours = phonons.run(
        pot, params, Structure.from_ase(unit), matrix, primitive_matrix=pmat
    )
    np.testing.assert_allclose(
        phonons.frequencies(ours, QPOINTS),
        phonopy_frequencies(phonon, QPOINTS),
        rtol=0,
        atol=0.01,
    )


def test_cu_emt_frequencies_match_phonopy_3x3x3_primitive(cu_emt):
    # reference: phonopy 0.01 Å displacements with ASE's own EMT, 27 atoms, 0.01 THz
    _, _, prim = cu_emt
    _cu_against_phonopy(cu_emt, prim, np.diag([3, 3, 3]), None)


@pytest.mark.slow
def test_cu_emt_4x4x4_conventional_matches_phonopy(cu_emt):
    # reference: phonopy 0.01 Å displacements with ASE's own EMT, 256 atoms:
    # frequencies at Γ, X, L, W, K, generic q and along the whole seekpath path
    # to 0.01 THz; thermal properties at 100/300/600 K to 0.2 % (issue 5)
    pytest.importorskip("seekpath")  # band paths need it (not a hard dep)
    from mldiff.phonons import bands, thermal

    pot, params, _ = cu_emt
    unit = bulk("Cu", "fcc", a=A_CU, cubic=True)
    masses = units.masses_amu(unit.numbers)
    phonon = phonopy_finite_displacements(
        phonopy_object(unit, np.diag([4, 4, 4]), FCC_PRIMITIVE, masses=masses), EMT()
    )
    ours = phonons.run(
        pot, params, Structure.from_ase(unit), [4, 4, 4], primitive_matrix=FCC_PRIMITIVE
    )
    path = bands.band_path(ours.primitive, npoints=21)
    q = np.concatenate([QPOINTS, path.qpoints])
    np.testing.assert_allclose(
        phonons.frequencies(ours, q), phonopy_frequencies(phonon, q), rtol=0, atol=0.01
    )
    temps = [100.0, 300.0, 600.0]
    phonon.run_mesh([12, 12, 12], is_gamma_center=True)
    phonon.run_thermal_properties(temperatures=temps, exclude_gamma_acoustic=True)
    ref = phonon.get_thermal_properties_dict()
    tp = thermal.mesh_thermal_properties(ours, [12, 12, 12], temps, gamma_center=True)
    for theirs, key in [
        ("free_energy", "free_energy_kj_mol"),
        ("entropy", "entropy_j_k_mol"),
        ("heat_capacity", "heat_capacity_j_k_mol"),
    ]:
        np.testing.assert_allclose(tp[key], ref[theirs], rtol=2e-3)


def test_primitive_matrix_inconsistent_with_cell_raises():
    # reference: the volume ratio of the cells (a wrong matrix loses atoms)
    conv = Structure.from_ase(bulk("Si", "diamond", a=A_SI, cubic=True))
    with pytest.raises(StructureError, match="volume ratio"):
        dm.primitive(conv, np.diag([0.5, 1, 1]))


def test_two_species_cu3au_emt_matches_phonopy(cu_emt):
    # reference: phonopy 0.01 Å displacements with ASE's EMT on L1₂ Cu₃Au
    # (4-atom cubic cell, 2×2×2 supercell), ASE masses given to both; 0.01 THz
    from ase import Atoms

    pot, params, _ = cu_emt
    a = 3.75
    unit = Atoms(
        "AuCu3",
        cell=np.eye(3) * a,
        pbc=True,
        scaled_positions=[[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
    )
    masses = units.masses_amu(unit.numbers)
    phonon = phonopy_finite_displacements(
        phonopy_object(unit, np.diag([2, 2, 2]), masses=masses), EMT()
    )
    ours = phonons.run(pot, params, Structure.from_ase(unit), [2, 2, 2])
    q = np.array([[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5]] + GENERIC)
    np.testing.assert_allclose(
        phonons.frequencies(ours, q), phonopy_frequencies(phonon, q), rtol=0, atol=0.01
    )


def test_si_sw_thermal_properties_match_phonopy_finite_displacements(
    si_phonopy, si_phonons
):
    # reference: phonopy's finite-displacement phonons (64 atoms), 8×8×8 Γ-centred
    # mesh, thermal properties at 100/300/600 K to 0.2 % (issue 5)
    from mldiff.phonons import thermal

    temps = [100.0, 300.0, 600.0]
    si_phonopy.run_mesh([8, 8, 8], is_gamma_center=True)
    si_phonopy.run_thermal_properties(temperatures=temps, exclude_gamma_acoustic=True)
    ref = si_phonopy.get_thermal_properties_dict()
    tp = thermal.mesh_thermal_properties(
        si_phonons, [8, 8, 8], temps, gamma_center=True
    )
    for theirs, key in [
        ("free_energy", "free_energy_kj_mol"),
        ("entropy", "entropy_j_k_mol"),
        ("heat_capacity", "heat_capacity_j_k_mol"),
    ]:
        np.testing.assert_allclose(tp[key], ref[theirs], rtol=2e-3)
