"""MD (NVE, Langevin) and FIRE relaxation against ASE, jax-md and physics."""

import jax
import numpy as np
import pytest
from ase.build import bulk

from mldiff import md, neighbors, potentials, units
from mldiff.errors import ConfigError
from mldiff.structure import Structure


@pytest.fixture(scope="module")
def cu32():
    """32-atom cubic fcc Cu (a = 3.61 Å), JAX EMT, float64."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    s = Structure.from_ase(atoms)
    pot = potentials.get("emt")
    return pot, pot.init(None, s), s


def _momenta(atoms, temperature_K, seed):
    """Maxwell–Boltzmann momenta in NumPy with zero total momentum, amu·Å/t."""
    m = atoms.get_masses()[:, None]
    rng = np.random.default_rng(seed)
    p = np.sqrt(m * units.kB * temperature_K) * rng.standard_normal((len(m), 3))
    return p - p.mean(axis=0)


def test_nve_conserves_energy(cu32, keys):
    # reference: energy conservation of the exact dynamics (velocity Verlet
    # drifts only at O(dt²)); tolerance 1e-4 eV/atom over 500 fs, as the issue
    pot, params, s = cu32
    out = md.run_md(
        pot,
        params,
        s,
        steps=500,
        timestep_fs=1.0,
        initial_temperature_K=600.0,  # equipartition: ~300 K once equilibrated
        log_interval=50,
        key=next(keys),
        progress=False,
    )
    assert out.step.tolist() == list(range(0, 501, 50))
    drift = np.max(np.abs(out.total_energy_ev - out.total_energy_ev[0])) / len(s)
    assert drift < 1e-4
    assert out.temperature_k[1:].mean() > 100.0  # it really moved
    np.testing.assert_allclose(
        out.total_energy_ev, out.potential_energy_ev + out.kinetic_energy_ev
    )


def test_nve_matches_ase_velocity_verlet():
    # reference: ase.md.verlet.VelocityVerlet on ase.calculators.emt.EMT, same
    # start; positions agree to 1e-8 Å and momenta to 1e-8 amu·Å/t over 20 fs
    from ase.calculators.emt import EMT
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=3)
    p0 = _momenta(atoms, 600.0, seed=4)
    s = Structure.from_ase(atoms)
    pot = potentials.get("emt")
    out = md.run_md(
        pot,
        pot.init(None, s),
        s,
        steps=20,
        timestep_fs=1.0,
        momenta=p0,
        log_interval=5,
        record_positions=True,
        progress=False,
    )
    atoms.calc = EMT()
    atoms.set_momenta(p0)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    ref_positions, ref_energy = [atoms.get_positions()], [atoms.get_total_energy()]
    for _ in range(4):
        dyn.run(5)
        ref_positions.append(atoms.get_positions())
        ref_energy.append(atoms.get_total_energy())
    np.testing.assert_allclose(out.positions, np.stack(ref_positions), atol=1e-8)
    np.testing.assert_allclose(out.momenta, atoms.get_momenta(), atol=1e-8)
    np.testing.assert_allclose(out.total_energy_ev, ref_energy, atol=1e-8)
    # same CODATA 2014 constants as ASE
    np.testing.assert_allclose(
        out.temperature_k[-1], atoms.get_temperature(), rtol=1e-12
    )


@pytest.fixture(scope="module")
def ar32():
    """32-atom cubic fcc Ar (a = 5.26 Å), smooth LJ (σ 3.4 Å, ε 10.4 meV, rc 8.5 Å)."""
    s = Structure.from_ase(bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2))
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)
    return pot, pot.init(None, s), s


def test_langevin_steps_match_jax_md(ar32, keys):
    # reference: jax_md.simulate.nvt_langevin's own step function (BAOAB) from
    # the same state and PRNG key; identical to rounding (1e-12)
    from jax_md import simulate, space

    pot, params, s = ar32
    key = next(keys)
    p0 = md.maxwell_boltzmann(next(keys), md.masses_amu(s.numbers), 60.0)
    dt, kT, gamma = 5.0 * units.fs, units.kB * 80.0, 0.05 / units.fs
    out = md.run_md(
        pot,
        params,
        s,
        steps=6,
        timestep_fs=5.0,
        temperature_K=80.0,
        friction_per_fs=0.05,
        momenta=p0,
        log_interval=3,
        key=key,
        progress=False,
    )
    g = neighbors.allocate(s, pot.cutoff, skin=0.5)

    def energy(r, graph):
        return pot.energy(params, s.replace(positions=r), graph)

    _, step = simulate.nvt_langevin(energy, space.free()[1], dt, kT, gamma=gamma)
    m = md.masses_amu(s.numbers).reshape(-1, 1)
    force = -jax.jit(jax.grad(energy))(s.positions, g)
    state = simulate.NVTLangevinState(s.positions, p0, force, m, key)
    for _ in range(6):
        state = step(state, graph=g)
    np.testing.assert_allclose(out.structure.positions, state.position, atol=1e-12)
    np.testing.assert_allclose(out.momenta, state.momentum, atol=1e-12)


def test_langevin_mean_temperature_approaches_target(ar32, keys):
    # reference: equipartition, <2K/(3 n kB)> = T for Langevin (momentum is not
    # conserved). 32 atoms fluctuate by ~14 % per sample; the mean over 7.5 ps
    # after 1 ps with γ = 0.02/fs is within 10 % of 60 K (seeded, typical ±3 %)
    pot, params, s = ar32
    out = md.run_md(
        pot,
        params,
        s,
        steps=1700,
        timestep_fs=5.0,
        temperature_K=60.0,
        initial_temperature_K=5.0,  # start cold: the thermostat must heat it
        friction_per_fs=0.02,
        log_interval=10,
        key=next(keys),
        progress=False,
    )
    assert out.temperature_k[0] < 10.0
    mean = out.temperature_k[out.time_fs > 1000.0].mean()
    assert abs(mean - 60.0) < 6.0, mean


def _lj_on_shell():
    """Ar fcc with cutoff + skin 1 mÅ inside the 6th shell (a√3 = 9.1106 Å).

    Any thermal motion brings 6th-shell pairs within reach, so a graph sized
    exactly for the perfect lattice overflows at its first update.
    """
    s = Structure.from_ase(bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2))
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=9.0, smooth=True)
    return pot, pot.init(None, s), s, 9.1096 - 9.0


def test_overflow_reallocates_and_redoes_block(keys):
    # reference: the same run with ample capacity; an overflowed block is
    # redone from its start, so trajectories agree to rounding (1e-10 Å)
    pot, params, s, skin = _lj_on_shell()
    common = dict(
        steps=60,
        timestep_fs=5.0,
        initial_temperature_K=80.0,
        skin=skin,
        log_interval=20,
        record_positions=True,
        neighbor_update="jit",
        key=next(keys),
        progress=False,
    )
    ample = neighbors.allocate(s, pot.cutoff, skin=skin, capacity_multiplier=2.0)
    tight = neighbors.allocate(s, pot.cutoff, skin=skin, capacity_multiplier=1.0)
    ref = md.run_md(pot, params, s, graph=ample, **common)
    out = md.run_md(pot, params, s, graph=tight, **common)
    assert ref.reallocations == 0
    assert out.reallocations >= 1
    assert out.graph.capacity >= 1.5 * tight.capacity
    assert out.graph.n_edges > tight.capacity  # the tight graph could not hold it
    np.testing.assert_allclose(out.positions, ref.positions, atol=1e-10)
    np.testing.assert_allclose(out.total_energy_ev, ref.total_energy_ev, atol=1e-10)


def test_full_bin_reallocates_and_redoes_block(keys):
    # reference: the same run with room in every bin; a cell-list bin that
    # overflows stops the block, which is redone with larger bins, so the
    # trajectories agree to rounding (1e-10 Å). 256 fcc Ar atoms in 4³ bins of
    # 5.26 Å hold exactly 4 atoms each; the lattice planes sit 0.01 Å above
    # the bin faces, so the first atom to move down fills a bin past 4.
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(4)
    atoms.positions += 0.01
    s = Structure.from_ase(atoms)
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=5.0, smooth=True)
    params, skin = pot.init(None, s), 0.2
    tight = neighbors.allocate(s, pot.cutoff, skin=skin)  # auto: cell list
    assert tight.method == "cell_list" and tight.bins == (4, 4, 4)
    tight = neighbors.allocate(s, pot.cutoff, skin=skin, bin_capacity=4)
    # the capacities MD grows to on overflow (edges x1.25, bins the default
    # 4 * 1.25 + 2 sqrt(4)): the reference then shares its compiled block
    roomy = neighbors.allocate(
        s, pot.cutoff, skin=skin, capacity=-(-tight.capacity * 5 // 4), bin_capacity=9
    )
    common = dict(
        steps=40,
        timestep_fs=5.0,
        initial_temperature_K=80.0,
        skin=skin,
        log_interval=20,
        record_positions=True,
        key=next(keys),
        progress=False,
    )
    ref = md.run_md(pot, params, s, graph=roomy, **common)
    out = md.run_md(pot, params, s, graph=tight, **common)
    assert ref.reallocations == 0 and ref.neighbor_update == "jit"
    assert out.reallocations >= 1 and out.graph.bin_capacity > 4
    assert out.graph.method == "cell_list"
    np.testing.assert_allclose(out.positions, ref.positions, atol=1e-10)
    np.testing.assert_allclose(out.total_energy_ev, ref.total_energy_ev, atol=1e-10)


def test_host_rebuilds_match_jit_updates_without_recompiling(ar32, keys):
    # reference: the run with jit-side neighbors.update; a small skin forces
    # host rebuilds, which must not change the trajectory (1e-10 Å) nor, as
    # STYLE.md asks of jitted paths, recompile (same capacity, partial blocks)
    pot, params, s = ar32
    traces = []

    def energy(params, structure, graph):
        traces.append(1)  # runs only while tracing
        return pot.energy(params, structure, graph)

    counted = pot._replace(energy=energy)
    after_first_block = []
    common = dict(
        steps=100,
        timestep_fs=5.0,
        initial_temperature_K=120.0,
        skin=0.1,
        log_interval=30,
        record_positions=True,
        key=next(keys),
        progress=False,
    )
    jit = md.run_md(pot, params, s, neighbor_update="jit", **common)
    host = md.run_md(
        counted,
        params,
        s,
        neighbor_update="host",
        callback=lambda step, rec: after_first_block.append(len(traces)),
        **common,
    )
    assert jit.neighbor_update == "jit" and host.host_rebuilds >= 5
    assert host.step.tolist() == [0, 30, 60, 90, 100]
    np.testing.assert_allclose(host.positions, jit.positions, atol=1e-10)
    assert len(traces) == after_first_block[1]  # no tracing after the first block
    drift = np.ptp(host.total_energy_ev) / len(s)
    assert drift < 1e-4  # energy conservation, as for Cu


def test_fire_relaxes_rattled_cu_positions():
    # reference: ase.calculators.emt.EMT forces on the relaxed structure are
    # below fmax = 1e-3 eV/Å, and its energy equals ours to 1e-8 eV
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=1)
    s = Structure.from_ase(atoms)
    pot = potentials.get("emt")
    out = md.relax(pot, pot.init(None, s), s, fmax=1e-3, progress=False)
    assert out.converged and out.fmax < 1e-3 and 0 < out.steps < 2000
    ref = out.structure.to_ase()
    ref.calc = EMT()
    assert np.linalg.norm(ref.get_forces(), axis=1).max() < 1e-3
    assert abs(ref.get_potential_energy() - out.energy_ev) < 1e-8
    np.testing.assert_allclose(out.structure.cell, s.cell)  # cell untouched


def test_fire_cell_relaxation_reaches_ase_lattice():
    # reference: ASE's FrechetCellFilter + BFGS on ASE's EMT from the same
    # sheared, stretched start; cell lengths and angles agree to 1e-3 Å / 0.01°
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.70, cubic=True)
    cell = atoms.cell @ np.array([[1.0, 0.02, 0.0], [0.0, 1.01, 0.0], [0.0, 0.0, 0.99]])
    atoms.set_cell(cell, scale_atoms=True)
    s = Structure.from_ase(atoms)
    pot = potentials.get("emt")
    out = md.relax(
        pot,
        pot.init(None, s),
        s,
        relax_cell=True,
        fmax=1e-4,
        smax=1e-6,
        progress=False,
    )
    assert out.converged and out.smax < 1e-6
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-6, steps=500)
    ours = out.structure.to_ase().cell.cellpar()
    np.testing.assert_allclose(ours[:3], atoms.cell.cellpar()[:3], atol=1e-3)
    np.testing.assert_allclose(ours[3:], atoms.cell.cellpar()[3:], atol=1e-2)
    assert abs(out.structure.to_ase().get_volume() - atoms.get_volume()) < 1e-2


def test_fire_relaxes_lj_trimer_to_analytic_bond_length():
    # reference: analytic — a free LJ triangle relaxes to an equilateral one
    # with sides 2^(1/6) σ (1e-6 Å at fmax 1e-8 eV/Å; curvature 0.05 eV/Å²)
    m = Structure.create(
        [[0, 0, 0], [3.6, 0, 0], [1.5, 3.0, 0.3]], None, [18] * 3, pbc=False
    )
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=12.0)
    out = md.relax(pot, pot.init(None, m), m, fmax=1e-8, progress=False)
    r = np.asarray(out.structure.positions)
    d = np.linalg.norm(r[[0, 1, 2]] - r[[1, 2, 0]], axis=1)
    assert out.converged and out.stress is None
    np.testing.assert_allclose(d, 2 ** (1 / 6) * 3.4, atol=1e-6)


def test_bad_settings_raise_clear_errors(cu32):
    # reference: STYLE rule 7 — the message names the problem and the fix
    pot, params, s = cu32
    with pytest.raises(ConfigError, match="key=jax.random.key"):
        md.run_md(pot, params, s, steps=1, temperature_K=300.0)
    with pytest.raises(ConfigError, match="neighbor_update"):
        md.run_md(pot, params, s, steps=1, neighbor_update="gpu")
    with pytest.raises(ConfigError, match="MDConfig fields"):
        md.run_md(pot, params, s, steps=1, temprature_K=300.0)
    with pytest.raises(ConfigError, match="timestep_fs"):
        md.run_md(pot, params, s, steps=1, timestep_fs=0.0)
    mol = Structure.create([[0, 0, 0], [2.5, 0, 0]], None, [29, 29], pbc=False)
    with pytest.raises(ConfigError, match="relax_cell"):
        md.relax(pot, params, mol, relax_cell=True)
