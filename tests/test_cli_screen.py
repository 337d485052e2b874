"""``mldiff screen`` end to end, and the device flags of ``mldiff train``."""

import csv

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.morse import MorsePotential
from ase.io import read, write

from mldiff.cli import build_parser, main
from mldiff.cli.train import device_mesh
from mldiff.errors import ConfigError


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    """12 rattled fcc cells scaled to the default Morse (r0 = 1 Å)."""
    root = tmp_path_factory.mktemp("screen_cli")
    frames = []
    for k in range(12):
        atoms = bulk("Ar", "fcc", a=1.45, cubic=k % 2 == 0)
        atoms.rattle(0.02, seed=k)
        frames.append(atoms)
    write(root / "in.extxyz", frames)
    return root, read(root / "in.extxyz", index=":")  # as written (8 decimals)


def test_screen_writes_results_in_input_order_and_resumes(structures, capsys):
    # reference: ASE's MorsePotential with the same (default) parameters
    root, frames = structures
    out = root / "out"
    argv = [
        "screen",
        str(root / "in.extxyz"),
        "--potential",
        "morse",
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--chunk-size",
        "5",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "3 chunk(s) computed, 0 already done" in capsys.readouterr().out
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(12))
    for r, atoms in zip(rows, frames, strict=True):
        atoms = atoms.copy()
        atoms.calc = MorsePotential()
        assert int(r["n_atoms"]) == len(atoms)
        assert float(r["energy_ev"]) == pytest.approx(
            atoms.get_potential_energy(), abs=1e-9
        )
        fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()
        assert float(r["fmax_ev_per_angstrom"]) == pytest.approx(fmax, abs=1e-9)
    assert main(argv) == 0  # second run: nothing left to do
    assert "0 chunk(s) computed, 3 already done" in capsys.readouterr().out


def test_screen_rejects_more_devices_than_present(structures, capsys):
    root, _ = structures
    argv = [
        "screen",
        str(root / "in.extxyz"),
        "--potential",
        "morse",
        "--out",
        str(root / "x"),
        "--devices",
        "999",
        "--quiet",
    ]
    assert main(argv) == 2
    assert "--devices 999" in capsys.readouterr().err


def test_train_device_flags_make_a_batch_mesh():
    parser = build_parser()
    args = parser.parse_args(["train", "c.yaml"])
    assert device_mesh(args) is None  # default: one device, unchanged path
    args = parser.parse_args(["train", "c.yaml", "--devices", "1"])
    assert dict(device_mesh(args).shape) == {"batch": 1}
    args = parser.parse_args(["train", "c.yaml", "--mesh", "batch=-1"])
    assert dict(device_mesh(args).shape) == {"batch": 1}
    args = parser.parse_args(["train", "c.yaml", "--mesh", "member=2"])
    with pytest.raises(ConfigError, match="batch=N"):
        device_mesh(args)
    args = parser.parse_args(["train", "c.yaml", "--mesh", "batch=2", "--devices", "1"])
    with pytest.raises(ConfigError, match="disagree"):
        device_mesh(args)
