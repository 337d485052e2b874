"""Hund's-rule ground terms and magnetic moments of free ions.

For one open subshell of ``N`` electrons and orbital quantum number ``l``, Hund's
rules put the electrons in ``m_l = l, l−1, …`` spin-up first, so

* ``S`` = (unpaired electrons) / 2,
* ``L = |Σ m_l|``,
* ``J = |L − S|`` if the subshell is at most half full, else ``L + S``;

and the term symbol is ``(2S+1) L_J`` with ``L`` written S P D F G H I K L M N …
(J skipped). Configurations with several open subshells (neutral Cr 3d⁵ 4s¹,
Gd 4f⁷ 5d¹ 6s²) are treated by adding each subshell's Hund ``S`` and ``L`` and
taking ``J = L + S`` if any open subshell is more than half full, else
``|L − S|``. This gives the NIST ground terms of Cr ⁷S₃, Nb ⁶D₁/₂, Ru ⁵F₅,
Pt ³D₃, Gd ⁹D₂, U ⁵L₆ and Pa ⁴K₁₁/₂, but not Ce (¹G₄, where Hund's rules fail);
ions of interest have one open subshell.

Moments, in Bohr magnetons:

* spin-only ``μ = √(n(n+2))`` for ``n`` unpaired electrons: the observed
  paramagnetic moment of 3d ions, whose orbital moment the ligand field quenches;
* free ion ``μ = g_J √(J(J+1))`` with the Landé factor
  ``g_J = 1 + [J(J+1) + S(S+1) − L(L+1)] / [2J(J+1)]`` (``μ = 0`` for ``J = 0``):
  the observed moment of 4f ions (except Sm³⁺ and Eu³⁺, where excited J levels
  lie within k_B T).

:func:`free_ion` reports ``effective_moment_bohr`` as the free-ion value when an f
subshell is open and the spin-only value otherwise.

References:
    N. W. Ashcroft and N. D. Mermin, *Solid State Physics* (1976), ch. 31;
    S. Blundell, *Magnetism in Condensed Matter* (OUP, 2001), §2.7 and tables
    2.1–2.2.

Example:
    >>> r = free_ion("Fe3+")
    >>> r["term_symbol"], r["unpaired_electrons"], round(r["spin_only_moment_bohr"], 2)
    ('6S5/2', 5, 5.92)
"""

import math
from fractions import Fraction

from mldiff.electrons.configurations import (
    SUBSHELL_LETTERS,
    SpeciesError,
    electron_configuration,
    format_configuration,
    noble_gas_notation,
)

__all__ = [
    "L_LETTERS",
    "hund_subshell",
    "ground_term",
    "term_symbol",
    "lande_g",
    "spin_only_moment",
    "free_ion_moment",
    "octahedral_unpaired_electrons",
    "free_ion",
]

L_LETTERS = "SPDFGHIKLMNOQRTUVWXYZ"  # L = 0, 1, 2, … (no J; P, S not repeated)


def hund_subshell(electrons: int, ell: int) -> tuple[Fraction, int, bool]:
    """Hund's-rule ``S`` and ``L`` of ``electrons`` electrons in one subshell.

    Args:
        electrons: occupation, 0 to ``2(2l+1)``.
        ell: orbital quantum number ``l`` of the subshell.

    Returns:
        ``(S, L, more_than_half)``: total spin (a Fraction), total orbital angular
        momentum, and whether the subshell is more than half full.

    Example:
        >>> hund_subshell(10, 3)  # 4f10 (Ho3+): S = 2, L = 6
        (Fraction(2, 1), 6, True)
    """
    orbitals = 2 * ell + 1
    up = min(electrons, orbitals)
    down = electrons - up
    ml = list(range(ell, -ell - 1, -1))
    big_l = abs(sum(ml[:up]) + sum(ml[:down]))
    return Fraction(up - down, 2), big_l, electrons > orbitals


def ground_term(conf: dict) -> tuple[Fraction, int, Fraction]:
    """Hund's-rule ``(S, L, J)`` of a configuration (see the module docstring).

    Args:
        conf: ``{(n, letter): electrons}``.

    Returns:
        ``(S, L, J)``; ``S`` and ``J`` are Fractions (halves).

    Example:
        >>> ground_term({(4, "f"): 7})  # Gd3+
        (Fraction(7, 2), 0, Fraction(7, 2))
    """
    s, big_l, more = Fraction(0), 0, False
    for (_, letter), k in conf.items():
        ell = SUBSHELL_LETTERS.index(letter)
        if 0 < k < 2 * (2 * ell + 1):
            si, li, mi = hund_subshell(k, ell)
            s, big_l, more = s + si, big_l + li, more or mi
    j = big_l + s if more else abs(big_l - s)
    return s, big_l, j


def term_symbol(s: Fraction, big_l: int, j: Fraction) -> str:
    """``(2S+1) L J`` as text, e.g. ``'8S7/2'``, ``'5I8'``.

    Args:
        s: total spin.
        big_l: total orbital angular momentum.
        j: total angular momentum.

    Returns:
        Multiplicity, L letter, and J as an integer or ``p/2``.

    Example:
        >>> term_symbol(Fraction(2), 6, Fraction(8))
        '5I8'
    """
    return f"{int(2 * s + 1)}{L_LETTERS[big_l]}{j}"


def lande_g(s: int | float, big_l: int | float, j: int | float) -> float:
    """Landé factor ``g_J = 1 + [J(J+1) + S(S+1) − L(L+1)] / [2J(J+1)]``.

    Args:
        s: total spin.
        big_l: total orbital angular momentum.
        j: total angular momentum (> 0).

    Returns:
        ``g_J``, dimensionless (2 for ``L = 0``, 1 for ``S = 0``).

    Example:
        >>> lande_g(2, 6, 8)  # Ho3+
        1.25
    """
    jj = j * (j + 1)
    return 1.0 + (jj + s * (s + 1) - big_l * (big_l + 1)) / (2.0 * jj)


def spin_only_moment(unpaired: int) -> float:
    """Spin-only moment ``√(n(n+2))``, Bohr magnetons.

    Args:
        unpaired: number of unpaired electrons ``n``.

    Returns:
        Moment in μ_B.

    Example:
        >>> round(spin_only_moment(4), 2)  # Fe2+
        4.9
    """
    return math.sqrt(unpaired * (unpaired + 2))


def free_ion_moment(s: int | float, big_l: int | float, j: int | float) -> float:
    """Free-ion moment ``g_J √(J(J+1))``, Bohr magnetons (0 for ``J = 0``).

    Args:
        s: total spin.
        big_l: total orbital angular momentum.
        j: total angular momentum.

    Returns:
        Moment in μ_B.

    Example:
        >>> round(free_ion_moment(2, 6, 8), 2)  # Ho3+
        10.61
    """
    if j == 0:
        return 0.0
    return lande_g(s, big_l, j) * math.sqrt(j * (j + 1))


def octahedral_unpaired_electrons(d_electrons: int, spin: str) -> int:
    """Unpaired electrons of a dⁿ ion in an octahedral crystal field.

    High spin fills the five d orbitals by Hund's rule; low spin fills the three
    t2g orbitals before the two eg. They differ only for d⁴–d⁷.

    Args:
        d_electrons: d occupation, 0–10.
        spin: ``"high"`` or ``"low"``.

    Returns:
        Number of unpaired electrons.

    Raises:
        SpeciesError: occupation out of range or unknown spin state.

    Example:
        >>> octahedral_unpaired_electrons(6, "high"), octahedral_unpaired_electrons(6, "low")
        (4, 0)
    """  # noqa: E501
    if not 0 <= d_electrons <= 10:
        raise SpeciesError(f"d occupation must be 0–10, got {d_electrons}")
    if spin == "high":
        return min(d_electrons, 10 - d_electrons)
    if spin == "low":
        t2g, eg = min(d_electrons, 6), max(d_electrons - 6, 0)
        return min(t2g, 6 - t2g) + min(eg, 4 - eg)
    raise SpeciesError(f"spin must be 'high' or 'low', got {spin!r}")


def _open_subshells(conf: dict) -> list[tuple[int, str]]:
    return [
        s for s, k in conf.items() if 0 < k < 2 * (2 * SUBSHELL_LETTERS.index(s[1]) + 1)
    ]


def free_ion(species: str, *, octahedral: str | None = None) -> dict:
    """Configuration, Hund's-rule ground term and moments of a free atom or ion.

    Args:
        species: ``"Fe3+"``, ``"Ho3+"``, ``"Gd"``… (see
            :func:`~mldiff.electrons.configurations.parse_species`).
        octahedral: ``"high"`` or ``"low"`` to add the octahedral crystal-field
            spin state of a d-block ion (its only open subshell must be d).

    Returns:
        ``{"species", "configuration", "noble_gas_configuration",
        "unpaired_electrons", "spin", "orbital_angular_momentum",
        "total_angular_momentum", "term_symbol", "lande_g",
        "spin_only_moment_bohr", "free_ion_moment_bohr", "effective_moment_bohr",
        "effective_moment_rule"}``, moments in μ_B (``lande_g`` is ``None`` for
        ``J = 0``); with ``octahedral`` also ``"octahedral_spin"``,
        ``"octahedral_unpaired_electrons"`` and
        ``"octahedral_spin_only_moment_bohr"``.

    Raises:
        SpeciesError: bad species, or ``octahedral`` for an ion whose open
            subshell is not a single d subshell.

    Example:
        >>> r = free_ion("Ho3+")
        >>> r["term_symbol"], round(r["effective_moment_bohr"], 2)
        ('5I8', 10.61)
    """
    conf = electron_configuration(species)
    s, big_l, j = ground_term(conf)
    unpaired = int(2 * s)
    open_shells = _open_subshells(conf)
    f_open = any(letter == "f" for _, letter in open_shells)
    spin_only = spin_only_moment(unpaired)
    free = free_ion_moment(float(s), big_l, float(j))
    result = {
        "species": species,
        "configuration": format_configuration(conf),
        "noble_gas_configuration": noble_gas_notation(conf),
        "unpaired_electrons": unpaired,
        "spin": float(s),
        "orbital_angular_momentum": big_l,
        "total_angular_momentum": float(j),
        "term_symbol": term_symbol(s, big_l, j),
        "lande_g": lande_g(float(s), big_l, float(j)) if j > 0 else None,
        "spin_only_moment_bohr": spin_only,
        "free_ion_moment_bohr": free,
        "effective_moment_bohr": free if f_open else spin_only,
        "effective_moment_rule": (
            "g_J*sqrt(J(J+1)) (open f subshell)"
            if f_open
            else "spin-only sqrt(n(n+2)) (orbital moment quenched)"
        ),
    }
    if octahedral is not None:
        d_shells = [sh for sh in open_shells if sh[1] == "d"]
        if len(open_shells) != len(d_shells) or len(d_shells) > 1:
            raise SpeciesError(
                f"{species}: octahedral spin states need one open d subshell and "
                f"no other, found {[f'{n}{x}' for n, x in open_shells]}; use an "
                "ion such as Fe2+ or Co3+, or leave out the crystal field"
            )
        n_d = conf[d_shells[0]] if d_shells else 0  # d0 and d10: none unpaired
        n_oct = octahedral_unpaired_electrons(n_d, octahedral)
        result["octahedral_spin"] = octahedral
        result["octahedral_unpaired_electrons"] = n_oct
        result["octahedral_spin_only_moment_bohr"] = spin_only_moment(n_oct)
    return result
