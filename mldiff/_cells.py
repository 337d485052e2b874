"""Periodic pair search in NumPy (layer 0: no mldiff imports).

Finds every ordered pair (i, j, S) with ``|r_j - r_i + S @ cell| < cutoff`` for
any cell — smaller than the cutoff, strongly skewed, or partly/non-periodic — by
building all periodic images that can lie within the cutoff of the home cell and
querying a k-d tree. This is the host-side engine behind
:func:`mldiff.neighbors.neighbor_list` and the overlap check of
:func:`mldiff.structure.validate`.
"""

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["pairs_within"]


def _effective_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Replace zero-length non-periodic vectors by orthonormal complements.

    Only periodic directions need real lattice vectors; a slab or wire may leave
    the others zero. Those are filled with unit vectors orthogonal to the rest
    so that fractional coordinates are defined (shifts along them stay 0).
    """
    cell = np.array(cell, dtype=np.float64)
    zero = [k for k in range(3) if not pbc[k] and np.linalg.norm(cell[k]) < 1e-12]
    if not zero:
        return cell
    given = [k for k in range(3) if k not in zero]
    if given:
        _, _, vt = np.linalg.svd(cell[given])
        complement = vt[len(given) :]
    else:
        complement = np.eye(3)
    for row, k in enumerate(zero):
        cell[k] = complement[row]
    if np.linalg.det(cell) < 0:
        cell[zero[0]] *= -1.0
    return cell


def pairs_within(
    positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs closer than ``cutoff`` with their image shifts.

    Args:
        positions: ``[n, 3]`` Cartesian coordinates, Å (may lie outside the cell).
        cell: ``[3, 3]`` lattice vectors as rows, Å.
        pbc: three periodicity flags.
        cutoff: pair cutoff, Å (strict: pairs at exactly ``cutoff`` are excluded).

    Returns:
        ``(i, j, S, d)``: ``[e]`` int indices, ``[e, 3]`` int shifts such that the
        vector from i to j is ``r_j - r_i + S @ cell``, and ``[e]`` distances, Å,
        sorted by i, then j, then S. Self pairs with zero shift are excluded.
    """
    pos = np.asarray(positions, dtype=np.float64)
    n = len(pos)
    pbc = np.asarray(pbc, dtype=bool)
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3), int), np.zeros(0))
    if n == 0 or cutoff <= 0:
        return empty
    if not pbc.any():
        cell_eff = np.eye(3)
        offsets = np.zeros((n, 3), int)
        wrapped = pos
        shifts = np.zeros((1, 3), int)
    else:
        cell_eff = _effective_cell(cell, pbc)
        inv = np.linalg.inv(cell_eff)
        frac = pos @ inv
        offsets = np.where(pbc, np.floor(frac), 0.0).astype(int)
        wrapped = (frac - offsets) @ cell_eff
        # plane spacings d_k = 1 / |b_k| with b_k the reciprocal vectors (columns)
        spacing = 1.0 / np.linalg.norm(inv, axis=0)
        reach = np.where(pbc, np.ceil(cutoff / spacing), 0).astype(int)
        ranges = [np.arange(-reach[k], reach[k] + 1) for k in range(3)]
        shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    # image atoms: shift-major, so image index m = s * n + j
    img = (shifts @ cell_eff)[:, None, :] + wrapped[None, :, :]
    img = img.reshape(-1, 3)
    img_j = np.tile(np.arange(n), len(shifts))
    img_s = np.repeat(shifts, n, axis=0)
    if pbc.any():
        # keep images whose fractional coordinates lie within reach of the cell
        f = img @ np.linalg.inv(cell_eff)
        pad = cutoff / spacing
        keep = np.all(~pbc | ((f > -pad - 1e-9) & (f < 1 + pad + 1e-9)), axis=1)
        img, img_j, img_s = img[keep], img_j[keep], img_s[keep]
    home = cKDTree(wrapped)
    images = cKDTree(img)
    coo = home.sparse_distance_matrix(images, cutoff, output_type="ndarray")
    i = coo["i"].astype(int)
    m = coo["j"].astype(int)
    j = img_j[m]
    s_wrapped = img_s[m]
    not_self = ~((i == j) & np.all(s_wrapped == 0, axis=1))
    i, j, s_wrapped = i[not_self], j[not_self], s_wrapped[not_self]
    # back to the caller's (unwrapped) positions: r_w = r - off @ cell
    S = s_wrapped - offsets[j] + offsets[i]
    d = np.linalg.norm(pos[j] - pos[i] + S @ np.asarray(cell, np.float64), axis=1)
    keep = d < cutoff
    i, j, S, d = i[keep], j[keep], S[keep], d[keep]
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], S[order], d[order]
