"""Elastic constants, moduli and sound velocities.

References: finite-strain stress–strain fits (central differences of the stress
from ASE's own EMT calculator for Cu; for Si-SW, stresses after relaxing the
ions at each strain with ASE's BFGS on the mldiff calculator); the published
Stillinger–Weber constants (Cowley, Phys. Rev. B 38, 3775 (1988)); pymatgen's
``ElasticTensor`` Voigt/Reuss averages; analytic cubic Christoffel solutions.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from phonopy_reference import A_SI, finite_strain_elastic_constants

from mldiff import phonons
from mldiff.errors import PrecisionError, StructureError
from mldiff.phonons import elastic
from mldiff.structure import Structure

DIRECTIONS = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.fixture(scope="module")
def cu_equilibrium():
    """EMT Cu primitive cell at zero pressure (ASE's EMT, brentq on the stress)."""
    from ase.calculators.emt import EMT
    from scipy.optimize import brentq

    def pressure(a):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        return atoms.get_stress()[0]

    return bulk("Cu", "fcc", a=brentq(pressure, 3.5, 3.7, xtol=1e-13))


def test_cu_emt_equals_finite_strain_stress_strain_fit(cu_emt, cu_equilibrium):
    # reference: central differences (η = ±1e-3) of ASE EMT's analytic stress;
    # one atom per cell, so there are no ions to relax; 0.5 % (issue 5)
    from ase.calculators.emt import EMT

    pot, params, _ = cu_emt
    ec = elastic.run(pot, params, Structure.from_ase(cu_equilibrium))
    ref = finite_strain_elastic_constants(cu_equilibrium, EMT(), relax_ions=False)
    np.testing.assert_allclose(ec.relaxed_ion_gpa, ref, rtol=5e-3, atol=0.05)
    np.testing.assert_allclose(ec.clamped_ion_gpa, ec.relaxed_ion_gpa, atol=1e-9)
    assert np.max(np.abs(ec.stress_gpa)) < 1e-8


def test_si_sw_relaxed_ion_c44_matches_relaxed_finite_strain(si_sw):
    # reference: stresses after relaxing the ions (ASE BFGS, fmax 1e-7 eV/Å) at
    # η = ±1e-3, and without relaxing them (clamped); Cowley's published SW
    # constants C11 = 151.4, C12 = 76.4, C44 = 56.4 GPa
    from mldiff.ase import Calculator

    pot, params, _ = si_sw
    prim = bulk("Si", "diamond", a=A_SI)
    ec = elastic.run(pot, params, Structure.from_ase(prim))
    relaxed = finite_strain_elastic_constants(
        prim, Calculator("sw"), relax_ions=True, columns=[0, 3]
    )
    clamped = finite_strain_elastic_constants(
        prim, Calculator("sw"), relax_ions=False, columns=[3]
    )
    c, c0 = np.asarray(ec.relaxed_ion_gpa), np.asarray(ec.clamped_ion_gpa)
    np.testing.assert_allclose(c[:, [0, 3]], relaxed[:, [0, 3]], rtol=5e-3, atol=0.05)
    np.testing.assert_allclose(c0[:, 3], clamped[:, 3], rtol=5e-3, atol=0.05)
    assert c0[3, 3] - c[3, 3] > 40.0  # internal strain softens C44 by half
    np.testing.assert_allclose(
        [c[0, 0], c[0, 1], c[3, 3]], [151.4, 76.4, 56.4], atol=0.1
    )
    # internal strain: shear along yz pushes the two atoms apart along x, ±
    lam = np.asarray(ec.internal_strain)
    np.testing.assert_allclose(lam[0], -lam[1], atol=1e-10)
    assert abs(lam[0, 0, 3]) > 1.0


def test_moduli_equal_pymatgen_voigt_reuss_hill():
    # reference: pymatgen ElasticTensor k_voigt, k_reuss, g_voigt, g_reuss
    from pymatgen.analysis.elasticity import ElasticTensor

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    c = a @ a.T * 20 + np.eye(6) * 50  # a positive-definite triclinic tensor
    et = ElasticTensor.from_voigt(c)
    m = elastic.moduli(c)
    np.testing.assert_allclose(m["bulk_voigt_gpa"], et.k_voigt, rtol=1e-12)
    np.testing.assert_allclose(m["bulk_reuss_gpa"], et.k_reuss, rtol=1e-12)
    np.testing.assert_allclose(m["shear_voigt_gpa"], et.g_voigt, rtol=1e-12)
    np.testing.assert_allclose(m["shear_reuss_gpa"], et.g_reuss, rtol=1e-12)
    np.testing.assert_allclose(m["bulk_hill_gpa"], et.k_vrh, rtol=1e-12)


def test_christoffel_equals_cubic_analytic_velocities():
    # reference: analytic solutions for cubic crystals along [100], [110], [111]
    c11, c12, c44, rho = 170.0, 120.0, 75.0, 8900.0
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    c[[0, 1, 2], [0, 1, 2]] = c11
    c[[3, 4, 5], [3, 4, 5]] = c44
    v, pol = elastic.christoffel(c, rho, DIRECTIONS)
    s = 1e9 / rho
    ref = np.sqrt(
        s
        * np.array(
            [
                sorted([c44, c44, c11]),
                sorted([c44, (c11 - c12) / 2, (c11 + c12 + 2 * c44) / 2]),
                sorted([(c11 - c12 + c44) / 3] * 2 + [(c11 + 2 * c12 + 4 * c44) / 3]),
            ]
        )
    )
    np.testing.assert_allclose(v, ref, rtol=1e-12)
    # [111] longitudinal mode is polarised along the propagation direction
    np.testing.assert_allclose(np.abs(pol[2][:, 2]), np.full(3, 3**-0.5), atol=1e-12)


def test_sound_velocities_from_acoustic_branches_equal_christoffel(
    cu_emt, cu_equilibrium
):
    # reference: the Christoffel velocities from our C_ij and density; the two
    # routes agree to 1 % (issue 5; 6×6×6 primitive supercell gives ~1e-5)
    pot, params, _ = cu_emt
    s = Structure.from_ase(cu_equilibrium)
    ec = elastic.run(pot, params, s)
    v_c, _ = elastic.christoffel(ec.relaxed_ion_gpa, elastic.density(s), DIRECTIONS)
    ph = phonons.run(pot, params, s, [6, 6, 6])
    v_a = elastic.acoustic_velocities(ph, DIRECTIONS)
    np.testing.assert_allclose(v_a, v_c, rtol=1e-2)
    assert 2000 < v_c[0, 2] < 6000  # m/s, Cu-like


def test_bad_inputs_raise_with_the_fix(si_sw):
    # reference: STYLE rule 7 and the float64 contract
    pot, params, _ = si_sw
    prim = bulk("Si", "diamond", a=A_SI)
    with pytest.raises(PrecisionError, match="float64"):
        elastic.run(pot, params, Structure.from_ase(prim, dtype=jnp.float32))
    prim.positions[1] += 0.1
    with pytest.raises(StructureError, match="relax the atomic positions"):
        elastic.run(pot, params, Structure.from_ase(prim))
