"""Forces, stress and invariances for every reference potential.

References: central finite differences of the energy (forces, stress), ASE's own
LennardJones and MorsePotential calculators, and exact symmetry (rotation,
translation, permutation).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from scipy.spatial.transform import Rotation

from mldiff import neighbors, potentials, quantities
from mldiff.structure import Structure, apply_strain


def _system(name):
    """A small rattled, sheared periodic cell suited to each potential."""
    if name == "lj":
        pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=7.0, smooth=True)
        atoms = bulk("Ar", "fcc", a=5.26).repeat((2, 1, 1))
    elif name == "morse":
        pot = potentials.get("morse", epsilon=0.34, rho0=4.0, r0=2.55)
        atoms = bulk("Cu", "fcc", a=3.61).repeat((1, 2, 1))
    elif name == "sw":
        pot = potentials.get("sw")
        atoms = bulk("Si", "diamond", a=5.431).repeat((1, 1, 2))
    else:
        pot = potentials.get("emt")
        atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
        atoms.numbers[1] = 79
    atoms.set_cell(
        atoms.cell[:]
        @ (np.eye(3) + [[0.02, 0.03, 0], [0, -0.01, 0.04], [0.01, 0, 0.02]]),
        scale_atoms=True,
    )
    atoms.rattle(0.05, seed=4)
    s = Structure.from_ase(atoms)
    g = neighbors.allocate(s, pot.cutoff)
    return pot, pot.init(jax.random.key(0), s), s, g


ALL = ["lj", "morse", "sw", "emt"]


@pytest.mark.parametrize("name", ALL)
def test_forces_equal_finite_differences(name):
    # reference: central finite differences, h = 1e-5 Å
    pot, params, s, g = _system(name)
    e = jax.jit(lambda r: pot.energy(params, s.replace(positions=r), g))
    f = quantities.forces(pot.energy)(params, s, g)
    h = 1e-5
    r0 = np.asarray(s.positions)
    fd = np.zeros_like(r0)
    for a in range(len(r0)):
        for k in range(3):
            rp, rm = r0.copy(), r0.copy()
            rp[a, k] += h
            rm[a, k] -= h
            fd[a, k] = -(float(e(jnp.asarray(rp))) - float(e(jnp.asarray(rm)))) / (
                2 * h
            )
    scale = np.abs(fd).max()
    np.testing.assert_allclose(f, fd, rtol=0, atol=1e-6 * scale + 1e-9)


@pytest.mark.parametrize("name", ALL)
def test_stress_equals_finite_strain_differences(name):
    # reference: central differences of E(ε) / V under homogeneous strain
    pot, params, s, g = _system(name)
    e = jax.jit(lambda eps: pot.energy(params, apply_strain(s, eps), g))
    sigma = quantities.stress(pot.energy)(params, s, g)
    h = 1e-6
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            d = np.zeros((3, 3))
            d[a, b] = d[b, a] = h
            # symmetric perturbation: off-diagonals see ε_ab = ε_ba = h
            factor = 1.0 if a == b else 2.0
            fd[a, b] = (float(e(jnp.asarray(d))) - float(e(jnp.asarray(-d)))) / (
                2 * h * factor
            )
    fd /= float(s.volume)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(sigma, fd, rtol=0, atol=1e-6 * scale + 1e-10)


@pytest.mark.parametrize("name", ALL)
def test_energy_invariant_under_rotation_translation_permutation(name):
    # reference: exact symmetry of a physical energy
    pot, params, s, g = _system(name)
    e0 = float(pot.energy(params, s, g))
    rot = Rotation.random(random_state=5).as_matrix()
    rotated = s.replace(positions=s.positions @ rot.T, cell=s.cell @ rot.T)
    e_rot = float(pot.energy(params, rotated, neighbors.allocate(rotated, pot.cutoff)))
    moved = s.replace(positions=s.positions + jnp.array([0.31, -1.7, 2.9]))
    e_tr = float(pot.energy(params, moved, neighbors.allocate(moved, pot.cutoff)))
    perm = np.random.default_rng(2).permutation(len(s))
    permuted = s.replace(positions=s.positions[perm], numbers=s.numbers[perm])
    e_perm = float(
        pot.energy(params, permuted, neighbors.allocate(permuted, pot.cutoff))
    )
    for other in (e_rot, e_tr, e_perm):
        assert abs(other - e0) < 1e-10 * max(1.0, abs(e0))


def test_energy_forces_stress_agrees_with_separate_transforms():
    pot, params, s, g = _system("morse")
    e, f, sigma = jax.jit(quantities.energy_forces_stress(pot.energy))(params, s, g)
    np.testing.assert_allclose(e, pot.energy(params, s, g), rtol=1e-14)
    np.testing.assert_allclose(
        f, quantities.forces(pot.energy)(params, s, g), atol=1e-12
    )
    np.testing.assert_allclose(
        sigma, quantities.stress(pot.energy)(params, s, g), atol=1e-12
    )


@pytest.mark.parametrize("smooth", [False, True])
def test_lennard_jones_matches_ase(smooth):
    # reference: ase.calculators.lj.LennardJones with the same parameters
    atoms = bulk("Ar", "fcc", a=5.3).repeat(2)
    atoms.rattle(0.1, seed=8)
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=smooth)
    pot = potentials.get("lj", sigma=3.4, epsilon=0.0104, rc=8.0, smooth=smooth)
    s = Structure.from_ase(atoms)
    e, f, sigma = quantities.energy_forces_stress(pot.energy)(
        pot.init(None, s), s, neighbors.allocate(s, pot.cutoff)
    )
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(sigma, atoms.get_stress(voigt=False), atol=1e-10)


def test_morse_matches_ase():
    # reference: ase.calculators.morse.MorsePotential
    atoms = bulk("Cu", "fcc", a=3.61).repeat(2)
    atoms.rattle(0.05, seed=9)
    atoms.calc = MorsePotential(epsilon=0.34, rho0=4.0, r0=2.55)
    pot = potentials.get("morse", epsilon=0.34, rho0=4.0, r0=2.55)
    s = Structure.from_ase(atoms)
    e, f, sigma = quantities.energy_forces_stress(pot.energy)(
        pot.init(None, s), s, neighbors.allocate(s, pot.cutoff)
    )
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(sigma, atoms.get_stress(voigt=False), atol=1e-10)


def test_batched_energies_with_vmap():
    # reference: the unbatched energy, structure by structure
    pot, params, s, g = _system("morse")
    rng = np.random.default_rng(0)
    batch = jnp.stack(
        [s.positions + rng.normal(0, 0.02, s.positions.shape) for _ in range(4)]
    )
    energies = jax.vmap(lambda r: pot.energy(params, s.replace(positions=r), g))(batch)
    for k in range(4):
        np.testing.assert_allclose(
            energies[k],
            pot.energy(params, s.replace(positions=batch[k]), g),
            rtol=1e-13,
        )


def test_voigt_round_trip():
    v = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(
        quantities.full_3x3_to_voigt(quantities.voigt_to_full_3x3(v)), v
    )


def test_energy_forces_stress_of_a_cell_without_volume_is_zero_stress():
    # analytic: a dimer with no cell has no volume, hence no stress; energy and
    # forces are those of quantities.energy_and_forces, and the gradient of a
    # loss on the (zero) stress stays finite
    pot = potentials.get("morse", epsilon=0.34, rho0=4.0, r0=2.55)
    s = Structure.create([[0.0, 0.0, 0.0], [2.4, 0.1, 0.0]], None, [29, 29], pbc=False)
    g = neighbors.allocate(s, pot.cutoff)
    params = pot.init(None, s)
    efs = quantities.energy_forces_stress(pot.energy)
    e, f, sigma = efs(params, s, g)
    e_ref, f_ref = quantities.energy_and_forces(pot.energy)(params, s, g)
    np.testing.assert_allclose(e, e_ref, rtol=1e-14)
    np.testing.assert_allclose(f, f_ref, atol=1e-14)
    np.testing.assert_array_equal(sigma, np.zeros((3, 3)))
    grad = jax.grad(lambda p: jnp.sum(efs(p, s, g)[2] ** 2))(params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grad))
