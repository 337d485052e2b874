"""Electron configurations of atoms and ions against mendeleev and pymatgen."""

import warnings

import pytest
from mendeleev.econf import ElectronicConfiguration
from mendeleev.fetch import fetch_table

from mldiff.electrons import (
    SpeciesError,
    electron_configuration,
    format_configuration,
    madelung_configuration,
    noble_gas_notation,
    parse_species,
)
from mldiff.electrons.configurations import EXCEPTIONS, SYMBOLS


@pytest.fixture(scope="module")
def mendeleev_table():
    columns = ["atomic_number", "symbol", "electronic_configuration"]
    return fetch_table("elements")[columns]


def test_every_element_matches_mendeleev(mendeleev_table):
    # reference: mendeleev 1.3's database (NIST ground configurations), Z = 1–118
    assert len(mendeleev_table) == 118
    for _, row in mendeleev_table.iterrows():
        z, symbol = int(row.atomic_number), row.symbol
        expected = dict(ElectronicConfiguration(row.electronic_configuration).conf)
        assert SYMBOLS[z - 1] == symbol
        assert electron_configuration(symbol) == expected, symbol
        assert sum(expected.values()) == z


def test_exceptions_are_exactly_where_madelung_fails(mendeleev_table):
    # reference: mendeleev; the exception table holds no entry the rule gets right
    differs = {
        int(r.atomic_number)
        for _, r in mendeleev_table.iterrows()
        if dict(ElectronicConfiguration(r.electronic_configuration).conf)
        != madelung_configuration(int(r.atomic_number))
    }
    assert differs == set(EXCEPTIONS)
    # the brief's named exceptions (NIST ASD) are all among them
    named = "Cr Cu Nb Mo Ru Rh Pd Ag Pt Au La Ce Gd Ac Th Pa U Np Cm".split()
    assert {SYMBOLS.index(s) + 1 for s in named} <= differs


# common oxidation states; pymatgen's Species data (independent tables)
IONS = (
    "Sc3+ Ti4+ V2+ V3+ Cr2+ Cr3+ Mn2+ Mn3+ Mn4+ Fe2+ Fe3+ Co2+ Co3+ Ni2+ Ni3+ "
    "Cu+ Cu2+ Zn2+ Mo3+ Ru3+ Rh3+ Pd2+ Ag+ Pt2+ Pt4+ Au3+ La3+ Ce3+ Ce4+ Pr3+ "
    "Nd3+ Sm3+ Eu2+ Eu3+ Gd3+ Tb3+ Dy3+ Ho3+ Er3+ Tm3+ Yb3+ Lu3+ U6+ Np5+ Pu4+ "
    "Sn2+ Pb2+ Bi3+ Ga3+ Tl+ O2- F- N3- Cl- S2- Na+ Mg2+ Al3+ H-"
).split()


@pytest.mark.parametrize("ion", IONS)
def test_ions_match_pymatgen(ion):
    from pymatgen.core import Species

    z, charge = parse_species(ion)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Species(SYMBOLS[z - 1], charge).full_electronic_structure
    assert electron_configuration(ion) == {(n, ell): k for n, ell, k in ref}


@pytest.mark.parametrize("ion", ["Fe3+", "Ce4+", "Gd3+", "U4+", "Pt2+", "Sn2+"])
def test_cations_match_mendeleev_ionize(ion):
    # reference: mendeleev's ElectronicConfiguration.ionize
    from mendeleev import element

    z, charge = parse_species(ion)
    expected = dict(element(z).ec.ionize(charge).conf)
    assert electron_configuration(ion) == expected


def test_notations_for_named_ions():
    # reference: textbook configurations (e.g. Housecroft & Sharpe, Inorganic
    # Chemistry, d- and f-block chapters): 4s goes before 3d, 6s and 5d before 4f
    assert noble_gas_notation(electron_configuration("Fe")) == "[Ar] 3d6 4s2"
    assert noble_gas_notation(electron_configuration("Fe2+")) == "[Ar] 3d6"
    assert noble_gas_notation(electron_configuration("Cu2+")) == "[Ar] 3d9"
    assert noble_gas_notation(electron_configuration("Ce3+")) == "[Xe] 4f1"
    assert noble_gas_notation(electron_configuration("Pb2+")) == "[Xe] 4f14 5d10 6s2"
    assert noble_gas_notation(electron_configuration("O2-")) == "[Ne]"
    assert format_configuration(electron_configuration("Fe3+")) == (
        "1s2 2s2 2p6 3s2 3p6 3d5"
    )
    assert electron_configuration("H+") == {}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Fe", (26, 0)),
        ("Fe3+", (26, 3)),
        ("Fe+3", (26, 3)),
        ("Cu+", (29, 1)),
        ("O2-", (8, -2)),
        ("O-2", (8, -2)),
        ("Cl-", (17, -1)),
        (" ho3+ ", (67, 3)),
    ],
)
def test_parse_species(text, expected):
    assert parse_species(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Xx3+", "unknown element"),
        ("Fe27+", "impossible"),
        ("O5-", "not bound"),
        ("Fe 3+", "cannot read"),
        ("", "cannot read"),
    ],
)
def test_bad_species_are_clear_errors(text, fragment):
    with pytest.raises(SpeciesError, match=fragment):
        electron_configuration(text)
