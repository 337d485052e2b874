"""Neighbor graphs with static capacity, for any cell.

A :class:`Graph` stores directed edges i → j as integers: sender ``i``,
receiver ``j`` and the lattice shift ``S`` such that the edge vector is
``r_j - r_i + S @ cell`` — the meaning of ``ase.neighborlist.neighbor_list("ijS")``.
Geometry is recomputed from positions inside each energy function
(:func:`mldiff.space.edge_vectors`), so forces and stress are exact.

Two entry points:

* :func:`neighbor_list` — host-side NumPy, exact, any cell (cells smaller than
  the cutoff, skewed triclinic, slabs, molecules). Returns ``(i, j, S)``.
* :func:`allocate` / :func:`update` — a padded :class:`Graph` of fixed capacity
  for ``jit``. ``update`` recomputes edges inside ``jit``; if they no longer fit,
  it sets ``graph.overflow`` instead of dropping neighbors silently, and
  :func:`check` (outside ``jit``) raises :class:`NeighborListOverflowError`.
  With a Verlet ``skin``, :func:`needs_update` says when atoms have moved far
  enough that the graph must be rebuilt.

``update`` searches pairs by one of two methods, chosen by :func:`allocate` and
kept as static metadata of the graph:

* ``"all_pairs"`` compares all atom pairs over the periodic images in reach,
  O(n² m) memory: best for small or thin cells.
* ``"cell_list"`` bins atoms in fractional coordinates, bins at least
  ``cutoff + skin`` thick (orthorhombic or triclinic cells), and compares each
  atom with the atoms of the neighbouring bins only, O(n) memory; each bin has a
  fixed capacity and a full bin sets ``overflow`` like a full edge list
  (:mod:`mldiff._cell_list`).

``"auto"`` takes the cell list when there are at least
``CELL_LIST_MIN_ATOMS`` atoms and three or more bins along every direction
(so only fully periodic cells), and all pairs otherwise.

Example:
    >>> import numpy as np
    >>> from mldiff.structure import Structure
    >>> si = Structure.create([[0, 0, 0], [1.3575] * 3],
    ...                       [[0, 2.715, 2.715], [2.715, 0, 2.715], [2.715, 2.715, 0]],
    ...                       [14, 14])
    >>> i, j, S = neighbor_list(si, 2.5)
    >>> len(i)  # 4 bonds per atom in diamond
    8
"""

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mldiff import _cell_list
from mldiff._cells import pairs_within
from mldiff.errors import ConfigError, NeighborListOverflowError
from mldiff.structure import Structure

__all__ = [
    "Graph",
    "neighbor_list",
    "allocate",
    "update",
    "needs_update",
    "check",
    "METHODS",
    "CELL_LIST_MIN_ATOMS",
]

METHODS = ("auto", "cell_list", "all_pairs")
CELL_LIST_MIN_ATOMS = 128  # below this, "auto" compares all pairs


@flax.struct.dataclass
class Graph:
    """Padded directed neighbor graph of fixed capacity ``e``.

    Attributes:
        senders: ``[e]`` int32, edge origins i.
        receivers: ``[e]`` int32, edge targets j.
        shifts: ``[e, 3]`` int32 lattice shifts S (vector = r_j - r_i + S @ cell).
        mask: ``[e]`` bool, True for real edges, False for padding.
        overflow: ``[]`` bool, True if the last :func:`update` found more edges
            than the capacity, more atoms in a bin than ``bin_capacity``
            (cell list), or the cell needs more periodic images or bins than
            allocated. Results computed with an overflowed graph are wrong.
        images: ``[m, 3]`` int32 offsets searched by :func:`update`: lattice
            shifts (``"all_pairs"``) or bin offsets (``"cell_list"``).
        reference_positions: ``[n, 3]`` positions at the last build, Å.
        cutoff: cutoff radius the graph was built for, Å (static).
        skin: Verlet skin, Å (static); edges reach ``cutoff + skin``.
        method: ``"all_pairs"`` or ``"cell_list"``, how :func:`update`
            searches (static).
        bins: bins along the three lattice vectors (static; cell list only).
        bin_capacity: atoms one bin can hold (static; cell list only).
    """

    senders: jax.Array
    receivers: jax.Array
    shifts: jax.Array
    mask: jax.Array
    overflow: jax.Array
    images: jax.Array
    reference_positions: jax.Array
    cutoff: float = flax.struct.field(pytree_node=False, default=0.0)
    skin: float = flax.struct.field(pytree_node=False, default=0.0)
    method: str = flax.struct.field(pytree_node=False, default="all_pairs")
    bins: tuple[int, int, int] = flax.struct.field(pytree_node=False, default=(1, 1, 1))
    bin_capacity: int = flax.struct.field(pytree_node=False, default=0)

    @property
    def capacity(self) -> int:
        """Maximum number of edges the graph can hold."""
        return int(self.senders.shape[0])

    @property
    def n_edges(self) -> jax.Array:
        """Number of real (unmasked) edges."""
        return jnp.sum(self.mask)


def _as_structure(structure) -> Structure:
    if isinstance(structure, Structure):
        return structure
    if hasattr(structure, "get_positions"):  # ase.Atoms
        return Structure.from_ase(structure, check=False)
    raise TypeError(f"expected mldiff Structure or ase.Atoms, got {type(structure)}")


def neighbor_list(
    structure, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All directed pairs closer than ``cutoff``, as ``ase.neighborlist`` "ijS".

    Args:
        structure: :class:`Structure` or ``ase.Atoms``.
        cutoff: radius, Å.

    Returns:
        ``(i, j, S)``: ``[e]`` int senders, ``[e]`` int receivers and ``[e, 3]``
        int shifts with ``D = r_j - r_i + S @ cell``, sorted by ``i``.
    """
    s = _as_structure(structure)
    i, j, S, _ = pairs_within(
        np.asarray(s.positions, np.float64),
        np.asarray(s.cell, np.float64),
        s.pbc,
        float(cutoff),
    )
    return i, j, S


def _reach(cell: np.ndarray, pbc, radius: float) -> np.ndarray:
    """Number of periodic images needed along each lattice vector."""
    from mldiff._cells import _effective_cell

    inv = np.linalg.inv(_effective_cell(cell, np.asarray(pbc)))
    spacing = 1.0 / np.linalg.norm(inv, axis=0)
    return np.where(pbc, np.ceil(radius / spacing), 0).astype(int)


def _resolve_method(method: str, n: int, bins: tuple[int, int, int]) -> str:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    if n >= CELL_LIST_MIN_ATOMS and min(bins) >= 3:
        return "cell_list"
    return "all_pairs"


def allocate(
    structure,
    cutoff: float,
    *,
    skin: float = 0.0,
    method: str = "auto",
    capacity: int | None = None,
    capacity_multiplier: float = 1.25,
    bin_capacity: int | None = None,
) -> Graph:
    """Build a padded :class:`Graph` on the host.

    Args:
        structure: :class:`Structure` or ``ase.Atoms``.
        cutoff: interaction cutoff, Å.
        skin: Verlet skin, Å; edges are kept up to ``cutoff + skin`` so the
            graph stays valid until an atom moves ``skin / 2``.
        method: how :func:`update` searches pairs inside ``jit``: ``"all_pairs"``
            (O(n²) memory, any cell), ``"cell_list"`` (O(n), any cell, best for
            large ones) or ``"auto"`` (cell list from ``CELL_LIST_MIN_ATOMS``
            atoms and three bins of ``cutoff + skin`` along every direction).
        capacity: number of edge slots; default ``ceil(e * capacity_multiplier)``.
        capacity_multiplier: head-room for :func:`update` when ``capacity`` or
            ``bin_capacity`` is not given.
        bin_capacity: atoms per bin of the cell list; default the fullest bin
            ``b`` now as ``ceil(b * capacity_multiplier + 2 sqrt(b))``.

    Returns:
        The graph.

    Raises:
        NeighborListOverflowError: if an explicit ``capacity`` or
            ``bin_capacity`` is too small.
        ConfigError: for an unknown ``method``.
    """
    s = _as_structure(structure)
    radius = float(cutoff) + float(skin)
    cell = np.asarray(s.cell, np.float64)
    bins, offsets = _cell_list.layout(cell, s.pbc, radius)
    method = _resolve_method(method, len(s), bins)
    i, j, S = neighbor_list(s, radius)
    n_edges = len(i)
    if capacity is None:
        capacity = max(int(math.ceil(n_edges * capacity_multiplier)), 1)
    if n_edges > capacity:
        raise NeighborListOverflowError(
            f"{n_edges} edges within {radius:.3f} Å do not fit the capacity of "
            f"{capacity}; pass capacity>={n_edges} (or leave it None) or use a "
            "smaller cutoff"
        )
    if method == "cell_list":
        fullest = int(_cell_list.bin_counts(s.positions, cell, s.pbc, bins).max())
        if bin_capacity is None:
            # head-room for thermal fluctuations: ~2 standard deviations of a
            # Poisson count on top of the multiplier
            bin_capacity = int(
                math.ceil(fullest * capacity_multiplier + 2.0 * math.sqrt(fullest))
            )
        if fullest > bin_capacity:
            raise NeighborListOverflowError(
                f"{fullest} atoms in one bin do not fit the bin capacity of "
                f"{bin_capacity}; pass bin_capacity>={fullest} (or leave it None)"
            )
        images = offsets
    else:
        bins, bin_capacity = (1, 1, 1), 0
        reach = _reach(cell, s.pbc, radius)
        ranges = [np.arange(-reach[k], reach[k] + 1) for k in range(3)]
        images = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    pad = capacity - n_edges
    return Graph(
        senders=jnp.asarray(np.pad(i, (0, pad)), jnp.int32),
        receivers=jnp.asarray(np.pad(j, (0, pad)), jnp.int32),
        shifts=jnp.asarray(np.pad(S, ((0, pad), (0, 0))), jnp.int32),
        mask=jnp.asarray(np.arange(capacity) < n_edges),
        overflow=jnp.asarray(False),
        images=jnp.asarray(images, jnp.int32),
        reference_positions=s.positions,
        cutoff=float(cutoff),
        skin=float(skin),
        method=method,
        bins=tuple(int(b) for b in bins),
        bin_capacity=int(bin_capacity),
    )


def update(structure: Structure, graph: Graph) -> Graph:
    """Recompute the edges of ``graph`` for new positions/cell, inside ``jit``.

    Searches by ``graph.method`` (all pairs or cell list, see the module
    docstring). Keeps the capacity; sets ``overflow`` (and keeps the first
    ``capacity`` edges) if more edges are found, a bin of the cell list is full,
    or the cell now needs more periodic images or bins than allocated.

    Args:
        structure: the structure at its new geometry.
        graph: a graph from :func:`allocate` for a structure of the same atoms.

    Returns:
        The updated graph, with ``reference_positions`` set to the new positions.
    """
    if graph.method == "cell_list":
        i, j, S, valid, overflow = _cell_list.pairs(
            structure.positions,
            structure.cell,
            structure.pbc,
            graph.cutoff + graph.skin,
            graph.bins,
            graph.images,
            graph.bin_capacity,
            graph.capacity,
        )
        return graph.replace(
            senders=i,
            receivers=j,
            shifts=S,
            mask=valid,
            overflow=overflow,
            reference_positions=structure.positions,
        )
    return _update_all_pairs(structure, graph)


def _update_all_pairs(structure: Structure, graph: Graph) -> Graph:
    """:func:`update` by comparing all pairs over the images, O(n² m) memory."""
    r = structure.positions
    cell = structure.cell
    radius = graph.cutoff + graph.skin
    periodic = [k for k in range(3) if structure.pbc[k]]
    if periodic:
        # fractional coordinates along the periodic vectors only (dual basis of
        # their span), so zero or arbitrary non-periodic vectors never matter
        a = cell[jnp.array(periodic)]  # [p, 3]
        dual = a.T @ jnp.linalg.inv(a @ a.T)  # [3, p]
        frac = r @ dual  # [n, p]
        off_p = jnp.floor(frac)
        wrapped = r - off_p @ a
        off = jnp.zeros_like(r).at[:, jnp.array(periodic)].set(off_p)
        spacing = 1.0 / jnp.linalg.norm(dual, axis=0)  # [p] lattice-plane spacings
        need = jnp.ceil(radius / spacing)
        have = jnp.max(jnp.abs(graph.images), axis=0)[jnp.array(periodic)]
        images_short = jnp.any(need > have)
    else:
        off = jnp.zeros_like(r)
        wrapped = r
        images_short = jnp.asarray(False)
    img = graph.images.astype(r.dtype)  # [m, 3]
    # d[i, m, j] = w_j - w_i + s_m @ cell
    d = (
        wrapped[None, None, :, :]
        - wrapped[:, None, None, :]
        + (img @ cell)[None, :, None, :]
    )
    dist2 = jnp.sum(d * d, axis=-1)  # [n, m, n]
    n = r.shape[0]
    is_self = (jnp.arange(n)[:, None, None] == jnp.arange(n)[None, None, :]) & jnp.all(
        graph.images == 0, axis=1
    )[None, :, None]
    within = (dist2 < radius**2) & ~is_self
    count = jnp.sum(within)
    cap = graph.capacity
    i, m, j = jnp.nonzero(within, size=cap, fill_value=0)
    valid = jnp.arange(cap) < count
    s = graph.images[m] - off[j].astype(jnp.int32) + off[i].astype(jnp.int32)
    return graph.replace(
        senders=jnp.where(valid, i, 0).astype(jnp.int32),
        receivers=jnp.where(valid, j, 0).astype(jnp.int32),
        shifts=jnp.where(valid[:, None], s, 0).astype(jnp.int32),
        mask=valid,
        overflow=(count > cap) | images_short,
        reference_positions=r,
    )


def needs_update(structure: Structure, graph: Graph) -> jax.Array:
    """True if the graph must be rebuilt; jit-compatible.

    That is when an atom moved more than ``skin / 2`` since the last build, or
    the graph overflowed.
    """
    disp = jnp.linalg.norm(structure.positions - graph.reference_positions, axis=1)
    return graph.overflow | (jnp.max(disp, initial=0.0) > 0.5 * graph.skin)


def check(graph: Graph) -> Graph:
    """Raise :class:`NeighborListOverflowError` if ``graph`` overflowed (host side)."""
    if bool(graph.overflow):
        raise NeighborListOverflowError(
            f"neighbor graph overflowed its capacity of {graph.capacity} edges "
            "(or the cell shrank below the allocated periodic images); rebuild it "
            "with neighbors.allocate(structure, cutoff, capacity_multiplier=1.5)"
        )
    return graph
