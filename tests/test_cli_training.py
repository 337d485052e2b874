"""``mldiff train`` / ``evaluate`` / ``md`` end to end on a tiny model."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mldiff.cli import main
from mldiff.data import generate, read_extxyz

TINY_YAML = """
data:
  train: train.extxyz
  validation_fraction: 0.25
output: run
training:
  model: nequip
  model_config: {num_layers: 1, features: 4, l_max: 1, radial_mlp: [8], cutoff: 3.0,
                 num_basis: 4}
  epochs: 5
  batch_size: 4
  learning_rate: 0.01
  warmup_epochs: 1
  n_buckets: 1
  dtype: float64
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny NequIP trained for 2 epochs through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    generate(
        base,
        EMT(),
        n_rattled=12,
        rattle_stdev=0.05,
        seed=1,
        progress=False,
        path=root / "train.extxyz",
    )
    (root / "config.yaml").write_text(TINY_YAML)
    assert main(["train", str(root / "config.yaml"), "--epochs", "2"]) == 0
    return root


def test_train_writes_a_loadable_checkpoint_with_its_config(trained):
    from mldiff.training import checkpoint

    meta, _ = checkpoint.read(trained / "run" / "model.msgpack")
    assert meta["train_config"]["epochs"] == 2  # the flag overrode the file
    assert meta["model"]["name"] == "nequip"


def test_evaluate_writes_metrics_and_parity_plot(trained, tmp_path):
    # reference: the metrics recomputed from the ASE calculator built on the model
    from mldiff.ase import Calculator

    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                str(trained / "run"),
                str(trained / "train.extxyz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "energy_mae_mev_per_atom",
        "energy_rmse_mev_per_atom",
        "forces_mae_mev_per_angstrom",
        "forces_rmse_mev_per_angstrom",
        "n_structures",
    ):
        assert key in metrics
    assert metrics["n_structures"] == 12
    assert (out / "parity.png").stat().st_size > 1000
    items = read_extxyz(trained / "train.extxyz")
    calc = Calculator(str(trained / "run"))
    errors = []
    for it in items:
        atoms = it.structure.to_ase()
        atoms.calc = calc
        errors.append(np.abs(atoms.get_forces() - it.forces).ravel())
    mae = 1e3 * np.concatenate(errors).mean()
    assert metrics["forces_mae_mev_per_angstrom"] == pytest.approx(mae, rel=1e-6)


def test_md_with_a_trained_model(trained, tmp_path, capsys):
    assert (
        main(
            [
                "md",
                str(trained / "train.extxyz") + "@-1",
                "--potential",
                str(trained / "run"),
                "--steps",
                "20",
                "--ensemble",
                "nve",
                "--temperature",
                "100",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "md.json").read_text())
    assert record["steps"] == 20
    assert (tmp_path / "trajectory.extxyz").exists()


def test_train_reports_missing_config(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
