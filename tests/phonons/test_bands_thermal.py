"""Band paths, density of states and thermal properties.

References: phonopy 4.10 — ``get_band_qpoints_by_seekpath`` (q-points of a
standard cell), its finite-displacement phonons along the whole path, and its
``run_thermal_properties``, ``run_total_dos`` and ``run_projected_dos`` (given
our force constants, and from its own finite displacements); rotation and
basis-change invariance of the physics; mode counting.
"""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from phonopy_reference import A_SI, graph_for, phonopy_object, structure_of
from scipy.spatial.transform import Rotation

from mldiff import phonons
from mldiff.phonons import bands, dos, qmesh, thermal
from mldiff.phonons import force_constants as fcm
from mldiff.structure import Structure

TEMPERATURES = [0.0, 100.0, 300.0, 600.0]
KEYS = {
    "free_energy": "free_energy_kj_mol",
    "entropy": "entropy_j_k_mol",
    "heat_capacity": "heat_capacity_j_k_mol",
}


def test_band_path_matches_phonopy_for_a_standard_cell(si_phonons):
    # reference: phonopy's get_band_qpoints_by_seekpath (51 points per segment)
    pytest.importorskip("seekpath")  # band paths need it (not a hard dep)
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    prim = si_phonons.primitive
    ref, _, _ = get_band_qpoints_by_seekpath(
        phonopy_object(prim.to_ase(), np.eye(3, dtype=int)).primitive, 51
    )
    path = bands.band_path(prim)
    np.testing.assert_allclose(path.qpoints, np.concatenate(ref), atol=1e-12)
    assert path.segments[0] == ("GAMMA", "X")
    assert np.all(np.diff(path.distances) >= 0)


def test_si_sw_bands_match_phonopy_along_the_whole_path(si_phonopy, si_phonons):
    # reference: phonopy 0.01 Å finite displacements, 64 atoms, 0.01 THz
    pytest.importorskip("seekpath")  # band paths need it (not a hard dep)
    from phonopy_reference import phonopy_frequencies

    path = bands.band_path(si_phonons.primitive, npoints=21)
    bs = bands.band_structure(si_phonons, path)
    ref = phonopy_frequencies(si_phonopy, path.qpoints)
    np.testing.assert_allclose(bs["frequencies_thz"], ref, rtol=0, atol=0.01)
    assert set(bs["high_symmetry_frequencies_thz"]) == {
        "GAMMA",
        "X",
        "U",
        "K",
        "L",
        "W",
    }


def test_bands_do_not_depend_on_orientation_or_primitive_basis(si_sw):
    # reference: invariance — a rotated cell with another primitive basis
    # (a1, a2, a1 + a2 + a3) and the same supercell lattice has the same bands
    pytest.importorskip("seekpath")  # band paths need it (not a hard dep)
    pot, params, _ = si_sw
    si = bulk("Si", "diamond", a=A_SI)
    m = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # 8-atom cube
    rot = Rotation.from_euler("xyz", [0.3, -0.7, 1.1]).as_matrix()
    u = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]])
    other = Atoms(
        "Si2",
        positions=si.positions @ rot.T,
        cell=u @ np.asarray(si.cell) @ rot.T,
        pbc=True,
    )
    other.wrap()
    m_other = np.rint(np.linalg.inv(u).T @ m).astype(int)
    results = []
    for atoms, mat in [(si, m), (other, m_other)]:
        ph = phonons.run(pot, params, Structure.from_ase(atoms), mat)
        results.append(
            bands.band_structure(ph, bands.band_path(ph.primitive, npoints=11))
        )
    a, b = results
    np.testing.assert_allclose(a["distances"], b["distances"], atol=1e-12)
    np.testing.assert_allclose(a["frequencies_thz"], b["frequencies_thz"], atol=1e-5)


@pytest.fixture(scope="module")
def cu_4x4x4(cu_emt):
    """Our Cu-EMT phonons (4×4×4 primitive), and phonopy holding our fc.

    phonopy's copy of the force constants is computed on its own supercell.
    """
    pot, params, prim = cu_emt
    ph = phonopy_object(prim, np.diag([4, 4, 4]), masses=[63.546])
    s = structure_of(ph.supercell)
    fc_fn = fcm.force_constants(pot.energy, symmetry=fcm.site_symmetry(s))
    fc = jax.jit(lambda *a: fcm.symmetrize(fc_fn(*a)))(params, s, graph_for(pot, s))
    ph.force_constants = np.ascontiguousarray(np.transpose(fc, (0, 2, 1, 3)))
    ours = phonons.run(pot, params, Structure.from_ase(prim), [4, 4, 4])
    return ours, ph


@pytest.mark.parametrize(
    "mesh,gamma_center", [([8, 8, 8], False), ([6, 6, 6], True), ([5, 5, 5], False)]
)
def test_thermal_properties_equal_phonopy_given_our_fc(cu_4x4x4, mesh, gamma_center):
    # reference: phonopy run_mesh + run_thermal_properties(exclude_gamma_acoustic)
    ours, ph = cu_4x4x4
    ph.run_mesh(mesh, is_gamma_center=gamma_center, is_mesh_symmetry=False)
    ph.run_thermal_properties(temperatures=TEMPERATURES, exclude_gamma_acoustic=True)
    ref = ph.get_thermal_properties_dict()
    tp = thermal.mesh_thermal_properties(
        ours, mesh, TEMPERATURES, gamma_center=gamma_center
    )
    for theirs, key in KEYS.items():
        np.testing.assert_allclose(tp[key], ref[theirs], rtol=1e-9, atol=1e-9)


def test_cu_thermal_properties_match_phonopy_finite_displacements(cu_emt):
    # reference: phonopy 0.01 Å displacements with ASE's EMT (3×3×3 primitive),
    # 10×10×10 mesh; 0.2 % at 100, 300 and 600 K (issue 5)
    from ase.calculators.emt import EMT
    from phonopy_reference import phonopy_finite_displacements

    pot, params, prim = cu_emt
    ph = phonopy_finite_displacements(
        phonopy_object(prim, np.diag([3, 3, 3]), masses=[63.546]), EMT()
    )
    ph.run_mesh([10, 10, 10], is_gamma_center=True)
    temps = TEMPERATURES[1:]
    ph.run_thermal_properties(temperatures=temps, exclude_gamma_acoustic=True)
    ref = ph.get_thermal_properties_dict()
    ours = phonons.run(pot, params, Structure.from_ase(prim), [3, 3, 3])
    tp = thermal.mesh_thermal_properties(ours, [10, 10, 10], temps, gamma_center=True)
    for theirs, key in KEYS.items():
        np.testing.assert_allclose(tp[key], ref[theirs], rtol=2e-3)


def test_heat_capacity_limits():
    # reference: analytic — Dulong–Petit (3 k_B per atom) at high T, 0 at T = 0
    f = np.full((1, 3), 5.0)
    tp = thermal.thermal_properties(f, np.array([0.0, 1e5]))
    r = 8.314462618  # J/K/mol (CODATA 2018), 3R for 3 modes
    np.testing.assert_allclose(tp["heat_capacity_j_k_mol"], [0.0, 3 * r], rtol=1e-5)
    assert float(tp["entropy_j_k_mol"][0]) == 0.0


def test_mode_heat_capacity_is_the_einstein_function_and_safe_at_zero():
    # reference: analytic Einstein function k_B x² eˣ/(eˣ − 1)² (NumPy), and
    # finite differences of the mean energy ħω(n + 1/2) in T
    kb, h = 8.617338256808316e-05, 4.13566733e-03  # eV/K, eV per THz (phonopy)
    f = np.array([0.5, 3.0, 12.0])
    t = np.array([[10.0], [300.0], [2000.0]])
    x = h * f / (kb * t)
    np.testing.assert_allclose(
        thermal.mode_heat_capacity(f, t),
        kb * x**2 * np.exp(x) / np.expm1(x) ** 2,
        rtol=1e-12,
    )

    def energy(temp):
        return h * f * (1 / np.expm1(h * f / (kb * temp)) + 0.5)

    dt = 1e-3
    fd = (energy(300.0 + dt) - energy(300.0 - dt)) / (2 * dt)
    np.testing.assert_allclose(thermal.mode_heat_capacity(f, 300.0), fd, rtol=1e-7)
    # no heat capacity (and a finite gradient) at ν ≤ 0 or T = 0
    c = thermal.mode_heat_capacity(np.array([0.0, -1.0, 5.0]), np.array([9, 9, 0.0]))
    np.testing.assert_array_equal(c, 0.0)
    g = jax.grad(lambda v: thermal.mode_heat_capacity(v, 0.0))(1.0)
    assert np.isfinite(g) and g == 0.0


def test_dos_equals_phonopy_smearing_and_counts_modes(cu_4x4x4):
    # reference: phonopy run_total_dos / run_projected_dos with Gaussian smearing
    # (no tetrahedra) on the same mesh; ∫ g df = 3p modes (analytic)
    ours, ph = cu_4x4x4
    ph.run_mesh([6, 6, 6], is_mesh_symmetry=False, with_eigenvectors=True)
    ph.run_total_dos(sigma=0.15, use_tetrahedron_method=False)
    ref = ph.get_total_dos_dict()
    ph.run_projected_dos(sigma=0.15, use_tetrahedron_method=False)
    ref_p = ph.get_projected_dos_dict()
    res = dos.mesh_dos(ours, [6, 6, 6], sigma_thz=0.15)
    np.testing.assert_allclose(
        res["frequencies_thz"], ref["frequency_points"], atol=1e-9
    )
    np.testing.assert_allclose(res["states"], ref["total_dos"], atol=1e-9)
    np.testing.assert_allclose(res["projected"], ref_p["projected_dos"], atol=1e-9)
    wide = np.linspace(-2.0, 12.0, 4001)
    freqs = phonons.frequencies(ours, qmesh.regular_mesh([6, 6, 6]))
    g = dos.total_dos(freqs, wide, sigma_thz=0.15)
    assert abs(np.trapezoid(np.asarray(g), wide) - 3 * len(ours.primitive)) < 1e-6
