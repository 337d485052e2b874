"""``mldiff stability`` on a small table of experimental formation enthalpies."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from mldiff.cli import main
from mldiff.data import experimental_formation_enthalpies

SYSTEMS = ("Li-O", "Na-O", "K-O", "Mg-O", "Ca-O", "Al-O", "Li-Cl", "Na-Cl", "K-Cl")
SYSTEMS += ("Mg-Cl", "Ca-Cl", "Li-F", "Na-F", "K-F", "Mg-F", "Ca-F", "Al-F", "Li-S")
SYSTEMS += ("Na-S", "K-S", "Mg-S", "Ca-S", "Al-S", "Fe-O", "Fe-S", "Cu-O", "Cu-S")
SYSTEMS += ("Ba-O", "Sr-O", "Ti-O", "Zn-O", "Zn-S", "Mn-O", "Ni-O", "Ba-Cl", "Sr-Cl")
SYSTEMS += ("Co-O", "Cr-O", "V-O", "Si-O", "Ba-S", "Sr-S")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = experimental_formation_enthalpies()
    t = t[t["chemical_system"].isin(SYSTEMS)]
    assert 40 <= len(t) <= 60
    d = tmp_path_factory.mktemp("stability")
    train = t.rename(columns={"enthalpy_ev_per_atom": "formation_energy_ev_per_atom"})
    train = train[
        ["formula", "formation_energy_ev_per_atom", "uncertainty_ev_per_atom"]
    ]
    train.to_csv(d / "train.csv", index=False)
    pd.DataFrame({"formula": ["Li2O2", "NaO2", "FeS2", "CuCl"]}).to_csv(
        d / "cand.csv", index=False
    )
    return d, train


def test_cli_writes_probabilities_consistent_with_the_hull(files, capsys):
    d, train = files
    out = d / "out.csv"
    argv = ["stability", "--train", str(d / "train.csv"), "--candidates"]
    argv += [str(d / "cand.csv"), "--delta", "0.05", "--out", str(out)]
    # no recalibration, so P is the Monte-Carlo estimate of Φ (the candidates
    # lie in different systems and do not compete)
    argv += ["--restarts", "0", "--calibration-folds", "0", "--samples", "20000"]
    assert main(argv) == 0
    assert "Li2O2" in capsys.readouterr().out
    res = pd.read_csv(out)
    assert list(res.columns) == [
        "formula",
        "formation_energy_mean",
        "formation_energy_std",
        "e_hull_mean",
        "p_stable",
    ]
    assert list(res["formula"]) == ["Li2O2", "NaO2", "FeS2", "CuCl"]
    known = dict(
        zip(train["formula"], train["formation_energy_ev_per_atom"], strict=True)
    )
    for _, r in res.iterrows():
        comp = Composition(r["formula"])
        system = {e.symbol for e in comp.elements}
        # reference: pymatgen's e_above_hull among the other training compounds
        entries = [PDEntry(Composition(e), 0.0) for e in system]
        entries += [
            PDEntry(Composition(f), e * Composition(f).num_atoms)
            for f, e in known.items()
            if f != comp.reduced_formula
            and {x.symbol for x in Composition(f).elements} <= system
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = PhaseDiagram(entries).get_e_above_hull(
                PDEntry(comp, r["formation_energy_mean"] * comp.num_atoms),
                allow_negative=True,
            )
        np.testing.assert_allclose(r["e_hull_mean"], ref, atol=1e-5)
        # reference: scipy's normal CDF of (δ - E_hull) / σ, up to the
        # Monte-Carlo error sqrt(P(1-P)/20000) <= 0.0035
        p_ref = scipy.stats.norm.cdf(
            (0.05 - r["e_hull_mean"]) / r["formation_energy_std"]
        )
        np.testing.assert_allclose(r["p_stable"], p_ref, atol=0.015)
        assert 0 < r["formation_energy_std"] < 1.0
    # CuCl is absent from the training systems (no Cu-Cl phase): hull = elements
    cucl = res[res["formula"] == "CuCl"].iloc[0]
    assert cucl["e_hull_mean"] == pytest.approx(cucl["formation_energy_mean"], abs=1e-5)


def test_cli_names_a_missing_column(files, tmp_path, capsys):
    d, train = files
    bad = tmp_path / "bad.csv"
    train.rename(columns={"formation_energy_ev_per_atom": "energy"}).to_csv(bad)
    argv = ["stability", "--train", str(bad), "--candidates", str(d / "cand.csv")]
    assert main([*argv, "--out", str(tmp_path / "o.csv")]) == 2
    assert "formation_energy_ev_per_atom" in capsys.readouterr().err
