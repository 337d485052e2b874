"""The cell-list update inside jit against ase.neighborlist, overflow and memory."""

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mldiff import _cell_list, neighbors
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


def _random_cell(n, triclinic, seed=0):
    """Ar atoms at 0.05 /Å³ (a dense liquid), some of them outside the cell."""
    rng = np.random.default_rng(seed)
    box = (n / 0.05) ** (1 / 3)
    cell = np.diag([box, 0.9 * box, 1.1 * box])
    if triclinic:  # b tilted by ~17° towards a, c by ~14° and ~11°
        cell = cell + np.array([[0, 0, 0], [0.3, 0, 0], [-0.2, 0.25, 0]]) * box
    pos = rng.random((n, 3)) @ cell + rng.normal(0.0, 2.0, (n, 3))
    return Atoms(f"Ar{n}", positions=pos, cell=cell, pbc=True)


def _check_against_ase(n, triclinic, cutoff=4.5, skin=0.5):
    # reference: ase.neighborlist.neighbor_list("ijS") at cutoff + skin for the
    # moved positions, compared as sets of (i, j, S)
    atoms = _random_cell(n, triclinic)
    s = Structure.from_ase(atoms, check=False)
    g = neighbors.allocate(s, cutoff, skin=skin, method="auto")
    assert g.method == "cell_list" and min(g.bins) >= 3
    rng = np.random.default_rng(1)
    moved = s.replace(positions=s.positions + rng.normal(0, 0.2, s.positions.shape))
    g2 = jax.jit(neighbors.update)(moved, g)
    assert not bool(g2.overflow)
    atoms.positions = np.asarray(moved.positions)
    ai, aj, aS = ase_neighbor_list("ijS", atoms, cutoff + skin)
    assert int(g2.n_edges) == len(ai)
    assert _graph_edge_set(g2) == _edge_set(ai, aj, aS)
    assert np.all(np.diff(np.asarray(g2.senders)[np.asarray(g2.mask)]) >= 0)


@pytest.mark.parametrize("triclinic", [False, True], ids=["orthorhombic", "triclinic"])
def test_cell_list_equals_ase(triclinic, monkeypatch):
    if triclinic:  # scan the atoms in 63 chunks of 16, the last one padded
        monkeypatch.setattr(_cell_list, "_CHUNK_CANDIDATES", 2**14)
    _check_against_ase(1000, triclinic)


@pytest.mark.slow  # ~25 s on one CPU core (two compiles, ASE on 10,000 atoms)
@pytest.mark.parametrize("triclinic", [False, True], ids=["orthorhombic", "triclinic"])
def test_cell_list_equals_ase_10000_atoms(triclinic):
    _check_against_ase(10_000, triclinic)


def test_crowded_bin_overflows_and_a_larger_bin_holds_every_pair():
    # reference: ASE on the crowded geometry; a full bin must set the overflow
    # flag (never a silently shorter list), and with room enough the same
    # update returns exactly ASE's pairs
    atoms = _random_cell(300, triclinic=True, seed=2)
    s = Structure.from_ase(atoms, check=False)
    g = neighbors.allocate(s, 4.0, method="cell_list", capacity=40_000)
    assert g.bin_capacity < 40
    crowd = s.positions.at[:40].set(s.positions[0] + 0.05 * s.positions[:40] / 20)
    crowded = s.replace(positions=crowd)
    update = jax.jit(neighbors.update)
    full = update(crowded, g)
    assert bool(full.overflow)
    with pytest.raises(NeighborListOverflowError, match="rebuild it"):
        neighbors.check(full)
    roomy = neighbors.allocate(
        s, 4.0, method="cell_list", capacity=40_000, bin_capacity=60
    )
    ok = update(crowded, roomy)
    assert not bool(ok.overflow)
    atoms.positions = np.asarray(crowd)
    assert _graph_edge_set(ok) == _edge_set(*ase_neighbor_list("ijS", atoms, 4.0))


def test_explicit_bin_capacity_too_small_raises():
    s = Structure.from_ase(_random_cell(300, triclinic=False), check=False)
    with pytest.raises(NeighborListOverflowError, match="bin capacity of 1"):
        neighbors.allocate(s, 4.0, method="cell_list", bin_capacity=1)


def test_cell_list_memory_grows_linearly():
    # reference: the compiled update's scratch memory (XLA's memory analysis);
    # 8x the atoms at the same density must cost about 8x, where the all-pairs
    # search costs 64x (measured: cell list 6.5 -> 51.8 MB, all pairs about
    # 78 MB -> 5.0 GB for 300 -> 2400 atoms)
    def temp_bytes(n):
        s = Structure.from_ase(_random_cell(n, triclinic=False), check=False)
        g = neighbors.allocate(s, 4.0, method="cell_list")

        def update(positions):  # plain arrays in and out: lower() builds no pytree
            h = neighbors.update(s.replace(positions=positions), g)
            return h.senders, h.receivers, h.shifts, h.mask, h.overflow

        compiled = jax.jit(update).lower(s.positions).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(300), temp_bytes(2400)
    assert large / small < 12.0, (small, large)
