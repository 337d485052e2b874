"""Electrons: configurations, free-ion magnetism, semiconductor carriers.

Three small, exact tools that materials design starts from:

- :mod:`~mldiff.electrons.configurations`: ground-state electron configurations
  of atoms (Madelung rule with the measured exceptions, Z = 1–118) and ions
  (electrons removed ns before (n−1)d before (n−2)f), in full and noble-gas
  notation;
- :mod:`~mldiff.electrons.magnetism`: Hund's-rule term symbols, unpaired
  electrons, spin-only and ``g_J √(J(J+1))`` moments, octahedral high/low spin;
- :mod:`~mldiff.electrons.carriers` with :mod:`~mldiff.electrons.fermi_dirac`
  and :mod:`~mldiff.electrons.materials`: Varshni gap, effective densities of
  states, intrinsic concentration, and the charge-neutral Fermi level with
  Fermi–Dirac statistics and partial ionisation, differentiable by implicit
  differentiation (pure JAX, float64, vmappable).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> free_ion("Gd3+")["term_symbol"]
    '8S7/2'
    >>> si = semiconductor("Si")
    >>> dn_dnd = jax.grad(lambda nd: carrier_concentrations(si, 300.0, nd)["electrons_cm3"])
    >>> round(float(dn_dnd(1e16)), 2)  # nearly every added donor gives an electron
    0.99
"""  # noqa: E501

from mldiff.electrons.carriers import (
    band_gap,
    carrier_concentrations,
    effective_density_of_states,
    fermi_level,
    intrinsic_concentration,
)
from mldiff.electrons.configurations import (
    SpeciesError,
    electron_configuration,
    format_configuration,
    madelung_configuration,
    noble_gas_notation,
    parse_species,
)
from mldiff.electrons.fermi_dirac import fermi_dirac_half, log_fermi_dirac_half
from mldiff.electrons.magnetism import (
    free_ion,
    free_ion_moment,
    ground_term,
    lande_g,
    octahedral_unpaired_electrons,
    spin_only_moment,
    term_symbol,
)
from mldiff.electrons.materials import SEMICONDUCTORS, Semiconductor, semiconductor

__all__ = [
    "SpeciesError",
    "parse_species",
    "madelung_configuration",
    "electron_configuration",
    "format_configuration",
    "noble_gas_notation",
    "ground_term",
    "term_symbol",
    "lande_g",
    "spin_only_moment",
    "free_ion_moment",
    "octahedral_unpaired_electrons",
    "free_ion",
    "fermi_dirac_half",
    "log_fermi_dirac_half",
    "Semiconductor",
    "SEMICONDUCTORS",
    "semiconductor",
    "band_gap",
    "effective_density_of_states",
    "intrinsic_concentration",
    "fermi_level",
    "carrier_concentrations",
]
