"""``mldiff electrons`` and ``mldiff carriers``, run in-process."""

import json
import math

import pytest

from mldiff.cli import main
from mldiff.units import kB


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "species, config, unpaired, term, spin_only, effective",
    [
        # Kittel 8th ed. Tables 11.1–11.2; spin-only sqrt(n(n+2))
        ("Fe3+", "[Ar] 3d5", 5, "6S5/2", 5.92, 5.92),
        ("Fe2+", "[Ar] 3d6", 4, "5D4", 4.90, 4.90),
        ("Ho3+", "[Xe] 4f10", 4, "5I8", 4.90, 10.61),
        ("Gd3+", "[Xe] 4f7", 7, "8S7/2", 7.94, 7.94),
        ("Fe", "[Ar] 3d6 4s2", 4, "5D4", 4.90, 4.90),
    ],
)
def test_electrons_json(capsys, species, config, unpaired, term, spin_only, effective):
    out = _json(capsys, ["electrons", species, "--json"])
    assert out["noble_gas_configuration"] == config
    assert out["unpaired_electrons"] == unpaired
    assert out["term_symbol"] == term
    assert round(out["spin_only_moment_bohr"], 2) == spin_only
    assert round(out["effective_moment_bohr"], 2) == effective
    assert out["configuration"].startswith("1s2 2s2 2p6")


def test_electrons_table_and_octahedral(capsys):
    assert main(["electrons", "Co3+", "--octahedral", "low"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("octahedral_unpaired"))
    assert line.split()[-1] == "0"  # low-spin d6 is diamagnetic (pymatgen agrees)


def test_carriers_json_n_type_silicon(capsys):
    out = _json(
        capsys,
        ["carriers", "Si", "--temperature", "300", "--donors", "1e16", "--json"],
    )
    assert out["electrons_cm3"] == pytest.approx(1e16, rel=0.01)
    # Boltzmann, full ionisation: E_F − E_v = E_g − kT ln(Nc/N_D), Nc of Green 1990
    textbook = out["band_gap_ev"] - kB * 300 * math.log(2.86e19 / 1e16)
    assert abs(out["fermi_level_ev"] - textbook) < 0.01
    assert out["intrinsic_cm3"] == pytest.approx(1.0e10, rel=0.2)  # Sze & Ng
    assert out["holes_cm3"] == pytest.approx(out["intrinsic_cm3"] ** 2 / 1e16, rel=0.01)


def test_carriers_table(capsys):
    assert main(["carriers", "GaAs", "--acceptors", "1e17"]) == 0
    out = capsys.readouterr().out
    holes = float(next(x for x in out.splitlines() if x.startswith("holes")).split()[1])
    # partial ionisation of the C acceptor (ΔE_a = 26 meV, g_A = 4), Boltzmann:
    # p = N_A / (1 + a p) with a = g_A e^{ΔE_a/kT} / N_v, N_v = 9.0e18 (Ioffe)
    a = 4 * math.exp(0.026 / (kB * 300)) / 9.0e18
    expected = (math.sqrt(1 + 4 * a * 1e17) - 1) / (2 * a)
    assert holes == pytest.approx(expected, rel=0.01)
    assert holes < 0.95e17


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["electrons", "Qq2+"], "unknown element"),
        (["electrons", "Fe30+"], "impossible"),
        (["electrons", "Ho3+", "--octahedral", "high"], "open d subshell"),
        (["carriers", "InP"], "no band parameters"),
        (["carriers", "Si", "--temperature", "-5"], "temperature"),
    ],
)
def test_errors_are_reported(capsys, argv, fragment):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
