"""Harmonic force constants as the exact Hessian of any mldiff energy.

``Φ[i, a, j, b] = ∂²E / ∂R_ia ∂R_jb`` in eV/Å², computed by forward-over-reverse
differentiation (a ``jvp`` of the ``grad``) along unit displacements. The
gradient is linearised once with :func:`jax.linearize`, and the Hessian-vector
products are mapped over the unit displacements in chunks with
``jax.lax.map(..., batch_size=chunk_size)``, so memory grows with
``chunk_size``, not with the number of rows.

Two ways to the full matrix:

* :func:`force_constants` computes every row (3n Hessian-vector products);
* with a :class:`SiteSymmetry` from :func:`site_symmetry` (spglib), only the rows
  of symmetry-independent atoms are computed and the rest are rebuilt with the
  space-group operations, ``Φ(g i, g j) = R Φ(i, j) Rᵀ`` (as phonopy's
  ``distribute_force_constants``). For fcc Cu and diamond Si that is 3 rows
  instead of 3n.

:func:`symmetrize` projects onto force constants that are symmetric under index
exchange, ``Φ_ij = Φ_jiᵀ``, and obey the acoustic sum rule
``Σ_j Φ_ij = 0`` (translational invariance).

Float64 is required: the functions raise :class:`~mldiff.errors.PrecisionError`
on float32 input.

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import neighbors, potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("sw")
    >>> s = Structure.from_ase(bulk("Si", "diamond", a=5.431, cubic=True))
    >>> g = neighbors.allocate(s, pot.cutoff)
    >>> fc = jax.jit(force_constants(pot.energy))(pot.init(None, s), s, g)
    >>> fc.shape
    (8, 3, 8, 3)
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mldiff.errors import StructureError, check_float64

__all__ = [
    "force_constants",
    "force_constant_rows",
    "symmetrize",
    "SiteSymmetry",
    "site_symmetry",
    "distribute",
]

DEFAULT_CHUNK_SIZE = 48  # Hessian-vector products evaluated together


def force_constant_rows(energy_fn, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Rows of the Hessian for selected atoms, by chunked forward-over-reverse.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        chunk_size: Hessian-vector products evaluated at once (memory knob).

    Returns:
        ``rows_fn(params, structure, graph, atoms)`` giving
        ``Float[Array, "k 3 n 3"]``, ``rows[s, a, j, b] = ∂²E/∂R_{atoms[s] a}∂R_jb``
        in eV/Å², for ``atoms``: ``[k]`` integer indices. Jit-compatible (the
        number of atoms ``k`` is static, the indices may be traced).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0, 0, 0], [1.0, 0, 0]], None, [1, 1], False,
        ...                      dtype=jnp.float64)
        >>> def e(params, s, g):  # a spring of 2 eV/Å² along x
        ...     return (s.positions[1, 0] - s.positions[0, 0] - 1.0) ** 2
        >>> rows = force_constant_rows(e)(None, s, None, jnp.array([0]))
        >>> rows[0, 0, :, 0].tolist()
        [2.0, -2.0]
    """

    def rows_fn(
        params, structure, graph, atoms: Int[Array, " k"]
    ) -> Float[Array, "k 3 n 3"]:
        check_float64("force constants", structure=structure)
        r = structure.positions
        n = r.shape[0]
        k = atoms.shape[0]

        def grad_fn(x):
            return jax.grad(
                lambda y: energy_fn(params, structure.replace(positions=y), graph)
            )(x)

        _, hvp = jax.linearize(grad_fn, r)  # primal and residuals computed once
        rows = jnp.repeat(jnp.asarray(atoms), 3)  # [3k] atom of each row
        comps = jnp.tile(jnp.arange(3), k)  # [3k] Cartesian direction
        basis = (
            jnp.zeros((3 * k, n, 3), r.dtype)
            .at[jnp.arange(3 * k), rows, comps]
            .set(1.0)
        )
        out = jax.lax.map(hvp, basis, batch_size=min(chunk_size, 3 * k))  # [3k, n, 3]
        return out.reshape(k, 3, n, 3)

    return rows_fn


def force_constants(energy_fn, *, chunk_size: int = DEFAULT_CHUNK_SIZE, symmetry=None):
    """Supercell force constants, the exact Hessian of ``energy_fn``.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        chunk_size: Hessian-vector products evaluated at once; peak memory is
            about ``chunk_size`` times that of one force evaluation.
        symmetry: optional :class:`SiteSymmetry` of the supercell (from
            :func:`site_symmetry`); then only the rows of its independent atoms
            are differentiated and the rest are rebuilt by symmetry.

    Returns:
        ``fc_fn(params, structure, graph) -> Float[Array, "n 3 n 3"]``,
        ``Φ[i, a, j, b] = ∂²E/∂R_ia∂R_jb`` in eV/Å². Jit-compatible. Raises
        :class:`PrecisionError` for float32 structures.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0, 0, 0], [1.0, 0, 0]], None, [1, 1], False,
        ...                      dtype=jnp.float64)
        >>> def e(params, s, g):
        ...     return jnp.sum((s.positions[1] - s.positions[0]) ** 2)
        >>> force_constants(e)(None, s, None)[0, :, 1, :].tolist()[0]
        [-2.0, 0.0, 0.0]
    """
    rows_fn = force_constant_rows(energy_fn, chunk_size=chunk_size)

    def fc_fn(params, structure, graph) -> Float[Array, "n 3 n 3"]:
        if symmetry is None:
            n = structure.positions.shape[0]
            return rows_fn(params, structure, graph, jnp.arange(n))
        rows = rows_fn(params, structure, graph, jnp.asarray(symmetry.independent))
        return distribute(rows, symmetry)

    return fc_fn


def symmetrize(fc: Float[Array, "n 3 n 3"]) -> Float[Array, "n 3 n 3"]:
    """Impose index-exchange symmetry and the acoustic sum rule, in one projection.

    With ``Φ ← (Φ + Φᵀ)/2`` (exchange of ``(i, a)`` and ``(j, b)``), the row sums
    ``S_i = Σ_j Φ_ij`` (3×3 blocks) and their mean ``S̄ = Σ_i S_i / n``, returns
    ``Φ_ij − S_i/n − S_jᵀ/n + S̄/n``. This is the orthogonal (least-squares)
    projection onto symmetric force constants with ``Σ_j Φ_ij = 0`` for every
    ``i`` (double centering); it is idempotent and leaves an exact Hessian of
    a translation-invariant energy unchanged to rounding.

    Args:
        fc: ``[n, 3, n, 3]`` force constants, eV/Å².

    Returns:
        ``[n, 3, n, 3]`` symmetrized force constants, eV/Å².

    Example:
        >>> import jax.numpy as jnp
        >>> fc = symmetrize(jnp.ones((2, 3, 2, 3)))
        >>> float(jnp.abs(fc.sum(axis=2)).max())
        0.0
    """
    n = fc.shape[0]
    fc = 0.5 * (fc + jnp.transpose(fc, (2, 3, 0, 1)))
    s = fc.sum(axis=2)  # [n, 3(a), 3(b)]
    s_mean = s.sum(axis=0) / n  # [3, 3], symmetric
    s_i = s[:, :, None, :]  # [n, 3, 1, 3]: S_i[a, b]
    s_j = jnp.transpose(s, (2, 0, 1))[None]  # [1, 3, n, 3]: S_j[b, a]
    corr = (s_i + s_j - s_mean[None, :, None, :]) / n
    return fc - corr


class SiteSymmetry(NamedTuple):
    """How the atoms of a supercell map onto its symmetry-independent atoms.

    Atom ``i`` is the image of independent atom ``independent[of[i]]`` under a
    space-group operation with Cartesian rotation ``rotations[i]`` that sends
    atom ``l`` to atom ``permutations[i, l]``.

    Attributes:
        independent: ``[k]`` indices of the symmetry-independent atoms.
        of: ``[n]`` for each atom, the position in ``independent`` of its
            representative.
        rotations: ``[n, 3, 3]`` Cartesian rotation of the chosen operation
            (acting on column vectors), dimensionless.
        inverse_permutations: ``[n, n]`` ``inverse_permutations[i, j]`` is the
            atom the chosen operation of ``i`` sends to ``j``.
    """

    independent: np.ndarray
    of: np.ndarray
    rotations: np.ndarray
    inverse_permutations: np.ndarray


def _matcher(frac, sites, n_translations, symprec_frac):
    """``match(points)``: index of the atom at each point (mod 1), or -1.

    Atoms of one primitive site differ by lattice translations whose supercell
    fractional coordinates are multiples of ``1/n_translations``, so
    ``(x − x_site) · n_translations`` is an integer triple that keys the atom
    exactly; a point matches site ``s`` when that product is integral to within
    the tolerance. Vectorised NumPy: no pairwise distances.
    """
    labels = np.unique(sites)
    origin = frac[np.array([np.flatnonzero(sites == s)[0] for s in labels])]
    m = int(n_translations)
    tol = symprec_frac * m

    def keys(points, site):  # [..., 3] -> [...] int64 key, and integrality mask
        u = (points - origin[site]) * m
        r = np.rint(u)
        ok = np.all(np.abs(u - r) < tol, axis=-1)
        k = np.mod(r.astype(np.int64), m)
        return ((site * m + k[..., 0]) * m + k[..., 1]) * m + k[..., 2], ok

    site_index = np.searchsorted(labels, sites)
    atom_keys, _ = keys(frac, site_index)
    order = np.argsort(atom_keys)
    sorted_keys = atom_keys[order]

    def match(points):
        out = -np.ones(points.shape[:-1], dtype=np.int64)
        for s in range(len(labels)):
            key, ok = keys(points, s)
            pos = np.clip(np.searchsorted(sorted_keys, key), 0, len(order) - 1)
            hit = ok & (sorted_keys[pos] == key)
            out = np.where(hit & (out < 0), order[pos], out)
        return out

    return match


@functools.lru_cache(maxsize=16)
def _dataset(lattice: bytes, frac: bytes, numbers: bytes, symprec: float):
    """The symmetry dataset from spglib, remembered for the last few cells.

    The fc3 path asks twice for the same cell (:func:`site_symmetry`,
    :func:`stabilizers`), and spglib is most of its host time. Keyed by the
    float64/int64 bytes of the cell, so any change of the structure misses.
    """
    import spglib

    cell = (
        np.frombuffer(lattice).reshape(3, 3),
        np.frombuffer(frac).reshape(-1, 3),
        np.frombuffer(numbers, dtype=np.int64),
    )
    return spglib.get_symmetry_dataset(cell, symprec=symprec)


def _space_group(structure, symprec: float, what: str):
    """``(lattice, frac, spglib dataset, match)`` of a periodic structure."""
    if not all(structure.pbc):
        raise StructureError(
            f"{what} needs a cell periodic in 3 directions, got pbc={structure.pbc}"
        )
    lattice = np.asarray(structure.cell, np.float64)
    pos = np.asarray(structure.positions, np.float64)
    frac = np.linalg.solve(lattice.T, pos.T).T
    numbers = np.asarray(structure.numbers, np.int64)
    sym = _dataset(lattice.tobytes(), frac.tobytes(), numbers.tobytes(), symprec)
    if sym is None:
        raise StructureError("spglib found no symmetry operations; check the cell")
    rots = np.asarray(sym.rotations)
    n_translations = int(np.sum(np.all(rots == np.eye(3, dtype=int), axis=(1, 2))))
    match = _matcher(
        frac,
        np.asarray(sym.mapping_to_primitive),
        n_translations,
        symprec / np.min(np.linalg.norm(lattice, axis=1)),
    )
    return lattice, frac, sym, match


def site_symmetry(structure, *, symprec: float = 1e-5) -> SiteSymmetry:
    """Space-group site mapping of a periodic supercell, from spglib (host side).

    Args:
        structure: a periodic :class:`~mldiff.structure.Structure`.
        symprec: spglib's distance tolerance, Å.

    Returns:
        The :class:`SiteSymmetry`. A structure without symmetry (e.g. rattled)
        gives every atom as independent, with identity operations.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> s = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))
        >>> site_symmetry(s).independent.tolist()
        [0]
    """
    lattice, frac, sym, match = _space_group(structure, symprec, "site_symmetry")
    n = len(frac)
    rots, trans = np.asarray(sym.rotations), np.asarray(sym.translations)
    equiv = np.asarray(sym.equivalent_atoms)
    independent = np.unique(equiv)
    of = np.searchsorted(independent, equiv)
    rep_images = np.einsum("oab,kb->oka", rots, frac[independent]) + trans[:, None, :]
    hits = match(rep_images)  # [ops, k]: where each operation sends each representative
    chosen = _fewest_rotations(rots, hits, of)
    if np.any(chosen < 0):
        raise StructureError(
            f"no symmetry operation maps atoms {np.flatnonzero(chosen < 0)[:10]} onto "
            f"their representatives at symprec={symprec}; try a larger symprec"
        )
    inv_lt = np.linalg.inv(lattice.T)
    rotations = np.einsum("ab,obc,cd->oad", lattice.T, rots[chosen], inv_lt)
    ops = np.unique(chosen)
    images = np.einsum("oab,nb->ona", rots[ops], frac) + trans[ops, None, :]
    perms = match(images)  # [len(ops), n]: where each operation sends each atom
    if np.any(perms < 0) or np.any(np.sort(perms, axis=1) != np.arange(n)):
        raise StructureError(
            f"a symmetry operation does not permute the atoms at symprec={symprec}"
        )
    inverse = np.empty_like(perms)
    np.put_along_axis(inverse, perms, np.arange(n)[None, :], axis=1)
    inverse_permutations = inverse[np.searchsorted(ops, chosen)].astype(np.int32)
    return SiteSymmetry(
        independent=independent.astype(np.int32),
        of=of.astype(np.int32),
        rotations=rotations,
        inverse_permutations=inverse_permutations,
    )


def _fewest_rotations(rots, hits, of) -> np.ndarray:
    """For each atom, an operation sending its representative onto it.

    Greedy cover: operations are grouped by rotation, and the rotation that
    reaches the most atoms still unassigned is taken first (ties: the
    identity, then spglib's order), so few distinct rotations are used (diamond
    Si: 2 instead of up to 48). Rebuilding force constants by symmetry then
    rotates only a few rows and permutes the rest. ``-1`` where no operation
    reaches an atom.

    Proper rotations are taken before improper ones (inversions, mirrors),
    whatever their reach: a potential that is only SE(3)-invariant, such as
    SevenNet-0 (no parity), is not invariant under an improper operation of
    the crystal, so rows rebuilt through one would carry its parity breaking
    (0.5 % in the acoustic frequencies of SevenNet-0 Si). Improper operations
    are used only for atoms that no proper one reaches.
    """
    n_ops = len(rots)
    flat = np.concatenate([np.eye(3).reshape(1, 9), rots.reshape(n_ops, 9)])
    flat = flat.astype(np.int64)  # integer rotations in the lattice basis
    lo, base = flat.min(), flat.max() - flat.min() + 1
    codes = (flat - lo) @ base ** np.arange(9)  # one integer per matrix
    groups, rot_id = np.unique(codes[1:], return_inverse=True)
    identity = groups == codes[0]
    member = np.empty(len(groups), dtype=int)
    member[rot_id] = np.arange(n_ops)  # an operation of each rotation group
    proper = np.linalg.det(rots[member].astype(float)) > 0
    n = len(of)
    chosen = -np.ones(n, dtype=int)
    for s in range(hits.shape[1]):
        ops = np.flatnonzero(hits[:, s] >= 0)
        ops = ops[of[hits[ops, s]] == s]
        first = np.full((len(groups), n), n_ops)  # first op per (rotation, atom)
        np.minimum.at(first, (rot_id[ops], hits[ops, s]), ops)
        todo = of == s
        while todo.any():
            gain = np.sum((first < n_ops) & todo, axis=1)
            if gain.max() == 0:
                break
            keys = (np.arange(len(groups)), ~identity, -gain, ~proper, gain == 0)
            r = np.lexsort(keys)[0]  # last key first: reaches any, proper, most
            take = todo & (first[r] < n_ops)
            chosen[take] = first[r, take]
            todo &= ~take
    return chosen


def stabilizers(structure, atoms, *, symprec: float = 1e-5) -> list:
    """Site-symmetry operations of chosen atoms, with their atom permutations.

    The operations of the space group that leave atom ``i`` in place (the
    site-symmetry group of ``i``, combined with whatever lattice translation
    brings it back), host side, from spglib.

    Args:
        structure: a periodic :class:`~mldiff.structure.Structure`.
        atoms: atom indices.
        symprec: spglib's distance tolerance, Å.

    Returns:
        one ``(rotations [o, 3, 3], permutations [o, n])`` per atom: Cartesian
        rotations (acting on column vectors) and where each operation sends
        each atom; the identity is among them.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> s = Structure.from_ase(bulk("Si", "diamond", a=5.431, cubic=True))
        >>> [len(r) for r, _ in stabilizers(s, [0])]  # point group -43m
        [24]
    """
    lattice, frac, sym, match = _space_group(structure, symprec, "stabilizers")
    n = len(frac)
    rots, trans = np.asarray(sym.rotations), np.asarray(sym.translations)
    inv_lt = np.linalg.inv(lattice.T)
    out = []
    for i in np.asarray(atoms):
        ops = np.flatnonzero(match(frac[i] @ rots.transpose(0, 2, 1) + trans) == i)
        perms = match(np.einsum("oab,nb->ona", rots[ops], frac) + trans[ops, None, :])
        if np.any(perms < 0) or np.any(np.sort(perms, axis=1) != np.arange(n)):
            raise StructureError(
                f"a symmetry operation does not permute the atoms at symprec={symprec}"
            )
        cart = np.einsum("ab,obc,cd->oad", lattice.T, rots[ops], inv_lt)
        out.append((cart, perms))
    return out


def distribute(
    rows: Float[Array, "k 3 n 3"], symmetry: SiteSymmetry
) -> Float[Array, "n 3 n 3"]:
    """Rebuild all force constants from the rows of the independent atoms.

    ``Φ(i, j) = R_i Φ(i₀, σ_i⁻¹(j)) R_iᵀ`` where the operation ``(R_i, σ_i)``
    sends the representative ``i₀`` to ``i``; this is phonopy's
    ``distribute_force_constants``.

    Args:
        rows: ``[k, 3, n, 3]`` rows of the independent atoms, eV/Å².
        symmetry: the supercell's :class:`SiteSymmetry`.

    Returns:
        ``[n, 3, n, 3]`` force constants, eV/Å².
    """
    rot = jnp.asarray(symmetry.rotations, rows.dtype)  # [n, 3, 3]
    src = rows[jnp.asarray(symmetry.of)]  # [n, 3, n, 3]
    inv = jnp.asarray(symmetry.inverse_permutations)  # [n, n]
    src = jnp.take_along_axis(src, inv[:, None, :, None], axis=2)
    return jnp.einsum("iac,icjd,ibd->iajb", rot, src, rot)
