"""``mldiff recommend`` in-process on a small CSV."""

import pandas as pd
import pytest

from conftest import N_FIT
from mldiff.cli import main
from mldiff.cli.recommend import parse_targets
from mldiff.recommender import RecommenderError


def test_parse_targets_merges_bounds_per_column():
    assert parse_targets(["S_p>=200", "S_p<=800", "kappa_p<1e5"]) == {
        "S_p": (200.0, 800.0),
        "kappa_p": (None, 1e5),
    }
    with pytest.raises(RecommenderError, match="column>=value"):
        parse_targets(["S_p=>200"])


def test_cli_ranks_candidates_and_writes_csv(composition_matrix, tmp_path, capsys):
    _, observed = composition_matrix
    data = tmp_path / "data.csv"
    observed.iloc[:N_FIT].rename_axis("formula").reset_index().to_csv(data, index=False)
    candidates = tmp_path / "new.txt"
    candidates.write_text("NaF\nCs2Te\nKCl\n")
    out = tmp_path / "ranking.csv"
    code = main(
        [
            "recommend",
            "--data",
            str(data),
            "--target",
            "a>=2.5",
            "--target",
            "c<=1e6",
            "--candidates",
            str(candidates),
            "--top",
            "2",
            "--rank",
            "2",
            "--members",
            "3",
            "--hidden",
            "16",
            "--iterations",
            "20",
            "--cold-members",
            "2",
            "--autoencoder-steps",
            "500",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 2 and set(table["formula"]) <= {"NaF", "Cs2Te", "KCl"}
    assert table["probability"].is_monotonic_decreasing
    assert "NaF" in capsys.readouterr().out  # χ(F) = 3.98: the likeliest


def test_cli_reports_bad_input(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    pd.DataFrame(
        {"formula": ["NaCl", "KCl"], "a": [1.0, None], "b": [None, None]}
    ).to_csv(data, index=False)
    code = main(["recommend", "--data", str(data), "--target", "a>=1"])
    assert code == 2
    assert "no observed values" in capsys.readouterr().err
