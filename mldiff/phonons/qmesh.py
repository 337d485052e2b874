"""q-point meshes of the primitive reciprocal lattice, with and without symmetry.

Two samplings of the Brillouin zone, both in reduced coordinates folded into
``(−1/2, 1/2]``:

* :func:`regular_mesh` — phonopy's ``run_mesh`` grid, Monkhorst–Pack or
  Γ-centred, every point with equal weight (density of states, thermal
  properties);
* :func:`mesh` — the Γ-centred ``N1×N2×N3`` grid in spglib's order, its
  symmetry-irreducible points (spglib, with time reversal) each with the weight
  of its star, the partner ``q'' ≡ −q − q'`` of every pair (three-phonon
  triplets), and the point-group images of every point (the LBTE's collision
  matrix is rotated from the irreducible rows with them).

References:
    phonopy 4.10 ``phonon/mesh.py``; spglib ``get_ir_reciprocal_mesh``;
    phono3py 4.10 ``phonon3/triplets.py`` (the ``q + q' + q'' = G`` partners).
"""

from typing import NamedTuple

import numpy as np

from mldiff.errors import ConfigError

__all__ = ["Mesh", "mesh", "regular_mesh", "star_operations"]


def regular_mesh(mesh, *, gamma_center: bool = False) -> np.ndarray:
    """Regular q-point mesh as phonopy's ``run_mesh`` makes it (no symmetry).

    ``q_i = (n_i + s_i / 2) / N_i`` with ``s_i = 1`` for even ``N_i`` unless
    ``gamma_center`` (Monkhorst–Pack, phonopy's default), else ``s_i = 0``.

    Args:
        mesh: three positive integers ``(N1, N2, N3)``.
        gamma_center: always include Γ (phonopy's ``is_gamma_center``).

    Returns:
        ``[N1·N2·N3, 3]`` q-points, reduced coordinates in ``(−1/2, 1/2]``; Γ
        first when it belongs to the mesh.

    Example:
        >>> regular_mesh([2, 1, 1]).tolist()
        [[0.25, 0.0, 0.0], [-0.25, 0.0, 0.0]]
        >>> regular_mesh([2, 1, 1], gamma_center=True).tolist()
        [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    """
    m = np.asarray(mesh, dtype=int).reshape(-1)
    if m.shape != (3,) or np.any(m < 1):
        raise ConfigError(f"mesh must be three positive integers, got {mesh!r}")
    shift = np.where((m % 2 == 0) & (not gamma_center), 0.5, 0.0)
    axes = [(np.arange(k) + s) / k for k, s in zip(m, shift, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return grid - (grid > 0.5)  # fold into (−1/2, 1/2]


class Mesh(NamedTuple):
    """A Γ-centred q-mesh and its irreducible points (host-side NumPy).

    Attributes:
        numbers: ``[3]`` mesh numbers.
        qpoints: ``[N, 3]`` reduced coordinates (primitive reciprocal lattice)
            in ``(−1/2, 1/2]``, spglib's grid order.
        irreducible: ``[g]`` indices into ``qpoints`` of the irreducible points.
        weights: ``[g]`` number of mesh points in each star (sum ``N``).
        third: ``[g, N]`` for irreducible ``q`` and each ``q'``, the index of
            ``q'' ≡ −q − q'`` on the mesh.
        rotations: ``[r, 3, 3]`` Cartesian point-group rotations, with time
            reversal (``−R``) added when the group lacks inversion: the
            operations that map a q-point onto its star.
        rotation_map: ``[r, N]`` index of ``R q`` for each rotation and point;
            ``None`` when the mesh numbers break the crystal's symmetry (the
            LBTE then needs ``use_symmetry=False``).
        star: ``[N]`` index into ``irreducible`` of each point's star.
    """

    numbers: np.ndarray
    qpoints: np.ndarray
    irreducible: np.ndarray
    weights: np.ndarray
    third: np.ndarray
    rotations: np.ndarray
    rotation_map: np.ndarray | None
    star: np.ndarray


def mesh(primitive, numbers, *, use_symmetry: bool = True, symprec: float = 1e-5):
    """Γ-centred q-mesh with irreducible points and triplet partners (spglib).

    Args:
        primitive: the primitive :class:`~mldiff.structure.Structure`, Å.
        numbers: ``[3]`` mesh numbers.
        use_symmetry: reduce to irreducible points; ``False`` keeps all.
        symprec: spglib tolerance, Å.

    Returns:
        The :class:`Mesh`.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> m = mesh(Structure.from_ase(bulk("Si", "diamond", a=5.431)), [4, 4, 4])
        >>> len(m.qpoints), len(m.irreducible), int(m.weights.sum())
        (64, 8, 64)
    """
    import spglib

    nums = np.asarray(numbers, dtype=int).reshape(-1)
    if nums.shape != (3,) or np.any(nums < 1):
        raise ConfigError(f"mesh must be three positive integers, got {numbers!r}")
    lat = np.asarray(primitive.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(primitive.positions, np.float64).T).T
    cell = (lat, frac, np.asarray(primitive.numbers))
    mapping, address = spglib.get_ir_reciprocal_mesh(
        nums, cell, is_shift=[0, 0, 0], is_time_reversal=True, symprec=symprec
    )
    address = np.asarray(address)
    mapping = np.asarray(mapping) if use_symmetry else np.arange(len(address))
    ir, star, counts = np.unique(mapping, return_inverse=True, return_counts=True)
    q = address / nums
    q = q - (q > 0.5)
    a = np.mod(address, nums)
    idx = _grid_index(a, nums)
    if not np.array_equal(idx, np.arange(len(idx))):
        raise ConfigError("unexpected spglib grid order; check the spglib version")
    t = np.mod(-(a[ir][:, None, :] + a[None, :, :]), nums)  # [g, N, 3]
    third = _grid_index(t, nums)
    sym = spglib.get_symmetry((lat, frac, np.asarray(primitive.numbers)), symprec)
    rots = np.unique(np.asarray(sym["rotations"]), axis=0)
    if not np.any(np.all(rots == -np.eye(3, dtype=rots.dtype), axis=(1, 2))):
        rots = np.concatenate([rots, -rots])  # time reversal: q -> -q
    cart = np.einsum("ab,obc,cd->oad", lat.T, rots, np.linalg.inv(lat.T))
    rotation_map = _rotation_map(rots, a, nums)
    if rotation_map is not None and not np.array_equal(
        mapping[rotation_map], np.broadcast_to(mapping, rotation_map.shape)
    ):
        rotation_map = None  # spglib reduced the mesh by other operations
    return Mesh(
        nums,
        q,
        ir.astype(np.int64),
        counts.astype(np.int64),
        third,
        cart,
        rotation_map,
        star.astype(np.int64),
    )


def _grid_index(address, nums):
    """Index in spglib's grid order of integer addresses in ``[0, n)``."""
    return address[..., 0] + nums[0] * (address[..., 1] + nums[1] * address[..., 2])


def _rotation_map(rotations, address, nums):
    """``[r, N]`` grid index of ``R q`` (``q' = W⁻ᵀ q`` for a real-space ``W``).

    ``None`` when some ``R q`` falls off the mesh (mesh numbers that break
    the crystal's symmetry).
    """
    recip = np.linalg.inv(rotations).transpose(0, 2, 1)  # [r, 3, 3]
    image = np.einsum("oab,nb->ona", recip, address / nums) * nums  # [r, N, 3]
    rounded = np.rint(image)
    if np.abs(image - rounded).max() > 1e-8:
        return None  # the mesh breaks the symmetry
    return _grid_index(np.mod(rounded.astype(np.int64), nums), nums)


def star_operations(grid: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """The operations that carry the irreducible points onto the whole mesh.

    Args:
        grid: from :func:`mesh`.

    Returns:
        ``(rotation_map [r, N] int, rotations [r, 3, 3] Cartesian)``: the
        mesh's own, or the identity alone when every point is irreducible
        (``use_symmetry=False``).

    Raises:
        ConfigError: the mesh numbers break the crystal's symmetry, so
            quantities on the irreducible points cannot be rotated onto the
            mesh.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
        >>> star_operations(mesh(si, [4, 4, 4]))[0].shape  # Oh: 48 operations
        (48, 64)
    """
    n_mesh = len(grid.qpoints)
    if len(grid.irreducible) == n_mesh:
        return np.arange(n_mesh)[None], np.eye(3)[None]
    if grid.rotation_map is None:
        raise ConfigError(
            f"the {grid.numbers.tolist()} mesh breaks the crystal's symmetry, so "
            "the collision matrix cannot be rotated from the irreducible points: "
            "use mesh numbers that respect it or use_symmetry=False"
        )
    return grid.rotation_map, grid.rotations
