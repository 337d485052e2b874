"""Neighbor graphs against ase.neighborlist.neighbor_list, and jit updates."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mldiff import neighbors
from mldiff.errors import NeighborListOverflowError
from mldiff.structure import Structure


def _edge_set(i, j, S):
    return set(
        zip(
            np.asarray(i).tolist(),
            np.asarray(j).tolist(),
            map(tuple, np.asarray(S).tolist()),
            strict=True,
        )
    )


def _graph_edge_set(g):
    m = np.asarray(g.mask)
    return _edge_set(
        np.asarray(g.senders)[m], np.asarray(g.receivers)[m], np.asarray(g.shifts)[m]
    )


def _triclinic():
    # angles near 60°, 70°, 110°, a cell far from orthogonal
    from ase.geometry import cellpar_to_cell

    cell = cellpar_to_cell([4.2, 4.8, 5.1, 60.0, 70.0, 110.0])
    rng = np.random.default_rng(7)
    frac = rng.random((6, 3))
    atoms = Atoms("Si6", scaled_positions=frac, cell=cell, pbc=True)
    return atoms


def _random_periodic(n=500, seed=11):
    rng = np.random.default_rng(seed)
    box = (n / 0.05) ** (1 / 3)  # 0.05 atoms/Å³
    cell = np.diag([box, 0.9 * box, 1.1 * box]) + rng.normal(0, 0.3, (3, 3))
    pos = rng.random((n, 3)) @ cell
    return Atoms(f"Ar{n}", positions=pos, cell=cell, pbc=True)


def _molecule():
    atoms = molecule("C6H6")
    atoms.pbc = False
    return atoms


def _wire():
    # periodic along y only; the two other cell vectors are zero
    rng = np.random.default_rng(3)
    pos = rng.random((5, 3)) * [4.0, 2.5, 4.0]
    return Atoms(
        "C5",
        positions=pos,
        cell=[[0, 0, 0], [0, 2.5, 0], [0, 0, 0]],
        pbc=(False, True, False),
    )


CASES = {
    "wire-two-zero-vectors": (_wire, 3.5),
    "si-primitive-6A": (lambda: bulk("Si", "diamond", a=5.43), 6.0),
    "triclinic-60-70-110": (_triclinic, 5.5),
    "molecule-no-pbc": (_molecule, 3.0),
    "random-500-periodic": (_random_periodic, 5.0),
    "slab-zero-vacuum-vector": (
        lambda: Atoms(
            "Cu4",
            positions=[[0, 0, 0], [1.8, 0, 1.0], [0, 1.8, 2.2], [1.8, 1.8, 3.0]],
            cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]],
            pbc=(True, True, False),
        ),
        7.0,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_neighbor_list_equals_ase(name):
    # reference: ase.neighborlist.neighbor_list("ijS"), compared as edge sets
    make, cutoff = CASES[name]
    atoms = make()
    ai, aj, aS = ase_neighbor_list("ijS", atoms, cutoff)
    i, j, S = neighbors.neighbor_list(Structure.from_ase(atoms, check=False), cutoff)
    assert len(i) == len(ai)
    assert _edge_set(i, j, S) == _edge_set(ai, aj, aS)
    assert np.all(np.diff(i) >= 0)  # sorted by sender, like ASE


def test_positions_outside_cell_get_correct_shifts():
    # reference: ASE on the same unwrapped positions
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions += np.array([[7.3, -11.0, 3.9]] * 4)
    atoms.positions[1] += [-20.0, 0.0, 40.0]
    ai, aj, aS = ase_neighbor_list("ijS", atoms, 4.0)
    i, j, S = neighbors.neighbor_list(atoms, 4.0)
    assert _edge_set(i, j, S) == _edge_set(ai, aj, aS)


@pytest.mark.parametrize("method", ["auto", "cell_list"])
@pytest.mark.parametrize(
    "name",
    [
        "si-primitive-6A",
        "triclinic-60-70-110",
        "molecule-no-pbc",
        "slab-zero-vacuum-vector",
        "wire-two-zero-vectors",
        "random-500-periodic",
    ],
)
def test_jit_update_equals_host_build(name, method):
    # reference: the host neighbor list (itself checked against ASE above);
    # "auto" takes all pairs for the small cells and the cell list for 500 atoms,
    # and the cell list also works for cells thinner than the cutoff (one bin,
    # several images), slabs, wires and molecules (no binning along non-periodic
    # directions)
    make, cutoff = CASES[name]
    atoms = make()
    s = Structure.from_ase(atoms, check=False)
    g = neighbors.allocate(s, cutoff, method=method, capacity_multiplier=1.5)
    big = len(atoms) >= neighbors.CELL_LIST_MIN_ATOMS
    assert g.method == ("cell_list" if method == "cell_list" or big else "all_pairs")
    rng = np.random.default_rng(0)
    moved = s.replace(positions=s.positions + rng.normal(0, 0.1, s.positions.shape))
    g2 = jax.jit(neighbors.update)(moved, g)
    assert not bool(g2.overflow)
    ref = neighbors.neighbor_list(moved, cutoff)
    assert _graph_edge_set(g2) == _edge_set(*ref)


def test_update_sets_overflow_instead_of_dropping():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    s = Structure.from_ase(atoms)
    g = neighbors.allocate(s, 3.0, capacity_multiplier=1.0)
    compressed = s.replace(positions=s.positions * 0.8, cell=s.cell * 0.8)
    g2 = jax.jit(neighbors.update)(compressed, g)
    assert bool(g2.overflow)
    with pytest.raises(NeighborListOverflowError, match="rebuild it"):
        neighbors.check(g2)


def test_explicit_capacity_too_small_raises():
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    with pytest.raises(
        NeighborListOverflowError, match=r"do not fit the capacity of 5"
    ):
        neighbors.allocate(s, 6.0, capacity=5)


def test_needs_update_after_half_skin():
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))
    g = neighbors.allocate(s, 4.0, skin=0.4)
    small = s.replace(positions=s.positions.at[0, 0].add(0.15))
    large = s.replace(positions=s.positions.at[0, 0].add(0.25))
    assert not bool(neighbors.needs_update(small, g))
    assert bool(neighbors.needs_update(large, g))
