"""Band parameters of Si, Ge and GaAs, with their sources.

A :class:`Semiconductor` is a NamedTuple of floats, hence a JAX pytree: every
field can be differentiated (``jax.grad`` with respect to the whole tuple gives
``∂/∂E_g0``, ``∂/∂m*``, … at once).

Sources, field by field:

* Varshni band gap ``E_g(T) = E_g0 − αT²/(T + β)``: C. D. Thurmond,
  J. Electrochem. Soc. 122, 1133 (1975), as quoted by S. M. Sze and K. K. Ng,
  *Physics of Semiconductor Devices*, 3rd ed. (Wiley, 2007), §1.4.1, and by the
  Ioffe NSM archive (www.ioffe.ru/SVA/NSM/Semicond/): Si 1.170 eV, 4.73e-4 eV/K,
  636 K; Ge 0.7437 eV, 4.774e-4 eV/K, 235 K; GaAs 1.519 eV, 5.405e-4 eV/K, 204 K.
* Density-of-states effective masses (in electron masses), fixed at their
  300 K values (only the ``T^{3/2}`` of ``N_c``, ``N_v`` is kept):

  - Si: electrons 1.09, holes 1.15, from M. A. Green, J. Appl. Phys. 67, 2944
    (1990) (``N_c = 2.86e19``, ``N_v = 3.10e19`` cm⁻³ and ``n_i = 1.08e10`` cm⁻³
    at 300 K there);
  - Ge: electrons ``4^{2/3} × 0.22 = 0.554`` (four L valleys, Ioffe's
    ``m_c = 0.22``), holes 0.34 (Ioffe); Ioffe's ``N_c = 1.0e19``,
    ``N_v = 5.0e18`` cm⁻³ at 300 K;
  - GaAs: electrons 0.0705 and holes 0.505, the masses that reproduce Ioffe's
    tabulated ``N_c = 4.7e17`` and ``N_v = 9.0e18`` cm⁻³ at 300 K
    (``m = (N / 2.509e19 cm⁻³)^{2/3}``); the Γ-valley band mass is 0.063, the
    larger value absorbs non-parabolicity and the L valleys.
* Shallow-level ionisation energies (eV from the band edge): Si: P donor 0.045,
  B acceptor 0.045 (Sze & Ng ch. 1, measured impurity levels; Ioffe); Ge: P
  donor 0.013, B acceptor 0.011 (Ioffe); GaAs: Si donor 0.0058, C acceptor
  0.026 (Sze & Ng ch. 1, measured impurity levels).
* Degeneracy factors: donors 2 (spin), acceptors 4 (spin × two degenerate
  valence bands at Γ) (Sze & Ng ch. 1, impurity ionisation).

Example:
    >>> semiconductor("Si").electron_dos_mass
    1.09
"""

from typing import NamedTuple

from mldiff.errors import ConfigError

__all__ = ["Semiconductor", "SEMICONDUCTORS", "semiconductor"]


class Semiconductor(NamedTuple):
    """Band-edge parameters of a cubic semiconductor (a pytree of floats)."""

    band_gap_0k_ev: float  # Varshni E_g0, eV
    varshni_alpha_ev_k: float  # Varshni α, eV/K
    varshni_beta_k: float  # Varshni β, K
    electron_dos_mass: float  # conduction-band DOS mass, electron masses
    hole_dos_mass: float  # valence-band DOS mass, electron masses
    donor_ionization_ev: float  # E_c − E_d, eV
    acceptor_ionization_ev: float  # E_a − E_v, eV
    donor_degeneracy: float = 2.0  # g_D
    acceptor_degeneracy: float = 4.0  # g_A


SEMICONDUCTORS = {
    # donor: P; acceptor: B
    "Si": Semiconductor(1.170, 4.73e-4, 636.0, 1.09, 1.15, 0.045, 0.045),
    # donor: P; acceptor: B
    "Ge": Semiconductor(0.7437, 4.774e-4, 235.0, 0.554, 0.34, 0.013, 0.011),
    # donor: Si (on Ga); acceptor: C (on As)
    "GaAs": Semiconductor(1.519, 5.405e-4, 204.0, 0.0705, 0.505, 0.0058, 0.026),
}


def semiconductor(name: str) -> Semiconductor:
    """Parameters of ``"Si"``, ``"Ge"`` or ``"GaAs"`` (case-insensitive).

    Args:
        name: material name.

    Returns:
        The :class:`Semiconductor` of the table above.

    Raises:
        ConfigError: unknown material.

    Example:
        >>> semiconductor("gaas").band_gap_0k_ev
        1.519
    """
    for key, value in SEMICONDUCTORS.items():
        if key.lower() == name.strip().lower():
            return value
    raise ConfigError(
        f"no band parameters for {name!r}; choose one of {sorted(SEMICONDUCTORS)} "
        "or build a mldiff.electrons.Semiconductor yourself"
    )
