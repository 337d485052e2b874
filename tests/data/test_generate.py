"""Data generation: reproducible by seed, labels equal the calculator's own."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mldiff.data import DataError, generate, label, md_sampled, rattled, strained
from mldiff.io import read_extxyz


def _cu():
    return bulk("Cu", "fcc", a=3.6, cubic=True)


def _generate(seed, path=None):
    return generate(
        _cu(),
        EMT(),
        n_rattled=2,
        n_strained=2,
        strain_rattle_stdev=0.02,
        md_temperatures_K=(300.0, 900.0),
        n_per_temperature=2,
        md_interval=3,
        seed=seed,
        progress=False,
        path=path,
    )


def test_generate_is_deterministic_by_seed():
    # reference: a second run with the same seed; a different seed differs
    a, b, c = _generate(0), _generate(0), _generate(1)
    assert len(a) == len(b) == 2 + 2 + 2 * 2
    assert [x.info["config_type"] for x in a] == ["rattled"] * 2 + ["strained"] * 2 + [
        "md"
    ] * 4
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.structure.positions, y.structure.positions)
        np.testing.assert_array_equal(x.structure.cell, y.structure.cell)
        assert x.energy == y.energy
        np.testing.assert_array_equal(x.forces, y.forces)
    for x, y in zip(a, c, strict=True):
        assert not np.allclose(x.structure.positions, y.structure.positions)


def test_labels_equal_emt_results(tmp_path):
    # reference: ase.calculators.emt.EMT evaluated directly on each structure
    items = _generate(5, path=tmp_path / "cu.xyz")
    for item in items:
        atoms = item.structure.to_ase()
        atoms.calc = EMT()
        assert item.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(item.forces, atoms.get_forces(), atol=1e-12)
        np.testing.assert_allclose(
            item.stress, atoms.get_stress(voigt=False), atol=1e-12
        )
    back = read_extxyz(tmp_path / "cu.xyz")
    assert [x.info["config_type"] for x in back] == [
        x.info["config_type"] for x in items
    ]
    np.testing.assert_allclose([x.energy for x in back], [x.energy for x in items])


def test_rattled_displacement_statistics():
    # reference: Gaussian displacements with the requested standard deviation
    base = _cu().repeat(3)
    copies = rattled(base, 4, 0.05, seed=0)
    d = np.concatenate([c.positions - base.positions for c in copies])
    assert abs(d.std() - 0.05) < 0.005 and abs(d.mean()) < 0.005
    assert all(c.calc is None for c in copies)


def test_strained_cells_follow_the_strain():
    # reference: cell' = cell (1 + ε) with ε from info["strain"] (Voigt, tensor shear)
    base = _cu()
    for atoms in strained(base, 3, 0.04, seed=2):
        xx, yy, zz, yz, xz, xy = atoms.info["strain"]
        eps = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        assert np.abs(eps).max() <= 0.04
        np.testing.assert_allclose(
            np.asarray(atoms.cell),
            np.asarray(base.cell) @ (np.eye(3) + eps),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            atoms.get_scaled_positions(), base.get_scaled_positions(), atol=1e-12
        )


def test_md_sampled_moves_atoms_and_records_temperature():
    # reference: the starting structure (snapshots must differ from it)
    base = _cu()
    snaps = md_sampled(
        base, EMT(), (300.0,), 3, interval=2, seed=0, equilibration_steps=5
    )
    assert len(snaps) == 3
    assert all(s.info["temperature_K"] == 300.0 for s in snaps)
    assert all(not np.allclose(s.positions, base.positions) for s in snaps)
    again = md_sampled(
        base, EMT(), (300.0,), 3, interval=2, seed=0, equilibration_steps=5
    )
    for x, y in zip(snaps, again, strict=True):
        np.testing.assert_array_equal(x.positions, y.positions)


def test_label_with_an_mldiff_calculator():
    # reference: the same mldiff calculator queried directly through ASE
    from mldiff.ase import Calculator

    si = bulk("Si", "diamond", a=5.43)
    structures = rattled(si, 2, 0.05, seed=0)
    calc = Calculator("sw")
    items = label(structures, calc, progress=False)
    for atoms, item in zip(structures, items, strict=True):
        calc.reset()  # recompute, no cached results
        atoms.calc = calc
        assert item.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(item.forces, atoms.get_forces(), atol=1e-10)


def test_bad_requests():
    with pytest.raises(DataError, match="needs a cell periodic"):
        a = _cu()
        a.pbc = False
        strained(a, 1)
    with pytest.raises(DataError, match="unknown thermostat"):
        md_sampled(_cu(), EMT(), (300.0,), 1, thermostat="nose")
    with pytest.raises(DataError, match="n must be a non-negative integer"):
        rattled(_cu(), -1)
