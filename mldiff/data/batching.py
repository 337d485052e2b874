"""Padded batches of labeled structures in a few fixed shapes.

Training evaluates ``vmap(energy)`` over a :class:`Batch`: ``B`` structures
padded to ``n_pad`` atoms and ``e_pad`` edges. Each distinct shape compiles the
training step once, so shapes come from a small set of :class:`Bucket` s chosen
from the data set (:func:`make_buckets`); every structure goes to the smallest
bucket it fits.

Workflow::

    ds = Dataset.build(items, cutoff=pot.cutoff)      # neighbor lists, once
    buckets = make_buckets(ds, batch_size=8)          # from the whole data set
    train, val = ds.subset(train_idx), ds.subset(val_idx)
    for epoch in range(n_epochs):
        for batch in batches(train, batch_size=8, buckets=buckets, epoch=epoch):
            e, f, s = jax.vmap(efs_fn, in_axes=(None, 0, 0))(
                params, batch.structure, batch.graph)

Padding. Padded atoms ("ghosts") have atomic number 0, zero labels,
``atom_mask`` False and no edges; each sits at its own point more than
``1000 Å`` from the real atoms and ``cutoff + skin + 1 Å`` from the other
ghosts. Learned models must give Z = 0 zero energy (an edge-free atom whose
species embedding is masked). A padded structure (``structure_mask`` False)
is all ghosts in a ``1000 Å`` cubic cell with the batch's ``pbc``; it has no
edges, so edge vectors are masked zeros and energy, forces and stress are 0,
not NaN. Likewise a molecule's (or slab's) zero non-periodic lattice vectors
are replaced by ``1000 Å`` ones in the batch, so its vmapped stress is finite
(and meaningless: ``has_stress`` is False); energy and forces do not change.

Batched graphs cannot be updated in ``jit``: ``graph.images`` is a single zero
shift (``[B, 1, 3]``), because graphs are built on the host with
:func:`mldiff.neighbors.neighbor_list` for the real atoms. They are exact for
the stored geometry (energy, forces and stress by differentiation are exact).
"""

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mldiff import neighbors
from mldiff._cells import _effective_cell
from mldiff.errors import DataError
from mldiff.io.labeled import LabeledStructure
from mldiff.neighbors import Graph
from mldiff.structure import Structure

__all__ = [
    "Batch",
    "Bucket",
    "Dataset",
    "make_buckets",
    "assign_buckets",
    "batches",
    "batch_plan",
    "make_batch",
    "n_batches",
    "stack_structures",
    "GHOST_OFFSET",
    "EMPTY_CELL",
]

GHOST_OFFSET = 1000.0  # Å; ghosts sit at least this far beyond the real atoms
EMPTY_CELL = 1000.0  # Å; edge of the cubic cell of a padded (empty) structure


@flax.struct.dataclass
class Batch:
    """``B`` structures padded to ``n_pad`` atoms and ``e_pad`` edges.

    Every leaf has a leading batch axis; ``structure.pbc`` and
    ``graph.cutoff``/``graph.skin`` are static and shared by the batch.
    Evaluate with ``jax.vmap(fn, in_axes=(None, 0, 0))(params, batch.structure,
    batch.graph)``; use the masks to weight losses.

    Attributes:
        structure: positions ``[B, n_pad, 3]`` Å, cell ``[B, 3, 3]`` Å (zero
            non-periodic vectors replaced by ``EMPTY_CELL``-long ones),
            numbers ``[B, n_pad]`` int32 (0 for padded atoms).
        graph: senders/receivers ``[B, e_pad]`` int32, shifts ``[B, e_pad, 3]``
            int32, mask ``[B, e_pad]`` bool, overflow ``[B]`` bool (False),
            images ``[B, 1, 3]`` int32 zeros (not updatable in jit),
            reference_positions ``[B, n_pad, 3]`` Å.
        energy: ``[B]`` total energies, eV (0 where missing or padded).
        forces: ``[B, n_pad, 3]`` forces, eV/Å (0 where missing or padded).
        stress: ``[B, 3, 3]`` stress, eV/Å³, ASE sign (0 where missing).
        atom_mask: ``[B, n_pad]`` bool, True for real atoms.
        structure_mask: ``[B]`` bool, True for real structures.
        has_energy: ``[B]`` bool, energy label present (False when padded).
        has_forces: ``[B]`` bool, forces label present.
        has_stress: ``[B]`` bool, stress label present.
        n_atoms: ``[B]`` int32 real atoms per structure (0 when padded; use
            ``jnp.maximum(n_atoms, 1)`` before dividing).
        index: ``[B]`` int32 position of each structure in its
            :class:`Dataset` (−1 when padded).
    """

    structure: Any
    graph: Any
    energy: Any
    forces: Any
    stress: Any
    atom_mask: Any
    structure_mask: Any
    has_energy: Any
    has_forces: Any
    has_stress: Any
    n_atoms: Any
    index: Any = None

    @property
    def batch_size(self) -> int:
        """Number of structure slots ``B`` (real and padded)."""
        return int(self.energy.shape[0])

    @property
    def bucket(self) -> "Bucket":
        """The :class:`Bucket` (shape) of this batch."""
        return Bucket(
            n_atoms=int(self.structure.positions.shape[1]),
            n_edges=int(self.graph.senders.shape[1]),
            pbc=self.structure.pbc,
        )


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Bucket:
    """One padded shape: ``n_atoms`` atom slots and ``n_edges`` edge slots.

    Attributes:
        pbc: periodicity shared by the bucket's structures (static in jit).
        n_atoms: atoms per structure after padding, ``n_pad``.
        n_edges: directed edges per structure after padding, ``e_pad``.
    """

    pbc: tuple[bool, bool, bool]
    n_atoms: int
    n_edges: int

    def fits(self, n_atoms: int, n_edges: int, pbc) -> bool:
        """Whether a structure of this size and periodicity fits the bucket."""
        return (
            tuple(pbc) == self.pbc
            and n_atoms <= self.n_atoms
            and n_edges <= self.n_edges
        )


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Dataset:
    """Labeled structures with their neighbor lists, as host NumPy arrays.

    Built once (:meth:`build`); each epoch only copies these arrays into padded
    batches. Per-structure fields are tuples of arrays of varying length.

    Attributes:
        positions: ``N`` arrays ``[n_i, 3]``, Å.
        cells: ``[N, 3, 3]`` lattice vectors as rows, Å.
        numbers: ``N`` arrays ``[n_i]`` int32.
        pbc: ``N`` periodicity triples.
        senders: ``N`` arrays ``[e_i]`` int32 (edges within ``cutoff + skin``).
        receivers: ``N`` arrays ``[e_i]`` int32.
        shifts: ``N`` arrays ``[e_i, 3]`` int32 lattice shifts.
        energy: ``[N]`` eV (0 where missing).
        forces: ``N`` arrays ``[n_i, 3]`` eV/Å (0 where missing).
        stress: ``[N, 3, 3]`` eV/Å³ (0 where missing).
        has_energy: ``[N]`` bool.
        has_forces: ``[N]`` bool.
        has_stress: ``[N]`` bool.
        cutoff: graph cutoff, Å.
        skin: graph skin, Å (edges reach ``cutoff + skin``).
    """

    positions: tuple
    cells: np.ndarray
    numbers: tuple
    pbc: tuple
    senders: tuple
    receivers: tuple
    shifts: tuple
    energy: np.ndarray
    forces: tuple
    stress: np.ndarray
    has_energy: np.ndarray
    has_forces: np.ndarray
    has_stress: np.ndarray
    cutoff: float
    skin: float = 0.0

    @classmethod
    def build(cls, items: Sequence, cutoff: float, *, skin: float = 0.0) -> "Dataset":
        """Neighbor lists and labels of ``items``, ready for batching.

        Args:
            items: labeled structures.
            cutoff: the potential's cutoff, Å (``potential.cutoff``).
            skin: extra reach of the edges, Å; 0 for training.

        Returns:
            The dataset.

        Raises:
            DataError: an item is not a :class:`LabeledStructure`, or the
                cutoff is not positive.

        Example:
            >>> from ase.build import bulk
            >>> from mldiff.io import LabeledStructure
            >>> item = LabeledStructure.from_atoms(bulk("Cu", "fcc", a=3.6))
            >>> ds = Dataset.build([item], cutoff=3.0)
            >>> len(ds), ds.n_atoms.tolist(), ds.n_edges.tolist()
            (1, [1], [12])
        """
        if not cutoff > 0:
            raise DataError(f"cutoff must be positive (Å), got {cutoff!r}")
        cols = {k: [] for k in ("pos", "cell", "z", "pbc", "i", "j", "S", "f")}
        energy, stress, has = [], [], {"e": [], "f": [], "s": []}
        for k, item in enumerate(items):
            if not isinstance(item, LabeledStructure):
                raise DataError(
                    f"item {k} is a {type(item).__name__}, not a LabeledStructure; "
                    "convert with LabeledStructure.from_atoms(atoms) or read with "
                    "mldiff.io.read_extxyz"
                )
            s = item.structure
            n = int(s.positions.shape[0])
            i, j, S = neighbors.neighbor_list(s, float(cutoff) + float(skin))
            cols["pos"].append(np.asarray(s.positions, np.float64))
            cols["cell"].append(np.asarray(s.cell, np.float64))
            cols["z"].append(np.asarray(s.numbers, np.int32))
            cols["pbc"].append(tuple(bool(p) for p in s.pbc))
            cols["i"].append(np.asarray(i, np.int32))
            cols["j"].append(np.asarray(j, np.int32))
            cols["S"].append(np.asarray(S, np.int32).reshape(-1, 3))
            has["e"].append(item.energy is not None)
            has["f"].append(item.forces is not None)
            has["s"].append(item.stress is not None)
            energy.append(0.0 if item.energy is None else float(item.energy))
            f = np.zeros((n, 3)) if item.forces is None else item.forces
            cols["f"].append(np.asarray(f, np.float64))
            st = np.zeros((3, 3)) if item.stress is None else item.stress
            stress.append(np.asarray(st, np.float64))
        return cls(
            positions=tuple(cols["pos"]),
            cells=np.asarray(cols["cell"], np.float64).reshape(-1, 3, 3),
            numbers=tuple(cols["z"]),
            pbc=tuple(cols["pbc"]),
            senders=tuple(cols["i"]),
            receivers=tuple(cols["j"]),
            shifts=tuple(cols["S"]),
            energy=np.asarray(energy, np.float64),
            forces=tuple(cols["f"]),
            stress=np.asarray(stress, np.float64).reshape(-1, 3, 3),
            has_energy=np.asarray(has["e"], bool),
            has_forces=np.asarray(has["f"], bool),
            has_stress=np.asarray(has["s"], bool),
            cutoff=float(cutoff),
            skin=float(skin),
        )

    def __len__(self) -> int:
        """Number of structures ``N``."""
        return len(self.positions)

    @property
    def n_atoms(self) -> np.ndarray:
        """``[N]`` int atoms per structure."""
        return np.array([len(z) for z in self.numbers], dtype=np.int64)

    @property
    def n_edges(self) -> np.ndarray:
        """``[N]`` int directed edges per structure."""
        return np.array([len(i) for i in self.senders], dtype=np.int64)

    @property
    def species(self) -> tuple[int, ...]:
        """Sorted atomic numbers present in the data set."""
        if not len(self):
            return ()
        return tuple(int(z) for z in np.unique(np.concatenate(self.numbers)))

    def composition(self, species: Sequence[int] | None = None) -> np.ndarray:
        """``[N, S]`` int64 count of each species in each structure.

        Args:
            species: atomic numbers of the columns; default :attr:`species`.
                Elements not listed are not counted.

        Returns:
            Counts, e.g. the design matrix of a least-squares fit of
            per-species reference energies to :attr:`energy`.
        """
        species = self.species if species is None else tuple(species)
        table = np.asarray(species, dtype=np.int64)
        return np.stack(
            [(z[:, None] == table[None, :]).sum(0) for z in self.numbers]
        ).reshape(len(self), len(table))

    def subset(self, indices) -> "Dataset":
        """The structures at ``indices`` (e.g. a split), in that order.

        Args:
            indices: ``[k]`` integer indices into this dataset.

        Returns:
            A new dataset; :attr:`Batch.index` then counts within it.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(
                f"subset indices must lie in [0, {len(self)}), got range "
                f"[{idx.min()}, {idx.max()}]"
            )

        def pick(seq):
            return tuple(seq[int(k)] for k in idx)

        return dataclasses.replace(
            self,
            positions=pick(self.positions),
            cells=self.cells[idx],
            numbers=pick(self.numbers),
            pbc=pick(self.pbc),
            senders=pick(self.senders),
            receivers=pick(self.receivers),
            shifts=pick(self.shifts),
            energy=self.energy[idx],
            forces=pick(self.forces),
            stress=self.stress[idx],
            has_energy=self.has_energy[idx],
            has_forces=self.has_forces[idx],
            has_stress=self.has_stress[idx],
        )


def _round_up(x: int, multiple: int) -> int:
    return max(int(multiple), int(math.ceil(x / multiple)) * int(multiple))


def _as_dataset(data, cutoff, skin) -> Dataset:
    if isinstance(data, Dataset):
        if cutoff is not None and float(cutoff) != data.cutoff:
            raise DataError(
                f"cutoff {cutoff} Å differs from the dataset's {data.cutoff} Å; "
                "rebuild the Dataset with Dataset.build(items, cutoff) or omit cutoff"
            )
        return data
    if cutoff is None:
        raise DataError(
            "a list of structures needs cutoff= (Å) to build neighbor lists; "
            "or pass a Dataset from Dataset.build(items, cutoff)"
        )
    return Dataset.build(list(data), float(cutoff), skin=float(skin))


def _group_sizes(
    n_atoms: np.ndarray,
    n_edges: np.ndarray,
    batch_size: int,
    n_buckets: int,
    atom_multiple: int,
    edge_multiple: int,
    bucket_penalty: float,
) -> list[tuple[int, int]]:
    """``(n_pad, e_pad)`` of the groups that minimise padded work (host DP).

    Structures are grouped by their rounded edge count; a group of ``C``
    structures padded to ``(n_pad, e_pad)`` costs ``ceil(C / B) * B *
    (n_pad + e_pad)`` slots (padded structures of its last batch included).
    Among at most ``n_buckets`` contiguous groups, the split minimising cost +
    ``bucket_penalty * cost(one group) * n_groups`` wins.
    """
    e_round = np.array([_round_up(int(e), edge_multiple) for e in n_edges])
    values = np.unique(e_round)  # [M] ascending
    m = len(values)
    counts = np.array([(e_round == v).sum() for v in values])
    atoms = np.array([n_atoms[e_round == v].max() for v in values])

    cost = np.full((m, m), np.inf)  # cost[i, j]: one group of values i..j
    for i in range(m):
        c, a = 0, 0
        for j in range(i, m):
            c += int(counts[j])
            a = max(a, _round_up(int(atoms[j]), atom_multiple))
            cost[i, j] = math.ceil(c / batch_size) * batch_size * (a + int(values[j]))

    k_max = min(int(n_buckets), m)
    best = np.full((k_max + 1, m), np.inf)
    start = np.zeros((k_max + 1, m), dtype=np.int64)
    for j in range(m):
        best[1, j] = cost[0, j]
    for k in range(2, k_max + 1):
        for j in range(k - 1, m):
            for i in range(k - 1, j + 1):
                c = best[k - 1, i - 1] + cost[i, j]
                if c < best[k, j]:
                    best[k, j], start[k, j] = c, i
    penalty = bucket_penalty * best[1, m - 1]
    k = min(range(1, k_max + 1), key=lambda k: (best[k, m - 1] + penalty * k, k))
    groups, j = [], m - 1
    while k >= 1:
        i = int(start[k, j]) if k > 1 else 0
        groups.append((i, j))
        j, k = i - 1, k - 1
    out, n_pad = [], 0
    for i, j in reversed(groups):
        n_pad = max(n_pad, _round_up(int(atoms[i : j + 1].max()), atom_multiple))
        out.append((n_pad, int(values[j])))
    return out


def make_buckets(
    data,
    cutoff: float | None = None,
    batch_size: int = 1,
    n_buckets: int = 3,
    *,
    skin: float = 0.0,
    atom_multiple: int = 8,
    edge_multiple: int = 64,
    bucket_penalty: float = 0.05,
) -> tuple[Bucket, ...]:
    """A few padded shapes that fit every structure of ``data``.

    For each periodicity, structures sorted by edge count (rounded up to
    ``edge_multiple``) are cut into at most ``n_buckets`` contiguous groups so
    that the padded work per epoch, ``Σ batches × B × (n_pad + e_pad)``, is
    least (dynamic programming). Each further bucket costs one more
    compilation of the training step, so it is only made if it saves more than
    ``bucket_penalty`` of the one-bucket work. Atom counts are rounded up to
    ``atom_multiple`` and made non-decreasing with the edge counts, so the
    smallest bucket a structure fits is well defined.

    Args:
        data: a :class:`Dataset`, or labeled structures (then ``cutoff`` is
            needed). Make buckets from the whole data set, before splitting, so
            that validation and test structures fit too.
        cutoff: graph cutoff, Å, when ``data`` is not a Dataset.
        batch_size: structures per batch ``B`` (padded structures of a last,
            incomplete batch count as work).
        n_buckets: most buckets per periodicity (compilations of a step).
        skin: graph skin, Å, when ``data`` is not a Dataset.
        atom_multiple: round ``n_pad`` up to a multiple of this.
        edge_multiple: round ``e_pad`` up to a multiple of this.
        bucket_penalty: least fraction of the one-bucket work that a further
            bucket must save; 0 always uses up to ``n_buckets``.

    Returns:
        Sorted buckets (by ``pbc``, then size).

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.io import LabeledStructure
        >>> items = [LabeledStructure.from_atoms(bulk("Cu", "fcc", a=3.6).repeat(r))
        ...          for r in (1, 3)]
        >>> [(b.n_atoms, b.n_edges) for b in make_buckets(items, 3.0, n_buckets=2)]
        [(8, 64), (32, 384)]
    """
    ds = _as_dataset(data, cutoff, skin)
    if int(n_buckets) < 1 or int(batch_size) < 1:
        raise DataError(
            f"n_buckets and batch_size must be at least 1, got {n_buckets} and "
            f"{batch_size}"
        )
    if not bucket_penalty >= 0:
        raise DataError(f"bucket_penalty must be >= 0, got {bucket_penalty!r}")
    n_at, n_ed = ds.n_atoms, ds.n_edges
    out = set()
    for pbc in sorted(set(ds.pbc)):
        idx = np.array([k for k, p in enumerate(ds.pbc) if p == pbc])
        sizes = _group_sizes(
            n_at[idx],
            n_ed[idx],
            int(batch_size),
            int(n_buckets),
            int(atom_multiple),
            int(edge_multiple),
            float(bucket_penalty),
        )
        out.update(Bucket(pbc=pbc, n_atoms=a, n_edges=e) for a, e in sizes)
    return tuple(sorted(out))


def assign_buckets(data: Dataset, buckets: Sequence[Bucket]) -> np.ndarray:
    """The index in ``buckets`` of the smallest bucket each structure fits.

    Args:
        data: the dataset.
        buckets: candidate shapes (from :func:`make_buckets`).

    Returns:
        ``[N]`` int64 bucket indices.

    Raises:
        DataError: a structure fits no bucket (naming it and its size).
    """
    buckets = tuple(buckets)
    cost = [b.n_edges * 4 + b.n_atoms for b in buckets]  # edges dominate
    order = sorted(range(len(buckets)), key=lambda b: (cost[b], buckets[b]))
    out = np.empty(len(data), dtype=np.int64)
    for k, (n, e, pbc) in enumerate(
        zip(data.n_atoms, data.n_edges, data.pbc, strict=True)
    ):
        for b in order:
            if buckets[b].fits(int(n), int(e), pbc):
                out[k] = b
                break
        else:
            raise DataError(
                f"structure {k} ({n} atoms, {e} edges, pbc={pbc}) fits none of the "
                f"{len(buckets)} buckets {list(buckets)}; make the buckets from a "
                "dataset that contains it (make_buckets on the whole data set, "
                "before splitting)"
            )
    return out


def _batch_cell(cell: np.ndarray, pbc) -> np.ndarray:
    """The cell with zero non-periodic lattice vectors set to ``EMPTY_CELL`` Å.

    Non-periodic vectors never enter edge vectors (their shifts are 0), so this
    changes no energy or force; it only keeps the volume, and hence a vmapped
    stress, finite for molecules and slabs stored without vacuum vectors.
    """
    zero = [k for k in range(3) if not pbc[k] and np.linalg.norm(cell[k]) < 1e-12]
    if not zero:
        return cell
    filled = _effective_cell(cell, np.asarray(pbc))
    filled[zero] *= EMPTY_CELL
    return filled


def _ghosts(n_real: int, n_pad: int, top: float, spacing: float) -> np.ndarray:
    """Positions of padded atoms: one distinct far point each, Å."""
    k = np.arange(n_pad - n_real, dtype=np.float64)
    far = top + GHOST_OFFSET
    out = np.full((len(k), 3), far)
    out[:, 0] += k * spacing
    return out


def make_batch(
    data: Dataset,
    indices,
    bucket: Bucket,
    batch_size: int,
    dtype=None,
) -> Batch:
    """One padded :class:`Batch` of the structures ``data[indices]``.

    Args:
        data: the dataset.
        indices: ``[k]`` dataset indices, ``k <= batch_size``; the remaining
            slots are padded structures.
        bucket: the shape; every structure must fit it.
        batch_size: structure slots ``B``.
        dtype: float dtype of positions, cell and labels; default JAX's
            default float.

    Returns:
        The batch, as JAX arrays.

    Raises:
        DataError: too many indices, or a structure that does not fit.
    """
    ds, chunk = data, np.asarray(indices, dtype=np.int64).reshape(-1)
    dtype = dtype or jnp.result_type(float)
    if len(chunk) > int(batch_size):
        raise DataError(
            f"{len(chunk)} structures do not fit a batch of {batch_size}; pass at "
            "most batch_size indices"
        )
    n_at, n_ed = ds.n_atoms, ds.n_edges
    for k in chunk:
        if not bucket.fits(int(n_at[k]), int(n_ed[k]), ds.pbc[k]):
            raise DataError(
                f"structure {int(k)} ({int(n_at[k])} atoms, {int(n_ed[k])} edges, "
                f"pbc={ds.pbc[k]}) does not fit {bucket}; choose its bucket with "
                "assign_buckets"
            )
    b, n_pad, e_pad = int(batch_size), bucket.n_atoms, bucket.n_edges
    spacing = ds.cutoff + ds.skin + 1.0
    positions = np.empty((b, n_pad, 3))
    cell = np.tile(np.eye(3) * EMPTY_CELL, (b, 1, 1))
    numbers = np.zeros((b, n_pad), np.int32)
    senders = np.zeros((b, e_pad), np.int32)
    receivers = np.zeros((b, e_pad), np.int32)
    shifts = np.zeros((b, e_pad, 3), np.int32)
    edge_mask = np.zeros((b, e_pad), bool)
    energy = np.zeros(b)
    forces = np.zeros((b, n_pad, 3))
    stress = np.zeros((b, 3, 3))
    atom_mask = np.zeros((b, n_pad), bool)
    has = np.zeros((3, b), bool)
    n_atoms = np.zeros(b, np.int32)
    index = np.full(b, -1, np.int32)
    for slot in range(b):
        if slot >= len(chunk):
            positions[slot] = _ghosts(0, n_pad, 0.0, spacing)
            continue
        k = int(chunk[slot])
        r = ds.positions[k]
        n, e = len(r), len(ds.senders[k])
        top = float(np.abs(r).max()) if n else 0.0
        positions[slot, :n] = r
        positions[slot, n:] = _ghosts(n, n_pad, top, spacing)
        cell[slot] = _batch_cell(ds.cells[k], ds.pbc[k])
        numbers[slot, :n] = ds.numbers[k]
        senders[slot, :e] = ds.senders[k]
        receivers[slot, :e] = ds.receivers[k]
        shifts[slot, :e] = ds.shifts[k]
        edge_mask[slot, :e] = True
        energy[slot] = ds.energy[k]
        forces[slot, :n] = ds.forces[k]
        stress[slot] = ds.stress[k]
        atom_mask[slot, :n] = True
        has[:, slot] = ds.has_energy[k], ds.has_forces[k], ds.has_stress[k]
        n_atoms[slot] = n
        index[slot] = k
    pos = jnp.asarray(positions, dtype)
    structure = Structure(
        positions=pos,
        cell=jnp.asarray(cell, dtype),
        numbers=jnp.asarray(numbers),
        pbc=bucket.pbc,
    )
    graph = Graph(
        senders=jnp.asarray(senders),
        receivers=jnp.asarray(receivers),
        shifts=jnp.asarray(shifts),
        mask=jnp.asarray(edge_mask),
        overflow=jnp.zeros(b, bool),
        images=jnp.zeros((b, 1, 3), jnp.int32),
        reference_positions=pos,
        cutoff=ds.cutoff,
        skin=ds.skin,
    )
    return Batch(
        structure=structure,
        graph=graph,
        energy=jnp.asarray(energy, dtype),
        forces=jnp.asarray(forces, dtype),
        stress=jnp.asarray(stress, dtype),
        atom_mask=jnp.asarray(atom_mask),
        structure_mask=jnp.asarray(index >= 0),
        has_energy=jnp.asarray(has[0]),
        has_forces=jnp.asarray(has[1]),
        has_stress=jnp.asarray(has[2]),
        n_atoms=jnp.asarray(n_atoms),
        index=jnp.asarray(index),
    )


def batch_plan(
    data: Dataset,
    batch_size: int,
    buckets: Sequence[Bucket],
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> list[tuple[Bucket, np.ndarray]]:
    """The bucket and dataset indices of each batch of one epoch, in order.

    :func:`batches` is ``make_batch(data, indices, bucket, batch_size)`` over
    this plan; use the plan directly to map predictions back to structures.

    Args:
        data: the dataset.
        batch_size: structure slots per batch.
        buckets: the allowed shapes.
        shuffle: shuffle within buckets and the order of batches.
        seed: seed of the shuffle.
        epoch: epoch number, mixed into the seed.
        drop_last: leave out incomplete batches.

    Returns:
        ``[(bucket, [k] int64 indices)]`` with ``k <= batch_size``; every
        structure appears exactly once (unless ``drop_last``).

    Raises:
        DataError: a bad ``batch_size`` or a structure that fits no bucket.
    """
    ds = data
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size!r}")
    buckets = tuple(buckets)
    which = assign_buckets(ds, buckets)
    rng = np.random.default_rng([int(seed), int(epoch)])
    plan = []
    for b, bucket in enumerate(buckets):
        idx = np.flatnonzero(which == b)
        if shuffle:
            idx = rng.permutation(idx)
        for start in range(0, len(idx), int(batch_size)):
            chunk = idx[start : start + int(batch_size)]
            if drop_last and len(chunk) < batch_size:
                continue
            plan.append((bucket, chunk))
    if shuffle:
        plan = [plan[k] for k in rng.permutation(len(plan))]
    return plan


def n_batches(
    data: Dataset,
    batch_size: int,
    *,
    buckets: Sequence[Bucket] | None = None,
    drop_last: bool = False,
) -> int:
    """Number of batches :func:`batches` yields per epoch (for progress bars)."""
    if buckets is None:
        buckets = make_buckets(data, batch_size=batch_size)
    return len(batch_plan(data, batch_size, buckets, drop_last=drop_last))


def batches(
    data,
    cutoff: float | None = None,
    batch_size: int = 8,
    *,
    buckets: Sequence[Bucket] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    skin: float = 0.0,
    dtype=None,
) -> Iterator[Batch]:
    """One epoch of padded :class:`Batch` es, shapes taken from ``buckets``.

    Each structure appears exactly once per epoch (unless ``drop_last``). A
    batch holds structures of one bucket; the last batch of a bucket is filled
    with padded structures (``structure_mask`` False).

    Args:
        data: a :class:`Dataset` (built once), or labeled structures plus
            ``cutoff`` (then neighbor lists are rebuilt on every call).
        cutoff: graph cutoff, Å, when ``data`` is not a Dataset.
        batch_size: structure slots per batch ``B``.
        buckets: the allowed shapes; default ``make_buckets(data, batch_size=
            batch_size)``. Pass the same buckets every epoch and for every
            split so that the step compiles at most ``len(buckets)`` times.
        shuffle: shuffle structures within buckets and the order of batches.
        seed: seed of the shuffle.
        epoch: epoch number, mixed into the seed (a new order each epoch,
            reproducible from ``(seed, epoch)``).
        drop_last: skip incomplete batches instead of padding them.
        skin: graph skin, Å, when ``data`` is not a Dataset.
        dtype: float dtype of positions, cell and labels; default JAX's
            default float (float64 with ``jax_enable_x64``).

    Yields:
        :class:`Batch` objects of JAX arrays.

    Raises:
        DataError: a structure fits no bucket, or a bad ``batch_size``.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.io import LabeledStructure
        >>> items = [LabeledStructure.from_atoms(bulk("Cu", "fcc", a=3.6))] * 3
        >>> [b.structure.positions.shape for b in batches(items, 3.0, batch_size=2)]
        [(2, 8, 3), (2, 8, 3)]
    """
    ds = _as_dataset(data, cutoff, skin)
    if buckets is None:
        buckets = make_buckets(ds, batch_size=batch_size)
    dtype = dtype or jnp.result_type(float)
    plan = batch_plan(
        ds,
        batch_size,
        buckets,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        drop_last=drop_last,
    )
    for bucket, chunk in plan:
        yield make_batch(ds, chunk, bucket, batch_size, dtype)


def stack_structures(structures: Sequence[Structure]) -> Structure:
    """Stack structures of equal size and periodicity along a new axis 0.

    Args:
        structures: ``B`` structures with the same number of atoms ``n`` and
            the same ``pbc``.

    Returns:
        A :class:`Structure` with positions ``[B, n, 3]`` Å, cell ``[B, 3, 3]``
        Å and numbers ``[B, n]``, for ``jax.vmap``.

    Raises:
        DataError: empty input, or mixed sizes or periodicities (pad with
            :func:`batches` instead).

    Example:
        >>> import numpy as np
        >>> s = Structure.create([[0, 0, 0]], np.eye(3) * 3.0, [29])
        >>> stack_structures([s, s]).positions.shape
        (2, 1, 3)
    """
    structures = list(structures)
    if not structures:
        raise DataError("stack_structures needs at least one structure, got none")
    sizes = {int(s.positions.shape[0]) for s in structures}
    pbcs = {tuple(s.pbc) for s in structures}
    if len(sizes) > 1 or len(pbcs) > 1:
        raise DataError(
            f"cannot stack structures with atom counts {sorted(sizes)} and pbc "
            f"{sorted(pbcs)}; stack equal sizes only, or pad them with "
            "mldiff.data.batches"
        )
    return jax.tree.map(lambda *x: jnp.stack(x), *structures)
