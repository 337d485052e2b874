"""Fine-tuning a learned potential from a checkpoint, with frozen layers.

:func:`finetune` reuses :func:`mldiff.training.loop.train` (warm-up and
cosine schedule, EMA, validation, early stopping, atomic checkpoints): it
starts from the checkpoint's parameters, keeps its architecture and
normalisation, and gives each parameter group its own learning rate through
:func:`~mldiff.transfer.freezing.partition_optimizer`; frozen groups get
exactly zero updates, and the loop's EMA leaves unmoved parameters
bit-identical, so frozen parameters in the saved model equal the pretrained
ones bit for bit.

A new reference method usually shifts the energy zero of each element. With
``refit_atomic_energies`` the per-species reference energies are refitted by
least squares to the *residual* ``E_target - E_pretrained`` of the new
training data (a linear head on composition), before any gradient step.

Example:
    >>> default_learning_rates(1e-3, ["embedding"])["interaction"]
    0.001
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import optax

from mldiff.errors import ConfigError
from mldiff.io.files import write_json
from mldiff.training import checkpoint, evaluation, loop, normalization
from mldiff.training.config import TrainConfig, to_dict
from mldiff.training.models import ModelSpec
from mldiff.transfer import composition_model as cm
from mldiff.transfer.freezing import (
    MODULE_GROUPS,
    freeze_labels,
    label_params,
    load_matching,
    param_paths,
    partition_optimizer,
)

__all__ = [
    "default_learning_rates",
    "group_labels",
    "finetune_optimizer_fn",
    "refit_atomic_energies",
    "finetune",
    "finetune_composition",
]

FINETUNE_JSON = "finetune.json"


def default_learning_rates(
    learning_rate: float, frozen: Sequence[str] = ()
) -> dict[str, float | None]:
    """``{group: rate}`` for embedding / interaction / readout, ``None`` if frozen.

    Args:
        learning_rate: rate of every group that is not frozen.
        frozen: names of the frozen groups.
    """
    groups = ("embedding", "interaction", "readout", "trainable")
    rates = {g: (None if g in frozen else learning_rate) for g in groups}
    return {**rates, "frozen": None}


def group_labels(params, model_name: str, freeze: Sequence[str] = ()):
    """Labels for a potential's parameters: ``frozen`` where a pattern matches.

    Leaves matching a ``freeze`` regex are ``"frozen"``; the rest carry their
    module group (:data:`~mldiff.transfer.freezing.MODULE_GROUPS`), or
    ``"trainable"`` for a model without preset groups.

    Raises:
        ConfigError: a freeze pattern matches no parameter.
    """
    if freeze:
        freeze_labels(params, freeze)  # raises on a pattern matching nothing
    rules = [(p, "frozen") for p in freeze] + list(MODULE_GROUPS.get(model_name, ()))
    return label_params(params, rules, default="trainable")


def finetune_optimizer_fn(labels, learning_rates: Mapping[str, float | None]):
    """``(config, steps_per_epoch) -> (optimizer, schedule)`` for the training loop.

    Each group follows the loop's warm-up + cosine schedule scaled to its own
    peak rate (``config.learning_rate`` times ``rate / config.learning_rate``),
    with AdamW and the loop's gradient clip over the trainable leaves.
    """

    def optimizer_fn(config: TrainConfig, steps_per_epoch: int):
        _, schedule = loop.make_optimizer(config, steps_per_epoch)

        def transform(rate):
            factor = rate / config.learning_rate

            def scaled(step):
                return factor * schedule(step)

            return optax.adamw(scaled, weight_decay=config.weight_decay)

        opt = partition_optimizer(
            labels, learning_rates, transform, clip_norm=config.clip_norm
        )
        return opt, schedule

    return optimizer_fn


def refit_atomic_energies(model: checkpoint.Model, spec: ModelSpec, items) -> ModelSpec:
    """``spec`` with reference energies shifted to fit the residual on ``items``.

    Solves ``E_i - E_model(i) ≈ Σ_Z c_Z(i) ΔE0_Z`` by least squares and adds
    ``ΔE0`` to the spec's per-species energies (eV).

    Raises:
        ConfigError: the items hold an element the model does not know.
    """
    numbers = [np.asarray(it.structure.numbers) for it in items]
    unknown = sorted({int(z) for n in numbers for z in n} - set(spec.species))
    if unknown:
        raise ConfigError(
            f"fine-tuning data hold element(s) {unknown} that the pretrained model "
            f"(species {list(spec.species)}) does not know; pretrain with them or "
            "train from scratch"
        )
    with_e = [(n, it) for n, it in zip(numbers, items, strict=True) if it.energy]
    if not with_e:
        return spec
    pred = evaluation.predict_items(
        model.potential, model.params, [it for _, it in with_e]
    )["energy"]
    delta = normalization.fit_atomic_energies(
        [n for n, _ in with_e],
        [it.energy - p for (_, it), p in zip(with_e, pred, strict=True)],
        spec.species,
    )
    e0 = {z: spec.atomic_energies.get(z, 0.0) + delta[z] for z in spec.species}
    return dataclasses.replace(spec, atomic_energies=e0)


def _pretrained_checkpoint(path_or_name):
    """A universal model's converted checkpoint, or ``path_or_name`` unchanged."""
    from mldiff.potentials import universal

    text = os.fspath(path_or_name)
    if universal.canonical_name(text) is not None or text.endswith(".pth"):
        return universal.converted_checkpoint(text)
    return path_or_name


def finetune(
    checkpoint_path,
    config: TrainConfig,
    train_items: Sequence,
    val_items: Sequence,
    out_dir,
    *,
    freeze: Sequence[str] = (),
    learning_rates: Mapping[str, float | None] | None = None,
    refit_energies: bool = True,
    progress: bool = False,
) -> loop.TrainResult:
    """Fine-tune a pretrained potential on new labels.

    Args:
        checkpoint_path: pretrained ``model.msgpack`` or its directory, a
            pretrained universal model's name (``"sevennet-0"``) or a SevenNet
            ``*.pth`` file (converted once, :mod:`mldiff.potentials.universal`).
        config: training options (epochs, learning rate, weights, dtype, …);
            ``model`` and ``model_config`` are taken from the checkpoint.
        train_items: labelled structures of the new reference.
        val_items: labelled structures for validation.
        out_dir: output directory (``model.msgpack`` loads with
            ``mldiff.load``; ``finetune.json`` records what was frozen).
        freeze: regexes of parameter paths to freeze, e.g.
            ``["/embedding/", "/layer_0/"]``.
        learning_rates: peak rate per group (``embedding``, ``interaction``,
            ``readout``, ``trainable``; ``frozen`` is always ``None``);
            default ``config.learning_rate`` for every unfrozen group.
        refit_energies: refit per-species reference energies to the new data
            first (see :func:`refit_atomic_energies`).
        progress: show a progress bar.

    Returns:
        :class:`~mldiff.training.loop.TrainResult`.

    Raises:
        ConfigError: a freeze pattern matching nothing, unknown elements, or
            a group without a learning rate.
    """
    checkpoint_path = _pretrained_checkpoint(checkpoint_path)
    meta, _ = checkpoint.read(checkpoint_path)
    if "ensemble" in meta:
        raise ConfigError(
            f"{os.fspath(checkpoint_path)!r} is an ensemble; fine-tune one member "
            "at a time"
        )
    source = checkpoint.load(checkpoint_path)
    spec = ModelSpec.from_dict(meta["model"])
    labels = group_labels(source.params, spec.name, freeze)
    if refit_energies:
        spec = refit_atomic_energies(source, spec, train_items)
    config = dataclasses.replace(config, model=spec.name, model_config=spec.config)
    rates = dict(default_learning_rates(config.learning_rate))
    rates.update(learning_rates or {})
    rates["frozen"] = None
    os.makedirs(out_dir, exist_ok=True)
    record = {
        "source": os.path.abspath(os.fspath(checkpoint_path)),
        "freeze": list(freeze),
        "learning_rates": rates,
        "atomic_energies": {str(z): v for z, v in spec.atomic_energies.items()},
        "train_config": to_dict(config),
    }
    write_json(os.path.join(out_dir, FINETUNE_JSON), record, indent=2)
    return loop.train(
        config,
        train_items,
        val_items,
        out_dir,
        resume=False,
        progress=progress,
        spec=spec,
        initial_params=source.params,
        optimizer_fn=finetune_optimizer_fn(labels, rates),
    )


def finetune_composition(
    pretrained: cm.TrainedComposition | None,
    formulas,
    targets,
    *,
    config: cm.CompositionConfig | None = None,
    target_names: Sequence[str] = ("y",),
    freeze: Sequence[str] = (),
    learning_rate: float = 3e-3,
    epochs: int = 200,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[cm.TrainedComposition, dict]:
    """Train a composition model on a (small) table, starting from a pretrained one.

    The new model has one output per target column. Leaves of ``pretrained``
    that match by path and shape are loaded (the old head's last layer, with
    another number of outputs, is not, and keeps its fresh initialisation);
    leaves matching a ``freeze`` regex get zero updates. Targets are
    standardised by their mean and standard deviation on this table.

    Args:
        pretrained: the pretrained model, or ``None`` to train from scratch.
        formulas: ``[n]`` formula strings.
        targets: ``[n]`` or ``[n, o]`` targets (NaN where missing).
        config: architecture (default: the pretrained one with ``o`` outputs).
        target_names: names of the ``o`` target columns.
        freeze: regexes of parameter paths to freeze, e.g. ``["/embedding/"]``.
        learning_rate: Adam learning rate of the unfrozen parameters.
        epochs: passes over the table.
        batch_size: compositions per step.
        seed: seed of the new head's initialisation and of the batch order.

    Returns:
        ``(trained, report)``; ``report`` lists ``loaded`` / ``reset`` paths
        (:func:`~mldiff.transfer.freezing.load_matching`), ``frozen`` paths and
        the training ``history``.

    Raises:
        ConfigError: a freeze pattern matches nothing, or freezing without a
            pretrained model.
    """
    y = np.asarray(targets, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if config is None:
        base = pretrained.model.config if pretrained else cm.CompositionConfig()
        config = dataclasses.replace(base, n_outputs=y.shape[1])
    if freeze and pretrained is None:
        raise ConfigError(
            "freezing parameters of a model trained from scratch keeps them random; "
            "pass a pretrained model or no freeze patterns"
        )
    model = cm.composition_model(config)
    params = model.init(jax.random.key(seed))
    report: dict = {"loaded": [], "reset": [], "unused": []}
    if pretrained is not None:
        params, report = load_matching(params, pretrained.params)
    labels = freeze_labels(params, freeze) if freeze else None
    if labels is None:
        optimizer = optax.adam(learning_rate)
        frozen = []
    else:
        optimizer = partition_optimizer(
            labels, {"frozen": None, "trainable": learning_rate}, optax.adam
        )
        frozen = [
            p
            for p, lab in zip(
                param_paths(params), jax.tree_util.tree_leaves(labels), strict=True
            )
            if lab == "frozen"
        ]
    mean = np.nanmean(y, axis=0)
    std = np.nanstd(y, axis=0)
    std = np.where(std > 0, std, 1.0)
    z, f = cm.encode_formulas(formulas, config.max_elements)
    params, history = cm.fit(
        model,
        params,
        z,
        f,
        (y - mean) / std,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    trained = cm.TrainedComposition(model, params, tuple(target_names), mean, std)
    return trained, {**report, "frozen": frozen, "history": history}
