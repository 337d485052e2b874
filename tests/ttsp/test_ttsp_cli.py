"""``mldiff ttsp``: writes ttsp.json with the interface keys; clean CSV errors."""

import json

import numpy as np

from mldiff.cli import main
from mldiff.ttsp.data import melt_spectrum, wlf_maxwell_data, wlf_shift, write_csv


def test_cli_writes_interface_json_and_figures(tmp_path, simple_data, capsys):
    write_csv(tmp_path / "d.csv", simple_data)
    out = tmp_path / "out"
    rc = main(
        [
            "ttsp",
            str(tmp_path / "d.csv"),
            "--reference-temperature",
            "373",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads((out / "ttsp.json").read_text())
    for key in (
        "log10_aT",
        "log10_aT_std",
        "wlf",
        "arrhenius",
        "ttsp_holds",
        "diagnostics",
    ):
        assert key in summary
    assert {"c1", "c2", "t_ref_k"} <= set(summary["wlf"])
    assert "activation_energy_kj_mol" in summary["arrhenius"]
    for test in summary["diagnostics"].values():
        assert {"statistic", "threshold", "passed"} <= set(test)
    # reference: the generating WLF law
    temps = np.array([float(t) for t in summary["log10_aT"]])
    got = np.array(list(summary["log10_aT"].values()))
    assert np.max(np.abs(got - wlf_shift(temps, 17.44, 51.6, 373.0))) < 0.03
    assert summary["ttsp_holds"] is True
    for name in ("master_curve.png", "shift_factors.png", "van_gurp_palmen.png"):
        assert (out / name).stat().st_size > 1000
    assert "TTSP holds" in capsys.readouterr().out


def test_cli_reports_malformed_csv(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("temperature_k,frequency_rad_s,loss_modulus_pa\n300,1,-5\n")
    assert main(["ttsp", str(path), "--reference-temperature", "300"]) == 2
    err = capsys.readouterr().err
    assert "mldiff ttsp: error" in err


def test_cli_reports_an_undetermined_verdict(tmp_path, capsys):
    # reference: a melt measured on its rubbery plateau only: G' is flat in
    # the window, so no neighbour shift is identifiable from G' alone and the
    # G'/G'' agreement cannot be tested (neither "holds" nor "fails")
    data = wlf_maxwell_data(
        temperatures_k=[373.0, 378.0, 383.0],
        frequency_range_rad_s=(0.1, 100.0),
        spectrum=melt_spectrum(longest_time_s=1e12, glass_time_s=1e-5),
    )
    write_csv(tmp_path / "d.csv", data)
    rc = main(["ttsp", str(tmp_path / "d.csv"), "--reference-temperature", "373"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "shift_agreement  undetermined" in out
    assert "TTSP undetermined:" in out
    assert "no pair's shift is identifiable" in out
