"""Experimental formation enthalpies shipped with pymatgen, and the system split."""

import gzip
import json

import numpy as np
import pytest

from mldiff.data import (
    DataError,
    experimental_formation_enthalpies,
    split_by_chemical_system,
)

KJ_PER_MOL_PER_EV = 96.48533212  # CODATA 2018: 1 eV = 96.485 kJ/mol


@pytest.fixture(scope="module")
def table():
    return experimental_formation_enthalpies()


def test_units_are_ev_per_formula_unit_converted_to_ev_per_atom(table):
    # Reference: ΔHf°(Ag2CO3, s, 298 K) = -505.8 kJ/mol (NIST-JANAF / CRC
    # Handbook). The file's -5.2422 eV per formula unit is -505.8 kJ/mol, which
    # confirms "eV per formula unit"; per atom that is divided by 6 atoms.
    row = table[table["formula"] == "Ag2CO3"].iloc[0]
    per_fu = row["enthalpy_ev_per_atom"] * 6
    assert abs(per_fu * KJ_PER_MOL_PER_EV - (-505.8)) < 1.0
    assert row["n_atoms"] == 6 and row["chemical_system"] == "Ag-C-O"
    # Reference: ΔHf°(Al2O3, corundum) = -1675.7 kJ/mol (CRC Handbook)
    row = table[table["formula"] == "Al2O3"].iloc[0]
    assert abs(row["enthalpy_ev_per_atom"] * 5 * KJ_PER_MOL_PER_EV + 1675.7) < 10.0


def test_table_is_complete_and_unique(table):
    # the shipped file holds 2135 compounds, no reduced formula twice
    assert len(table) == 2135 and table["formula"].is_unique
    assert np.all(np.isfinite(table["enthalpy_ev_per_atom"]))
    u = table["uncertainty_ev_per_atom"].to_numpy()
    assert np.all(u[np.isfinite(u)] >= 0)
    assert np.isnan(u).sum() == 301  # entries without uncertainty stay NaN


def test_duplicates_keep_the_smallest_uncertainty(tmp_path):
    entries = [
        {"formula": "Fe2O3", "exp energy": -8.0, "uncertainty": float("nan")},
        {"formula": "Fe4O6", "exp energy": -17.0, "uncertainty": 0.2},
        {"formula": "NaCl", "exp energy": -4.2, "uncertainty": 0.01, "mpid": "x"},
    ]
    path = tmp_path / "exp.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(entries, fh)
    t = experimental_formation_enthalpies(str(path))
    assert list(t["formula"]) == ["Fe2O3", "NaCl"]
    np.testing.assert_allclose(t["enthalpy_ev_per_atom"], [-17.0 / 10, -4.2 / 2])
    np.testing.assert_allclose(t["uncertainty_ev_per_atom"], [0.02, 0.005])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        experimental_formation_enthalpies(str(tmp_path / "nope.json.gz"))


def test_split_keeps_systems_whole_and_is_seeded(table):
    systems = table["chemical_system"].to_numpy()
    train, test = split_by_chemical_system(systems, 0.2, seed=0)
    assert np.intersect1d(train, test).size == 0
    assert train.size + test.size == len(systems)
    assert not set(systems[train]) & set(systems[test])
    assert abs(test.size / len(systems) - 0.2) < 0.01
    again = split_by_chemical_system(systems, 0.2, seed=0)
    np.testing.assert_array_equal(again[1], test)
    other = split_by_chemical_system(systems, 0.2, seed=1)[1]
    assert not np.array_equal(other, test)


def test_split_rejects_bad_fractions():
    with pytest.raises(DataError, match="test_fraction"):
        split_by_chemical_system(["A", "B"], 1.5)
