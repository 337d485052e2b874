"""Structures with reference labels: energy, forces and stress.

A :class:`LabeledStructure` is what a training set is made of: a
:class:`~mldiff.structure.Structure` and the labels a reference calculation
(DFT, EMT, ...) gave for it. Any label may be missing (``None``).

Conventions follow ASE: energy in eV, forces ``−∂E/∂R`` in eV/Å, stress
``(1/V) ∂E/∂ε`` in eV/Å³ as a full ``[3, 3]`` tensor (positive = tensile, the
cell wants to shrink). A virial ``W`` converts as ``σ = −W / V``.

Example:
    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> atoms = bulk("Cu", "fcc", a=3.6)
    >>> atoms.calc = EMT()
    >>> _ = atoms.get_forces(), atoms.get_stress()
    >>> item = LabeledStructure.from_atoms(atoms)
    >>> round(item.energy, 4), item.forces.shape, item.stress.shape
    (-0.0067, (1, 3), (3, 3))
"""

from collections.abc import Sequence
from typing import Any

import flax.struct
import numpy as np

from mldiff.errors import DataError, StructureError
from mldiff.structure import Structure

__all__ = ["LabeledStructure", "LABELS"]

LABELS = ("energy", "forces", "stress")


@flax.struct.dataclass
class LabeledStructure:
    """A structure and its reference labels (host-side data).

    Labels are NumPy float64 (energy a Python float); the structure's arrays are
    JAX arrays of JAX's default float dtype. ``info`` is static metadata, so
    this is a pytree whose leaves are the structure and the labels; do not pass
    it through ``jit`` (``info`` is a dict and not hashable) — use
    :class:`mldiff.data.Batch` for that.

    Attributes:
        structure: the atoms, ``n`` of them.
        energy: total energy, eV; ``None`` if not labeled.
        forces: ``[n, 3]`` forces, eV/Å; ``None`` if not labeled.
        stress: ``[3, 3]`` stress, eV/Å³, ASE sign; ``None`` if not labeled.
        info: free-form metadata (static), e.g. ``{"config_type": "md_600K"}``;
            written to and read from the extxyz comment line.
    """

    structure: Any
    energy: Any = None
    forces: Any = None
    stress: Any = None
    info: dict = flax.struct.field(pytree_node=False, default_factory=dict)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(self.structure.positions.shape[0])

    @classmethod
    def create(
        cls,
        structure: Structure,
        energy=None,
        forces=None,
        stress=None,
        info: dict | None = None,
        *,
        where: str = "labeled structure",
    ) -> "LabeledStructure":
        """Build and check a labeled structure.

        Args:
            structure: the atoms, ``n`` of them.
            energy: total energy, eV, or ``None``.
            forces: ``[n, 3]`` forces, eV/Å, or ``None``.
            stress: ``[3, 3]`` or Voigt ``[6]`` (xx, yy, zz, yz, xz, xy) stress,
                eV/Å³, ASE sign, or ``None``.
            info: metadata, copied.
            where: how to name this structure in error messages.

        Returns:
            The labeled structure, labels as float64 NumPy.

        Raises:
            DataError: forces of the wrong shape, a stress that is neither 3x3
                nor 6 values, or a non-finite label.

        Example:
            >>> import numpy as np
            >>> s = Structure.create([[0, 0, 0]], np.eye(3) * 3.0, [29])
            >>> LabeledStructure.create(s, energy=-1.0).forces is None
            True
        """
        n = int(structure.positions.shape[0])
        if energy is not None:
            energy = _as_energy(energy, where)
        if forces is not None:
            forces = _as_forces(forces, n, where)
        if stress is not None:
            stress = _as_stress(stress, where)
        return cls(
            structure=structure,
            energy=energy,
            forces=forces,
            stress=stress,
            info=dict(info or {}),
        )

    @classmethod
    def from_atoms(
        cls,
        atoms,
        *,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
        virial_key: str | None = "virial",
        required: Sequence[str] = (),
        where: str = "the atoms",
        dtype=None,
        check: bool = True,
    ) -> "LabeledStructure":
        """Labeled structure from an ``ase.Atoms``.

        Labels are looked up in ``atoms.info`` / ``atoms.arrays`` and in the
        results of an attached calculator (e.g. the ``SinglePointCalculator``
        that ``ase.io.read`` attaches); a calculator is never asked to compute.

        Args:
            atoms: the ``ase.Atoms``.
            energy_key: key of the energy, eV; default: ``"energy"``, then
                ``"free_energy"``.
            forces_key: key of the ``[n, 3]`` forces, eV/Å; default ``"forces"``.
            stress_key: key of the stress, eV/Å³ (3x3, 9 or Voigt 6 values);
                default ``"stress"``. If absent, ``virial_key`` is tried.
            virial_key: key of a virial ``W`` (eV, 3x3/9/6 values), converted to
                stress ``−W / V``; ``None`` to ignore virials.
            required: labels that must be present, any of ``"energy"``,
                ``"forces"``, ``"stress"``.
            where: how to name this structure in error messages.
            dtype: float dtype of the structure; default JAX's default float.
            check: validate the structure (overlaps, cell, NaN).

        Returns:
            The labeled structure; ``info`` holds ``atoms.info`` minus the labels.

        Raises:
            DataError: a required label is missing, forces have the wrong
                length, a label is not finite.
            StructureError: the structure itself is invalid.
        """
        bad = sorted(set(required) - set(LABELS))
        if bad:
            raise DataError(
                f"unknown required label(s) {bad}; choose from {list(LABELS)}"
            )
        try:
            structure = Structure.from_ase(atoms, dtype=dtype, check=check)
        except StructureError as err:
            raise StructureError(f"{where}: {err}") from err
        results = dict(getattr(atoms.calc, "results", None) or {})
        info = dict(atoms.info)
        used = set()

        def lookup(keys, per_atom):
            for key in keys:
                if per_atom and key in atoms.arrays:
                    return key, atoms.arrays[key]
                if key in info:
                    used.add(key)
                    return key, info[key]
                if key in results and results[key] is not None:
                    return key, results[key]
            return None, None

        e_keys = ("energy", "free_energy") if energy_key is None else (energy_key,)
        f_keys = ("forces",) if forces_key is None else (forces_key,)
        s_keys = ("stress",) if stress_key is None else (stress_key,)
        _, energy = lookup(e_keys, per_atom=False)
        _, forces = lookup(f_keys, per_atom=True)
        _, stress = lookup(s_keys, per_atom=False)
        v_keys = ()
        if stress is None and virial_key is not None:
            v_keys = (virial_key,)
            _, virial = lookup(v_keys, per_atom=False)
            if virial is not None:
                stress = _virial_to_stress(virial, atoms, where)
        found = {"energy": energy, "forces": forces, "stress": stress}
        looked = {"energy": e_keys, "forces": f_keys, "stress": s_keys + v_keys}
        for label in required:
            if found[label] is None:
                raise DataError(
                    f"{where} has no {label} label (looked for "
                    f"{', '.join(repr(k) for k in looked[label])}); it has "
                    f"info keys {sorted(atoms.info)}, array keys "
                    f"{sorted(atoms.arrays)} and calculator results "
                    f"{sorted(results)}. Pass {label}_key= naming the right one"
                    f", or leave {label!r} out of required="
                )
        info = {k: v for k, v in info.items() if k not in used}
        return cls.create(structure, energy, forces, stress, info, where=where)

    def to_atoms(self):
        """This structure as ``ase.Atoms`` with its labels in a calculator.

        Returns:
            ``ase.Atoms`` with ``info`` copied and, if any label is present, a
            ``SinglePointCalculator`` holding ``energy`` (also as
            ``free_energy``), ``forces`` and Voigt ``stress``.
        """
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = self.structure.to_ase()
        atoms.info.update(self.info)
        results = {}
        if self.energy is not None:
            results["energy"] = float(self.energy)
            results["free_energy"] = float(self.energy)
        if self.forces is not None:
            results["forces"] = np.array(self.forces, dtype=np.float64)
        if self.stress is not None:
            results["stress"] = _full_to_voigt(np.asarray(self.stress))
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


def _as_energy(value, where: str) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise DataError(
            f"{where}: energy must be one number (eV), got shape {arr.shape}; "
            "per-atom energies are not a total energy — sum them first"
        )
    e = float(arr.reshape(()))
    if not np.isfinite(e):
        raise DataError(
            f"{where}: energy label is {e}; drop this structure or fix the "
            "reference calculation"
        )
    return e


def _as_forces(value, n: int, where: str) -> np.ndarray:
    f = np.asarray(value, dtype=np.float64)
    if f.shape != (n, 3):
        raise DataError(
            f"{where}: forces have shape {f.shape} but the structure has {n} "
            f"atoms; expected ({n}, 3) eV/Å, one row per atom in the same order"
        )
    bad = ~np.isfinite(f).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: non-finite (NaN/inf) forces on atoms "
            f"{np.flatnonzero(bad)[:10].tolist()}; drop this structure or fix "
            "the reference calculation"
        )
    return f


def _as_3x3(value, name: str, where: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape == (6,):
        xx, yy, zz, yz, xz, xy = a
        a = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    elif a.shape == (9,):
        a = a.reshape(3, 3)
    if a.shape != (3, 3):
        raise DataError(
            f"{where}: {name} has shape {a.shape}; give a 3x3 tensor, 9 values "
            "or Voigt 6 values (xx, yy, zz, yz, xz, xy)"
        )
    if not np.isfinite(a).all():
        raise DataError(
            f"{where}: {name} label has non-finite (NaN/inf) entries {a.tolist()}; "
            "drop this structure or fix the reference calculation"
        )
    return a


def _as_stress(value, where: str) -> np.ndarray:
    return _as_3x3(value, "stress", where)


def _virial_to_stress(virial, atoms, where: str) -> np.ndarray:
    w = _as_3x3(virial, "virial", where)
    volume = abs(float(atoms.get_volume())) if atoms.cell.rank == 3 else 0.0
    if volume <= 0.0:
        raise DataError(
            f"{where}: a virial is given but the cell has no volume "
            f"(cell {np.asarray(atoms.cell).tolist()}); stress = -virial / V "
            "needs a 3D cell, or pass virial_key=None to ignore the virial"
        )
    return -w / volume


def _full_to_voigt(s: np.ndarray) -> np.ndarray:
    """``[3, 3]`` to Voigt (xx, yy, zz, yz, xz, xy), symmetrised."""
    s = 0.5 * (s + s.T)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
