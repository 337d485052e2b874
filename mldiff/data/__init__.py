"""Training data: generation, splits and padded batches.

* :mod:`mldiff.data.generate` — rattled, strained and MD-sampled structures
  labeled by any ASE calculator.
* :mod:`mldiff.data.splits` — reproducible train / validation / test splits.
* :mod:`mldiff.data.batching` — :class:`Dataset` (neighbor lists built once),
  shape :class:`Bucket` s and padded :class:`Batch` es for ``vmap``.
* :mod:`mldiff.data.experimental` — experimental formation enthalpies shipped
  with pymatgen (eV/atom) and a split by chemical system.

Labeled structures and extxyz files come from :mod:`mldiff.io`; they are
re-exported here, with :class:`DataError`.
"""

from mldiff.data.batching import (
    Batch,
    Bucket,
    Dataset,
    assign_buckets,
    batch_plan,
    batches,
    make_batch,
    make_buckets,
    n_batches,
    stack_structures,
)
from mldiff.data.experimental import (
    experimental_formation_enthalpies,
    split_by_chemical_system,
)
from mldiff.data.generate import generate, label, md_sampled, rattled, strained
from mldiff.data.splits import split, split_items, take
from mldiff.data.transport import transport_database
from mldiff.errors import DataError
from mldiff.io.extxyz import read_extxyz, write_extxyz
from mldiff.io.labeled import LabeledStructure

__all__ = [
    "Batch",
    "Bucket",
    "DataError",
    "Dataset",
    "LabeledStructure",
    "assign_buckets",
    "batch_plan",
    "batches",
    "experimental_formation_enthalpies",
    "make_batch",
    "generate",
    "label",
    "make_buckets",
    "md_sampled",
    "n_batches",
    "rattled",
    "read_extxyz",
    "split",
    "split_by_chemical_system",
    "split_items",
    "stack_structures",
    "strained",
    "take",
    "transport_database",
    "write_extxyz",
]
