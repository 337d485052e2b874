"""Cell-list pair search inside ``jit`` with integer image shifts (layer 0).

The cell is cut into ``n_a × n_b × n_c`` bins along its fractional coordinates.
Along a periodic lattice vector ``a_k`` the bin count is
``n_k = max(floor(w_k / R), 1)``, where ``w_k = 1 / |b_k|`` is the distance
between the lattice planes spanned by the two other vectors (``b_k`` the
reciprocal vector) and ``R`` the search radius, so every bin is at least ``R``
thick in the direction that matters, for orthorhombic and triclinic cells alike.
A pair closer than ``R`` then differs by at most one bin along each direction
(more when the cell itself is thinner than ``R``: one bin of ``w_k`` and
``ceil(R / w_k)`` bins of reach). Non-periodic directions are not binned.

Each bin holds at most ``bin_capacity`` atom indices (a static ``[bins, c]``
table); every atom looks at the bins at the given offsets, ``[m, 3]`` integer
triples (the 27 of ``{-1, 0, 1}³`` in a fully periodic cell of ≥ 1 bin per
radius). The offset is taken on the *unwrapped* bin index ``u = b + o``: the
bin searched is ``u mod n`` and the image shift of its atoms is
``floor(u / n)``, so every (atom, image) candidate appears once, even with one
or two bins along a direction. The per-edge shift in the caller's unwrapped
positions is ``S = shift − off_j + off_i`` with ``off = floor(frac)``.

Memory is O(n · m) plus a bounded scratch instead of the O(n² · images) of an
all-pairs search: atoms are scanned in chunks of about ``2²¹ / (m · c)``, each
chunk's pairs written to their edge slots (edges of earlier atoms plus the rank
in the atom's row), so the edges come out sorted by sender.
If a bin holds more than ``c`` atoms, more than ``capacity`` edges are found,
or the cell has become too thin for its bins, ``overflow`` is set: no pair is
ever dropped silently.

References:
    Allen & Tildesley, *Computer Simulation of Liquids* (2nd ed., 2017),
    §5.3.2 (cell structures and linked lists); jax-md ``partition.cell_list``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.errors import ConfigError

__all__ = ["layout", "bin_counts", "pairs"]

_CHUNK_CANDIDATES = 2**21  # candidate pairs per chunk of atoms (~50 MB scratch)


def _widths_np(cell: np.ndarray, pbc) -> np.ndarray:
    """Plane spacings along the periodic vectors (inf elsewhere), Å."""
    periodic = [k for k in range(3) if pbc[k]]
    widths = np.full(3, np.inf)
    if periodic:
        a = np.asarray(cell, np.float64)[periodic]
        dual = a.T @ np.linalg.inv(a @ a.T)  # [3, p], dual basis in span(a)
        widths[periodic] = 1.0 / np.linalg.norm(dual, axis=0)
    return widths


def layout(cell, pbc, radius: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Bin counts and bin offsets for a cell and search radius (host side).

    Args:
        cell: ``[3, 3]`` lattice vectors as rows, Å.
        pbc: three periodicity flags.
        radius: search radius ``cutoff + skin``, Å.

    Returns:
        ``(bins, offsets)``: the number of bins along each lattice vector
        (1 along non-periodic ones) and the ``[m, 3]`` int32 bin offsets to search.
    """
    widths = _widths_np(cell, pbc)
    bins, ranges = [], []
    for k in range(3):
        if not pbc[k]:
            bins.append(1)
            ranges.append(np.zeros(1, int))
            continue
        n_k = max(int(np.floor(widths[k] / radius)), 1)
        reach = int(np.ceil(radius / (widths[k] / n_k) - 1e-12))
        bins.append(n_k)
        ranges.append(np.arange(-reach, reach + 1))
    offsets = np.array(list(itertools.product(*ranges)), np.int32).reshape(-1, 3)
    return (bins[0], bins[1], bins[2]), offsets


def _frame(positions, cell, pbc):
    """Fractional offsets, wrapped positions, reduced coordinates and widths.

    Fractional coordinates are taken along the periodic vectors only (dual basis
    of their span), so zero or arbitrary non-periodic vectors never matter.
    """
    n = positions.shape[0]
    periodic = [k for k in range(3) if pbc[k]]
    if not periodic:
        zero = jnp.zeros((n, 3), positions.dtype)
        return zero, positions, zero, jnp.full(3, jnp.inf, positions.dtype)
    idx = jnp.array(periodic)
    a = cell[idx]  # [p, 3]
    dual = a.T @ jnp.linalg.inv(a @ a.T)  # [3, p]
    frac = jnp.zeros((n, 3), positions.dtype).at[:, idx].set(positions @ dual)
    off = jnp.floor(frac)  # 0 along non-periodic directions
    wrapped = positions - off @ cell
    widths = (
        jnp.full(3, jnp.inf, positions.dtype)
        .at[idx]
        .set(1.0 / jnp.linalg.norm(dual, axis=0))
    )
    return off, wrapped, frac - off, widths


def _bin_of(reduced, bins):
    """``[n, 3]`` int32 bin index of each atom from reduced coordinates in [0, 1)."""
    b = jnp.floor(reduced * jnp.array(bins, reduced.dtype)).astype(jnp.int32)
    return jnp.clip(b, 0, jnp.array(bins, jnp.int32) - 1)  # reduced 1.0 by rounding


def _flat(b, bins):
    return (b[..., 0] * bins[1] + b[..., 1]) * bins[2] + b[..., 2]


def bin_counts(positions, cell, pbc, bins) -> np.ndarray:
    """Number of atoms in each bin, ``[n_a · n_b · n_c]`` (host side)."""
    positions = jnp.asarray(positions)
    cell = jnp.asarray(cell, positions.dtype)
    _, _, reduced, _ = _frame(positions, cell, pbc)
    flat = _flat(_bin_of(reduced, bins), bins)
    return np.bincount(np.asarray(flat), minlength=int(np.prod(bins)))


def pairs(positions, cell, pbc, radius, bins, offsets, bin_capacity, capacity):
    """All ordered pairs closer than ``radius``, padded to ``capacity``; jit-able.

    Args:
        positions: ``[n, 3]`` Cartesian positions, Å (may lie outside the cell).
        cell: ``[3, 3]`` lattice vectors as rows, Å.
        pbc: three periodicity flags (static).
        radius: search radius, Å (static).
        bins: bin counts along the lattice vectors (static), from :func:`layout`.
        offsets: ``[m, 3]`` int bin offsets, from :func:`layout`.
        bin_capacity: atoms a bin can hold (static).
        capacity: edge slots (static).

    Returns:
        ``(i, j, S, valid, overflow)``: ``[capacity]`` int32 senders and
        receivers sorted by sender, ``[capacity, 3]`` int32 shifts with
        ``r_j − r_i + S @ cell`` the edge vector, ``[capacity]`` bool for real
        edges, and a bool that is True if a bin or the edge list was too small
        or the bins have become thinner than ``radius`` allows.
    """
    n = positions.shape[0]
    n_bins = int(np.prod(bins))
    c = int(bin_capacity)
    off, wrapped, reduced, widths = _frame(positions, cell, pbc)
    b = _bin_of(reduced, bins)  # [n, 3]
    flat = _flat(b, bins)  # [n]

    # bin table [n_bins, c] of atom indices, n marks an empty slot
    counts = jnp.zeros(n_bins, jnp.int32).at[flat].add(1)
    order = jnp.argsort(flat, stable=True)
    sorted_flat = flat[order]
    start = jnp.cumsum(counts) - counts
    slot = jnp.arange(n, dtype=jnp.int32) - start[sorted_flat]
    table = (
        jnp.full((n_bins, c), n, jnp.int32)
        .at[sorted_flat, slot]
        .set(order.astype(jnp.int32), mode="drop")
    )

    # candidates of atom i: the atoms of bin (b_i + o) mod bins for each offset
    # o, with the lattice shift floor((b_i + o) / bins) of that bin
    nb = jnp.array(bins, jnp.int32)
    offsets = offsets.astype(jnp.int32)
    m = offsets.shape[0]
    per_atom = m * c
    index = jnp.int32 if n * per_atom < 2**31 else jnp.int64
    if index == jnp.int64 and not jax.config.jax_enable_x64:
        raise ConfigError(
            f"{n} atoms x {per_atom} candidates per atom exceed 2^31 slots; "
            "enable jax_enable_x64 for 64-bit indices"
        )
    w = jnp.concatenate([wrapped, jnp.zeros((1, 3), wrapped.dtype)])  # sentinel

    def within_of(atoms):
        """``[k, m·c]`` bool: candidate (o, slot) of each atom is a pair."""
        real = atoms < n  # the last chunk is padded with atoms >= n
        atoms = jnp.minimum(atoms, n - 1)
        u = b[atoms][:, None, :] + offsets[None, :, :]  # [k, m, 3]
        image = jnp.floor_divide(u, nb)
        cand = table[_flat(jnp.mod(u, nb), bins)]  # [k, m, c]
        base = image.astype(cell.dtype) @ cell - w[atoms][:, None, :]  # [k, m, 3]
        # |w_j - w_i + shift @ cell|² one component at a time: XLA then fuses
        # each gather into the sum instead of materialising [k, m, c, 3]
        dist2 = jnp.zeros(cand.shape, wrapped.dtype)
        for k in range(3):
            dk = w[:, k][cand] + base[:, :, None, k]
            dist2 = dist2 + dk * dk
        is_self = (cand == atoms[:, None, None]) & jnp.all(image == 0, axis=-1)[
            :, :, None
        ]
        ok = (cand < n) & ~is_self & (dist2 < radius**2) & real[:, None, None]
        return ok.reshape(-1, per_atom)

    # compaction in chunks of atoms (bounded scratch memory): edge slot =
    # edges of earlier atoms + rank in the atom's row; the slot holds the flat
    # candidate index atom · m·c + o · c + slot
    chunk = min(n, max(1, _CHUNK_CANDIDATES // per_atom))
    n_chunks = -(-n // chunk)
    atoms = jnp.arange(n_chunks * chunk, dtype=jnp.int32).reshape(n_chunks, chunk)

    def body(carry, ids):
        idx, total = carry
        rows = within_of(ids)
        n_row = jnp.sum(rows, axis=1, dtype=index)
        first = total + jnp.cumsum(n_row) - n_row
        slot = first[:, None] + jnp.cumsum(rows, axis=1, dtype=index) - 1
        slot = jnp.where(rows, slot, capacity)  # out of range: dropped
        flat_id = ids.astype(index)[:, None] * per_atom + jnp.arange(
            per_atom, dtype=index
        )
        idx = idx.at[slot.reshape(-1)].set(flat_id.reshape(-1), mode="drop")
        return (idx, total + jnp.sum(n_row, dtype=index)), None

    start = (jnp.zeros(capacity, index), jnp.zeros((), index))
    (idx, count), _ = jax.lax.scan(body, start, atoms)

    # the edges kept: recompute their receiver and shift from the flat index
    i = (idx // per_atom).astype(jnp.int32)
    o = (idx % per_atom) // c
    u = b[i] + offsets[o]  # [capacity, 3]
    j = table[_flat(jnp.mod(u, nb), bins), idx % c]
    shift = jnp.floor_divide(u, nb)
    valid = jnp.arange(capacity, dtype=index) < count
    offi = off.astype(jnp.int32)
    S = shift - offi[jnp.minimum(j, n - 1)] + offi[i]

    # the bins must still be thick enough for the offsets searched
    thin = jnp.asarray(False)
    periodic = [k for k in range(3) if pbc[k]]
    if periodic:
        reach = jnp.max(jnp.abs(offsets), axis=0).astype(widths.dtype)
        thickness = reach * widths / nb.astype(widths.dtype)
        thin = jnp.any(thickness[jnp.array(periodic)] < radius)
    overflow = (count > capacity) | (jnp.max(counts) > c) | thin
    return (
        jnp.where(valid, i, 0),
        jnp.where(valid, j, 0).astype(jnp.int32),
        jnp.where(valid[:, None], S, 0).astype(jnp.int32),
        valid,
        overflow,
    )
