"""Padded batches: shapes from buckets, zero padding, vmap equals one-by-one."""

import collections
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from mldiff import neighbors, potentials, quantities
from mldiff.data import (
    Bucket,
    DataError,
    Dataset,
    assign_buckets,
    batch_plan,
    batches,
    label,
    make_batch,
    make_buckets,
    n_batches,
    stack_structures,
)
from mldiff.data.batching import GHOST_OFFSET
from mldiff.structure import Structure

CUTOFF = 5.0  # Å
BATCH = 2


@pytest.fixture(scope="module")
def items():
    """Cu cells of 4-16 atoms and CH4 molecules, EMT labels, some labels missing."""
    structures = []
    for k, (repeat, count) in enumerate(
        [((1, 1, 1), 3), ((1, 1, 2), 2), ((2, 2, 1), 2), ((2, 1, 1), 1)]
    ):
        for c in range(count):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
            atoms.rattle(0.05, seed=10 * k + c)
            structures.append(atoms)
    for c in range(3):
        atoms = molecule("CH4")
        atoms.rattle(0.02, seed=c)
        structures.append(atoms)
    out = label(structures, EMT(), progress=False)
    out[1] = out[1].replace(stress=None)
    out[3] = out[3].replace(forces=None)
    out[5] = out[5].replace(energy=None)
    return out


@pytest.fixture(scope="module")
def dataset(items):
    return Dataset.build(items, CUTOFF)


@pytest.fixture(scope="module")
def buckets(dataset):
    return make_buckets(dataset, batch_size=BATCH, n_buckets=3)


def _host(batch):
    """The batch's arrays as NumPy (a Structure must hold jax.Array leaves)."""
    ns = types.SimpleNamespace
    fields = ("energy", "forces", "stress", "atom_mask", "structure_mask", "n_atoms")
    fields += ("has_energy", "has_forces", "has_stress", "index")
    return ns(
        **{f: np.asarray(getattr(batch, f)) for f in fields},
        structure=ns(
            **{
                f: np.asarray(getattr(batch.structure, f))
                for f in ("positions", "cell", "numbers")
            }
        ),
        graph=ns(
            **{
                f: np.asarray(getattr(batch.graph, f))
                for f in ("senders", "receivers", "mask")
            }
        ),
    )


def _lj():
    return potentials.get("lj", sigma=2.0, epsilon=0.01, rc=CUTOFF)


def test_dataset_matches_neighbor_list(items, dataset):
    # reference: mldiff.neighbors.neighbor_list (itself checked against ASE)
    assert len(dataset) == len(items)
    for k, item in enumerate(items):
        i, j, S = neighbors.neighbor_list(item.structure, CUTOFF)
        assert dataset.n_edges[k] == len(i) and dataset.n_atoms[k] == item.n_atoms
        np.testing.assert_array_equal(dataset.senders[k], i)
        np.testing.assert_array_equal(dataset.shifts[k], S)


def test_shapes_come_only_from_the_bucket_set(dataset, buckets):
    # reference: the bucket set itself; at most n_buckets per periodicity
    per_pbc = collections.Counter(b.pbc for b in buckets)
    assert set(per_pbc) == {(True,) * 3, (False,) * 3}
    assert max(per_pbc.values()) <= 3
    for b in buckets:
        assert b.n_atoms % 8 == 0 and b.n_edges % 64 == 0
    seen = set()
    for epoch in range(3):
        for batch in batches(dataset, batch_size=BATCH, buckets=buckets, epoch=epoch):
            assert batch.bucket in buckets
            assert batch.batch_size == BATCH
            shapes = {x.shape[:1] for x in jax.tree.leaves(batch)}
            assert shapes == {(BATCH,)}
            seen.add(batch.bucket)
    assert seen <= set(buckets)


def test_each_structure_goes_to_the_smallest_bucket_it_fits(dataset, buckets):
    # reference: brute force over all buckets
    which = assign_buckets(dataset, buckets)
    for k, b in enumerate(which):
        n, e, pbc = int(dataset.n_atoms[k]), int(dataset.n_edges[k]), dataset.pbc[k]
        assert buckets[b].fits(n, e, pbc)
        for other in buckets:
            if other.fits(n, e, pbc):
                assert other.n_atoms >= buckets[b].n_atoms
                assert other.n_edges >= buckets[b].n_edges


def test_padding_carries_zero_labels_and_masks(items, dataset, buckets):
    # reference: the unpadded items; padding must be zeros/False everywhere
    n_padded_structures = 0
    for batch in batches(dataset, batch_size=BATCH, buckets=buckets, seed=1):
        b = _host(batch)
        n_pad = b.structure.positions.shape[1]
        for slot in range(BATCH):
            k = int(b.index[slot])
            n = int(b.n_atoms[slot])
            if not b.structure_mask[slot]:
                n_padded_structures += 1
                assert k == -1 and n == 0
                assert not b.atom_mask[slot].any() and not b.graph.mask[slot].any()
                assert not (
                    b.has_energy[slot] or b.has_forces[slot] or b.has_stress[slot]
                )
                assert b.energy[slot] == 0 and not b.forces[slot].any()
                assert not b.stress[slot].any() and not b.structure.numbers[slot].any()
                assert np.linalg.det(b.structure.cell[slot]) > 1.0
                continue
            item = items[k]
            assert n == item.n_atoms
            np.testing.assert_array_equal(b.atom_mask[slot], np.arange(n_pad) < n)
            np.testing.assert_array_equal(
                b.structure.numbers[slot, :n], item.structure.numbers
            )
            assert not b.structure.numbers[slot, n:].any()  # ghosts: Z = 0
            np.testing.assert_array_equal(
                b.structure.positions[slot, :n], item.structure.positions
            )
            assert b.graph.mask[slot].sum() == dataset.n_edges[k]
            real = b.graph.mask[slot]
            assert (b.graph.senders[slot][real] < n).all()
            assert (b.graph.receivers[slot][real] < n).all()
            assert not b.forces[slot, n:].any()
            assert b.has_energy[slot] == (item.energy is not None)
            assert b.has_forces[slot] == (item.forces is not None)
            assert b.has_stress[slot] == (item.stress is not None)
            assert b.energy[slot] == (0.0 if item.energy is None else item.energy)
            if item.forces is not None:
                np.testing.assert_array_equal(b.forces[slot, :n], item.forces)
            else:
                assert not b.forces[slot].any()
            if item.stress is not None:
                np.testing.assert_array_equal(b.stress[slot], item.stress)
            else:
                assert not b.stress[slot].any()
            # ghosts: far from the real atoms and from each other
            r, g = b.structure.positions[slot, :n], b.structure.positions[slot, n:]
            if len(g):
                d_rg = np.linalg.norm(r[:, None] - g[None], axis=-1)
                assert d_rg.min() > GHOST_OFFSET
                d_gg = np.linalg.norm(g[:, None] - g[None], axis=-1)
                assert (d_gg + np.eye(len(g)) * 1e9).min() >= CUTOFF + 1.0 - 1e-9
    assert n_padded_structures > 0  # the fixture has odd-sized buckets


def test_vmapped_lj_matches_unbatched_and_compiles_once_per_bucket(
    items, dataset, buckets
):
    # reference: quantities.energy_forces_stress on each unpadded structure and
    # a graph from neighbors.allocate; LJ acts on all species alike, incl. Z = 0
    pot = _lj()
    potentials.check_species(pot, [0, 1, 6, 29])  # any species accepted
    params = pot.init(None, items[0].structure)
    efs = quantities.energy_forces_stress(pot.energy)
    traces = []

    def batched(params, structure, graph):
        traces.append(1)  # runs only while tracing
        return jax.vmap(efs, in_axes=(None, 0, 0))(params, structure, graph)

    batched = jax.jit(batched)
    reference_efs = jax.jit(efs)
    reference_ef = jax.jit(quantities.energy_and_forces(pot.energy))
    capacity = int(max(b.n_edges for b in buckets))  # one compile per atom count
    checked = set()
    for epoch in range(2):
        for batch in batches(dataset, batch_size=BATCH, buckets=buckets, epoch=epoch):
            out = batched(params, batch.structure, batch.graph)
            e, f, s = (np.asarray(x) for x in out)
            assert all(np.isfinite(x).all() for x in (e, f, s))  # padding: no NaN
            index = np.asarray(batch.index)
            for slot in range(BATCH):
                k = int(index[slot])
                if k < 0:
                    assert e[slot] == 0 and not f[slot].any() and not s[slot].any()
                    continue
                if k in checked:
                    continue
                item = items[k]
                n = item.n_atoms
                g = neighbors.allocate(item.structure, pot.cutoff, capacity=capacity)
                if all(item.structure.pbc):
                    e0, f0, s0 = reference_efs(params, item.structure, g)
                    np.testing.assert_allclose(s[slot], s0, rtol=1e-10, atol=1e-14)
                else:  # no volume: stress undefined
                    e0, f0 = reference_ef(params, item.structure, g)
                np.testing.assert_allclose(e[slot], e0, rtol=1e-10, atol=1e-14)
                np.testing.assert_allclose(f[slot, :n], f0, rtol=1e-10, atol=1e-12)
                assert not f[slot, n:].any()  # ghosts feel nothing
                checked.add(k)
    assert checked == set(range(len(items)))
    assert len(traces) <= len(buckets)


def test_an_epoch_visits_each_structure_exactly_once(dataset, buckets):
    # reference: range(N); order reproducible from (seed, epoch)
    def order(**kw):
        out = []
        for batch in batches(dataset, batch_size=BATCH, buckets=buckets, **kw):
            idx = np.asarray(batch.index)[np.asarray(batch.structure_mask)]
            out.extend(idx.tolist())
        return out

    for kw in ({"shuffle": False}, {"seed": 0, "epoch": 0}, {"seed": 4, "epoch": 7}):
        visited = order(**kw)
        assert sorted(visited) == list(range(len(dataset)))
    assert order(seed=0, epoch=1) == order(seed=0, epoch=1)
    assert order(seed=0, epoch=1) != order(seed=0, epoch=2)
    count = sum(1 for _ in batches(dataset, batch_size=BATCH, buckets=buckets))
    assert count == n_batches(dataset, BATCH, buckets=buckets)
    kept = order(drop_last=True, seed=0)
    assert len(kept) == len(set(kept)) and len(kept) % BATCH == 0


def test_lists_subsets_and_foreign_structures(items, dataset, buckets):
    # reference: Dataset.build on the same items; subsets index within themselves
    assert make_buckets(items, CUTOFF, BATCH) == buckets
    [first] = list(batches(items[:1], CUTOFF, batch_size=1, shuffle=False))
    assert int(first.index[0]) == 0 and int(first.n_atoms[0]) == items[0].n_atoms
    sub = dataset.subset([6, 2])
    got = [
        int(i)
        for b in batches(sub, batch_size=BATCH, buckets=buckets, shuffle=False)
        for i in np.asarray(b.index)
        if i >= 0
    ]
    assert sorted(got) == [0, 1] and sub.n_atoms.tolist() == [
        dataset.n_atoms[6],
        dataset.n_atoms[2],
    ]
    small = (Bucket(pbc=(True,) * 3, n_atoms=8, n_edges=64),)
    with pytest.raises(DataError, match=r"structure \d+ \(\d+ atoms.*fits none"):
        list(batches(dataset, batch_size=BATCH, buckets=small))
    with pytest.raises(DataError, match="needs cutoff="):
        make_buckets(items)
    with pytest.raises(DataError, match="not a LabeledStructure"):
        Dataset.build([items[0].structure], CUTOFF)


def test_plan_and_make_batch_map_slots_to_structures(dataset, buckets):
    # reference: batches() yields make_batch over batch_plan, slot by slot
    plan = batch_plan(dataset, BATCH, buckets, shuffle=True, seed=2, epoch=3)
    got = list(batches(dataset, batch_size=BATCH, buckets=buckets, seed=2, epoch=3))
    assert len(plan) == len(got)
    for (bucket, index), batch in zip(plan, got, strict=True):
        again = make_batch(dataset, index, bucket, BATCH)
        assert again.bucket == bucket == batch.bucket
        idx = np.asarray(again.index)
        np.testing.assert_array_equal(idx[: len(index)], index)
        assert (idx[len(index) :] == -1).all()
        np.testing.assert_array_equal(again.forces, batch.forces)
    big = max(range(len(dataset)), key=lambda k: dataset.n_edges[k])
    with pytest.raises(DataError, match=f"structure {big} .* does not fit"):
        make_batch(dataset, [big], buckets[0], BATCH)
    with pytest.raises(DataError, match="3 structures do not fit a batch of 2"):
        make_batch(dataset, [0, 1, 2], buckets[-1], BATCH)


def test_dtypes_of_a_batch(dataset, buckets):
    # reference: the dtypes documented on Batch
    batch = next(batches(dataset, batch_size=BATCH, buckets=buckets, dtype=jnp.float32))
    assert batch.structure.positions.dtype == jnp.float32
    assert batch.structure.cell.dtype == batch.energy.dtype == jnp.float32
    assert batch.forces.dtype == batch.stress.dtype == jnp.float32
    for x in (batch.structure.numbers, batch.graph.senders, batch.graph.shifts):
        assert x.dtype == jnp.int32
    assert batch.n_atoms.dtype == batch.index.dtype == jnp.int32
    for x in (
        batch.atom_mask,
        batch.structure_mask,
        batch.graph.mask,
        batch.has_forces,
    ):
        assert x.dtype == jnp.bool_
    assert batch.graph.images.shape == (BATCH, 1, 3) and not batch.graph.overflow.any()
    default = next(batches(dataset, batch_size=BATCH, buckets=buckets))
    assert default.structure.positions.dtype == jnp.float64  # x64 on in conftest


def test_composition_counts_species(items, dataset):
    # reference: ASE's chemical symbols counted by collections.Counter
    assert dataset.species == (1, 6, 29)
    comp = dataset.composition()
    for k, item in enumerate(items):
        counts = collections.Counter(item.structure.to_ase().get_chemical_symbols())
        assert comp[k].tolist() == [counts["H"], counts["C"], counts["Cu"]]


def test_stack_structures(items):
    # reference: jnp.stack of each leaf
    a, b = items[0].structure, items[1].structure
    s = stack_structures([a, b])
    assert s.positions.shape == (2, 4, 3) and s.pbc == a.pbc
    np.testing.assert_array_equal(s.cell[1], b.cell)
    assert isinstance(s, Structure) and s.numbers.dtype == jnp.int32
    with pytest.raises(DataError, match=r"atom counts \[4, 8\]"):
        stack_structures([a, items[3].structure])


def _brute_force_cost(n_atoms, n_edges, batch_size, n_buckets, penalty):
    """Least padded work over every contiguous split of the sorted edge values."""
    import itertools
    import math

    e = np.array([max(64, math.ceil(x / 64) * 64) for x in n_edges])
    values = np.unique(e)
    m = len(values)

    def cost(groups):
        total, n_pad = 0, 0
        for i, j in groups:
            sel = (e >= values[i]) & (e <= values[j])
            n_pad = max(n_pad, max(8, math.ceil(n_atoms[sel].max() / 8) * 8))
            c = int(sel.sum())
            total += math.ceil(c / batch_size) * batch_size * (n_pad + values[j])
        return total

    one = cost([(0, m - 1)])
    best = None
    for k in range(1, min(n_buckets, m) + 1):
        for cuts in itertools.combinations(range(1, m), k - 1):
            bounds = (0, *cuts, m)
            groups = [(bounds[g], bounds[g + 1] - 1) for g in range(k)]
            c = cost(groups) + penalty * one * k
            best = c if best is None else min(best, c)
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("penalty", [0.0, 0.05])
def test_bucket_choice_is_optimal(seed, penalty):
    # reference: brute force over all contiguous groupings of edge counts
    from mldiff.data.batching import _group_sizes

    rng = np.random.default_rng(seed)
    n_atoms = rng.integers(4, 60, 40)
    n_edges = n_atoms * rng.integers(10, 40, 40)
    sizes = _group_sizes(n_atoms, n_edges, 4, 3, 8, 64, penalty)
    assert len(sizes) <= 3
    e = np.array([max(64, -(-x // 64) * 64) for x in n_edges])
    total = 0
    for k, (a, b) in enumerate(sizes):
        lower = sizes[k - 1][1] if k else 0
        sel = (e > lower) & (e <= b)
        assert (n_atoms[sel] <= a).all()
        total += -(-int(sel.sum()) // 4) * 4 * (a + b)
    assert (e <= sizes[-1][1]).all()
    one = _brute_force_cost(n_atoms, n_edges, 4, 1, 0.0)
    ours = total + penalty * one * len(sizes)
    assert ours == pytest.approx(_brute_force_cost(n_atoms, n_edges, 4, 3, penalty))


def test_similar_sizes_share_one_bucket():
    # reference: 108-atom cells within 3 % in edge count need one compilation
    from mldiff.data.batching import _group_sizes

    rng = np.random.default_rng(0)
    sizes = _group_sizes(
        np.full(300, 108), rng.integers(4800, 4950, 300), 8, 3, 8, 64, 0.05
    )
    assert sizes == [(112, 4992)]
    two = np.r_[np.full(150, 32), np.full(150, 108)]
    edges = np.r_[rng.integers(1400, 1480, 150), rng.integers(4800, 4950, 150)]
    assert _group_sizes(two, edges, 8, 3, 8, 64, 0.05) == [(32, 1536), (112, 4992)]
