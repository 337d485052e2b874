"""Learned-model specifications: what a checkpoint needs to rebuild a potential.

A :class:`ModelSpec` names the builder, its config and the data-derived
normalisation (species, per-species reference energies, scale, shift). It is
JSON-able and stored in every checkpoint, so ``mldiff.load`` can rebuild the
exact :class:`~mldiff.potentials.Potential` without the training script.
"""

import dataclasses
import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from mldiff import neighbors
from mldiff._config import checked_values
from mldiff.errors import ConfigError
from mldiff.training import normalization

__all__ = [
    "ModelSpec",
    "build",
    "config_object",
    "model_spec_from_data",
    "MODEL_NAMES",
]

MODEL_NAMES = ("nequip", "mace", "sevennet")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """How to rebuild a learned potential.

    Attributes:
        name: builder name, one of :data:`MODEL_NAMES`.
        config: keyword arguments of the builder's config dataclass.
        species: atomic numbers the model knows.
        atomic_energies: per-species reference energies ``{Z: eV}``.
        scale: energy scale multiplying the network output, eV.
        shift: per-atom energy shift, eV.
    """

    name: str
    config: dict[str, Any]
    species: tuple[int, ...]
    atomic_energies: dict[int, float]
    scale: float = 1.0
    shift: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (species keys as strings)."""
        d = dataclasses.asdict(self)
        d["species"] = list(self.species)
        d["atomic_energies"] = {str(k): v for k, v in self.atomic_energies.items()}
        return d

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal specs give equal strings, a cache key.

        NumPy scalars among the data-derived numbers are written as floats.
        """
        return json.dumps(self.to_dict(), sort_keys=True, default=float)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=d["name"],
            config=dict(d["config"]),
            species=tuple(int(z) for z in d["species"]),
            atomic_energies={int(k): float(v) for k, v in d["atomic_energies"].items()},
            scale=float(d.get("scale", 1.0)),
            shift=float(d.get("shift", 0.0)),
        )


def _builder(name: str):
    if name == "nequip":
        from mldiff.potentials.nequip import NequIPConfig, nequip

        return nequip, NequIPConfig
    if name == "mace":
        from mldiff.potentials.mace import MACEConfig, mace

        return mace, MACEConfig
    if name == "sevennet":
        from mldiff.potentials.sevennet_model import SevenNetConfig, sevennet_model

        return sevennet_model, SevenNetConfig
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def config_object(name: str, values: dict[str, Any]):
    """The builder's config dataclass from JSON-like ``values`` (lists → tuples)."""
    _, config_cls = _builder(name)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown {name} option(s) {unknown}; known options: {sorted(known)}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**checked_values(config_cls, values))


def build(spec: ModelSpec):
    """The :class:`~mldiff.potentials.Potential` described by ``spec``.

    Equal specs give the same object (the 16 most recent are kept), so the
    programs jitted on it (MD, committee predictions, force constants) compile
    once for every checkpoint of one model: the rounds of an active-learning
    run, the checkpoints a benchmark compares. A ``Potential`` is an immutable
    tuple of pure functions, so sharing it changes no result.

    Example:
        >>> spec = ModelSpec(name="nequip", config={"features": 4}, species=(29,),
        ...                  atomic_energies={29: -1.0})
        >>> build(spec) is build(ModelSpec.from_dict(spec.to_dict()))
        True
        >>> build(spec) is build(dataclasses.replace(spec, scale=2.0))
        False
    """
    return _build(spec.to_json())


@functools.lru_cache(maxsize=16)
def _build(spec_json: str):
    spec = ModelSpec.from_dict(json.loads(spec_json))
    builder, _ = _builder(spec.name)
    return builder(
        config_object(spec.name, spec.config),
        species=spec.species,
        atomic_energies=spec.atomic_energies,
        scale=spec.scale,
        shift=spec.shift,
    )


def model_spec_from_data(config, items: Sequence) -> ModelSpec:
    """Species, least-squares reference energies and force-RMS scale from data.

    Args:
        config: the :class:`~mldiff.training.TrainConfig` (model name and config).
        items: labelled training structures (``LabeledStructure``).

    Returns:
        The :class:`ModelSpec`.
    """
    numbers = [np.asarray(it.structure.numbers) for it in items]
    species = tuple(sorted({int(z) for n in numbers for z in n}))
    with_e = [
        (n, it.energy)
        for n, it in zip(numbers, items, strict=True)
        if it.energy is not None
    ]
    if not with_e:
        raise ConfigError(
            "training data hold no energies; cannot fit reference energies"
        )
    e0 = normalization.fit_atomic_energies(
        [n for n, _ in with_e], [e for _, e in with_e], species
    )
    forces = [np.asarray(it.forces) for it in items if it.forces is not None]
    if forces:
        scale = normalization.force_rms(forces)
    else:
        resid = [(e - sum(e0[int(z)] for z in n)) / len(n) for n, e in with_e]
        scale = float(np.std(resid)) or 1.0
    model_config = dict(config.model_config)
    _, config_cls = _builder(config.model)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    if "avg_num_neighbors" in fields and model_config.get("avg_num_neighbors") is None:
        cutoff = config_object(config.model, model_config).cutoff
        n_edges = sum(
            len(neighbors.neighbor_list(it.structure, cutoff)[0]) for it in items
        )
        model_config["avg_num_neighbors"] = n_edges / max(sum(map(len, numbers)), 1)
    return ModelSpec(
        name=config.model,
        config=model_config,
        species=species,
        atomic_energies=e0,
        scale=scale,
        shift=0.0,
    )
