"""Physical constants and unit conversions (NumPy only).

mldiff works in eV, Å, amu, K and ASE's time unit Å·sqrt(amu/eV) (:data:`fs` is
one femtosecond in it). Its constants are one set, CODATA 2014: the set
``ase.units`` uses by default (ASE ≤ 3.29), so numbers agree with ASE to the last
digit (``tests/test_units.py``). Every module takes its constants from here.

The one exception is phonopy's own set. Phonon results are checked against
phonopy and phono3py to 1e-7 relative or tighter, while phonopy's defaults
(``phonopy.physical_units``: CODATA 2006 for k_B, h and N_A, CODATA 1986 for e
and the atomic mass unit) differ from CODATA 2014 by up to 1.4e-6. The
conversions behind a quantity that phonopy defines (frequencies in THz, thermal
properties in kJ/mol, quasi-harmonic bulk moduli, phono3py's linewidths and κ)
therefore use phonopy's values, named ``PHONOPY_*`` and derived as phonopy
derives them; ``tests/test_units.py`` checks them against phonopy itself.
"""

import math

import numpy as np

__all__ = [
    "eV",
    "angstrom",
    "amu",
    "kB",
    "GPa",
    "eV_per_A3_to_GPa",
    "fs",
    "Bohr",
    "e_C",
    "amu_kg",
    "kB_J_K",
    "h_J_s",
    "me_kg",
    "avogadro",
    "gas_constant_j_mol_k",
    "masses_amu",
    "PHONOPY_KB_J_K",
    "PHONOPY_PLANCK_EV_S",
    "PHONOPY_AVOGADRO",
    "PHONOPY_AMU_KG",
    "PHONOPY_EV_J",
    "PHONOPY_HBAR_J_S",
    "PHONOPY_KB_EV_K",
    "PHONOPY_THZ_TO_EV",
    "PHONOPY_EV_TO_KJ_MOL",
    "PHONOPY_THZ_PER_SQRT_EV_A2_AMU",
    "PHONOPY_EV_PER_A3_TO_GPA",
]

# CODATA 2014 in SI: ase.units' _e, _amu, _k, _hplanck, _me, _c, _mu0
e_C = 1.6021766208e-19  # elementary charge, C (so J per eV)
amu_kg = 1.660539040e-27  # atomic mass unit, kg
kB_J_K = 1.38064852e-23  # Boltzmann constant, J/K
h_J_s = 6.626070040e-34  # Planck constant, J·s
me_kg = 9.10938356e-31  # electron mass, kg
avogadro = 6.022140857e23  # Avogadro constant, 1/mol (ase.units._Nav)
_c = 299792458.0  # speed of light, m/s (exact)
_mu0 = 4e-7 * math.pi  # vacuum permeability, N/A² (exact before SI 2019)

# mldiff's units and conversions, derived as ase.units derives them
eV = 1.0
angstrom = 1.0
amu = 1.0
kB = kB_J_K / e_C  # Boltzmann constant, eV/K
GPa = 1e9 * 1e-30 / e_C  # one GPa in eV/Å³
eV_per_A3_to_GPa = 1.0 / GPa  # GPa per eV/Å³ (160.21766208), the only such factor
gas_constant_j_mol_k = avogadro * kB_J_K  # molar gas constant R, J/(mol·K)
# ASE's time unit is Å·sqrt(amu/eV); one femtosecond in that unit:
fs = 1e-15 / (1e-10 * math.sqrt(amu_kg / e_C))
# Bohr radius 4πε₀ħ²/(mₑe²), Å (0.5291772105638411)
Bohr = (
    4e10 * math.pi * (1 / _mu0 / _c**2) * (h_J_s / (2 * math.pi)) ** 2 / me_kg / e_C**2
)

# phonopy's defaults (phonopy.physical_units), for quantities phonopy defines
PHONOPY_KB_J_K = 1.3806504e-23  # Boltzmann constant, J/K (CODATA 2006)
PHONOPY_PLANCK_EV_S = 4.13566733e-15  # Planck constant, eV·s (CODATA 2006)
PHONOPY_AVOGADRO = 6.02214179e23  # 1/mol (CODATA 2006)
PHONOPY_AMU_KG = 1.6605402e-27  # atomic mass unit, kg (CODATA 1986)
PHONOPY_EV_J = 1.60217733e-19  # elementary charge, C (CODATA 1986)
PHONOPY_HBAR_J_S = PHONOPY_PLANCK_EV_S / (2 * math.pi) * PHONOPY_EV_J  # ħ, J·s
PHONOPY_KB_EV_K = PHONOPY_KB_J_K / PHONOPY_EV_J  # eV/K (8.617338256808316e-05)
PHONOPY_THZ_TO_EV = PHONOPY_PLANCK_EV_S * 1e12  # h · 1 THz, eV (0.00413566733)
# kJ/mol per eV (96.4853905398362), phonopy's EvTokJmol
PHONOPY_EV_TO_KJ_MOL = PHONOPY_EV_J / 1000 * PHONOPY_AVOGADRO
# sqrt(eV/(Å²·amu)) / (2π) in THz (15.633302300230191), phonopy's DefaultToTHz;
# CODATA 2014 would make it larger by 1.3e-7 (relative)
PHONOPY_THZ_PER_SQRT_EV_A2_AMU = (
    math.sqrt(PHONOPY_EV_J / PHONOPY_AMU_KG) / 1e-10 / (2 * math.pi) / 1e12
)
# GPa per eV/Å³ (160.217733), phonopy's EVAngstromToGPa: only for the
# quasi-harmonic bulk modulus, which is phonopy's B(T); 4.4e-7 above eV_per_A3_to_GPa
PHONOPY_EV_PER_A3_TO_GPA = PHONOPY_EV_J / 1e-30 / 1e9


def masses_amu(numbers) -> np.ndarray:
    """Standard atomic masses by atomic number: ASE's table, amu.

    The one masses table of mldiff (phonons, MD, phonopy files): the IUPAC
    2016 standard atomic weights of ``ase.data.atomic_masses``, the masses
    ``ase.Atoms.get_masses()`` gives. phonopy's own table differs for a few
    elements (Si: 28.0855 vs 28.085 amu); pass phonopy's masses explicitly to
    reproduce its frequencies to better than 1e-4 THz. ASE is imported on the
    first call, so that importing this module needs NumPy only.

    Args:
        numbers: ``[n]`` atomic numbers.

    Returns:
        ``[n]`` masses, amu, float64.

    Example:
        >>> masses_amu([29, 14]).tolist()
        [63.546, 28.085]
    """
    from ase.data import atomic_masses

    return np.asarray(atomic_masses, dtype=np.float64)[np.asarray(numbers)]
