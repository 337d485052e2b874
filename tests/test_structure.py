"""Structure pytree, conversions (ASE, pymatgen), supercells and strain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk, make_supercell, molecule

from mldiff.structure import Structure, apply_strain, shortest_distance, supercell


def test_is_a_pytree_with_static_pbc():
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    leaves, treedef = jax.tree_util.tree_flatten(s)
    assert len(leaves) == 3  # positions, cell, numbers; pbc is static
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert back.pbc == (True, True, True)
    doubled = jax.jit(lambda x: x.replace(positions=2 * x.positions))(s)
    np.testing.assert_allclose(doubled.positions, 2 * s.positions)


def test_ase_round_trip_preserves_everything():
    # reference: the ASE object itself
    atoms = bulk("NaCl", "rocksalt", a=5.64).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    atoms.set_pbc((True, True, False))
    back = Structure.from_ase(atoms).to_ase()
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-12)
    np.testing.assert_allclose(back.cell[:], atoms.cell[:], atol=1e-12)
    np.testing.assert_array_equal(back.numbers, atoms.numbers)
    np.testing.assert_array_equal(back.pbc, atoms.pbc)


def test_pymatgen_round_trip_structure_and_molecule():
    # reference: pymatgen's own objects
    from pymatgen.core import Lattice, Molecule
    from pymatgen.core import Structure as PmgStructure

    pmg = PmgStructure(
        Lattice.from_parameters(4.1, 4.5, 5.2, 80, 95, 110),
        ["Fe", "O", "O"],
        [[0, 0, 0], [0.3, 0.2, 0.1], [0.6, 0.7, 0.5]],
    )
    s = Structure.from_pymatgen(pmg)
    back = s.to_pymatgen()
    np.testing.assert_allclose(back.lattice.matrix, pmg.lattice.matrix, atol=1e-12)
    np.testing.assert_allclose(back.cart_coords, pmg.cart_coords, atol=1e-12)
    assert [x.specie.symbol for x in back] == ["Fe", "O", "O"]

    mol = Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.13]])
    sm = Structure.from_pymatgen(mol)
    assert sm.pbc == (False, False, False)
    mback = sm.to_pymatgen()
    assert isinstance(mback, Molecule)
    np.testing.assert_allclose(mback.cart_coords, mol.cart_coords)


def test_ase_and_pymatgen_agree():
    # reference: pymatgen's AseAtomsAdaptor
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = molecule("H2O")
    atoms.center(vacuum=4.0)
    atoms.pbc = True
    via_pmg = Structure.from_pymatgen(AseAtomsAdaptor.get_structure(atoms))
    via_ase = Structure.from_ase(atoms)
    np.testing.assert_allclose(via_pmg.positions, via_ase.positions, atol=1e-12)
    np.testing.assert_allclose(via_pmg.cell, via_ase.cell, atol=1e-12)


@pytest.mark.parametrize(
    "matrix",
    [
        (2, 2, 2),
        [[1, 1, 0], [0, 1, 1], [1, 0, 1]],
        [[-1, 1, 1], [1, -1, 1], [1, 1, -1]],
    ],
)
def test_supercell_matches_ase(matrix):
    # reference: ase.build.make_supercell (compared as sets of wrapped sites)
    prim = bulk("Si", "diamond", a=5.43)
    p = np.diag(matrix) if np.shape(matrix) == (3,) else np.asarray(matrix)
    ours = supercell(Structure.from_ase(prim), matrix).to_ase()
    ref = make_supercell(prim, p)
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours.cell[:], ref.cell[:], atol=1e-12)
    fo = np.round(ours.get_scaled_positions(wrap=True) % 1.0, 8) % 1.0
    fr = np.round(ref.get_scaled_positions(wrap=True) % 1.0, 8) % 1.0
    key = lambda f: sorted(map(tuple, f))  # noqa: E731
    np.testing.assert_allclose(key(fo), key(fr), atol=1e-7)


def test_apply_strain_matches_ase_cell_scaling():
    # reference: ASE set_cell(scale_atoms=True) with the deformed cell
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.rattle(0.02, seed=3)
    eps = np.array(
        [[0.01, 0.002, -0.003], [0.002, -0.02, 0.004], [-0.003, 0.004, 0.005]]
    )
    strained = apply_strain(Structure.from_ase(atoms), eps)
    ref = atoms.copy()
    ref.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    np.testing.assert_allclose(strained.positions, ref.positions, atol=1e-12)
    np.testing.assert_allclose(strained.cell, ref.cell[:], atol=1e-12)
    # Voigt input with engineering shear gives the same result
    voigt = [
        eps[0, 0],
        eps[1, 1],
        eps[2, 2],
        2 * eps[1, 2],
        2 * eps[0, 2],
        2 * eps[0, 1],
    ]
    np.testing.assert_allclose(
        apply_strain(Structure.from_ase(atoms), voigt).cell, strained.cell, atol=1e-14
    )


def test_volume_is_differentiable():
    # analytic: dV/dε = V·I at zero strain
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    v = lambda e: apply_strain(s, e).volume  # noqa: E731
    grad = jax.grad(v)(jnp.zeros((3, 3)))
    np.testing.assert_allclose(
        grad, np.eye(3) * float(s.volume), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Cu", "fcc", a=3.6).repeat(3),
        bulk("Si", "diamond", a=5.43, cubic=True).repeat(2),
        bulk("Cu", "fcc", a=3.6) * (1, 1, 9),  # slab-like, elongated cell
        molecule("H2O"),
    ],
    ids=["cu27", "si64", "cu-long", "h2o"],
)
def test_shortest_distance_matches_ase(atoms):
    # reference: ASE's get_all_distances(mic=True) (images of the pair itself)
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=3)
    ref = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)].min()
    s = Structure.from_ase(atoms, dtype=jnp.float64)
    assert shortest_distance(s) == pytest.approx(ref, abs=1e-9)


def test_shortest_distance_of_one_atom():
    # reference: a single atom only meets its own images: a / √2 for fcc
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6), dtype=jnp.float64)
    assert shortest_distance(s) == pytest.approx(3.6 / np.sqrt(2), abs=1e-12)
    lone = Structure.create(np.zeros((1, 3)), 10 * np.eye(3), [29], pbc=False)
    assert shortest_distance(lone) == float("inf")
