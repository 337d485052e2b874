"""The ASE calculator drives ase.optimize, ase.md and ase.filters correctly."""

import numpy as np
import pytest
from ase import units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from compile_counter import count_traces

from mldiff import potentials
from mldiff.ase import Calculator, bucket
from mldiff.errors import ConfigError


def _rattled_cu(seed=0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=seed)
    return atoms


def test_results_match_ase_emt():
    # reference: ase.calculators.emt.EMT on the same atoms
    atoms = _rattled_cu()
    ref = atoms.copy()
    ref.calc = EMT()
    atoms.calc = Calculator("emt")
    assert abs(atoms.get_potential_energy() - ref.get_potential_energy()) < 1e-8
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-8)
    np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-9)


def test_bfgs_relaxes_rattled_cu():
    # reference: ASE's EMT at the relaxed geometry agrees that forces vanish
    atoms = _rattled_cu()
    atoms.calc = Calculator("emt")
    assert BFGS(atoms, logfile=None).run(fmax=1e-3, steps=300)
    ref = atoms.copy()
    ref.calc = EMT()
    assert np.linalg.norm(ref.get_forces(), axis=1).max() < 1.1e-3


def test_nve_conserves_energy():
    # reference: exact energy conservation of Hamiltonian dynamics (Verlet, 1 fs)
    atoms = _rattled_cu(seed=3)
    atoms.calc = Calculator("emt", skin=0.3)
    # Maxwell-Boltzmann momenta at 300 K, p = sqrt(m kT) N(0, 1)
    m = atoms.get_masses()[:, None]
    kt = units.kB * 300.0
    atoms.set_momenta(
        np.sqrt(m * kt) * np.random.default_rng(1).normal(size=(len(m), 3))
    )
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs, logfile=None)
    totals = []
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    dyn.run(200)
    drift = (max(totals) - min(totals)) / len(atoms)
    assert drift < 1e-4, f"total-energy drift {drift:.2e} eV/atom"


def test_cell_filter_reaches_zero_stress():
    # reference: ASE's EMT lattice constant for Cu from its own cell relaxation
    from ase.filters import FrechetCellFilter

    ours = bulk("Cu", "fcc", a=3.7)
    ours.calc = Calculator("emt")
    BFGS(FrechetCellFilter(ours), logfile=None).run(fmax=1e-5)
    ref = bulk("Cu", "fcc", a=3.7)
    ref.calc = EMT()
    BFGS(FrechetCellFilter(ref), logfile=None).run(fmax=1e-5)
    assert abs(ours.get_volume() - ref.get_volume()) < 1e-4
    assert np.abs(ours.get_stress()).max() < 1e-5


def test_molecule_without_pbc_gives_forces_but_no_stress():
    # reference: ASE's EMT on a non-periodic cluster
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = molecule("CO")
    atoms.calc = Calculator("emt")
    ref = atoms.copy()
    ref.calc = EMT()
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-8)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_accepts_potential_objects_and_pairs():
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=8.0)
    atoms = bulk("Ar", "fcc", a=5.3)
    atoms.calc = Calculator(pot)
    e1 = atoms.get_potential_energy()
    params = {"sigma": np.float64(3.4), "epsilon": np.float64(0.0208)}
    atoms.calc = Calculator((pot, params))
    assert abs(atoms.get_potential_energy() - 2 * e1) < 1e-12


def test_rejects_unknown_potential():
    with pytest.raises(ConfigError, match="unknown potential"):
        Calculator("nonsense")


def test_changed_atom_count_within_a_bucket_does_not_recompile():
    # reference: ase.calculators.emt.EMT on every cell (the ghost atoms that pad
    # 31 and 29 atoms to 32 must change nothing); one trace of the jitted
    # energy, forces and stress for 32, 31 and 29 atoms (one bucket)
    calc = Calculator("emt")
    atoms = _rattled_cu()
    with count_traces() as traces:
        for remove in ([], [5], [0, 7, 20]):
            cell = atoms.copy()
            del cell[remove]
            assert bucket(len(cell)) == 32
            cell.calc = calc
            ref = cell.copy()
            ref.calc = EMT()
            e = cell.get_potential_energy()
            assert abs(e - ref.get_potential_energy()) < 1e-8
            np.testing.assert_allclose(cell.get_forces(), ref.get_forces(), atol=1e-8)
            np.testing.assert_allclose(cell.get_stress(), ref.get_stress(), atol=1e-9)
    assert traces["energy_forces_stress_fn"] == 1


def test_buckets_are_at_most_a_quarter_apart():
    # reference: the definition, checked by brute force (every n up to 5000)
    for n in range(1, 5001):
        b = bucket(n)
        assert b >= n and (b <= 8 or b < 1.25 * n)
    assert {bucket(n) for n in range(1025, 2049)} == {1280, 1536, 1792, 2048}
