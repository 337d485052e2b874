"""``mldiff finetune`` end to end (composition mode; potential mode marked slow)."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from mldiff.cli import main
from mldiff.data import write_extxyz
from mldiff.training import checkpoint
from mldiff.transfer import composition_model as cm


def test_finetune_composition_from_the_command_line(tmp_path, capsys, keys):
    model = cm.composition_model(
        cm.CompositionConfig(features=8, hidden=(8,), readout=(8,), n_outputs=2)
    )
    pre = cm.TrainedComposition(
        model, model.init(next(keys)), ("a", "b"), np.zeros(2), np.ones(2)
    )
    cm.save(tmp_path / "pre.msgpack", pre)
    table = pd.DataFrame(
        {"formula": ["NaCl", "MgO", "Fe2O3", "CuZn"], "dh": [-2.1, -3.1, -1.7, -0.1]}
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    args = [
        "finetune", str(tmp_path / "pre.msgpack"), str(tmp_path / "t.csv"),
        "--target-column", "dh", "--freeze", "/embedding/", "--epochs", "2",
        "--out", str(tmp_path / "ft"),
    ]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reset"] == [
        "params/readout/Dense_1/bias",
        "params/readout/Dense_1/kernel",
    ]
    loaded, _ = cm.load(tmp_path / "ft" / "composition.msgpack")
    # reference: the pretrained file's embedding, unchanged by the frozen run
    np.testing.assert_array_equal(
        loaded.params["params"]["embedding"]["embedding"],
        pre.params["params"]["embedding"]["embedding"],
    )
    assert (
        main([*args[:3], "--target-column", "nope", "--out", str(tmp_path / "x")]) == 2
    )
    assert "no column(s) ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_freeze_pattern_is_reported(pretrained_checkpoint, tiny_items, tmp_path):
    path, _ = pretrained_checkpoint
    write_extxyz(tmp_path / "d.extxyz", tiny_items)
    rc = main(
        ["finetune", str(path), str(tmp_path / "d.extxyz"), "--freeze", "/layer_9/"]
        + ["--out", str(tmp_path / "ft")]
    )
    assert rc == 2


@pytest.mark.slow
def test_finetune_potential_from_the_command_line(
    pretrained_checkpoint, tiny_items, tmp_path, capsys
):
    path, params = pretrained_checkpoint
    write_extxyz(tmp_path / "d.extxyz", tiny_items)
    rc = main(
        ["finetune", str(path), str(tmp_path / "d.extxyz"), "--freeze", "/embedding/"]
        + ["--epochs", "1", "--validation-fraction", "0.25", "--out", str(tmp_path)]
    )
    assert rc == 0
    model = checkpoint.load(tmp_path / "model.msgpack")
    for a, b in zip(
        jax.tree_util.tree_leaves(model.params["params"]["embedding"]),
        jax.tree_util.tree_leaves(params["params"]["embedding"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "finetune.json").read_text())["freeze"] == [
        "/embedding/"
    ]
    assert jax.tree_util.tree_structure(model.params) == jax.tree_util.tree_structure(
        params
    )
