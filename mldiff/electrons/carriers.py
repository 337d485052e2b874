"""Carrier concentrations of a doped semiconductor, differentiable in JAX.

Energies are measured from the valence-band maximum (``E_v = 0``,
``E_c = E_g(T)``). With ``k_B T`` in eV and concentrations in cm⁻³:

* band gap (Varshni): ``E_g(T) = E_g0 − αT² / (T + β)``;
* effective densities of states: ``N_{c,v} = 2 (2π m* k_B T / h²)^{3/2}``;
* intrinsic concentration: ``n_i = √(N_c N_v) exp(−E_g / 2k_B T)``;
* free carriers (Fermi–Dirac): ``n = N_c F_{1/2}((E_F − E_c)/k_B T)``,
  ``p = N_v F_{1/2}((E_v − E_F)/k_B T)``;
* ionised impurities: ``N_D⁺ = N_D / (1 + g_D e^{(E_F − E_d)/k_B T})`` with
  ``E_d = E_c − ΔE_d``, ``N_A⁻ = N_A / (1 + g_A e^{(E_a − E_F)/k_B T})`` with
  ``E_a = E_v + ΔE_a``;
* the Fermi level solves charge neutrality ``n + N_A⁻ = p + N_D⁺``.

The neutrality residual is written in logarithms,
``log(p + N_D⁺) − log(n + N_A⁻)``, which is finite and strictly decreasing in
``E_F`` from 1 K (where ``|η| ~ 10⁴``) to 1500 K. It is solved by
bisection on ``[−3 eV, E_g + 3 eV]`` (100 halvings, to round-off) inside
``jax.lax.custom_root``, so derivatives come from the implicit function theorem,
``dE_F/dθ = −(∂r/∂θ)/(∂r/∂E_F)``, not from the loop. Everything vmaps over
temperatures and dopings. float64 is required.

Limits of the model: parabolic bands with density-of-states masses fixed at
their 300 K values, isolated impurity levels (no impurity band, Mott transition
or band-gap narrowing, so heavy doping — above ~10¹⁸ cm⁻³ in Si, ~10¹⁶ cm⁻³ in
GaAs — still "freezes out" at low T, unlike real metallic samples), and no
temperature dependence of the ionisation energies.

References:
    S. M. Sze and K. K. Ng, *Physics of Semiconductor Devices*, 3rd ed. (Wiley,
    2007), §1.4–1.5; J. S. Blakemore, *Semiconductor Statistics* (1962).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from mldiff.electrons.materials import semiconductor
    >>> r = carrier_concentrations(semiconductor("Si"), 300.0, donors=1e16)
    >>> f"{float(r['electrons_cm3']):.3e}"
    '9.960e+15'
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from mldiff.electrons.fermi_dirac import log_fermi_dirac_half
from mldiff.electrons.materials import Semiconductor
from mldiff.errors import ConfigError, check_float64
from mldiff.units import h_J_s, kB, kB_J_K, me_kg

__all__ = [
    "band_gap",
    "effective_density_of_states",
    "intrinsic_concentration",
    "fermi_level",
    "carrier_concentrations",
]

# 2 (2π m_e k_B / h²)^{3/2} in cm⁻³ K^{-3/2}: N = _NC_COEFF (m* T)^{3/2}
_NC_COEFF = 2.0 * (2.0 * math.pi * me_kg * kB_J_K / h_J_s**2) ** 1.5 * 1e-6
_BRACKET_EV = 3.0  # E_F is searched in [−3 eV, E_g + 3 eV]
_BISECTIONS = 100


def _float64(x) -> Array:
    check_float64("carrier concentrations")
    return jnp.asarray(x, dtype=jnp.float64)


def band_gap(
    material: Semiconductor, temperature: Real[ArrayLike, "*t"]
) -> Float[Array, "*t"]:
    """Varshni band gap ``E_g(T) = E_g0 − αT²/(T + β)``.

    Args:
        material: band parameters.
        temperature: ``[*t]`` temperatures, K.

    Returns:
        ``[*t]`` band gap, eV.

    Example:
        >>> from mldiff.electrons.materials import semiconductor
        >>> round(float(band_gap(semiconductor("GaAs"), 300.0)), 4)  # Ioffe 1.424
        1.4225
    """
    t = _float64(temperature)
    m = material
    return m.band_gap_0k_ev - m.varshni_alpha_ev_k * t**2 / (t + m.varshni_beta_k)


def effective_density_of_states(
    dos_mass: Real[ArrayLike, ""], temperature: Real[ArrayLike, "*t"]
) -> Float[Array, "*t"]:
    """``N = 2 (2π m* k_B T / h²)^{3/2}``.

    Args:
        dos_mass: density-of-states effective mass, electron masses.
        temperature: ``[*t]`` temperatures, K.

    Returns:
        ``[*t]`` effective density of states, cm⁻³.

    Example:
        >>> f"{float(effective_density_of_states(1.0, 300.0)):.4e}"
        '2.5094e+19'
    """
    t = _float64(temperature)
    return _NC_COEFF * (dos_mass * t) ** 1.5


def intrinsic_concentration(
    material: Semiconductor, temperature: Real[ArrayLike, "*t"]
) -> Float[Array, "*t"]:
    """``n_i = √(N_c N_v) exp(−E_g / 2k_B T)`` (Boltzmann statistics).

    Args:
        material: band parameters.
        temperature: ``[*t]`` temperatures, K.

    Returns:
        ``[*t]`` intrinsic carrier concentration, cm⁻³.

    Example:
        >>> from mldiff.electrons.materials import semiconductor
        >>> f"{float(intrinsic_concentration(semiconductor('Si'), 300.0)):.2e}"
        '1.07e+10'
    """
    t = _float64(temperature)
    nc = effective_density_of_states(material.electron_dos_mass, t)
    nv = effective_density_of_states(material.hole_dos_mass, t)
    return jnp.sqrt(nc * nv) * jnp.exp(-band_gap(material, t) / (2.0 * kB * t))


def _safe_log(x: Array) -> Array:
    """``log x`` for ``x > 0`` and ``−inf`` at ``x = 0``, with a finite gradient."""
    ok = x > 0
    return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), -jnp.inf)


def _log_densities(material, t, donors, acceptors):
    """``E_F ↦ (log n, log p, log N_D⁺, log N_A⁻)``, all in log cm⁻³."""
    m = material
    kt = kB * t
    eg = band_gap(m, t)
    log_nc = jnp.log(effective_density_of_states(m.electron_dos_mass, t))
    log_nv = jnp.log(effective_density_of_states(m.hole_dos_mass, t))
    log_nd, log_na = _safe_log(donors), _safe_log(acceptors)

    def densities(ef):
        log_n = log_nc + log_fermi_dirac_half((ef - eg) / kt)
        log_p = log_nv + log_fermi_dirac_half(-ef / kt)
        e_d = eg - m.donor_ionization_ev
        e_a = m.acceptor_ionization_ev
        x_d = jnp.log(m.donor_degeneracy) + (ef - e_d) / kt
        x_a = jnp.log(m.acceptor_degeneracy) + (e_a - ef) / kt
        log_nd_plus = log_nd - jax.nn.softplus(x_d)
        log_na_minus = log_na - jax.nn.softplus(x_a)
        return log_n, log_p, log_nd_plus, log_na_minus

    return eg, densities


def _bisect(f, guess):
    """Root of a decreasing ``f`` in ``[−3 eV, 2·guess + 3 eV]`` (guess = E_g/2)."""
    lo = guess - (guess + _BRACKET_EV)
    hi = guess + (guess + _BRACKET_EV)

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = f(mid) < 0  # root below mid
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, halve, (lo, hi))
    return 0.5 * (lo + hi)


def _check_inputs(temperature, donors, acceptors) -> None:
    """Reject unphysical concrete inputs (tracers pass through)."""
    for name, value, low, high, unit, why in (
        ("temperature", temperature, 1.0, 1500.0, "K", "the Varshni fits"),
        ("donors", donors, 0.0, 1e21, "cm⁻³", "isolated impurities"),
        ("acceptors", acceptors, 0.0, 1e21, "cm⁻³", "isolated impurities"),
    ):
        if isinstance(value, jax.core.Tracer):
            continue
        v = np.asarray(value)
        if not np.all((v >= low) & (v <= high)):
            raise ConfigError(
                f"{name} must lie in [{low:g}, {high:g}] {unit}, got {value!r}; "
                f"the model ({why}, parabolic bands) is meant for that range"
            )


def fermi_level(
    material: Semiconductor,
    temperature: Real[ArrayLike, ""],
    donors: Real[ArrayLike, ""] = 0.0,
    acceptors: Real[ArrayLike, ""] = 0.0,
) -> Float[Array, ""]:
    """Fermi level from charge neutrality, Fermi–Dirac statistics.

    Differentiable with respect to every argument (and every field of
    ``material``) through the implicit function theorem. Scalar inputs; use
    ``jax.vmap`` for sweeps.

    Args:
        material: band parameters.
        temperature: temperature, K (1–1500).
        donors: donor concentration ``N_D``, cm⁻³ (0–1e21).
        acceptors: acceptor concentration ``N_A``, cm⁻³ (0–1e21).

    Returns:
        ``E_F − E_v``, eV.

    Example:
        >>> from mldiff.electrons.materials import semiconductor
        >>> round(float(fermi_level(semiconductor("Si"), 300.0)), 3)  # near midgap
        0.563
    """
    _check_inputs(temperature, donors, acceptors)
    return _fermi_level(material, *map(_float64, (temperature, donors, acceptors)))


@jax.jit
def _fermi_level(material, t, nd, na):
    eg, densities = _log_densities(material, t, nd, na)

    def residual(ef):
        log_n, log_p, log_nd_plus, log_na_minus = densities(ef)
        return jnp.logaddexp(log_p, log_nd_plus) - jnp.logaddexp(log_n, log_na_minus)

    return jax.lax.custom_root(
        residual, 0.5 * eg, _bisect, lambda g, y: y / g(jnp.ones_like(y))
    )


def carrier_concentrations(
    material: Semiconductor,
    temperature: Real[ArrayLike, ""],
    donors: Real[ArrayLike, ""] = 0.0,
    acceptors: Real[ArrayLike, ""] = 0.0,
) -> dict:
    """Electrons, holes, ionised impurities and Fermi level of a doped crystal.

    Args:
        material: band parameters.
        temperature: temperature, K (1–1500).
        donors: donor concentration ``N_D``, cm⁻³.
        acceptors: acceptor concentration ``N_A``, cm⁻³.

    Returns:
        ``{"temperature_k", "band_gap_ev", "fermi_level_ev" (from E_v),
        "electrons_cm3", "holes_cm3", "intrinsic_cm3", "ionized_donors_cm3",
        "ionized_acceptors_cm3", "conduction_dos_cm3", "valence_dos_cm3"}``,
        scalars (JAX arrays), differentiable.

    Example:
        >>> from mldiff.electrons.materials import semiconductor
        >>> r = carrier_concentrations(semiconductor("Ge"), 300.0)
        >>> f"{float(r['electrons_cm3']):.2e}"
        '1.92e+13'
    """
    _check_inputs(temperature, donors, acceptors)
    return _carriers(material, *map(_float64, (temperature, donors, acceptors)))


@jax.jit
def _carriers(material, t, nd, na):
    ef = _fermi_level(material, t, nd, na)
    eg, densities = _log_densities(material, t, nd, na)
    log_n, log_p, log_nd_plus, log_na_minus = densities(ef)
    return {
        "temperature_k": t,
        "band_gap_ev": eg,
        "fermi_level_ev": ef,
        "electrons_cm3": jnp.exp(log_n),
        "holes_cm3": jnp.exp(log_p),
        "intrinsic_cm3": intrinsic_concentration(material, t),
        "ionized_donors_cm3": jnp.exp(log_nd_plus),
        "ionized_acceptors_cm3": jnp.exp(log_na_minus),
        "conduction_dos_cm3": effective_density_of_states(
            material.electron_dos_mass, t
        ),
        "valence_dos_cm3": effective_density_of_states(material.hole_dos_mass, t),
    }
