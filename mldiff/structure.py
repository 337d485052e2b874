"""The :class:`Structure` pytree: atoms, cell and periodicity.

A structure is a frozen dataclass registered as a JAX pytree, so it passes
through ``jit``, ``grad`` and ``vmap``. ``positions`` and ``cell`` are leaves (so
forces and stress are derivatives with respect to them); ``numbers`` is a leaf
too (so structures of equal size batch under ``vmap``); ``pbc`` is static.

Conversions to and from ASE ``Atoms`` and pymatgen ``Structure``/``Molecule``
import those packages lazily, inside the functions.
"""

from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mldiff._cells import pairs_within
from mldiff._typing import ArrayLike
from mldiff.errors import StructureError

__all__ = ["Structure", "validate", "supercell", "apply_strain", "MIN_DISTANCE"]

MIN_DISTANCE = 0.5  # Å; closer atoms are rejected as overlapping


@flax.struct.dataclass
class Structure:
    """Atoms in a (possibly periodic) cell.

    Attributes:
        positions: ``[n, 3]`` Cartesian coordinates, Å.
        cell: ``[3, 3]`` lattice vectors as rows, Å. All zeros for a molecule.
        numbers: ``[n]`` atomic numbers (integers).
        pbc: periodicity along each lattice vector (static, not traced).

    Example:
        >>> import numpy as np
        >>> s = Structure.create([[0, 0, 0]], np.eye(3) * 3.6, [29])
        >>> s.positions.shape, s.pbc
        ((1, 3), (True, True, True))
    """

    positions: jax.Array
    cell: jax.Array
    numbers: jax.Array
    pbc: tuple[bool, bool, bool] = flax.struct.field(
        pytree_node=False, default=(True, True, True)
    )

    @classmethod
    def create(
        cls,
        positions: ArrayLike | Sequence,
        cell: ArrayLike | Sequence | None,
        numbers: ArrayLike | Sequence,
        pbc: bool | Sequence[bool] = True,
        *,
        dtype=None,
        check: bool = True,
    ) -> "Structure":
        """Build and validate a structure from array-likes.

        Args:
            positions: ``[n, 3]`` Cartesian coordinates, Å.
            cell: ``[3, 3]`` lattice vectors as rows, Å; ``None`` for a molecule.
            numbers: ``[n]`` atomic numbers.
            pbc: one flag for all directions or three flags.
            dtype: float dtype of positions and cell; default: JAX's default float
                (float64 when ``jax_enable_x64`` is on).
            check: run :func:`validate` (overlaps, NaN, singular cell).

        Returns:
            A new :class:`Structure`.
        """
        dtype = dtype or jnp.result_type(float)
        if isinstance(pbc, bool | np.bool_):
            pbc = (bool(pbc),) * 3
        pbc = tuple(bool(p) for p in pbc)
        if len(pbc) != 3:
            raise StructureError(f"pbc must have 3 flags, got {pbc!r}")
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, np.float64)
        if cell.shape == (3,):
            cell = np.diag(cell)
        numbers = np.asarray(numbers).reshape(-1)
        if numbers.shape[0] != positions.shape[0]:
            raise StructureError(
                f"{positions.shape[0]} positions but {numbers.shape[0]} atomic "
                "numbers; give one atomic number per atom"
            )
        if not np.issubdtype(numbers.dtype, np.integer):
            if not np.all(numbers == np.round(numbers)):
                raise StructureError(f"atomic numbers must be integers: {numbers}")
        s = cls(
            positions=jnp.asarray(positions, dtype=dtype),
            cell=jnp.asarray(cell, dtype=dtype),
            numbers=jnp.asarray(numbers, dtype=jnp.int32),
            pbc=pbc,
        )
        if check:
            validate(s)
        return s

    def __len__(self) -> int:
        """Number of atoms."""
        return int(self.positions.shape[0])

    @property
    def volume(self) -> jax.Array:
        """Cell volume, Å³ (signed determinant of the cell)."""
        return jnp.linalg.det(self.cell)

    # -- ASE ---------------------------------------------------------------
    @classmethod
    def from_ase(cls, atoms, *, dtype=None, check: bool = True) -> "Structure":
        """Structure from an ``ase.Atoms`` (positions, cell, numbers, pbc)."""
        return cls.create(
            atoms.get_positions(),
            np.asarray(atoms.get_cell()),
            atoms.get_atomic_numbers(),
            tuple(bool(p) for p in atoms.get_pbc()),
            dtype=dtype,
            check=check,
        )

    def to_ase(self):
        """This structure as an ``ase.Atoms``."""
        from ase import Atoms

        return Atoms(
            numbers=np.asarray(self.numbers),
            positions=np.asarray(self.positions, dtype=np.float64),
            cell=np.asarray(self.cell, dtype=np.float64),
            pbc=self.pbc,
        )

    # -- pymatgen ----------------------------------------------------------
    @classmethod
    def from_pymatgen(cls, obj, *, dtype=None, check: bool = True) -> "Structure":
        """Structure from a pymatgen ``Structure`` (periodic) or ``Molecule``.

        Sites must be ordered (one element per site); disordered sites raise.
        """
        if not obj.is_ordered:
            raise StructureError(
                "pymatgen object has disordered (partial-occupancy) sites; "
                "order it first, e.g. with OrderDisorderedStructureTransformation"
            )
        numbers = [site.specie.Z for site in obj]
        if hasattr(obj, "lattice"):
            pbc = tuple(bool(p) for p in getattr(obj.lattice, "pbc", (True,) * 3))
            return cls.create(
                obj.cart_coords,
                obj.lattice.matrix,
                numbers,
                pbc,
                dtype=dtype,
                check=check,
            )
        return cls.create(
            obj.cart_coords, None, numbers, False, dtype=dtype, check=check
        )

    def to_pymatgen(self):
        """A pymatgen ``Structure`` if any direction is periodic, else ``Molecule``."""
        from pymatgen.core import Lattice, Molecule
        from pymatgen.core import Structure as PmgStructure

        numbers = [int(z) for z in np.asarray(self.numbers)]
        coords = np.asarray(self.positions, dtype=np.float64)
        if not any(self.pbc):
            return Molecule(numbers, coords)
        lattice = Lattice(np.asarray(self.cell, dtype=np.float64), pbc=self.pbc)
        return PmgStructure(lattice, numbers, coords, coords_are_cartesian=True)


def _periodic_cell_check(cell: np.ndarray, pbc: tuple[bool, ...]) -> None:
    periodic = [k for k in range(3) if pbc[k]]
    if not periodic:
        return
    vecs = cell[periodic]
    gram = vecs @ vecs.T
    lengths = np.sqrt(np.diag(gram))
    if np.any(lengths < 1e-6):
        k = periodic[int(np.argmin(lengths))]
        raise StructureError(
            f"lattice vector {k} is zero ({cell[k].tolist()}) but pbc[{k}] is "
            "True; give a cell vector or set that direction non-periodic"
        )
    # normalised Gram determinant: 1 for orthogonal, 0 for degenerate vectors
    det = np.linalg.det(gram / np.outer(lengths, lengths))
    if det < 1e-8:
        raise StructureError(
            f"singular cell: periodic lattice vectors {periodic} are (nearly) "
            f"linearly dependent (normalised Gram determinant {det:.2e}); "
            "check the cell matrix (rows are lattice vectors, Å)"
        )
    if all(pbc) and np.linalg.det(cell) < 0:
        raise StructureError(
            f"left-handed cell (det = {np.linalg.det(cell):.4f} Å³); swap two "
            "lattice vectors or negate one to make the cell right-handed"
        )


def validate(structure: Structure, min_distance: float = MIN_DISTANCE) -> Structure:
    """Check a structure and raise :class:`StructureError` naming any problem.

    Checks: finite coordinates and cell, atomic numbers 1..118, a non-singular
    right-handed cell along periodic directions, and no two atoms (including
    periodic images) closer than ``min_distance``.

    Args:
        structure: the structure to check (concrete, not traced).
        min_distance: smallest allowed interatomic distance, Å.

    Returns:
        The same structure, so calls can be chained.
    """
    pos = np.asarray(structure.positions, dtype=np.float64)
    cell = np.asarray(structure.cell, dtype=np.float64)
    numbers = np.asarray(structure.numbers)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise StructureError(f"positions must be [n, 3], got shape {pos.shape}")
    if cell.shape != (3, 3):
        raise StructureError(f"cell must be 3x3 (rows = vectors), got {cell.shape}")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise StructureError(
            f"non-finite (NaN/inf) coordinates for atoms {idx[:10].tolist()}; "
            "a previous step (relaxation, MD) probably diverged"
        )
    if not np.isfinite(cell).all():
        raise StructureError(f"non-finite (NaN/inf) entries in the cell: {cell}")
    if numbers.size and (numbers.min() < 1 or numbers.max() > 118):
        raise StructureError(
            f"atomic numbers must lie in 1..118, got {sorted(set(numbers.tolist()))}"
        )
    _periodic_cell_check(cell, structure.pbc)
    if len(pos) > 1:
        i, j, _, d = pairs_within(pos, cell, structure.pbc, min_distance)
        if len(i):
            k = int(np.argmin(d))
            raise StructureError(
                f"atoms {int(i[k])} and {int(j[k])} are {d[k]:.3f} Å apart "
                f"(minimum {min_distance} Å); check for duplicated sites or "
                "fractional coordinates passed as Cartesian"
            )
    return structure


def shortest_distance(structure: Structure) -> float:
    """The shortest interatomic distance, periodic images included, Å.

    ``inf`` for a single atom without periodic images (or no atoms).

    Example:
        >>> from ase.build import bulk
        >>> d = shortest_distance(Structure.from_ase(bulk("Cu", "fcc", a=3.6)))
        >>> round(d, 6)  # a / √2
        2.545584
    """
    pos = np.asarray(structure.positions, dtype=np.float64)
    cell = np.asarray(structure.cell, dtype=np.float64)
    pbc = np.asarray(structure.pbc, dtype=bool)
    if len(pos) == 0 or (len(pos) == 1 and not pbc.any()):
        return float("inf")
    if pbc.any():  # no pair is longer than the shortest lattice vector
        reach = float(np.min(np.linalg.norm(cell[pbc], axis=1))) + 1e-9
    else:
        reach = float(np.linalg.norm(pos[1] - pos[0])) + 1e-9
    radius = min(3.0, reach)  # grow the search only when nothing is that close
    while True:
        *_, d = pairs_within(pos, cell, structure.pbc, radius)
        if d.size or radius >= reach:
            return float(np.min(d)) if d.size else float("inf")
        radius = min(2.0 * radius, reach)


def supercell(structure: Structure, matrix) -> Structure:
    """Supercell with lattice ``matrix @ cell`` (integer matrix or 3 repeats).

    Atoms are ordered as in ``ase.build.make_supercell`` with ``order="cell-major"``
    for diagonal matrices: all atoms of the first image, then the next image, with
    images enumerated with the last lattice index fastest.

    Args:
        structure: periodic structure.
        matrix: ``[3]`` repeats or ``[3, 3]`` integer transformation matrix, rows
            give the new lattice vectors in units of the old ones.

    Returns:
        The supercell, with ``|det(matrix)|`` times as many atoms.
    """
    p = np.asarray(matrix)
    p = np.diag(p) if p.shape == (3,) else p
    if p.shape != (3, 3) or not np.all(p == np.round(p)):
        raise StructureError(
            f"supercell matrix must be 3 integers or 3x3 integers: {matrix}"
        )
    p = p.astype(int)
    n_images = int(round(abs(np.linalg.det(p))))
    if n_images == 0:
        raise StructureError(f"supercell matrix {p.tolist()} is singular")
    # integer lattice points of the old lattice inside the new cell
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) @ p
    lo, hi = corners.min(0), corners.max(0)
    grid = np.stack(
        np.meshgrid(*[np.arange(lo[k], hi[k] + 1) for k in range(3)], indexing="ij"), -1
    ).reshape(-1, 3)
    frac = grid @ np.linalg.inv(p)  # coordinates in the new lattice
    eps = 1e-8
    inside = np.all((frac > -eps) & (frac < 1 - eps), axis=1)
    shifts = grid[inside]
    if len(shifts) != n_images:
        raise StructureError(f"found {len(shifts)} lattice points, expected {n_images}")
    cell = jnp.asarray(p, structure.cell.dtype) @ structure.cell
    offsets = jnp.asarray(shifts, structure.cell.dtype) @ structure.cell  # [m, 3]
    positions = (offsets[:, None, :] + structure.positions[None]).reshape(-1, 3)
    numbers = jnp.tile(structure.numbers, n_images)
    return Structure(positions=positions, cell=cell, numbers=numbers, pbc=structure.pbc)


def apply_strain(structure: Structure, strain) -> Structure:
    """Homogeneously deform positions and cell by ``(1 + ε)``.

    With row vectors, ``r' = r (1 + ε)`` and ``cell' = cell (1 + ε)``; a
    non-symmetric ``ε`` is symmetrised first (rotations carry no energy).
    Differentiable and jit-compatible.

    Args:
        structure: the structure to deform.
        strain: ``[3, 3]`` strain tensor ε, or ``[6]`` Voigt
            (xx, yy, zz, yz, xz, xy) with engineering shear γ = 2ε.

    Returns:
        The strained structure.
    """
    eps = jnp.asarray(strain, dtype=structure.cell.dtype)
    if eps.shape == (6,):
        xx, yy, zz, yz, xz, xy = eps
        eps = jnp.array(
            [[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]]
        )
    f = jnp.eye(3, dtype=eps.dtype) + 0.5 * (eps + eps.T)
    return structure.replace(positions=structure.positions @ f, cell=structure.cell @ f)
