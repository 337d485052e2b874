"""Physical constants and unit conversions (NumPy only).

mldiff works in eV, Å, amu, fs-derived ASE time, and K. Values are CODATA 2014,
the set ``ase.units`` uses by default (ASE ≤ 3.29), so numbers agree with ASE to
the last digit (checked in ``tests/test_units.py``).
"""

import math

__all__ = ["eV", "angstrom", "GPa", "eV_per_A3_to_GPa", "kB", "amu", "fs"]

eV = 1.0
angstrom = 1.0
_e = 1.6021766208e-19  # C, CODATA 2014
_amu = 1.660539040e-27  # kg, CODATA 2014
kB = 1.38064852e-23 / _e  # eV/K, CODATA 2014
amu = 1.0
GPa = 1e9 * 1e-30 / _e  # eV/Å³ per GPa
eV_per_A3_to_GPa = 1.0 / GPa  # 160.2176634 GPa per eV/Å³
# ASE's time unit is Å·sqrt(amu/eV); one femtosecond in that unit:
fs = 1e-15 / (1e-10 * math.sqrt(_amu / _e))
