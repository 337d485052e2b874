"""DOS, thermal properties, elastic constants and QHA of SevenNet-0 against sevenn.

Reference: phonopy 4.10 (finite displacements of 0.01 Å, ``PhonopyQHA``) and
ASE (central differences of the stress) driving sevenn's own
``sevenn.calculator.SevenNetCalculator`` (model "7net-0", torch, float32), as a
phonopy or ASE user computes these; ours are mldiff's autodiff pipeline on the
JAX port in float64. Phonopy gets mldiff's masses (ASE's, Si 28.085 amu;
phonopy's own table has 28.0855).

The cells sit at SevenNet-0's zero-stress lattice constants (brentq on the
stress: Si 5.463198 Å from both mldiff in float64 and sevenn in float32, GaAs
5.751281 Å), where no neighbour distance is within 0.01 Å of 4.5 Å, the start of
SevenNet-0's XPLOR switch where its energy is only C¹ (Si's third shell is at
4.530 Å, GaAs's at 4.769 Å; the QHA volumes keep Si's above 4.516 Å): finite
displacements and strains here do not straddle the kink
(``tests/phonons/test_sevennet_phonons.py`` shows what happens when they do).

SevenNet-0 is SE(3)-equivariant without parity (measured on a rattled 16-atom
Si cell, its forces change by 1e-3 eV/Å, of 1.3, under inversion), so the
crystal's improper operations are not symmetries of the model. Phonopy
therefore runs without symmetry (every atom displaced by ±0.01 Å); with it, its
rebuilt force constants are 0.5 % off in the acoustic frequencies. mldiff
differentiates the rows of one atom and rebuilds the rest through proper
operations only, which equals the full Hessian (checked below).
"""

import numpy as np
import pytest
from ase.build import bulk
from phonopy_reference import (
    finite_strain_elastic_constants,
    phonopy_finite_displacements,
    phonopy_object,
)

from mldiff import phonons, potentials
from mldiff.phonons import dos, elastic, qha, thermal
from mldiff.structure import Structure
from mldiff.units import masses_amu

A_SI = 5.4632  # Å, SevenNet-0's zero-stress Si (residual 1e-4 GPa)
A_GAAS = 5.75128  # Å, SevenNet-0's zero-stress zincblende GaAs
SUPERCELL = [2, 2, 2]  # of the 2-atom primitive cell: 16 atoms
MESH = [8, 8, 8]  # Monkhorst–Pack, Γ not on it
TEMPERATURES = [100.0, 300.0, 600.0]  # K
SIGMA = 0.2  # THz, DOS smearing
KEYS = {
    "free_energy": "free_energy_kj_mol",
    "entropy": "entropy_j_k_mol",
    "heat_capacity": "heat_capacity_j_k_mol",
}


@pytest.fixture(scope="module")
def sevennet():
    """SevenNet-0 twice: mldiff's JAX potential and sevenn's own calculator."""
    pytest.importorskip("sevenn")
    from sevenn.calculator import SevenNetCalculator

    calc = SevenNetCalculator(model="7net-0", device="cpu")
    return potentials.get("sevennet-0"), calc


def phonopy_with_sevenn(atoms, calc):
    """Phonopy's 0.01 Å finite-displacement phonons, mldiff's masses, no symmetry."""
    ph = phonopy_object(
        atoms, np.diag(SUPERCELL), masses=masses_amu(atoms.numbers), is_symmetry=False
    )
    return phonopy_finite_displacements(ph, calc, distance=0.01)  # ± each atom


@pytest.fixture(scope="module")
def si_phonons(sevennet):
    """Ours (autodiff, float64) and phonopy's (sevenn, float32) Si phonons."""
    pot, calc = sevennet
    atoms = bulk("Si", "diamond", a=A_SI)
    ours = phonons.run(pot, None, Structure.from_ase(atoms), SUPERCELL)
    ref = phonopy_with_sevenn(atoms, calc)
    ref.run_mesh(MESH, is_mesh_symmetry=False)
    return ours, ref


def test_si_dos_and_thermal_properties_equal_phonopy_with_sevenn(si_phonons):
    # 25 s CPU, most of it compiling SevenNet-0's Hessian rows (default suite)
    # reference: phonopy run_thermal_properties / run_total_dos (Gaussian, no
    # tetrahedra) on the same 8×8×8 mesh, force constants from sevenn's forces.
    # Error budget, measured: the mesh frequencies differ by at most 2.4e-4
    # relative (0.0023 THz of 12.5), phonopy's O(d²) finite-difference error
    # (5.6e-5 at d = 0.005 Å; float32 forces matter less). A relative
    # frequency error δ moves S and Cv by about δ and F by about δ times the
    # zero-point energy (~12 kJ/mol): measured 1.6e-4 (S, Cv) and 0.0036
    # kJ/mol (F); tolerances 1e-3 and 0.01 kJ/mol. The DOS moves by at most
    # max|g'|·δf ≈ (g_max/σ)·0.0023 THz ≈ 0.02 states/THz; measured 0.007,
    # tolerance 0.03.
    ours, ref = si_phonons
    ref.run_thermal_properties(temperatures=TEMPERATURES)
    theirs = ref.thermal_properties
    tp = thermal.mesh_thermal_properties(ours, MESH, TEMPERATURES)
    np.testing.assert_allclose(
        tp["free_energy_kj_mol"], theirs.free_energy, rtol=0, atol=0.01
    )
    for key in ("entropy", "heat_capacity"):
        np.testing.assert_allclose(tp[KEYS[key]], getattr(theirs, key), rtol=1e-3)
    # Dulong–Petit bound 6R per 2-atom cell, approached at 600 K (analytic)
    assert 0.9 * 6 * 8.314 < tp["heat_capacity_j_k_mol"][-1] < 6 * 8.314

    ref.run_total_dos(sigma=SIGMA, use_tetrahedron_method=False)
    ref_dos = ref.total_dos
    points = ref_dos.frequency_points
    ours_dos = dos.mesh_dos(ours, MESH, sigma_thz=SIGMA, points_thz=points)
    np.testing.assert_allclose(ours_dos["states"], ref_dos.dos, atol=0.03)
    assert ref_dos.dos.max() > 1.0  # states/THz: the bands are resolved


@pytest.mark.slow  # 50 s CPU: all 48 Hessian rows of the 16-atom supercell
def test_symmetry_reduced_force_constants_equal_the_full_hessian(si_phonons):
    # reference: the full Hessian of SevenNet-0 (every row differentiated, no
    # symmetry). The model lacks parity: rows rebuilt through an improper
    # operation (as before site_symmetry preferred proper ones) put 0.5 %
    # (0.005 THz) into the acoustic frequencies; proper ones are exact
    # (measured 1.4e-14 eV/Å² of 8.9)
    ours, _ = si_phonons
    atoms = bulk("Si", "diamond", a=A_SI)
    full = phonons.run(
        potentials.get("sevennet-0"),
        None,
        Structure.from_ase(atoms),
        SUPERCELL,
        use_symmetry=False,
    )
    np.testing.assert_allclose(
        ours.force_constants, full.force_constants, rtol=0, atol=1e-10
    )


@pytest.mark.slow  # 45 s CPU for both (GaAs reuses Si's compiled program)
@pytest.mark.parametrize(
    "atoms",
    [bulk("Si", "diamond", a=A_SI), bulk("GaAs", "zincblende", a=A_GAAS)],
    ids=["Si", "GaAs"],
)
def test_elastic_constants_equal_finite_strain_stress_of_sevenn(sevennet, atoms):
    # reference: central differences (η = ±1e-3) of sevenn's float32 stress
    # through ASE, with the ions relaxed at each strain by ASE's BFGS (fmax
    # 1e-5 eV/Å) for the relaxed-ion constants and not for the clamped ones,
    # as elastic.run defines them (C⁰ and C = C⁰ − ΛᵀΦ⁺Λ/V). Error of the
    # reference: O(η²) truncation, 0.005 GPa (from η = 4e-3: +0.09 GPa on
    # C11), and float32 stress noise ~1e-7 eV/Å³ / 2η ≈ 0.01 GPa; measured
    # differences ≤ 0.007 GPa (Si) and 0.008 GPa (GaAs); tolerance 0.05 GPa.
    pot, calc = sevennet
    ec = elastic.run(pot, None, Structure.from_ase(atoms))
    # zero stress, so that ∂σ/∂η is the elastic tensor on both sides
    assert np.max(np.abs(np.asarray(ec.stress_gpa))) < 1e-2
    relaxed = finite_strain_elastic_constants(
        atoms, calc, relax_ions=True, columns=[0, 3], fmax=1e-5
    )
    clamped = finite_strain_elastic_constants(
        atoms, calc, relax_ions=False, columns=[3]
    )
    c, c0 = np.asarray(ec.relaxed_ion_gpa), np.asarray(ec.clamped_ion_gpa)
    np.testing.assert_allclose(c[:, [0, 3]], relaxed[:, [0, 3]], rtol=0, atol=0.05)
    np.testing.assert_allclose(c0[:, 3], clamped[:, 3], rtol=0, atol=0.05)
    # C11, C12 need no internal relaxation in these cubic crystals (each atom a
    # centre of the strain's symmetry); C44 does, and softens by > 10 GPa
    np.testing.assert_allclose(c[:3, :3], c0[:3, :3], atol=1e-6)
    assert c0[3, 3] - c[3, 3] > 10.0
    assert c[0, 0] > c[0, 1] > 0 and c[3, 3] > 0  # Born stability of a cubic cell


@pytest.mark.slow  # 60 s CPU: mldiff's phonons at 5 volumes, phonopy's at 5
def test_si_qha_equals_phonopy_qha_with_sevenn(sevennet):
    # reference: phonopy's PhonopyQHA (Vinet) fed with sevenn's static energies
    # and phonopy+sevenn free energies on the same 5 volumes, supercell and
    # 8×8×8 mesh. Error budget, measured: static energies agree to 3.5e-6 eV
    # (float32), free energies to 0.004 kJ/mol per cell (above), and these
    # move V(T) by ≤ 1.2e-5, B(T) by ≤ 8e-4 and β(T) by ≤ 7e-4 (relative);
    # tolerances 5e-5, 2e-3, 3e-3.
    from phonopy import PhonopyQHA

    pot, calc = sevennet
    strains = [-0.003, 0.0, 0.003, 0.006, 0.009]  # third shell ≥ 4.516 Å
    temps = np.arange(0.0, 601.0, 50.0)
    atoms = bulk("Si", "diamond", a=A_SI)
    ours = qha.run(
        pot,
        None,
        Structure.from_ase(atoms),
        SUPERCELL,
        linear_strains=strains,
        temperatures=temps,
        mesh=MESH,
        relax_ions=False,  # diamond: no internal degree of freedom
        progress=False,
    )
    volumes, energies, tps = [], [], []
    for s in strains:
        scaled = bulk("Si", "diamond", a=A_SI * (1 + s))
        scaled.calc = calc
        energies.append(scaled.get_potential_energy())
        volumes.append(scaled.get_volume())
        ph = phonopy_with_sevenn(scaled, calc)
        ph.run_mesh(MESH, is_mesh_symmetry=False)  # as ours: the full mesh
        ph.run_thermal_properties(temperatures=temps)
        tps.append(ph.thermal_properties)
    np.testing.assert_allclose(ours["volumes_a3"], volumes, rtol=1e-12)
    np.testing.assert_allclose(ours["energies_ev"], energies, rtol=0, atol=2e-5)
    ref = PhonopyQHA(
        volumes=volumes,
        electronic_energies=energies,
        temperatures=temps,
        free_energy=np.array([tp.free_energy for tp in tps]).T,  # [t, m]
        cv=np.array([tp.heat_capacity for tp in tps]).T,
        entropy=np.array([tp.entropy for tp in tps]).T,
        eos="vinet",
    )
    m = len(ref.volume_temperature)  # phonopy drops the last temperature
    np.testing.assert_allclose(ours["volume_a3"][:m], ref.volume_temperature, rtol=5e-5)
    np.testing.assert_allclose(
        ours["bulk_modulus_gpa"][:m], ref.bulk_modulus_temperature, rtol=2e-3
    )
    # phonopy's β at the first temperature is 0 by its convention; compare after
    np.testing.assert_allclose(
        ours["volumetric_expansion_per_k"][1:m], ref.thermal_expansion[1:], rtol=3e-3
    )
    # the grid brackets V(T) (no extrapolation) and Si expands on heating
    assert (
        min(volumes) < ours["volume_a3"].min() < ours["volume_a3"].max() < max(volumes)
    )
    assert 1e-6 < ours["linear_expansion_per_k"][list(temps).index(300.0)] < 1e-5
