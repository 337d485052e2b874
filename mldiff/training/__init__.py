"""Training learned potentials: configs, losses, the optax loop, checkpoints.

Example:
    >>> from mldiff.training import TrainConfig
    >>> TrainConfig(model="nequip", epochs=5).batch_size
    4
"""

from mldiff.training.checkpoint import Model, load
from mldiff.training.config import TrainConfig, from_dict, to_dict
from mldiff.training.loop import TrainingDivergedError, TrainResult, evaluate, train
from mldiff.training.models import ModelSpec, build

__all__ = [
    "TrainConfig",
    "from_dict",
    "to_dict",
    "ModelSpec",
    "build",
    "Model",
    "load",
    "TrainResult",
    "TrainingDivergedError",
    "train",
    "evaluate",
]
