"""extxyz reading and writing against ASE's own reader and calculators."""

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mldiff.io import DataError, LabeledStructure, read_extxyz, write_extxyz
from mldiff.structure import Structure

ATOL_WRITTEN = 1e-7  # ASE writes per-atom columns with 8 decimals


def _emt_frames(n=3):
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.set_cell(atoms.cell * (1 + 0.01 * k), scale_atoms=True)
        atoms.calc = EMT()
        atoms.get_forces(), atoms.get_stress()
        atoms.info["config_type"] = f"frame{k}"
        frames.append(atoms)
    return frames


def _voigt_to_3x3(v):
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def test_round_trip_matches_ase_reading(tmp_path):
    # reference: ase.io.read of the file we wrote, and EMT's own results
    frames = _emt_frames()
    items = [LabeledStructure.from_atoms(a) for a in frames]
    path = write_extxyz(tmp_path / "cu.xyz", items)
    ours = read_extxyz(path)
    theirs = ase.io.read(path, index=":", format="extxyz")
    assert len(ours) == len(theirs) == len(frames)
    for mine, ref, src in zip(ours, theirs, frames, strict=True):
        assert mine.energy == pytest.approx(ref.get_potential_energy(), abs=1e-12)
        assert mine.energy == pytest.approx(src.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(mine.forces, ref.get_forces(), atol=1e-12)
        np.testing.assert_allclose(mine.forces, src.get_forces(), atol=ATOL_WRITTEN)
        np.testing.assert_allclose(
            mine.stress, _voigt_to_3x3(ref.get_stress()), atol=1e-12
        )
        np.testing.assert_allclose(mine.stress, src.get_stress(voigt=False), atol=1e-10)
        np.testing.assert_allclose(mine.structure.positions, ref.positions, atol=1e-12)
        np.testing.assert_allclose(
            mine.structure.cell, np.asarray(ref.cell), atol=1e-12
        )
        assert mine.structure.pbc == tuple(ref.pbc)
        assert mine.info == {"config_type": src.info["config_type"]}


def test_reads_files_written_by_ase_with_calculator(tmp_path):
    # reference: ASE writes SinglePointCalculator results under standard keys
    frames = _emt_frames(2)
    ase.io.write(tmp_path / "ase.xyz", frames, format="extxyz")
    ours = read_extxyz(tmp_path / "ase.xyz", index=-1)
    assert len(ours) == 1
    assert ours[0].energy == pytest.approx(frames[-1].get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(
        ours[0].forces, frames[-1].get_forces(), atol=ATOL_WRITTEN
    )


def test_virial_converts_to_stress(tmp_path):
    # reference: definition σ = −W / V with EMT's stress as σ
    atoms = _emt_frames(1)[0]
    sigma = atoms.get_stress(voigt=False)
    volume = atoms.get_volume()
    plain = atoms.copy()
    plain.calc = None
    plain.info["energy"] = atoms.get_potential_energy()
    plain.arrays["forces"] = atoms.get_forces()
    plain.info["virial"] = -sigma * volume
    ase.io.write(tmp_path / "virial.xyz", plain, format="extxyz")
    [item] = read_extxyz(tmp_path / "virial.xyz")
    np.testing.assert_allclose(item.stress, sigma, atol=1e-10)
    [no_virial] = read_extxyz(tmp_path / "virial.xyz", virial_key=None)
    assert no_virial.stress is None


def test_free_energy_and_custom_keys(tmp_path):
    # reference: values put into the file by ASE under non-default names
    atoms = _emt_frames(1)[0]
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    a = atoms.copy()
    a.calc = SinglePointCalculator(a, free_energy=e - 0.1, forces=f)
    ase.io.write(tmp_path / "free.xyz", a, format="extxyz")
    [item] = read_extxyz(tmp_path / "free.xyz")
    assert item.energy == pytest.approx(e - 0.1, abs=1e-10)
    assert item.stress is None

    b = atoms.copy()
    b.calc = None
    b.info["REF_energy"] = e
    b.info["REF_stress"] = s  # Voigt, 6 values
    b.arrays["REF_forces"] = f
    ase.io.write(tmp_path / "ref.xyz", b, format="extxyz")
    [item] = read_extxyz(
        tmp_path / "ref.xyz",
        energy_key="REF_energy",
        forces_key="REF_forces",
        stress_key="REF_stress",
    )
    assert item.energy == pytest.approx(e, abs=1e-10)
    np.testing.assert_allclose(item.forces, f, atol=ATOL_WRITTEN)
    np.testing.assert_allclose(item.stress, _voigt_to_3x3(s), atol=1e-10)
    assert "REF_energy" not in item.info

    write_extxyz(
        tmp_path / "ours.xyz", [item], energy_key="E", forces_key="F", stress_key="S"
    )
    ref = ase.io.read(tmp_path / "ours.xyz", format="extxyz")
    assert ref.info["E"] == pytest.approx(e, abs=1e-10)
    np.testing.assert_allclose(ref.arrays["F"], f, atol=ATOL_WRITTEN)
    [back] = read_extxyz(
        tmp_path / "ours.xyz", energy_key="E", forces_key="F", stress_key="S"
    )
    np.testing.assert_allclose(back.stress, item.stress, atol=1e-12)


def test_molecule_without_stress(tmp_path):
    # reference: ASE's EMT on a non-periodic molecule (no stress label)
    atoms = molecule("CH4")
    atoms.calc = EMT()
    atoms.get_forces()
    write_extxyz(tmp_path / "mol.xyz", [LabeledStructure.from_atoms(atoms)])
    [item] = read_extxyz(tmp_path / "mol.xyz")
    assert item.structure.pbc == (False, False, False)
    assert item.stress is None
    assert item.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)


def test_to_atoms_round_trip():
    # reference: the SinglePointCalculator that to_atoms attaches returns the labels
    src = _emt_frames(1)[0]
    item = LabeledStructure.from_atoms(src)
    atoms = item.to_atoms()
    assert atoms.get_potential_energy() == pytest.approx(src.get_potential_energy())
    np.testing.assert_allclose(atoms.get_forces(), src.get_forces(), atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), src.get_stress(), atol=1e-12)
    assert atoms.info["config_type"] == "frame0"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.xyz' does not exist.*check the path"):
        read_extxyz(tmp_path / "nope.xyz")


def test_missing_required_key_names_frame_key_and_keys_present(tmp_path):
    frames = _emt_frames(2)
    frames[1].calc = SinglePointCalculator(frames[1], forces=frames[1].get_forces())
    frames[1].info["REF_energy"] = -1.0
    ase.io.write(tmp_path / "partial.xyz", frames, format="extxyz")
    with pytest.raises(DataError) as err:
        read_extxyz(tmp_path / "partial.xyz")
    msg = str(err.value)
    assert "frame 1 of" in msg and "no energy label" in msg
    assert "'energy', 'free_energy'" in msg and "REF_energy" in msg
    assert "energy_key=" in msg
    # labels not required: reads with energy None
    items = read_extxyz(tmp_path / "partial.xyz", required=())
    assert items[1].energy is None and items[1].forces is not None
    with pytest.raises(DataError, match="frame 1 of .* no stress label"):
        read_extxyz(tmp_path / "partial.xyz", required=("stress",))


def test_forces_of_wrong_length(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.info["energy"] = -1.0
    atoms.info["REF_forces"] = np.zeros(9)  # 3 atoms' worth for 4 atoms
    ase.io.write(tmp_path / "short.xyz", atoms, format="extxyz")
    with pytest.raises(DataError, match=r"frame 0 .*forces have shape \(9,\).*4 atoms"):
        read_extxyz(tmp_path / "short.xyz", forces_key="REF_forces")
    s = Structure.from_ase(atoms)
    with pytest.raises(DataError, match=r"shape \(3, 3\) but the structure has 4"):
        LabeledStructure.create(s, forces=np.zeros((3, 3)))


def test_nan_labels_are_rejected(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.info["energy"] = float("nan")
    ase.io.write(tmp_path / "nan.xyz", atoms, format="extxyz")
    with pytest.raises(DataError, match="frame 0 of .*energy label is nan"):
        read_extxyz(tmp_path / "nan.xyz", required=("energy",))
    s = Structure.from_ase(atoms)
    with pytest.raises(
        DataError, match=r"non-finite \(NaN/inf\) forces on atoms \[0\]"
    ):
        LabeledStructure.create(s, forces=np.full((1, 3), np.nan))


def test_write_is_atomic(tmp_path, monkeypatch):
    # reference: the previous file survives a failing write, no temp file left
    path = tmp_path / "data.xyz"
    items = [LabeledStructure.from_atoms(a) for a in _emt_frames(2)]
    write_extxyz(path, items)
    before = path.read_text()

    def broken_write(fileobj, images, format):
        fileobj.write("partial garbage\n")
        raise OSError("disk full")

    monkeypatch.setattr(ase.io, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_extxyz(path, items[:1])
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.xyz"]


def test_write_to_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist; create it first"):
        write_extxyz(tmp_path / "no" / "x.xyz", [])
