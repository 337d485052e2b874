"""Third-order force constants as the exact third derivative of any mldiff energy.

``Φ[i, a, j, b, k, c] = ∂³E / ∂R_ia ∂R_jb ∂R_kc`` in eV/Å³, by nested automatic
differentiation: a ``jvp`` (along ``e_jb``) of a ``jvp`` (along ``e_ia``) of the
``grad``. Each such product is one row ``Φ[i, a, j, b, :, :]``; the products
are mapped in chunks with ``jax.lax.map(..., batch_size=chunk_size)``, so
memory grows with ``chunk_size``, not with the number of rows.

Only the atoms ``i`` that are symmetry-independent (spglib, via
:func:`~mldiff.phonons.force_constants.site_symmetry`) are differentiated, and
for each only one partner ``j`` per orbit of its site-symmetry group
(:func:`partner_orbits`) within ``cutoff`` (when given); the rest is rebuilt
with the space-group operations,
``Φ(g i, g j, g k) = (R ⊗ R ⊗ R) Φ(i, j, k)`` (phono3py's
``distribute_fc3``, :func:`distribute`). Only a few rows are rotated (one per
distinct rotation); the full tensor is written once, by a permutation gather
fused with the translational-invariance correction.

:func:`symmetrize` projects onto tensors that are symmetric under any exchange
of the three ``(atom, direction)`` indices and obey translational invariance
``Σ_k Φ_ijk = 0`` (for every index): the least-squares projection, i.e.
symmetrisation followed by centering of each atom index
(:func:`translational_invariance`). An exact third derivative is symmetric to
rounding already, so :func:`third_order` applies only the centering.

Float64 is required (:class:`~mldiff.errors.PrecisionError` otherwise).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("lj")
    >>> atoms = bulk("Ar", "fcc", a=1.6, cubic=True)
    >>> atoms.positions[1] += [0.03, -0.02, 0.01]
    >>> s = Structure.from_ase(atoms)
    >>> fc3 = third_order(pot, pot.init(None, s), s)
    >>> fc3.shape, float(abs(fc3.sum(axis=4)).max()) < 1e-10
    ((4, 3, 4, 3, 4, 3), True)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mldiff import neighbors
from mldiff.errors import ConfigError, check_float64
from mldiff.phonons import force_constants as _fc

__all__ = [
    "third_order_rows",
    "partner_orbits",
    "third_order",
    "distribute",
    "symmetrize",
    "translational_invariance",
    "pair_mask",
    "DEFAULT_CHUNK_SIZE",
]

DEFAULT_CHUNK_SIZE = 32  # third-derivative products evaluated together


def third_order_rows(energy_fn, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Rows ``Φ[i, a, j, b, :, :]`` for selected ``(i, j)`` atom pairs.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        chunk_size: third-derivative products evaluated at once (memory knob:
            peak memory is about ``chunk_size`` times that of one force call).

    Returns:
        ``rows_fn(params, structure, graph, atoms, partners)`` with ``atoms``:
        ``[k]`` atom indices and ``partners``: ``[k, m]`` atom indices (``-1``
        for padding) giving ``Float[Array, "k 3 m 3 n 3"]``,
        ``rows[s, a, t, b, l, c] = ∂³E/∂R_{atoms[s] a}∂R_{partners[s, t] b}∂R_lc``
        in eV/Å³ (zero for padded partners). Jit-compatible.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0, 0, 0], [1.0, 0, 0]], None, [1, 1], False,
        ...                      dtype=jnp.float64)
        >>> def e(params, s, g):  # (x1 - x0)³ / 6: Φ_xxx = ±1
        ...     return (s.positions[1, 0] - s.positions[0, 0]) ** 3 / 6
        >>> rows = third_order_rows(e)(None, s, None, jnp.array([0]),
        ...                            jnp.array([[0, 1]]))
        >>> rows[0, 0, :, 0, :, 0].tolist()
        [[-1.0, 1.0], [1.0, -1.0]]
    """

    def rows_fn(
        params, structure, graph, atoms: Int[Array, " k"], partners: Int[Array, "k m"]
    ) -> Float[Array, "k 3 m 3 n 3"]:
        check_float64("third-order force constants", structure=structure)
        r = structure.positions
        n = r.shape[0]
        k, m = partners.shape

        def grad_fn(x):
            return jax.grad(
                lambda y: energy_fn(params, structure.replace(positions=y), graph)
            )(x)

        def third(pair):  # pair: (atom i, dir a, atom j, dir b, valid)
            i, a, j, b, ok = pair
            u = jnp.zeros_like(r).at[i, a].set(1.0)
            v = jnp.zeros_like(r).at[j, b].set(jnp.where(ok, 1.0, 0.0))

            def hvp(x):
                return jax.jvp(grad_fn, (x,), (u,))[1]

            return jax.jvp(hvp, (r,), (v,))[1]  # [n, 3]

        ii = jnp.broadcast_to(jnp.asarray(atoms)[:, None, None, None], (k, 3, m, 3))
        aa = jnp.broadcast_to(jnp.arange(3)[None, :, None, None], (k, 3, m, 3))
        jj = jnp.broadcast_to(jnp.asarray(partners)[:, None, :, None], (k, 3, m, 3))
        bb = jnp.broadcast_to(jnp.arange(3)[None, None, None, :], (k, 3, m, 3))
        ok = jj >= 0
        pairs = tuple(x.reshape(-1) for x in (ii, aa, jnp.maximum(jj, 0), bb, ok))
        out = jax.lax.map(third, pairs, batch_size=min(chunk_size, k * 9 * m))
        return out.reshape(k, 3, m, 3, n, 3)

    return rows_fn


def pair_mask(structure, cutoff: float | None) -> np.ndarray:
    """``[n, n]`` boolean: minimum-image distance below ``cutoff`` (host side).

    Args:
        structure: periodic :class:`~mldiff.structure.Structure`, Å.
        cutoff: pair cutoff, Å; ``None`` for all pairs.

    Returns:
        ``[n, n]`` boolean mask (the diagonal is always set).

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> s = Structure.from_ase(bulk("Si", "diamond", a=5.431, cubic=True))
        >>> pair_mask(s, 2.5).sum(axis=1).tolist()  # itself + 4 neighbours
        [5, 5, 5, 5, 5, 5, 5, 5]
    """
    n = len(structure)
    if cutoff is None:
        return np.ones((n, n), dtype=bool)
    lat = np.asarray(structure.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(structure.positions, np.float64).T).T
    d = frac[None, :, :] - frac[:, None, :]
    d -= np.rint(d)
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1)
    cand = (d[:, :, None, :] + shifts.reshape(1, 1, -1, 3)) @ lat
    dist = np.linalg.norm(cand, axis=-1).min(axis=-1)
    return dist < cutoff


def distribute(
    rows: Float[Array, "k 3 n 3 n 3"], symmetry: _fc.SiteSymmetry
) -> Float[Array, "n 3 n 3 n 3"]:
    """Rebuild all third-order force constants from independent-atom rows.

    ``Φ(i, j, l) = (R_i ⊗ R_i ⊗ R_i) Φ(i₀, σ_i⁻¹ j, σ_i⁻¹ l)`` where the
    operation ``(R_i, σ_i)`` sends the representative ``i₀`` to ``i``
    (phono3py's ``distribute_fc3``). Each distinct ``(i₀, R)`` row is rotated
    once (:func:`~mldiff.phonons.force_constants.site_symmetry` picks few
    rotations), then every atom's block is a permutation of one of them.

    Args:
        rows: ``[k, 3, n, 3, n, 3]`` rows of the independent atoms, eV/Å³.
        symmetry: the supercell's
            :class:`~mldiff.phonons.force_constants.SiteSymmetry` (concrete).

    Returns:
        ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³.
    """
    group, group_of, group_rotation, inverse = _rotation_groups(symmetry, rows.shape[4])
    rotated = _rotate(rows, jnp.asarray(group_of), jnp.asarray(group_rotation))
    return _permute(rotated, jnp.asarray(group), jnp.asarray(inverse))


def _rotation_groups(symmetry, n: int):
    """Atoms grouped by (representative, rotation) of their chosen operation.

    Returns ``(group [n], group_of [U], group_rotation [U, 3, 3],
    inverse [n, n])``: the rows of the ``U`` groups are rotated once, and every
    atom's block is then only a permutation of its group's (host side).
    """
    if symmetry is None:
        eye = np.broadcast_to(np.eye(3), (n, 3, 3))
        return np.arange(n), np.arange(n), eye, np.broadcast_to(np.arange(n), (n, n))
    key = np.concatenate(
        [symmetry.of[:, None], np.round(symmetry.rotations.reshape(n, 9), 8)], axis=1
    )
    _, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return (
        group.ravel(),
        symmetry.of[first],
        symmetry.rotations[first],
        symmetry.inverse_permutations,
    )


def _rotate(rows, group_of, group_rotation):
    """``[U, 3, n, 3, n, 3]``: ``(R ⊗ R ⊗ R)`` applied to each group's row."""
    r = group_rotation.astype(rows.dtype)
    return jnp.einsum("uad,ube,ucf,udjekf->uajbkc", r, r, r, rows[group_of])


def _permute(rotated, group, inverse):
    """``[f, 3, n, 3, n, 3]``: block ``i`` is its group's row, permuted by ``σ_i⁻¹``.

    ``group [f]`` and ``inverse [f, n]`` are those of the ``f`` atoms wanted.
    """
    g = group[:, None, None]
    out = rotated[g, :, inverse[:, :, None], :, inverse[:, None, :], :]  # [f,n,n,3,3,3]
    return jnp.transpose(out, (0, 3, 1, 4, 2, 5))


def symmetrize(fc3: Float[Array, "n 3 n 3 n 3"]) -> Float[Array, "n 3 n 3 n 3"]:
    """Index-permutation symmetry and translational invariance, one projection.

    Averages over the 6 permutations of the ``(atom, direction)`` index pairs,
    then centres each atom index (``Φ ← Φ − mean over that atom index``), which
    makes ``Σ_l Φ[..., l, c, ...] = 0`` along every index. Both steps are
    orthogonal projections that commute, so their product is the least-squares
    projection onto symmetric, translation-invariant tensors; an exact third
    derivative is left unchanged to rounding.

    Args:
        fc3: ``[n, 3, n, 3, n, 3]``, eV/Å³.

    Returns:
        ``[n, 3, n, 3, n, 3]``, eV/Å³.

    Example:
        >>> import jax.numpy as jnp
        >>> fc3 = symmetrize(jnp.arange(6.0 ** 3).reshape(2, 3, 2, 3, 2, 3))
        >>> float(jnp.abs(fc3.sum(axis=4)).max()) < 1e-12
        True
    """
    perms = [
        (0, 1, 2, 3, 4, 5),
        (0, 1, 4, 5, 2, 3),
        (2, 3, 0, 1, 4, 5),
        (2, 3, 4, 5, 0, 1),
        (4, 5, 0, 1, 2, 3),
        (4, 5, 2, 3, 0, 1),
    ]
    fc3 = sum(jnp.transpose(fc3, p) for p in perms) / 6.0
    return translational_invariance(fc3)


def translational_invariance(
    fc3: Float[Array, "n 3 n 3 n 3"],
) -> Float[Array, "n 3 n 3 n 3"]:
    """Centre every atom index: ``Σ_l Φ[..., l, c, ...] = 0`` along each.

    The least-squares projection onto translation-invariant tensors
    ``(1 - M₀)(1 - M₂)(1 - M₄)``, with ``M`` the mean over one atom index,
    expanded so that the three means are taken from the input in one pass. It
    keeps index-permutation symmetry; for an exact third derivative (already
    symmetric to rounding) it is all of :func:`symmetrize`, at a fraction of
    the memory traffic.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(6.0 ** 3).reshape(2, 3, 2, 3, 2, 3)
        >>> float(jnp.abs(translational_invariance(x).sum(axis=2)).max()) < 1e-12
        True
    """
    m0 = jnp.mean(fc3, axis=0, keepdims=True)
    m2 = jnp.mean(fc3, axis=2, keepdims=True)
    m4 = jnp.mean(fc3, axis=4, keepdims=True)
    m02 = jnp.mean(m0, axis=2, keepdims=True)
    m04 = jnp.mean(m0, axis=4, keepdims=True)
    m24 = jnp.mean(m2, axis=4, keepdims=True)
    m024 = jnp.mean(m02, axis=4, keepdims=True)
    return fc3 - m0 - m2 - m4 + m02 + m04 + m24 - m024


def third_order(
    potential,
    params,
    supercell,
    *,
    cutoff: float | None = None,
    use_symmetry: bool = True,
    enforce_invariance: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    symprec: float = 1e-5,
    graph=None,
    first_atoms=None,
) -> jax.Array:
    """Third-order force constants of a periodic supercell.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters.
        supercell: periodic supercell (float64), Å.
        cutoff: pair cutoff, Å: blocks ``Φ(i, j, k)`` with any of the three pair
            distances (minimum image) at or beyond it are set to zero and not
            computed; ``None`` computes all.
        use_symmetry: differentiate only symmetry-independent atoms (spglib).
        enforce_invariance: apply the projection of
            :func:`translational_invariance`, with the mean over the first atom
            index taken from the mean over the second by index-permutation
            symmetry. The rows are exact third derivatives, so that symmetry
            holds to rounding (:func:`symmetrize` would change the result by
            ~1e-15 relative at several times the cost).
        chunk_size: third-derivative products evaluated at once (memory knob).
        symprec: symmetry tolerance, Å.
        graph: the supercell's neighbour graph for ``potential.cutoff``
            (:func:`mldiff.neighbors.allocate`); default: allocated and checked
            here. Pass one to call this function under ``jit`` (with ``params``
            traced and the supercell concrete).
        first_atoms: ``[f]`` supercell atoms whose blocks ``Φ(i, ·, ·)`` to
            return (phono3py's compact fc3: the primitive cell's atoms, e.g.
            ``phonons.images.representative``, all that κ needs); default all.
            Translational invariance is enforced as for the full tensor.

    Returns:
        ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³, or
        ``[f, 3, n, 3, n, 3]`` with ``first_atoms``.
    """
    check_float64("third-order force constants", structure=supercell)
    if cutoff is not None and cutoff <= 0:
        raise ConfigError(f"cutoff must be positive (Å) or None, got {cutoff}")
    n = len(supercell)
    first = np.arange(n) if first_atoms is None else np.asarray(first_atoms)
    if (
        first.ndim != 1
        or first.dtype.kind not in "iu"
        or np.any((first < 0) | (first >= n))
    ):
        raise ConfigError(
            f"first_atoms must be 1-D indices of the {n} supercell atoms, got "
            f"{first_atoms!r}"
        )
    symmetry = _fc.site_symmetry(supercell, symprec=symprec) if use_symmetry else None
    if symmetry is not None and len(symmetry.independent) == n:
        symmetry = None
    atoms = np.arange(n) if symmetry is None else np.asarray(symmetry.independent)
    mask = pair_mask(supercell, cutoff)
    stabilizers = (
        None if symmetry is None else _fc.stabilizers(supercell, atoms, symprec=symprec)
    )
    partners, slot, rotation, inverse = partner_orbits(atoms, mask, stabilizers)
    if graph is None:
        graph = neighbors.check(neighbors.allocate(supercell, potential.cutoff))
    rows = _rows(
        potential.energy,
        chunk_size,
        params,
        supercell,
        graph,
        jnp.asarray(atoms),
        jnp.asarray(partners),
    )
    tri = None  # [k, n, n] triplets of each row within the cutoff, if any
    if cutoff is not None:
        tri = jnp.asarray(mask[atoms][:, :, None] & mask[atoms][:, None, :] & mask)
    group, group_of, group_rotation, atom_inverse = _rotation_groups(symmetry, n)
    return _assemble(
        rows,
        jnp.asarray(slot),
        jnp.asarray(rotation, rows.dtype),
        jnp.asarray(inverse),
        tri,
        jnp.asarray(group),
        jnp.asarray(group_of),
        jnp.asarray(group_rotation),
        jnp.asarray(atom_inverse),
        jnp.asarray(first),
        enforce_invariance,
    )


def partner_orbits(atoms, mask: np.ndarray, stabilizers=None):
    """Symmetry-independent partners ``j`` of each atom ``i`` (host side).

    The site symmetry of ``i`` (operations that keep ``i`` in place) maps a
    pair ``(i, j)`` onto ``(i, g j)`` and
    ``Φ(i, g j, l) = (R ⊗ R ⊗ R) Φ(i, j, g⁻¹ l)``, so one representative per
    orbit of partners is differentiated (phono3py's reduction of displacement
    pairs).

    Args:
        atoms: ``[k]`` atom indices ``i``.
        mask: ``[n, n]`` partners to keep (:func:`pair_mask`).
        stabilizers: per atom, ``(rotations [o, 3, 3], permutations [o, n])``
            from :func:`mldiff.phonons.force_constants.stabilizers`; ``None``
            for no symmetry (every partner its own representative).

    Returns:
        ``(partners [k, m], slot [k, n], rotation [k, n, 3, 3],
        inverse [k, n, n])``: the representatives (``-1`` padding); for every
        ``(i, j)`` the position of its representative in ``partners`` (``m``,
        a zero block, when ``j`` is masked out), the Cartesian rotation of the
        operation sending the representative to ``j``, and that operation's
        inverse atom permutation.
    """
    atoms = np.asarray(atoms)
    n = mask.shape[0]
    identity = (np.eye(3)[None], np.arange(n)[None])
    reps, slots, rots, invs = [], [], [], []
    for s, i in enumerate(atoms):
        rot, perm = identity if stabilizers is None else stabilizers[s]
        inv = np.argsort(perm, axis=1)
        slot = np.full(n, -1)
        op = np.zeros(n, dtype=int)
        rep = []
        for j in np.flatnonzero(mask[i]):
            if slot[j] >= 0:
                continue
            images = perm[:, j]
            new = slot[images] < 0
            first = np.unique(images[new], return_index=True)[1]
            slot[images[new][first]] = len(rep)
            op[images[new][first]] = np.flatnonzero(new)[first]
            rep.append(j)
        reps.append(rep)
        slots.append(slot)
        rots.append(rot[op])
        invs.append(inv[op])
    m = max(len(r) for r in reps)
    partners = -np.ones((len(atoms), m), dtype=np.int32)
    for s, r in enumerate(reps):
        partners[s, : len(r)] = r
    slot = np.stack(slots)
    slot = np.where(slot < 0, m, slot).astype(np.int32)
    return partners, slot, np.stack(rots), np.stack(invs).astype(np.int32)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _rows(energy_fn, chunk_size, params, structure, graph, atoms, partners):
    fn = third_order_rows(energy_fn, chunk_size=chunk_size)
    return fn(params, structure, graph, atoms, partners)


def _expand(rows, slot, rotation, inverse):
    """``[k, 3, n, 3, n, 3]`` rows for every partner from the representatives'."""
    k, _, m, _, n, _ = rows.shape
    rows = jnp.concatenate([rows, jnp.zeros((k, 3, 1, 3, n, 3), rows.dtype)], 2)

    def one_atom(args):
        r, slot_i, rot_i, inv_i = args  # [3, m + 1, 3, n, 3], [n], [n, 3, 3], [n, n]
        # src[j, l] = row of partner j's representative, its l permuted
        src = r[:, slot_i[:, None], :, inv_i, :]  # [n(j), n(l), 3, 3, 3]
        return jnp.einsum("jad,jbe,jcf,jldef->ajblc", rot_i, rot_i, rot_i, src)

    return jax.lax.map(one_atom, (rows, slot, rotation, inverse))


@functools.partial(jax.jit, static_argnums=(10,))
def _assemble(
    rows,
    slot,
    rotation,
    inverse,
    tri,
    group,
    group_of,
    group_rotation,
    atom_inverse,
    first,
    enforce_invariance,
):
    """The ``[f, 3, n, 3, n, 3]`` fc3 of the ``first`` atoms in one pass over it.

    Everything that costs more than a permutation happens on the rows of the
    independent atoms: their partners are expanded (:func:`_expand`), the
    cutoff mask ``tri`` (``[k, n, n]``, that row's triplets; ``None``: no
    cutoff) applied, and each
    row rotated once per rotation group. The translational-invariance
    projection ``(1 - M₀)(1 - M₂)(1 - M₄)`` (:func:`translational_invariance`)
    needs the means over each atom index: those over ``j`` and ``l`` follow
    from the rows (means commute with permuting ``j`` and ``l``), and the mean
    over ``i`` equals the mean over ``j`` with the first two index pairs
    exchanged, by the index-permutation symmetry of a third derivative (exact
    to rounding, and kept by the symmetric mask). The result is then
    ``Φ(i, j, l) = (R ⊗ R ⊗ R) Φ(i₀, σ⁻¹ j, σ⁻¹ l)`` minus the broadcast means,
    one fused gather.
    """
    full = _expand(rows, slot, rotation, inverse)  # [k, 3, n, 3, n, 3]
    if tri is not None:
        full = jnp.where(tri[:, None, :, None, :, None], full, 0.0)
    y = _rotate(full, group_of, group_rotation)  # [U, 3, n, 3, n, 3]
    inv = atom_inverse
    group_f, inv_f = group[first], inv[first]
    out = _permute(y, group_f, inv_f)
    if not enforce_invariance:
        return out
    # mean over l of every atom's row (all atoms: the mean over i needs them)
    m2_all = jnp.mean(y, axis=2)[group[:, None], :, :, inv, :]  # (i, l, a, b, c)
    m2_all = jnp.transpose(m2_all, (0, 2, 3, 1, 4))  # (i, a, b, l, c)
    m2 = m2_all[first]
    m4 = jnp.mean(y, axis=4)[group_f[:, None], :, inv_f, :, :]  # (i, j, a, b, c)
    m4 = jnp.transpose(m4, (0, 2, 1, 3, 4))  # (i, a, j, b, c)
    m24 = jnp.mean(y, axis=(2, 4))[group_f]  # (i, a, b, c)
    m0 = jnp.transpose(m2_all, (2, 0, 1, 3, 4))  # (a, j, b, l, c) = mean_i, by symmetry
    m02 = jnp.mean(m0, axis=1)  # (a, b, l, c)
    m04 = jnp.mean(m0, axis=3)  # (a, j, b, c)
    m024 = jnp.mean(m02, axis=2)  # (a, b, c)
    return (
        out
        - m0[None]
        - m2[:, :, None]
        - m4[:, :, :, :, None]
        + m02[None, :, None]
        + m04[None, :, :, :, None]
        + m24[:, :, None, :, None]
        - m024[None, :, None, :, None]
    )
