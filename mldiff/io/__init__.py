"""Reading and writing files: structures, labels, force constants, results.

* :mod:`mldiff.io.files` — atomic writes (every file mldiff writes goes
  through :func:`~mldiff.io.files.atomic_write`), JSON results, the
  checkpoint file layout.
* :mod:`mldiff.io.extxyz` — labeled structures as extended XYZ, through ASE.
* :mod:`mldiff.io.labeled` — :class:`LabeledStructure`, a structure with
  energy, forces and stress labels.
* :mod:`mldiff.io.phonopy`, :mod:`mldiff.io.phono3py` — force constants in
  phonopy's and phono3py's file formats.
"""

from mldiff.errors import DataError
from mldiff.io.extxyz import read_extxyz, write_extxyz
from mldiff.io.labeled import LabeledStructure

__all__ = ["DataError", "LabeledStructure", "read_extxyz", "write_extxyz"]
