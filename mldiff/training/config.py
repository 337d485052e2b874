"""Training configuration: a frozen, keyword-only dataclass stored in checkpoints."""

import dataclasses
import math
from typing import Any

from mldiff._config import check_types, checked_values
from mldiff.errors import ConfigError

__all__ = ["TrainConfig", "from_dict", "to_dict"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run (with the data and the seed).

    Attributes:
        model: model builder name (``"nequip"`` or ``"mace"``).
        model_config: keyword arguments of the model's config dataclass.
        seed: seed for initialisation, shuffling and splits.
        epochs: maximum number of passes over the training set.
        batch_size: structures per step.
        learning_rate: peak learning rate of AdamW.
        warmup_epochs: linear warm-up length, in epochs.
        final_lr_ratio: cosine decay ends at ``learning_rate * final_lr_ratio``.
        weight_decay: AdamW decoupled weight decay.
        clip_norm: global gradient-norm clip.
        ema_decay: decay of the exponential moving average of parameters
            (0 disables it); the EMA parameters are validated and saved.
        energy_weight: weight of the squared per-atom energy error, 1/(eV/atom)².
        forces_weight: weight of the squared force-component error, 1/(eV/Å)².
        stress_weight: weight of the squared stress-component error, 1/(eV/Å³)².
        patience: early stopping after this many epochs without a better
            validation loss (0 disables early stopping).
        n_buckets: number of padded shape buckets (compilations) per data set.
        dtype: ``"float32"`` or ``"float64"`` for parameters and geometry.
    """

    model: str = "nequip"
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    epochs: int = 100
    batch_size: int = 4
    learning_rate: float = 5e-3
    warmup_epochs: int = 2
    final_lr_ratio: float = 0.01
    weight_decay: float = 0.0
    clip_norm: float = 10.0
    ema_decay: float = 0.99
    energy_weight: float = 1.0
    forces_weight: float = 10.0
    stress_weight: float = 0.0
    patience: int = 20
    n_buckets: int = 3
    dtype: str = "float32"

    def __post_init__(self):
        """Validate values."""
        check_types(self)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs ({self.epochs}) and batch_size ({self.batch_size}) must be ≥ 1"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(
                f"learning_rate must be a finite number > 0, got {self.learning_rate} "
                "(1e-3 to 1e-2 suits the shipped models)"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(
                f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        if min(self.energy_weight, self.forces_weight, self.stress_weight) < 0:
            raise ConfigError("loss weights must be non-negative")
        from mldiff.training.models import MODEL_NAMES, config_object

        if self.model not in MODEL_NAMES:
            raise ConfigError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        if self.model in ("nequip", "mace"):  # model options fail now, not later
            config_object(self.model, dict(self.model_config))


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-able dictionary of a config."""
    return dataclasses.asdict(config)


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a dictionary, rejecting unknown keys by name."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"training options must be a mapping (key: value), got "
            f"{type(values).__name__} {values!r}"
        )
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown training option(s) {unknown}; known options: {sorted(known)}"
        )
    return TrainConfig(**checked_values(TrainConfig, values))
