"""phonopy's default physical constants, so that numbers agree with phonopy.

phonopy (``phonopy.physical_units``, defaults of ``set_physical_units``) uses
older CODATA values than :mod:`mldiff.units` (CODATA 2018). The differences are
below 1e-6 relative, but matching phonopy to the last digits makes comparisons
against it exact. All derived values below are computed as phonopy does.
"""

import math

_KB_J = 1.3806504e-23  # J/K
_PLANCK_EV_S = 4.13566733e-15  # eV s
_AVOGADRO = 6.02214179e23  # 1/mol
_AMU_KG = 1.6605402e-27  # kg
_EV_J = 1.60217733e-19  # J

KB_EV_K = _KB_J / _EV_J  # Boltzmann constant, eV/K (8.617338256808316e-05)
THZ_TO_EV = _PLANCK_EV_S * 1e12  # h · 1 THz, eV (0.00413566733)
EV_TO_KJ_MOL = _EV_J / 1000 * _AVOGADRO  # kJ/mol per eV (96.4853905398362)
# sqrt(eV/(Å²·amu)) / (2π) in THz (15.633302300230191, phonopy's DefaultToTHz)
THZ_PER_SQRT_EV_A2_AMU = math.sqrt(_EV_J / _AMU_KG) / 1e-10 / (2 * math.pi) / 1e12
