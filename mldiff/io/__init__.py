"""Reading and writing structures and their labels.

* :mod:`mldiff.io.extxyz` — labeled structures as extended XYZ, through ASE.
* :mod:`mldiff.io.labeled` — :class:`LabeledStructure`, a structure with
  energy, forces and stress labels.
"""

from mldiff.errors import DataError
from mldiff.io.extxyz import read_extxyz, write_extxyz
from mldiff.io.labeled import LabeledStructure

__all__ = ["DataError", "LabeledStructure", "read_extxyz", "write_extxyz"]
