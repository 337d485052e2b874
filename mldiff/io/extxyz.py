"""Read and write labeled structures as extended XYZ, through ASE.

The extxyz format stores one frame per structure: positions and per-atom
arrays in columns, the cell, ``pbc`` and per-structure values on the comment
line. ASE moves the standard labels (``energy``, ``free_energy``, ``forces``,
``stress``) into a ``SinglePointCalculator`` when it reads; other keys (e.g.
``REF_energy``) stay in ``atoms.info`` / ``atoms.arrays``. Both are searched.

Example:
    >>> import pathlib, tempfile
    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> atoms = bulk("Cu", "fcc", a=3.6)
    >>> atoms.calc = EMT()
    >>> _ = atoms.get_forces()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cu.xyz"
    >>> _ = write_extxyz(path, [LabeledStructure.from_atoms(atoms)])
    >>> [round(x.energy, 4) for x in read_extxyz(path)]
    [-0.0067]
"""

import io
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from mldiff.errors import DataError
from mldiff.io.files import atomic_write
from mldiff.io.labeled import LabeledStructure

__all__ = ["read_extxyz", "write_extxyz"]


def read_extxyz(
    path: str | os.PathLike,
    index: int | str | slice = ":",
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    virial_key: str | None = "virial",
    required: Sequence[str] = ("energy", "forces"),
    dtype=None,
    check: bool = True,
) -> list[LabeledStructure]:
    """Read labeled structures from an extxyz file.

    Args:
        path: the ``.xyz`` / ``.extxyz`` file.
        index: which frames, as for ``ase.io.read`` (``":"`` all, ``-1`` the
            last, ``"10:20"``, ...).
        energy_key: key of the total energy, eV; default ``"energy"``, then
            ``"free_energy"`` (in the comment line or ASE's calculator results).
        forces_key: key of the per-atom forces, eV/Å; default ``"forces"``.
        stress_key: key of the stress, eV/Å³, ASE sign (3x3, 9 or Voigt 6
            values); default ``"stress"``. If absent, ``virial_key`` is tried.
        virial_key: key of the virial ``W``, eV, converted to ``−W / V``;
            ``None`` to ignore.
        required: labels every frame must have (``"energy"``, ``"forces"``,
            ``"stress"``); ``()`` reads unlabeled structures too.
        dtype: float dtype of the structures; default JAX's default float.
        check: validate every structure (overlaps, cell, NaN).

    Returns:
        One :class:`LabeledStructure` per selected frame, in file order.

    Raises:
        DataError: the file does not exist or cannot be parsed, a required
            label is missing (naming the frame, the key and the keys present),
            forces do not match the number of atoms, or a label is NaN.
    """
    import ase.io

    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(
            f"extxyz file {str(path)!r} does not exist "
            f"(resolved to {str(path.resolve())!r}); check the path"
        )
    try:
        frames = ase.io.read(path, index=index, format="extxyz")
    except Exception as err:  # ASE raises many types for malformed files
        raise DataError(
            f"cannot parse {str(path)!r} as extxyz with index={index!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(frames, list):
        frames = [frames]
    where_index = "" if index == ":" else f" (counting within index={index!r})"
    return [
        LabeledStructure.from_atoms(
            atoms,
            energy_key=energy_key,
            forces_key=forces_key,
            stress_key=stress_key,
            virial_key=virial_key,
            required=required,
            where=f"frame {k}{where_index} of {str(path)!r}",
            dtype=dtype,
            check=check,
        )
        for k, atoms in enumerate(frames)
    ]


def _atoms_for_writing(item, energy_key, forces_key, stress_key):
    """``ase.Atoms`` with labels as plain info/array entries (no calculator)."""
    if not isinstance(item, LabeledStructure):
        if hasattr(item, "get_positions"):  # ase.Atoms: labels from its calc
            item = LabeledStructure.from_atoms(item, check=False)
        else:
            raise DataError(
                f"cannot write {type(item).__name__} to extxyz; pass "
                "LabeledStructure or ase.Atoms items"
            )
    atoms = item.structure.to_ase()
    clash = {energy_key, forces_key, stress_key} & set(item.info)
    if clash:
        raise DataError(
            f"info keys {sorted(clash)} clash with the label keys; rename them "
            "in item.info or choose other energy_key/forces_key/stress_key"
        )
    atoms.info.update(item.info)
    if item.energy is not None:
        atoms.info[energy_key] = float(item.energy)
    if item.forces is not None:
        atoms.arrays[forces_key] = np.array(item.forces, dtype=np.float64)
    if item.stress is not None:
        atoms.info[stress_key] = np.array(item.stress, dtype=np.float64)
    return atoms


def write_extxyz(
    path: str | os.PathLike,
    items: Iterable[LabeledStructure],
    *,
    energy_key: str = "energy",
    forces_key: str = "forces",
    stress_key: str = "stress",
) -> pathlib.Path:
    """Write labeled structures to an extxyz file, atomically.

    The file is written through :func:`mldiff.io.files.atomic_write`, so
    readers never see a half-written file and an interrupted write leaves any
    previous file intact.

    Args:
        path: destination file; its directory must exist.
        items: :class:`LabeledStructure` (or ``ase.Atoms``, whose calculator
            results are written) objects.
        energy_key: comment-line key for the energy, eV.
        forces_key: column name for the forces, eV/Å.
        stress_key: comment-line key for the ``[3, 3]`` stress, eV/Å³.

    Returns:
        The path written.

    Raises:
        DataError: the directory does not exist, an item is not a structure, or
            an ``info`` key clashes with a label key.
    """
    import ase.io

    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise DataError(
            f"cannot write {str(path)!r}: directory {str(path.parent)!r} does "
            "not exist; create it first"
        )
    images = [_atoms_for_writing(x, energy_key, forces_key, stress_key) for x in items]
    text = io.StringIO()
    ase.io.write(text, images, format="extxyz")
    atomic_write(path, text.getvalue())
    return path
