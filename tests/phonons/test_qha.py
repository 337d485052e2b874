"""Quasi-harmonic thermal expansion.

References: phonopy 4.10's ``QHA`` (``qha/core.py``) given identical volumes,
static energies and phonon free energies (Vinet, Birch–Murnaghan, Murnaghan);
synthetic equation-of-state data with known parameters; the measured linear
expansion of copper, 1.65e-5 /K at 300 K (order-of-magnitude sanity for EMT).
"""

import numpy as np
import pytest
from ase.build import bulk

from mldiff.errors import ConfigError
from mldiff.phonons import qha
from mldiff.structure import Structure

TEMPERATURES = np.arange(0.0, 601.0, 50.0)


@pytest.fixture(scope="module")
def cu_grid(cu_emt):
    """F(V, T) of Cu-EMT: 3×3×3 primitive supercell, 8×8×8 mesh, 7 volumes."""
    pot, params, _ = cu_emt
    cu = Structure.from_ase(bulk("Cu", "fcc", a=3.5898))  # EMT's a₀ to 1e-4 Å
    return qha.free_energy_grid(
        pot,
        params,
        cu,
        [3, 3, 3],
        mesh=[8, 8, 8],
        temperatures=TEMPERATURES,
        relax_ions=False,  # fcc: no internal degrees of freedom
        progress=False,
    )


@pytest.mark.parametrize("eos", qha.EOS_NAMES)
def test_quasi_harmonic_equals_phonopy_given_identical_inputs(cu_grid, eos):
    # reference: phonopy.qha.core.QHA (scipy leastsq from the same start)
    from phonopy.qha.core import QHA

    g = cu_grid
    ref = QHA(
        g["volumes_a3"],
        g["energies_ev"],
        g["temperatures_k"],
        g["heat_capacity_j_k_mol"],
        g["entropy_j_k_mol"],
        g["free_energy_kj_mol"],
        eos=eos,
    )
    ref.run()
    r = qha.quasi_harmonic(
        g["volumes_a3"],
        g["energies_ev"],
        g["temperatures_k"],
        g["free_energy_kj_mol"],
        eos=eos,
    )
    m = len(ref.volume_temperature)  # phonopy drops the last temperature
    # phonopy's V(T) is V0 of its scipy ``leastsq`` fit, which stops at the
    # default xtol = 1.49e-8 (relative); ours runs to 1e-15. So the volume is
    # compared with phonopy's fit (its EOS, its F(V, T), its starting point:
    # ``phonopy.qha.eos.fit_to_eos``) run to the same convergence as ours.
    from phonopy.physical_units import get_physical_units
    from phonopy.qha.eos import get_eos
    from scipy.optimize import leastsq

    v = g["volumes_a3"]
    f_ev = g["energies_ev"] + g["free_energy_kj_mol"] / get_physical_units().EvTokJmol

    def converged_volume(f):
        start = [f[len(f) // 2], 1.0, 4.0, v[len(v) // 2]]
        p, *_ = leastsq(lambda p: get_eos(eos)(v, p) - f, start, xtol=1e-15, ftol=1e-15)
        return p[3]

    volumes = np.array([converged_volume(f) for f in f_ev[:m]])
    np.testing.assert_allclose(ref.volume_temperature, volumes, rtol=1.5e-8)
    np.testing.assert_allclose(r["volume_a3"][:m], volumes, rtol=1e-9)
    np.testing.assert_allclose(
        r["bulk_modulus_gpa"][:m], ref.bulk_modulus_temperature, rtol=1e-7
    )
    # two least-squares fitters (ours, scipy's leastsq) agree to their convergence:
    # a 1e-14 kJ/mol change of F(V, T) moves the Murnaghan G(T) by ~1e-10 eV
    np.testing.assert_allclose(
        r["gibbs_energy_ev"][:m], ref.gibbs_temperature, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        r["volumetric_expansion_per_k"][1:m], ref.thermal_expansion[1:], rtol=1e-5
    )


def test_cu_emt_thermal_expansion_is_physical(cu_grid):
    # reference: copper's measured α(300 K) = 1.65e-5 /K — same order for EMT;
    # V(T) increases and B(T) decreases (anharmonic softening)
    g = cu_grid
    r = qha.quasi_harmonic(
        g["volumes_a3"], g["energies_ev"], g["temperatures_k"], g["free_energy_kj_mol"]
    )
    alpha_300 = r["linear_expansion_per_k"][list(TEMPERATURES).index(300.0)]
    assert 5e-6 < alpha_300 < 5e-5
    assert np.all(np.diff(r["volume_a3"]) > 0)
    assert np.all(np.diff(r["bulk_modulus_gpa"]) < 0)
    assert 100 < r["bulk_modulus_gpa"][0] < 160  # EMT Cu: B ≈ 134 GPa static
    # the volume grid brackets V(T): no extrapolation
    assert g["volumes_a3"].min() < r["volume_a3"].min()
    assert r["volume_a3"].max() < g["volumes_a3"].max()


@pytest.mark.parametrize("eos", qha.EOS_NAMES)
def test_fit_eos_recovers_known_parameters(eos):
    # reference: analytic — data generated from the same EOS form
    p = np.array([-3.7, 0.85, 4.8, 11.8])
    v = np.linspace(10.5, 13.5, 9)
    e = np.asarray(qha.eos_energy(eos)(v, p))
    np.testing.assert_allclose(qha.fit_eos(v, e, eos), p, rtol=1e-8)


def test_bad_inputs_raise_with_the_fix():
    # reference: STYLE rule 7
    with pytest.raises(ConfigError, match="choose one of"):
        qha.eos_energy("tait")
    with pytest.raises(ConfigError, match="at least 4"):
        qha.fit_eos([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ConfigError, match="shape"):
        qha.quasi_harmonic(np.arange(5.0), np.zeros(5), [0.0, 10.0], np.zeros((5, 2)))
