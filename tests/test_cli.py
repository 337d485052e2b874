"""The ``mldiff`` command line, run in-process through its entry point."""

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write

from mldiff.cli import main


def test_calculate_prints_what_ase_emt_gives(tmp_path, capsys):
    # reference: ASE's EMT on the same file
    atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.rattle(0.05, seed=2)
    path = tmp_path / "cu.extxyz"
    write(path, atoms)
    assert main(["calculate", str(path)]) == 0
    out = capsys.readouterr().out
    energy = float(
        next(x for x in out.splitlines() if x.startswith("energy")).split()[1]
    )
    atoms.calc = EMT()
    assert abs(energy - atoms.get_potential_energy()) < 1e-6


def test_relax_writes_relaxed_structure(tmp_path, capsys):
    atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.rattle(0.1, seed=5)
    src, dst = tmp_path / "in.extxyz", tmp_path / "out.extxyz"
    write(src, atoms)
    assert main(["relax", str(src), "--fmax", "1e-3", "--output", str(dst)]) == 0
    relaxed = read(dst)
    relaxed.calc = EMT()  # reference: ASE's EMT sees no force left
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 1.1e-3


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["calculate", str(tmp_path / "nope.cif")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert "mldiff" in capsys.readouterr().out
    assert main([]) == 0
