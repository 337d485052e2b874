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
``distribute_fc3``).

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
from mldiff.errors import ConfigError
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
DISTRIBUTE_BATCH = 8  # atoms rebuilt together by symmetry (memory: 8 rows of fc3)


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
        _fc.check_float64(structure, "third-order force constants")
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
    operation ``(R_i, σ_i)`` sends the representative ``i₀`` to ``i``.

    Args:
        rows: ``[k, 3, n, 3, n, 3]`` rows of the independent atoms, eV/Å³.
        symmetry: the supercell's
            :class:`~mldiff.phonons.force_constants.SiteSymmetry`.

    Returns:
        ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³.
    """
    rot = jnp.asarray(symmetry.rotations, rows.dtype)  # [n, 3, 3]
    inv = jnp.asarray(symmetry.inverse_permutations)  # [n, n]

    def one(of, r, perm):
        src = rows[of][:, perm][:, :, :, perm]  # [3, n, 3, n, 3]
        return jnp.einsum("ad,be,cf,djekf->ajbkc", r, r, r, src)

    atoms = (jnp.asarray(symmetry.of), rot, inv)
    return jax.lax.map(lambda x: one(*x), atoms, batch_size=DISTRIBUTE_BATCH)


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
        enforce_invariance: apply :func:`translational_invariance`. (The
            rows are exact third derivatives, so index-permutation symmetry
            already holds to rounding; :func:`symmetrize` would change the
            result by ~1e-15 relative at several times the cost.)
        chunk_size: third-derivative products evaluated at once (memory knob).
        symprec: symmetry tolerance, Å.

    Returns:
        ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³.
    """
    _fc.check_float64(supercell, "third-order force constants")
    if cutoff is not None and cutoff <= 0:
        raise ConfigError(f"cutoff must be positive (Å) or None, got {cutoff}")
    n = len(supercell)
    symmetry = _fc.site_symmetry(supercell, symprec=symprec) if use_symmetry else None
    if symmetry is not None and len(symmetry.independent) == n:
        symmetry = None
    atoms = np.arange(n) if symmetry is None else np.asarray(symmetry.independent)
    mask = pair_mask(supercell, cutoff)
    stabilizers = (
        None if symmetry is None else _fc.stabilizers(supercell, atoms, symprec=symprec)
    )
    partners, slot, rotation, inverse = partner_orbits(atoms, mask, stabilizers)
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
    return _assemble(
        rows,
        jnp.asarray(slot),
        jnp.asarray(rotation, rows.dtype),
        jnp.asarray(inverse),
        jnp.asarray(mask),
        symmetry,
        cutoff is not None,
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

        def one_partner(args):
            t, rot, inv = args
            src = r[:, t][:, :, inv]  # [3, 3, n, 3]
            return jnp.einsum("ad,be,cf,delf->ablc", rot, rot, rot, src)

        out = jax.lax.map(one_partner, (slot_i, rot_i, inv_i))  # [n, 3, 3, n, 3]
        return jnp.transpose(out, (1, 0, 2, 3, 4))

    return jax.lax.map(one_atom, (rows, slot, rotation, inverse))


@functools.partial(jax.jit, static_argnums=(6, 7))
def _assemble(
    rows, slot, rotation, inverse, mask, symmetry, use_mask, enforce_invariance
):
    full = _expand(rows, slot, rotation, inverse)
    fc3 = full if symmetry is None else distribute(full, symmetry)
    if use_mask:
        tri = (
            mask[:, :, None] & mask[:, None, :] & mask[None, :, :]
        )  # [n, n, n]: all three pairs within the cutoff
        fc3 = jnp.where(tri[:, None, :, None, :, None], fc3, 0.0)
    return translational_invariance(fc3) if enforce_invariance else fc3
