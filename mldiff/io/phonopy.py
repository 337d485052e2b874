"""phonopy-readable force constants: ``FORCE_CONSTANTS`` and ``phonopy_params.yaml``.

Both files hold supercell force constants in eV/Å² with phonopy's layout
``[n, n, 3, 3]`` (ours is ``[n, 3, n, 3]``) and phonopy's atom order of the
supercell: for each unit-cell atom, the lattice points with the first index
running fastest (phonopy's ``Supercell`` for a diagonal supercell matrix).
:func:`phonopy_order` maps our supercell (:func:`mldiff.structure.supercell`
order) onto that order by position, so a phonopy or phono3py user can take
over with ``phonopy.load("phonopy_params.yaml")`` or with ``FORCE_CONSTANTS``
next to their own unit cell and ``DIM``.

The formats are written here (no phonopy import); the tests read them back
with phonopy's own parsers.

References:
    phonopy 4.10 ``file_IO.py`` (``write_FORCE_CONSTANTS``,
    ``parse_FORCE_CONSTANTS``), ``interface/phonopy_yaml.py`` and
    ``structure/cells.py`` (``Supercell``), read for the formats.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> fc = np.arange(36.0).reshape(2, 3, 2, 3)
    >>> path = os.path.join(tempfile.mkdtemp(), "FORCE_CONSTANTS")
    >>> write_force_constants(path, fc)
    >>> bool(np.all(read_force_constants(path) == fc))
    True
"""

import numpy as np

from mldiff.errors import ConfigError, StructureError
from mldiff.io.files import atomic_write
from mldiff.units import masses_amu

__all__ = [
    "write_force_constants",
    "read_force_constants",
    "phonopy_order",
    "write_phonopy_params",
]


def _check_fc(fc) -> np.ndarray:
    fc = np.asarray(fc, np.float64)
    if fc.ndim != 4 or fc.shape[1] != 3 or fc.shape[3] != 3:
        raise ConfigError(
            f"force constants must have shape [k, 3, n, 3] (eV/Å²), got {fc.shape}"
        )
    return fc


def write_force_constants(path, force_constants, rows=None) -> None:
    """Write force constants in phonopy's ``FORCE_CONSTANTS`` text format.

    Args:
        path: output file.
        force_constants: ``[k, 3, n, 3]`` force constants, eV/Å², in the atom
            order phonopy expects (see :func:`phonopy_order`); ``k = n`` (full)
            or ``k`` rows of the atoms ``rows`` (phonopy's compact form).
        rows: ``[k]`` supercell indices of the rows, default ``0..k−1``.
    """
    fc = _check_fc(force_constants)
    k, n = fc.shape[0], fc.shape[2]
    rows = np.arange(k) if rows is None else np.asarray(rows, int)
    if rows.shape != (k,):
        raise ConfigError(f"rows must have shape ({k},), got {rows.shape}")
    blocks = np.transpose(fc, (0, 2, 1, 3))  # phonopy layout [k, n, 3, 3]
    lines = [f"{k:4d} {n:4d}"]
    for i, si in enumerate(rows):
        for j in range(n):
            lines.append(f"{si + 1} {j + 1}")
            lines.extend(("%22.15f" * 3) % tuple(v) for v in blocks[i, j])
    atomic_write(path, "\n".join(lines) + "\n")


def read_force_constants(path) -> np.ndarray:
    """Read a ``FORCE_CONSTANTS`` file (full or compact).

    Args:
        path: the file.

    Returns:
        ``[k, 3, n, 3]`` force constants, eV/Å² (rows in file order).
    """
    with open(path) as fh:
        tokens = fh.read().split()
    try:
        k, n = int(tokens[0]), int(tokens[1])
        body = np.array(tokens[2:], dtype=np.float64).reshape(k * n, 11)
    except (IndexError, ValueError) as err:
        raise ConfigError(
            f"{path!s} is not a FORCE_CONSTANTS file (a 'k n' header and k·n "
            f"blocks of 'i j' plus a 3×3 matrix): {err}"
        ) from err
    blocks = body[:, 2:].reshape(k, n, 3, 3)
    return np.ascontiguousarray(np.transpose(blocks, (0, 2, 1, 3)))


def phonopy_order(supercell, unitcell, supercell_matrix) -> np.ndarray:
    """Permutation from our supercell atom order to phonopy's.

    Args:
        supercell: our supercell (:class:`~mldiff.structure.Structure`), Å.
        unitcell: the unit cell it was built from, Å.
        supercell_matrix: ``[3]`` repeats or a diagonal ``[3, 3]`` matrix
            (phonopy's convention).

    Returns:
        ``[n]`` indices ``perm`` with phonopy's atom ``k`` = our atom
        ``perm[k]``; reorder force constants as ``fc[perm][:, :, perm]``.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure, supercell
        >>> u = Structure.from_ase(bulk("NaCl", "rocksalt", a=5.64))
        >>> phonopy_order(supercell(u, [2, 1, 1]), u, [2, 1, 1]).tolist()
        [0, 2, 1, 3]
    """
    m = np.asarray(supercell_matrix)
    m = np.diag(m) if m.shape == (3,) else m
    if m.shape != (3, 3) or np.any(m != np.diag(np.diagonal(m))):
        raise ConfigError(
            f"phonopy's atom order is implemented for diagonal supercell matrices "
            f"only, got {m.tolist()}; use a diagonal matrix (e.g. a conventional "
            "unit cell with repeats)"
        )
    mult = np.diagonal(m).astype(int)
    frac_u = np.linalg.solve(
        np.asarray(unitcell.cell, np.float64).T,
        np.asarray(unitcell.positions, np.float64).T,
    ).T
    b, c, a = np.meshgrid(range(mult[1]), range(mult[2]), range(mult[0]))
    points = np.c_[a.ravel(), b.ravel(), c.ravel()]  # a fastest (phonopy)
    target = (points[None, :, :] + frac_u[:, None, :]).reshape(-1, 3) / mult
    lat_s = np.asarray(supercell.cell, np.float64)
    frac_s = np.linalg.solve(lat_s.T, np.asarray(supercell.positions, np.float64).T).T
    d = target[:, None, :] - frac_s[None, :, :]
    d -= np.rint(d)
    dist = np.linalg.norm(d @ lat_s, axis=-1)  # [n phonopy, n ours], Å
    perm = np.argmin(dist, axis=1)
    if len(target) != len(frac_s) or np.any(dist[np.arange(len(perm)), perm] > 1e-5):
        raise StructureError(
            "the supercell does not match the unit cell repeated by "
            f"{mult.tolist()}; pass the cell and matrix the supercell was built from"
        )
    if len(np.unique(perm)) != len(perm):
        raise StructureError("two supercell atoms sit on the same site")
    return perm


def _cell_yaml(name, lattice, positions, numbers, masses):
    from ase.data import chemical_symbols

    lat = np.asarray(lattice, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(positions, np.float64).T).T
    lines = [f"{name}:", "  lattice:"]
    for v, label in zip(lat, "abc", strict=True):
        lines.append("  - [ %20.15f, %20.15f, %20.15f ] # %s" % (*v, label))
    lines.append("  points:")
    for k, (z, x, mass) in enumerate(zip(numbers, frac, masses, strict=True)):
        lines.append(f"  - symbol: {chemical_symbols[int(z)]} # {k + 1}")
        lines.append("    coordinates: [ %18.15f, %18.15f, %18.15f ]" % tuple(x))
        lines.append(f"    mass: {float(mass):.6f}")
    return lines


def write_phonopy_params(
    path,
    unitcell,
    supercell,
    supercell_matrix,
    force_constants,
    *,
    primitive_matrix=None,
    masses=None,
) -> None:
    """Write a ``phonopy_params.yaml`` that ``phonopy.load`` reads.

    Args:
        path: output file.
        unitcell: the unit cell, Å (phonopy's ``unitcell``).
        supercell: our supercell of it (``Phonons.supercell``), Å.
        supercell_matrix: ``[3]`` repeats or diagonal ``[3, 3]``.
        force_constants: ``[n, 3, n, 3]`` force constants of ``supercell`` in
            our atom order, eV/Å² (reordered here with :func:`phonopy_order`).
        primitive_matrix: ``[3, 3]`` phonopy's convention, or ``None`` (the
            unit cell is primitive).
        masses: ``[len(unitcell)]`` masses, amu; default ASE's.
    """
    fc = _check_fc(force_constants)
    numbers = np.asarray(unitcell.numbers)
    masses = masses_amu(numbers) if masses is None else np.asarray(masses, np.float64)
    perm = phonopy_order(supercell, unitcell, supercell_matrix)
    fc = fc[perm][:, :, perm]
    n = fc.shape[0]
    if fc.shape != (n, 3, n, 3) or n != len(perm):
        raise ConfigError(
            f"force constants of shape {fc.shape} do not belong to a supercell "
            f"of {len(perm)} atoms"
        )
    m = np.asarray(supercell_matrix)
    m = np.diag(m) if m.shape == (3,) else m
    pm = np.eye(3) if primitive_matrix is None else np.asarray(primitive_matrix)
    n_rep = n // len(numbers)
    lines = [
        "phonopy:",
        '  version: "2.20.0"',
        "  frequency_unit_conversion_factor: 15.633302",
        "  symmetry_tolerance: 1.00000e-05",
        "",
        "physical_unit:",
        '  atomic_mass: "AMU"',
        '  length: "angstrom"',
        '  force_constants: "eV/angstrom^2"',
        "",
        "primitive_matrix:",
        *("- [ %18.15f, %18.15f, %18.15f ]" % tuple(r) for r in pm),
        "",
        "supercell_matrix:",
        *("- [ %4d, %4d, %4d ]" % tuple(r) for r in m.astype(int)),
        "",
        *_cell_yaml("unit_cell", unitcell.cell, unitcell.positions, numbers, masses),
        "",
        *_cell_yaml(
            "supercell",
            supercell.cell,
            np.asarray(supercell.positions)[perm],
            np.repeat(numbers, n_rep),
            np.repeat(masses, n_rep),
        ),
        "",
        "force_constants:",
        '  format: "full"',
        f"  shape: [ {n}, {n} ]",
        "  elements:",
    ]
    blocks = np.transpose(fc, (0, 2, 1, 3))
    for i in range(n):
        for j in range(n):
            lines.append(f"  - # ({i + 1}, {j + 1})")
            lines.extend(
                "    - [ %20.15f, %20.15f, %20.15f ]" % tuple(v) for v in blocks[i, j]
            )
    atomic_write(path, "\n".join(lines) + "\n")
