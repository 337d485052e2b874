"""Dynamical matrices, frequencies and eigenvectors with phonopy's conventions.

Cells follow phonopy: a unit cell with lattice rows ``L`` (Å), a supercell with
lattice ``Mᵀ L`` for the supercell matrix ``M`` and a primitive cell with lattice
``Pᵀ L`` for the primitive matrix ``P`` (phonopy writes both with lattice vectors
as columns: ``(a_s b_s c_s) = (a b c) M``).

The dynamical matrix of the p primitive atoms at a q-point ``q`` (reduced
coordinates of the primitive reciprocal lattice) is

``D_ia,jb(q) = Σ_{l∈j} Φ_{ia,lb} / √(m_i m_j) · (1/N_il) Σ_{v∈V_il} exp(2πi q·v)``

where ``l`` runs over the supercell atoms that are images of primitive atom
``j``, and ``V_il`` holds the ``N_il`` equally short vectors ``r_l + T − r_i``
(``T`` a supercell lattice vector) from primitive atom ``i`` to the periodic
images of ``l``, in reduced coordinates of the primitive lattice. This is
phonopy's ``DynamicalMatrix`` with its "shortest vectors and multiplicities"
(``Primitive.get_smallest_vectors``): the phase uses atomic positions (not only
lattice vectors), and the force constant of a pair on the Wigner–Seitz boundary
of the supercell is shared equally among its equidistant images, which makes the
Fourier interpolation between commensurate q-points match phonopy. The matrix is
Hermitised, ``(D + D†)/2``, as phonopy does.

Frequencies are ``sign(λ) √|λ|`` for the eigenvalues ``λ`` of ``D`` (eV/(Å²·amu)),
converted to THz with phonopy's default factor, so imaginary modes come out
negative. Eigenvectors are the columns of ``eigh``, normalised, in phonopy's
layout ``[3p, 3p]`` (row ``3i + a``, column = mode).

References:
    A. Togo and I. Tanaka, "First principles phonon calculations in materials
    science", Scr. Mater. 108, 1 (2015); phonopy 4.10
    ``harmonic/dynamical_matrix.py``
    and ``structure/cells.py`` (``ShortestPairs``), read for the conventions.

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> import numpy as np
    >>> from ase.build import bulk
    >>> from mldiff.structure import Structure
    >>> unit = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    >>> sc = supercell(unit, np.diag([2, 2, 2]))
    >>> im = images(sc, unit)
    >>> im.vectors.shape[:2], int(im.primitive_of.max())
    ((1, 8), 0)
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from mldiff import structure as _structure
from mldiff import units
from mldiff.errors import StructureError
from mldiff.structure import Structure

__all__ = [
    "Images",
    "supercell",
    "primitive",
    "images",
    "site_map",
    "dynamical_matrix",
    "eigensystem",
    "to_thz",
    "phonon_modes",
    "phonon_frequencies",
    "modes_at",
    "frequencies_at",
]


@flax.struct.dataclass
class Images:
    """Supercell images of each (primitive atom, supercell atom) pair.

    Attributes:
        vectors: ``[p, n, m, 3]`` shortest vectors ``r_l + T − r_i`` from primitive
            atom ``i`` to the images of supercell atom ``l``, reduced coordinates
            of the primitive lattice (dimensionless); padded with zeros.
        weights: ``[p, n, m]`` ``1/N_il`` for each of the ``N_il`` equally short
            images, 0 for padding.
        primitive_of: ``[n]`` int, the primitive atom each supercell atom is an
            image of (phonopy's ``s2p`` as primitive indices).
        representative: ``[p]`` int, the supercell atom that stands for each
            primitive atom (phonopy's ``p2s``).
    """

    vectors: jax.Array
    weights: jax.Array
    primitive_of: jax.Array
    representative: jax.Array


def _fractional(positions, lattice):
    return np.linalg.solve(np.asarray(lattice).T, np.asarray(positions).T).T


def supercell(unitcell: Structure, supercell_matrix) -> Structure:
    """The supercell with lattice ``Mᵀ L`` (phonopy's ``supercell_matrix`` M).

    Args:
        unitcell: periodic unit cell, Å.
        supercell_matrix: ``[3]`` repeats or ``[3, 3]`` integers, phonopy's
            convention (columns give the new lattice vectors in units of the old).

    Returns:
        The supercell (same atom order as :func:`mldiff.structure.supercell`).

    Example:
        >>> from ase.build import bulk
        >>> s = supercell(Structure.from_ase(bulk("Cu", "fcc", a=3.6)), [2, 2, 2])
        >>> len(s)
        8
    """
    m = np.asarray(supercell_matrix)
    m = np.diag(m) if m.shape == (3,) else m
    return _structure.supercell(unitcell, m.T)


def primitive(
    unitcell: Structure, primitive_matrix=None, *, symprec: float = 1e-5
) -> Structure:
    """The primitive cell with lattice ``Pᵀ L`` (phonopy's ``primitive_matrix`` P).

    Args:
        unitcell: periodic unit cell, Å.
        primitive_matrix: ``[3, 3]`` (fractions allowed, e.g. 1/2 for fcc), or
            ``None`` for the unit cell itself.
        symprec: distance below which atoms are the same site, Å.

    Returns:
        The primitive cell; atoms in the order of their first appearance in the
        unit cell, positions wrapped into the primitive cell.

    Example:
        >>> from ase.build import bulk
        >>> conv = Structure.from_ase(bulk("Si", "diamond", a=5.431, cubic=True))
        >>> p = primitive(conv, [[0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
        >>> len(p)
        2
    """
    if primitive_matrix is None:
        return unitcell
    pm = np.asarray(primitive_matrix, np.float64)
    lat_u = np.asarray(unitcell.cell, np.float64)
    lat_p = pm.T @ lat_u
    ratio = abs(np.linalg.det(pm))
    if ratio < 1e-8:
        raise StructureError(f"primitive matrix {pm.tolist()} is singular")
    pos = np.asarray(unitcell.positions, np.float64)
    numbers = np.asarray(unitcell.numbers)
    frac = _fractional(pos, lat_p)
    keep, kept_frac = [], []
    for k in range(len(pos)):
        f = frac[k] - np.floor(frac[k])
        dup = False
        for idx, g in zip(keep, kept_frac, strict=True):
            d = f - g
            d -= np.rint(d)
            if numbers[idx] == numbers[k] and np.linalg.norm(d @ lat_p) < symprec:
                dup = True
                break
        if not dup:
            keep.append(k)
            kept_frac.append(f)
    expected = len(pos) * ratio
    if abs(len(keep) - expected) > 1e-6:
        raise StructureError(
            f"primitive matrix {pm.tolist()} gives {len(keep)} atoms but the cell "
            f"volume ratio implies {expected:g}; check that the matrix matches "
            "this unit cell (phonopy's convention: primitive lattice = Pᵀ L)"
        )
    kept_frac = np.array(kept_frac)
    kept_frac[np.abs(kept_frac - 1.0) < 1e-12] = 0.0
    return Structure.create(
        kept_frac @ lat_p,
        lat_p,
        numbers[keep],
        unitcell.pbc,
        dtype=unitcell.positions.dtype,
    )


def site_map(
    supercell: Structure, cell: Structure, *, symprec: float = 1e-5
) -> np.ndarray:
    """For each supercell atom, the atom of ``cell`` it is a lattice image of.

    Matching is by position modulo the lattice of ``cell`` and by species
    (phonopy's ``s2p`` map). Host-side NumPy.

    Args:
        supercell: a supercell of ``cell``, Å.
        cell: a unit or primitive cell, Å.
        symprec: largest distance between matching sites, Å.

    Returns:
        ``[n]`` int indices into ``cell``.

    Example:
        >>> from ase.build import bulk
        >>> nacl = Structure.from_ase(bulk("NaCl", "rocksalt", a=5.64))
        >>> site_map(supercell(nacl, [2, 1, 1]), nacl).tolist()
        [0, 1, 0, 1]
    """
    lat = np.asarray(cell.cell, np.float64)
    frac_s = _fractional(np.asarray(supercell.positions, np.float64), lat)
    frac_c = _fractional(np.asarray(cell.positions, np.float64), lat)
    d = frac_s[:, None, :] - frac_c[None, :, :]
    d -= np.rint(d)
    dist = np.linalg.norm(d @ lat, axis=-1)  # [n, p], Å
    numbers_s, numbers_c = np.asarray(supercell.numbers), np.asarray(cell.numbers)
    match = (dist < symprec) & (numbers_s[:, None] == numbers_c[None, :])
    if not np.all(match.sum(1) == 1):
        bad = np.flatnonzero(match.sum(1) != 1)[:10]
        raise StructureError(
            f"supercell atoms {bad.tolist()} match no (or several) atoms of the "
            f"cell within {symprec} Å; is the supercell built from this cell?"
        )
    return np.argmax(match, axis=1)


def images(
    supercell: Structure, primitive: Structure, *, symprec: float = 1e-5
) -> Images:
    """Map supercell atoms to primitive atoms and find the shortest images.

    Host-side NumPy. Images are searched over ±2 Minkowski-reduced supercell
    lattice vectors around the wrapped difference vector, and images within
    ``symprec`` (Å) of the shortest length are all kept, as phonopy does.

    Args:
        supercell: the supercell, Å.
        primitive: the primitive cell the supercell is built from, Å.
        symprec: tolerance for matching sites and equal lengths, Å.

    Returns:
        The :class:`Images` (JAX arrays; a pytree).

    Example:
        >>> from ase.build import bulk
        >>> p = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> im = images(supercell(p, [2, 2, 2]), p)
        >>> round(float(im.weights.sum()), 9)  # one unit of weight per supercell atom
        8.0
    """
    from ase.geometry import minkowski_reduce

    lat_s = np.asarray(supercell.cell, np.float64)
    lat_p = np.asarray(primitive.cell, np.float64)
    pos_s = np.asarray(supercell.positions, np.float64)
    p = len(primitive)
    n = len(pos_s)
    if n % p:
        raise StructureError(f"supercell of {n} atoms is not a multiple of {p}")
    trans = lat_s @ np.linalg.inv(lat_p)
    if not np.allclose(trans, np.rint(trans), atol=1e-6):
        raise StructureError(
            "the supercell lattice is not an integer multiple of the primitive "
            "lattice (supercell = T · primitive with "
            f"T = {np.round(trans, 4).tolist()})"
        )
    s2p = site_map(supercell, primitive, symprec=symprec)
    p2s = np.array([np.flatnonzero(s2p == k)[0] for k in range(p)])
    # shortest vectors, searched in a Minkowski-reduced supercell basis
    reduced, _ = minkowski_reduce(lat_s)
    reduced = np.asarray(reduced)
    frac_r = _fractional(pos_s, reduced)
    diff = frac_r[None, :, :] - frac_r[p2s][:, None, :]  # [p, n, 3]
    diff -= np.rint(diff)
    rng = np.arange(-2, 3)
    lattice_points = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(
        -1, 3
    )
    cand = (
        diff[:, :, None, :] + lattice_points[None, None]
    ) @ reduced  # [p, n, 125, 3] Å
    length = np.linalg.norm(cand, axis=-1)
    shortest = length.min(axis=-1, keepdims=True)
    close = length - shortest < symprec
    mult = close.sum(-1)  # [p, n]
    m = int(mult.max())
    order = np.argsort(~close, axis=-1, kind="stable")[..., :m]  # close ones first
    vec = np.take_along_axis(cand, order[..., None], axis=2)  # [p, n, m, 3] Å
    keep = np.take_along_axis(close, order, axis=2)
    vectors = np.where(keep[..., None], vec @ np.linalg.inv(lat_p), 0.0)
    weights = np.where(keep, 1.0 / mult[..., None], 0.0)
    return Images(
        vectors=jnp.asarray(vectors),
        weights=jnp.asarray(weights),
        primitive_of=jnp.asarray(s2p, dtype=jnp.int32),
        representative=jnp.asarray(p2s, dtype=jnp.int32),
    )


def dynamical_matrix(
    force_constants: Float[Array, "n 3 n 3"],
    masses: Float[Array, " n"],
    qpoint: Float[Array, " 3"],
    images: Images,
) -> Complex[Array, "d d"]:
    """Mass-weighted Fourier transform of supercell force constants.

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell Hessian, eV/Å².
        masses: ``[n]`` atomic masses of the supercell atoms, amu.
        qpoint: ``[3]`` reduced coordinates of the primitive reciprocal lattice.
        images: supercell-image vectors and weights, phonopy's convention.

    Returns:
        ``[3p, 3p]`` Hermitian matrix for the p primitive atoms, eV/(Å²·amu);
        row and column ``3i + a`` is atom i, direction a.

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> z = jnp.zeros(1, dtype=jnp.int32)
        >>> im = Images(vectors=jnp.zeros((1, 1, 1, 3)), weights=jnp.ones((1, 1, 1)),
        ...             primitive_of=z, representative=z)
        >>> fc = jnp.eye(3).reshape(1, 3, 1, 3)
        >>> dynamical_matrix(fc, jnp.array([4.0]), jnp.zeros(3), im)[0, 0]
        Array(0.25+0.j, dtype=complex128)
    """
    p = images.representative.shape[0]
    n = force_constants.shape[0]
    rep = jnp.asarray(images.representative)
    vectors = jnp.asarray(images.vectors, force_constants.dtype)
    weights = jnp.asarray(images.weights, force_constants.dtype)
    phase_arg = 2.0 * jnp.pi * (vectors @ qpoint.astype(force_constants.dtype))
    phase = jnp.sum(
        weights * jax.lax.complex(jnp.cos(phase_arg), jnp.sin(phase_arg)), axis=-1
    )  # [p, n]
    fc_rows = force_constants[rep]  # [p, 3, n, 3]
    onehot = jnp.asarray(images.primitive_of)[:, None] == jnp.arange(p)[None, :]
    onehot = onehot.astype(phase.dtype)  # [n, p]
    weighted = fc_rows.astype(phase.dtype) * phase[:, None, :, None]
    d = jnp.einsum("iakb,kj->iajb", weighted, onehot)  # [p, 3, p, 3]
    m = jnp.asarray(masses, force_constants.dtype)[rep]
    inv_sqrt_m = (1.0 / jnp.sqrt(m)).astype(phase.dtype)
    d = d * inv_sqrt_m[:, None, None, None] * inv_sqrt_m[None, None, :, None]
    del n
    d = d.reshape(3 * p, 3 * p)
    return 0.5 * (d + jnp.conj(d.T))


def eigensystem(
    dynmat: Complex[Array, "d d"],
) -> tuple[Float[Array, " d"], Complex[Array, "d d"]]:
    """Frequencies (THz, imaginary as negative) and eigenvectors of ``D(q)``.

    Args:
        dynmat: ``[3p, 3p]`` Hermitian dynamical matrix, eV/(Å²·amu).

    Returns:
        ``([3p] frequencies, THz, ascending; [3p, 3p] eigenvectors as columns,
        dimensionless)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f, _ = eigensystem(jnp.diag(jnp.array([-1.0, 1.0])).astype(complex))
        >>> [round(float(x), 4) for x in f]
        [-15.6333, 15.6333]
    """
    w2, vecs = jnp.linalg.eigh(dynmat)
    return to_thz(w2), vecs


def to_thz(w2: Float[Array, "*k"]) -> Float[Array, "*k"]:
    """Eigenvalues of ``D`` (eV/(Å²·amu)) to frequencies ``sign(λ)√|λ|``, THz.

    The factor is phonopy's (:data:`mldiff.units.PHONOPY_THZ_PER_SQRT_EV_A2_AMU`),
    so frequencies equal phonopy's to the last digits.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(to_thz(jnp.array(4.0))), 4)
        31.2666
    """
    return jnp.sign(w2) * jnp.sqrt(jnp.abs(w2)) * units.PHONOPY_THZ_PER_SQRT_EV_A2_AMU


@jax.jit
def modes_at(force_constants, masses, images: Images, qpoints):
    """Frequencies and eigenvectors at many q-points (jitted, vmapped).

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell atomic masses, amu.
        images: from :func:`images`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``([k, 3p] frequencies, THz; [k, 3p, 3p] eigenvectors, column = mode)``.
    """
    fc = jnp.asarray(force_constants)
    m = jnp.asarray(masses, fc.dtype)
    q = jnp.asarray(qpoints, fc.dtype).reshape(-1, 3)
    return jax.vmap(lambda x: eigensystem(dynamical_matrix(fc, m, x, images)))(q)


@jax.jit
def frequencies_at(force_constants, masses, images: Images, qpoints):
    """Frequencies only at many q-points (``eigvalsh``; jitted, vmapped).

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell atomic masses, amu.
        images: from :func:`images`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``[k, 3p]`` frequencies, THz, ascending; imaginary modes negative.
    """
    fc = jnp.asarray(force_constants)
    m = jnp.asarray(masses, fc.dtype)
    q = jnp.asarray(qpoints, fc.dtype).reshape(-1, 3)
    dyn = jax.vmap(lambda x: dynamical_matrix(fc, m, x, images))(q)
    return to_thz(jnp.linalg.eigvalsh(dyn))


def phonon_modes(force_constants, masses, images: Images):
    """``modes_fn(qpoints)``: :func:`modes_at` with the force constants bound.

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell atomic masses, amu.
        images: from :func:`images`.

    Returns:
        ``modes_fn(qpoints: [k, 3]) -> ([k, 3p] THz, [k, 3p, 3p] eigenvectors)``,
        q in reduced coordinates of the primitive reciprocal lattice.
    """
    return functools.partial(modes_at, force_constants, masses, images)


def phonon_frequencies(force_constants, masses, images: Images):
    """``frequencies_fn(qpoints)``: :func:`frequencies_at` with the fc bound.

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell atomic masses, amu.
        images: from :func:`images`.

    Returns:
        ``frequencies_fn(qpoints: [k, 3]) -> [k, 3p]`` ascending, THz (negative
        for imaginary modes). Compiled once per shape, shared by all calls.
    """
    return functools.partial(frequencies_at, force_constants, masses, images)
