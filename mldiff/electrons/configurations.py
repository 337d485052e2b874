"""Ground-state electron configurations of atoms and ions.

Neutral atoms fill subshells in Madelung (n + l, then n) order, corrected by the
table :data:`EXCEPTIONS` of measured ground configurations (NIST Atomic Spectra
Database, "Ground levels and ionization energies for the neutral atoms"). For the
superheavy elements the same table holds the values mendeleev 1.3 lists (Lr 7p¹ is
measured-based; Ds 6d⁹ 7s¹ and Rg 6d¹⁰ 7s¹ are relativistic predictions), so that
every Z = 1–118 agrees with mendeleev.

Cations lose electrons the way chemists remove them: first the valence subshells
(outside the neutral atom's noble-gas core), highest n first and, within one n,
highest l first — so ``ns`` and ``np`` before ``(n−1)d`` before ``(n−2)f``
(Fe → Fe³⁺ is ``[Ar] 3d⁵``; Ce → Ce³⁺ is ``[Xe] 4f¹``); only then the core, in the
same order. Anions gain electrons in Madelung order.

A configuration is a dict ``{(n, "d"): electrons}`` ordered by ``(n, l)``, the
layout of mendeleev's ``ElectronicConfiguration.conf``.

Example:
    >>> format_configuration(electron_configuration("Fe3+"))
    '1s2 2s2 2p6 3s2 3p6 3d5'
    >>> noble_gas_notation(electron_configuration("Ho3+"))
    '[Xe] 4f10'
"""

import re

from mldiff.errors import SpeciesError

__all__ = [
    "SpeciesError",
    "SYMBOLS",
    "SUBSHELL_LETTERS",
    "EXCEPTIONS",
    "parse_species",
    "madelung_configuration",
    "electron_configuration",
    "format_configuration",
    "noble_gas_notation",
]


SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu "
    "Zn Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs "
    "Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl "
    "Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh "
    "Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()  # SYMBOLS[Z - 1]
SUBSHELL_LETTERS = "spdfghi"  # l = 0, 1, 2, ...
NOBLE_GASES = {"He": 2, "Ne": 10, "Ar": 18, "Kr": 36, "Xe": 54, "Rn": 86, "Og": 118}
MAX_ANION_CHARGE = 4  # C⁴⁻ (carbide) is the most negative charge accepted

# Ground configurations that differ from the Madelung filling. NIST ASD for
# Z ≤ 103; mendeleev 1.3 (relativistic predictions) for Ds and Rg.
EXCEPTIONS = {
    24: "[Ar] 3d5 4s1",  # Cr
    29: "[Ar] 3d10 4s1",  # Cu
    41: "[Kr] 4d4 5s1",  # Nb
    42: "[Kr] 4d5 5s1",  # Mo
    44: "[Kr] 4d7 5s1",  # Ru
    45: "[Kr] 4d8 5s1",  # Rh
    46: "[Kr] 4d10",  # Pd
    47: "[Kr] 4d10 5s1",  # Ag
    57: "[Xe] 5d1 6s2",  # La
    58: "[Xe] 4f1 5d1 6s2",  # Ce
    64: "[Xe] 4f7 5d1 6s2",  # Gd
    78: "[Xe] 4f14 5d9 6s1",  # Pt
    79: "[Xe] 4f14 5d10 6s1",  # Au
    89: "[Rn] 6d1 7s2",  # Ac
    90: "[Rn] 6d2 7s2",  # Th
    91: "[Rn] 5f2 6d1 7s2",  # Pa
    92: "[Rn] 5f3 6d1 7s2",  # U
    93: "[Rn] 5f4 6d1 7s2",  # Np
    96: "[Rn] 5f7 6d1 7s2",  # Cm
    103: "[Rn] 5f14 7s2 7p1",  # Lr
    110: "[Rn] 5f14 6d9 7s1",  # Ds (predicted)
    111: "[Rn] 5f14 6d10 7s1",  # Rg (predicted)
}

_SPECIES = re.compile(r"^([A-Za-z]{1,2})(?:(\d*)([+-])|([+-])(\d+))?$")
_SUBSHELL = re.compile(r"^(\d+)([spdfghi])(\d*)$")


def _capacity(letter: str) -> int:
    return 2 * (2 * SUBSHELL_LETTERS.index(letter) + 1)


def _key(subshell: tuple[int, str]) -> tuple[int, int]:
    n, letter = subshell
    return n, SUBSHELL_LETTERS.index(letter)


def _sorted(conf: dict) -> dict:
    return {k: conf[k] for k in sorted(conf, key=_key) if conf[k] > 0}


def _madelung_order() -> list[tuple[int, str]]:
    shells = [(n, ell) for n in range(1, 9) for ell in range(min(n, 5))]
    shells.sort(key=lambda s: (s[0] + s[1], s[0]))
    return [(n, SUBSHELL_LETTERS[ell]) for n, ell in shells]


def parse_species(species: str) -> tuple[int, int]:
    """Atomic number and charge of ``"Fe"``, ``"Fe3+"``, ``"Fe+3"``, ``"O2-"``.

    Args:
        species: element symbol with an optional charge, sign after or before the
            number (``"Cu+"`` is charge +1).

    Returns:
        ``(Z, charge)``, charge in units of the elementary charge.

    Raises:
        SpeciesError: unknown element, unreadable text, or impossible charge.

    Example:
        >>> parse_species("Fe3+"), parse_species("O2-"), parse_species("Ho+3")
        ((26, 3), (8, -2), (67, 3))
    """
    m = _SPECIES.match(species.strip())
    if m is None:
        raise SpeciesError(
            f"cannot read species {species!r}; write an element symbol with an "
            "optional charge, e.g. 'Fe', 'Fe3+', 'Fe+3' or 'O2-'"
        )
    symbol = m.group(1).capitalize()
    if symbol not in SYMBOLS:
        raise SpeciesError(
            f"unknown element {symbol!r} in {species!r}; use a symbol of Z = 1–118 "
            "such as 'Fe' or 'Ho'"
        )
    z = SYMBOLS.index(symbol) + 1
    if m.group(3):  # "3+" or "+"
        charge = int(m.group(2) or 1) * (1 if m.group(3) == "+" else -1)
    elif m.group(4):  # "+3"
        charge = int(m.group(5)) * (1 if m.group(4) == "+" else -1)
    else:
        charge = 0
    if charge > z:
        raise SpeciesError(
            f"{species!r}: {symbol} has only {z} electrons, so a charge of "
            f"+{charge} is impossible; use a charge of at most +{z}"
        )
    if charge < -MAX_ANION_CHARGE:
        raise SpeciesError(
            f"{species!r}: anions beyond {-MAX_ANION_CHARGE} are not bound; use a "
            f"charge of at least -{MAX_ANION_CHARGE}"
        )
    return z, charge


def _parse_notation(text: str) -> dict:
    conf: dict = {}
    for token in text.split():
        if token.startswith("["):
            conf.update(madelung_configuration(NOBLE_GASES[token.strip("[]")]))
            continue
        m = _SUBSHELL.match(token)
        conf[(int(m.group(1)), m.group(2))] = int(m.group(3) or 1)
    return _sorted(conf)


def madelung_configuration(electrons: int) -> dict:
    """Aufbau filling of ``electrons`` electrons in Madelung order, no exceptions.

    Args:
        electrons: number of electrons, 0–118.

    Returns:
        ``{(n, letter): count}`` ordered by ``(n, l)``.

    Example:
        >>> madelung_configuration(24)  # Cr by the rule; the atom is 3d5 4s1
        {(1, 's'): 2, (2, 's'): 2, (2, 'p'): 6, (3, 's'): 2, (3, 'p'): 6, (3, 'd'): 4, (4, 's'): 2}
    """  # noqa: E501
    conf, left = {}, electrons
    for shell in _madelung_order():
        if left <= 0:
            break
        conf[shell] = min(left, _capacity(shell[1]))
        left -= conf[shell]
    return _sorted(conf)


def _neutral(z: int) -> dict:
    if z in EXCEPTIONS:
        return _parse_notation(EXCEPTIONS[z])
    return madelung_configuration(z)


def _core_electrons(z: int) -> int:
    """Electrons of the largest noble gas lighter than element ``z``."""
    return max([n for n in NOBLE_GASES.values() if n < z], default=0)


def electron_configuration(species: str) -> dict:
    """Ground-state configuration of an atom or ion.

    Args:
        species: ``"Fe"``, ``"Fe3+"``, ``"O2-"``… (see :func:`parse_species`).

    Returns:
        ``{(n, letter): electrons}`` ordered by ``(n, l)``; empty subshells left
        out (``{}`` for H⁺).

    Example:
        >>> electron_configuration("Cu+")[(3, "d")], (4, "s") in electron_configuration("Cu+")
        (10, False)
    """  # noqa: E501
    z, charge = parse_species(species)
    conf = dict(_neutral(z))
    if charge > 0:
        core = madelung_configuration(_core_electrons(z))
        valence = [s for s in conf if s not in core]
        order = sorted(valence, key=_key, reverse=True)
        order += sorted(core, key=_key, reverse=True)
        left = charge
        for shell in order:
            taken = min(left, conf[shell])
            conf[shell] -= taken
            left -= taken
    for _ in range(-charge):
        shell = next(s for s in _madelung_order() if conf.get(s, 0) < _capacity(s[1]))
        conf[shell] = conf.get(shell, 0) + 1
    return _sorted(conf)


def format_configuration(conf: dict) -> str:
    """Full notation, subshells in ``(n, l)`` order: ``'1s2 2s2 2p6 3s2 3p6 3d5'``.

    Args:
        conf: ``{(n, letter): electrons}``.

    Returns:
        Space-separated subshells with their electron counts (``''`` if empty).

    Example:
        >>> format_configuration({(1, "s"): 2, (2, "s"): 1})
        '1s2 2s1'
    """
    return " ".join(f"{n}{letter}{k}" for (n, letter), k in _sorted(conf).items())


def noble_gas_notation(conf: dict) -> str:
    """Noble-gas notation: the largest noble-gas core, then the other subshells.

    The core is the heaviest noble gas whose filled subshells all appear full in
    ``conf`` (so Ce⁴⁺ and Xe are ``[Xe]``, Na⁺ is ``[Ne]``).

    Args:
        conf: ``{(n, letter): electrons}``.

    Returns:
        e.g. ``'[Ar] 3d5'``.

    Example:
        >>> noble_gas_notation(electron_configuration("Gd"))
        '[Xe] 4f7 5d1 6s2'
    """
    total = sum(conf.values())
    for name, n in sorted(NOBLE_GASES.items(), key=lambda kv: -kv[1]):
        core = madelung_configuration(n)
        if n <= total and all(conf.get(s, 0) == k for s, k in core.items()):
            rest = {s: k for s, k in conf.items() if s not in core}
            return f"[{name}] {format_configuration(rest)}".strip()
    return format_configuration(conf)
