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

    Default loss: MACE's weights in MACE's units (per-atom energy MSE in
    (eV/atom)², force-component MSE in (eV/Å)²): energy 1 and forces 100, then
    stage two (MACE's "SWA" stage) raises the energy weight to 1000 for the
    second half of the run. Forces carry 3n labels per structure and fix the
    shape of the energy surface; the energy levels that forces cannot see
    (vacancy formation, homogeneous strain) are then fitted while the cosine
    learning rate is still at half its peak or more (MACE starts stage two at
    3/4 of its much longer runs; in short runs the last quarter has too little
    learning rate left to move the energies). Errors fall by orders of
    magnitude during a run, and AdamW divides each step by the RMS of the
    gradients it remembers: ``adam_beta2`` 0.99 (memory ≈ 100 steps, against
    ≈ 1000 for the usual 0.999, as long as a whole short run) and forces
    weighted 100 rather than 10 (so ``clip_norm`` caps the large early
    gradients) both keep those early gradients from shrinking later steps,
    including stage two's.
    ``benchmarks/bench_train_potential.py --defaults`` compares these
    defaults with the former one-stage weights (energy 1, forces 10).

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
        adam_beta2: decay rate of AdamW's average of squared gradients; it
            remembers about ``1 / (1 - adam_beta2)`` steps.
        clip_norm: global gradient-norm clip.
        ema_decay: decay of the exponential moving average of parameters
            (0 disables it); the EMA parameters are validated and saved.
        energy_weight: weight of the squared per-atom energy error in stage
            one, 1/(eV/atom)².
        forces_weight: weight of the squared force-component error, 1/(eV/Å)².
        stress_weight: weight of the squared stress-component error, 1/(eV/Å³)².
        stage_two_fraction: share of the epochs, at the end of the run, trained
            in stage two (0 disables it). Stage two starts at epoch
            ``epochs - round(epochs * stage_two_fraction)``, or earlier when
            stage one runs out of ``patience``.
        stage_two_energy_factor: stage two multiplies ``energy_weight`` by this
            factor (forces and stress keep their weights).
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
    adam_beta2: float = 0.99
    clip_norm: float = 10.0
    ema_decay: float = 0.99
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 0.0
    stage_two_fraction: float = 0.5
    stage_two_energy_factor: float = 1000.0
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
        if not 0.0 <= self.adam_beta2 < 1.0:
            raise ConfigError(
                f"adam_beta2 must lie in [0, 1), got {self.adam_beta2} "
                "(0.99 remembers about 100 steps, 0.999 about 1000)"
            )
        if not 0.0 <= self.stage_two_fraction < 1.0:
            raise ConfigError(
                f"stage_two_fraction must lie in [0, 1), got {self.stage_two_fraction}"
                " (0 trains in one stage; 0.25 gives the last quarter to stage two)"
            )
        if not self.stage_two_energy_factor >= 0:
            raise ConfigError(
                "stage_two_energy_factor must be ≥ 0, got "
                f"{self.stage_two_energy_factor} (1 keeps the energy weight)"
            )
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
