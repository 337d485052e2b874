"""Transfer learning: pretrain on abundant labels, freeze early layers, fine-tune.

* :mod:`mldiff.transfer.freezing` — label any parameter pytree by path, freeze
  groups or give them their own learning rates (optax ``multi_transform``),
  re-initialise or add heads, load a pretrained tree into a model with a
  different head.
* :mod:`mldiff.transfer.composition_model` — a permutation-invariant network
  over element embeddings and fractions, for data with formulas only (the
  builder is ``composition_model.composition_model``).
* :mod:`mldiff.transfer.finetune` — fine-tune a learned potential from a
  checkpoint with the :mod:`mldiff.training` loop (``finetune.finetune``), or a
  composition model on a small table (:func:`finetune_composition`).

Example:
    >>> from mldiff.transfer import MODULE_GROUPS
    >>> [label for _, label in MODULE_GROUPS["nequip"]]
    ['embedding', 'interaction', 'readout']
"""

from mldiff.transfer.composition_model import (
    CompositionConfig,
    CompositionModel,
    TrainedComposition,
    encode_formulas,
)
from mldiff.transfer.finetune import (
    finetune_composition,
    group_labels,
    refit_atomic_energies,
)
from mldiff.transfer.freezing import (
    MODULE_GROUPS,
    add_subtree,
    freeze_labels,
    label_params,
    load_matching,
    param_paths,
    partition_optimizer,
    reinitialize,
)

__all__ = [
    "MODULE_GROUPS",
    "CompositionConfig",
    "CompositionModel",
    "TrainedComposition",
    "add_subtree",
    "encode_formulas",
    "finetune_composition",
    "freeze_labels",
    "group_labels",
    "label_params",
    "load_matching",
    "param_paths",
    "partition_optimizer",
    "refit_atomic_energies",
    "reinitialize",
]
