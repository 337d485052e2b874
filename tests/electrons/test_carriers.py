"""Carrier concentrations: published values, analytic limits, finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mldiff.electrons import (
    band_gap,
    carrier_concentrations,
    effective_density_of_states,
    fermi_level,
    intrinsic_concentration,
    semiconductor,
)
from mldiff.errors import ConfigError
from mldiff.units import kB

SI = semiconductor("Si")


@pytest.mark.parametrize(
    "name, accepted",
    [
        ("Si", 1.0e10),  # Sze & Ng 3rd ed. App. G / Altermatt 2003: 9.65e9–1.0e10
        ("Ge", 2.0e13),  # Ioffe NSM archive, Ge band structure: 2.0e13
        ("GaAs", 2.1e6),  # Ioffe NSM archive, GaAs band structure: 2.1e6
    ],
)
def test_intrinsic_concentration_at_300k(name, accepted):
    m = semiconductor(name)
    ni = float(intrinsic_concentration(m, 300.0))
    assert abs(ni / accepted - 1) < 0.2
    # Fermi–Dirac neutrality without doping gives n = p = n_i up to the
    # degeneracy correction e^η/2^{3/2} ~ 1e-6 (Ge)
    r = carrier_concentrations(m, 300.0)
    assert float(r["electrons_cm3"]) == pytest.approx(ni, rel=1e-5)
    assert float(r["holes_cm3"]) == pytest.approx(ni, rel=1e-5)


@pytest.mark.parametrize(
    "name, nc, nv, gap",
    [
        ("Si", 2.86e19, 3.10e19, 1.12),  # Green, J. Appl. Phys. 67, 2944 (1990)
        ("Ge", 1.0e19, 5.0e18, 0.66),  # Ioffe NSM archive, 300 K
        ("GaAs", 4.7e17, 9.0e18, 1.424),  # Ioffe NSM archive, 300 K
    ],
)
def test_densities_of_states_and_gap_at_300k(name, nc, nv, gap):
    # the published values have two or three significant figures: 5 % on N
    m = semiconductor(name)
    assert float(effective_density_of_states(m.electron_dos_mass, 300.0)) == (
        pytest.approx(nc, rel=0.05)
    )
    assert float(effective_density_of_states(m.hole_dos_mass, 300.0)) == (
        pytest.approx(nv, rel=0.05)
    )
    assert float(band_gap(m, 300.0)) == pytest.approx(gap, abs=0.006)


def test_n_type_silicon_matches_the_boltzmann_textbook_value():
    # Sze & Ng eq. (1.4): full ionisation, Boltzmann: E_F − E_v = E_g − kT ln(Nc/N_D)
    r = carrier_concentrations(SI, 300.0, donors=1e16)
    kt = kB * 300.0
    textbook = float(r["band_gap_ev"]) - kt * math.log(
        float(r["conduction_dos_cm3"]) / 1e16
    )
    assert abs(float(r["fermi_level_ev"]) - textbook) < 0.01
    assert float(r["electrons_cm3"]) == pytest.approx(1e16, rel=0.01)
    # mass action law n p = n_i², up to the Fermi–Dirac correction of n,
    # e^η / 2^{3/2} ≈ 1e-4 at η = −8
    n, p, ni = (float(r[k]) for k in ("electrons_cm3", "holes_cm3", "intrinsic_cm3"))
    assert n * p == pytest.approx(ni**2, rel=1e-3)


def test_p_type_and_compensated_silicon():
    # Boltzmann, full ionisation: p = N_A − N_D, E_F − E_v = kT ln(Nv/p)
    r = carrier_concentrations(SI, 300.0, donors=2e15, acceptors=1e16)
    assert float(r["holes_cm3"]) == pytest.approx(8e15, rel=0.01)
    kt = kB * 300.0
    textbook = kt * math.log(float(r["valence_dos_cm3"]) / 8e15)
    assert abs(float(r["fermi_level_ev"]) - textbook) < 0.01


def test_temperature_sweep_freeze_out_extrinsic_intrinsic():
    temps = jnp.array([20.0, 30.0, 300.0, 1000.0])
    sweep = jax.jit(jax.vmap(lambda t: carrier_concentrations(SI, t, donors=1e16)))(
        temps
    )
    n, ni = np.asarray(sweep["electrons_cm3"]), np.asarray(sweep["intrinsic_cm3"])
    # freeze-out: electrons return to the donors
    assert n[0] < 1e-3 * 1e16 and n[1] < 1e-2 * 1e16
    # the low-T analytic limit (Sze & Ng §1.5, N_A = 0, n << N_D, Boltzmann):
    # n = sqrt(Nc N_D / g_D) exp(−ΔE_d / 2kT)
    nc30 = float(effective_density_of_states(SI.electron_dos_mass, 30.0))
    freeze = math.sqrt(nc30 * 1e16 / 2.0) * math.exp(-0.045 / (2 * kB * 30.0))
    assert n[1] == pytest.approx(freeze, rel=0.02)
    # extrinsic plateau
    assert n[2] == pytest.approx(1e16, rel=0.01)
    # intrinsic regime: n_i >> N_D and n ≈ n_i (n = N_D/2 + sqrt(N_D²/4 + n_i²))
    assert ni[3] > 10 * 1e16
    assert n[3] == pytest.approx(5e15 + math.sqrt(25e30 + ni[3] ** 2), rel=0.01)


def test_low_doping_intrinsic_at_700k():
    r = carrier_concentrations(SI, 700.0, donors=1e14)
    ni = float(r["intrinsic_cm3"])
    assert ni > 10 * 1e14
    assert float(r["electrons_cm3"]) == pytest.approx(ni, rel=0.05)


@pytest.mark.parametrize("temperature", [1.0, 5.0, 1500.0])
@pytest.mark.parametrize("doping", [(0.0, 0.0), (1e20, 0.0), (0.0, 1e20), (1e14, 1e14)])
def test_neutrality_is_solved_over_the_whole_range(temperature, doping):
    nd, na = doping
    for m in (SI, semiconductor("GaAs")):
        r = carrier_concentrations(m, temperature, nd, na)
        positive = float(r["holes_cm3"] + r["ionized_donors_cm3"])
        negative = float(r["electrons_cm3"] + r["ionized_acceptors_cm3"])
        assert math.isfinite(float(r["fermi_level_ev"]))
        # charge balance to round-off (log-residual of the bisection)
        assert positive == pytest.approx(negative, rel=1e-9)


@jax.jit
def _log_n_p(x):
    """[T (K), N_D (1e16 cm⁻³), E_g0 (eV)] -> [log n, log p] for Si with N_A = 1e15."""
    m = SI._replace(band_gap_0k_ev=x[2])
    r = carrier_concentrations(m, x[0], x[1] * 1e16, 1e15)
    return jnp.log(jnp.stack([r["electrons_cm3"], r["holes_cm3"]]))


_jacobian = jax.jit(jax.jacrev(_log_n_p))


@pytest.mark.parametrize("temperature", [60.0, 300.0, 800.0])
def test_gradients_match_finite_differences(temperature):
    # reference: central finite differences of log n and log p with respect to
    # T, N_D and E_g0. ∂log n/∂E_g is below round-off for n-type Si at ≤ 300 K
    # (n ≈ N_D − N_A), so the gap derivative is checked on the holes there.
    x = jnp.array([temperature, 1.0, SI.band_gap_0k_ev])
    jac = np.asarray(_jacobian(x))  # [2, 3]
    steps = [1e-4 * temperature, 1e-4, 1e-5]
    for k, h in enumerate(steps):
        dx = jnp.zeros(3).at[k].set(h)
        fd = np.asarray((_log_n_p(x + dx) - _log_n_p(x - dx)) / (2 * h))
        rows = [0, 1] if (k < 2 or temperature > 500) else [1]
        for i in rows:
            assert jac[i, k] == pytest.approx(fd[i], rel=1e-5), (i, k)


def test_intrinsic_gap_derivative_is_analytic():
    # n = n_i ∝ exp(−E_g/2kT): dn/dE_g = −n / (2kT)
    def n_of(eg0):
        return carrier_concentrations(SI._replace(band_gap_0k_ev=eg0), 400.0)[
            "electrons_cm3"
        ]

    n, d = jax.value_and_grad(n_of)(SI.band_gap_0k_ev)
    assert float(d) == pytest.approx(-float(n) / (2 * kB * 400.0), rel=1e-6)


def test_check_grads_of_fermi_level():
    # reference: jax.test_util.check_grads (finite differences, both modes)
    def ef(t, nd):
        return fermi_level(SI, t, nd * 1e15, 1e14)

    check_grads(ef, (250.0, 3.0), order=1, modes=["fwd", "rev"], atol=1e-7, rtol=1e-5)


def test_vmap_matches_a_python_loop():
    temps = np.array([50.0, 200.0, 400.0])
    batched = jax.vmap(lambda t: fermi_level(SI, t, 1e15))(jnp.asarray(temps))
    single = [float(fermi_level(SI, t, 1e15)) for t in temps]
    np.testing.assert_allclose(np.asarray(batched), single, rtol=0, atol=1e-12)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="temperature"):
        carrier_concentrations(SI, 0.0)
    with pytest.raises(ConfigError, match="donors"):
        carrier_concentrations(SI, 300.0, donors=-1.0)
    with pytest.raises(ConfigError, match="no band parameters"):
        semiconductor("InP")


def test_float32_is_refused_with_the_fix():
    from mldiff.errors import PrecisionError

    with jax.enable_x64(False), pytest.raises(PrecisionError, match="jax_enable_x64"):
        carrier_concentrations(SI, 300.0)


def test_integer_inputs_give_the_float_result():
    a = carrier_concentrations(SI, 300, 10**16)["electrons_cm3"]
    b = carrier_concentrations(SI, 300.0, 1e16)["electrons_cm3"]
    assert float(a) == float(b)
