"""The training loop for learned potentials.

optax AdamW with warm-up and cosine decay, gradient clipping, an EMA of the
parameters, two loss stages, validation each epoch, early stopping, atomic
checkpoints and exact resume.

Stages (MACE's recipe): stage one fits forces first (``forces_weight`` well
above ``energy_weight``); the last ``stage_two_fraction`` of the epochs raise
the energy weight by ``stage_two_energy_factor`` (:func:`loss_weights`), an
argument of the one compiled step. The validation loss that picks the best
epoch and drives early stopping always uses the final stage's weights; when
stage one runs out of patience, stage two starts at once.

Determinism: parameters are initialised from ``config.seed`` and the batch
order of epoch ``k`` depends only on ``(config.seed, k)``; the full state
(parameters, EMA, optimiser, history, early-stopping counter, stage) is
checkpointed at the end of each epoch. A killed run therefore resumes at the
last finished epoch and ends with the same parameters as an uninterrupted run.
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mldiff import neighbors
from mldiff.errors import ConfigError, TrainingDivergedError
from mldiff.training import checkpoint, losses, normalization
from mldiff.training.config import TrainConfig, to_dict
from mldiff.training.models import ModelSpec, _builder, build, config_object

__all__ = [
    "TrainResult",
    "model_spec_from_data",
    "make_optimizer",
    "loss_weights",
    "stage_two_epoch",
    "train_step",
    "train",
    "evaluate",
    "data_fingerprint",
    "TrainingDivergedError",
]

CHECKPOINT = "checkpoint.msgpack"  # full training state, for resuming
MODEL = "model.msgpack"  # best (EMA) parameters, for ``mldiff.load``


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        model: best parameters as a :class:`checkpoint.Model`.
        history: one dict per epoch (train loss, validation metrics, lr, time).
        best_epoch: epoch of the best validation loss.
        stopped_early: True if early stopping ended the run.
        out_dir: where the checkpoints are.
    """

    model: checkpoint.Model
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    out_dir: str


def model_spec_from_data(config: TrainConfig, items: Sequence) -> ModelSpec:
    """Species, least-squares reference energies and force-RMS scale from data.

    Args:
        config: the training configuration (model name and config).
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


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Gradient clipping + AdamW with linear warm-up and cosine decay."""
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=max(warmup, 0),
        decay_steps=total,
        end_value=config.learning_rate * config.final_lr_ratio,
    )
    opt = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, b2=config.adam_beta2, weight_decay=config.weight_decay),
    )
    return opt, schedule


def stage_two_epoch(config: TrainConfig) -> int:
    """First epoch of stage two as planned; ``config.epochs`` when there is none.

    Example:
        >>> stage_two_epoch(TrainConfig(epochs=40, stage_two_fraction=0.25))
        30
    """
    return config.epochs - round(config.epochs * config.stage_two_fraction)


def loss_weights(config: TrainConfig, stage: int) -> tuple[float, float, float]:
    """Loss weights ``(energy, forces, stress)`` of training stage 1 or 2.

    Stage two is MACE's ("SWA", Batatia et al. 2022): the same force and
    stress weights and an energy weight raised by
    ``config.stage_two_energy_factor``, for the last
    ``config.stage_two_fraction`` of the epochs. It fits the energy levels
    that forces do not determine once stage one has shaped the surface.

    Args:
        config: the run's configuration.
        stage: 1 or 2.

    Returns:
        Energy weight in 1/(eV/atom)², forces in 1/(eV/Å)², stress in 1/(eV/Å³)².

    Example:
        >>> loss_weights(TrainConfig(energy_weight=1.0, forces_weight=10.0,
        ...                          stage_two_energy_factor=100.0), 2)
        (100.0, 10.0, 0.0)

    References:
        I. Batatia et al., "MACE: Higher order equivariant message passing
        neural networks for fast and accurate force fields", NeurIPS 2022;
        the ``mace`` package's ``--swa`` / stage-two options.
    """
    factor = config.stage_two_energy_factor if stage == 2 else 1.0
    return (config.energy_weight * factor, config.forces_weight, config.stress_weight)


def train_step(loss, optimizer, ema_decay: float):
    """``(params, ema, opt_state, batch) -> (params, ema, opt_state, loss)``, pure.

    An optional fifth argument ``energy_factor`` (scalar array) is passed on
    to ``loss`` (:func:`losses.loss_fn`): the training stages differ only in
    its value, so one compiled step serves both.
    """

    def step(params, ema, opt_state, batch, energy_factor=None):
        extra = {} if energy_factor is None else {"energy_factor": energy_factor}
        value, grads = jax.value_and_grad(loss)(params, batch, **extra)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if ema_decay > 0:
            # where a parameter did not move (e.g. a frozen one), its EMA stays
            # bit-identical instead of drifting by rounding
            ema = jax.tree_util.tree_map(
                lambda e, p: jnp.where(
                    e == p, e, ema_decay * e + (1.0 - ema_decay) * p
                ),
                ema,
                params,
            )
        else:
            ema = params
        return params, ema, opt_state, value

    return step


def evaluate(potential, params, batches, with_stress: bool, sums_fn=None) -> dict:
    """Metrics (meV/atom, meV/Å, GPa) of ``params`` over an iterable of batches."""
    sums_fn = sums_fn or jax.jit(losses.error_sums(potential.energy, with_stress))
    total: dict[str, float] = {}
    for batch in batches:
        for k, v in sums_fn(params, batch).items():
            total[k] = total.get(k, 0.0) + float(v)
    return losses.metrics_from_sums(total)


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


def data_fingerprint(train_items: Sequence, val_items: Sequence) -> dict:
    """SHA-256 digests of the training and validation structures and labels.

    Stored in checkpoints so that a resumed run refuses data other than its
    own (it would continue the old optimiser state and report stale metrics).
    """
    import hashlib

    def digest(items):
        h = hashlib.sha256()
        for it in items:
            s = it.structure
            for part in (s.numbers, s.positions, s.cell, it.forces, it.stress):
                if part is not None:
                    h.update(np.ascontiguousarray(np.asarray(part, np.float64)))
            h.update(repr(it.energy).encode())
        return h.hexdigest()[:32]

    return {"train": digest(train_items), "validation": digest(val_items)}


def train(
    config: TrainConfig,
    train_items: Sequence,
    val_items: Sequence,
    out_dir: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None,
    mesh=None,
    spec: ModelSpec | None = None,
    initial_params=None,
    optimizer_fn: Callable | None = None,
) -> TrainResult:
    """Train a learned potential; checkpoint every epoch; resume if possible.

    Args:
        config: the run's configuration.
        train_items: labelled structures to fit.
        val_items: labelled structures for validation and early stopping.
        out_dir: output directory for ``checkpoint.msgpack`` (full state) and
            ``model.msgpack`` (best EMA parameters, loadable by ``mldiff.load``).
        resume: continue from ``out_dir/checkpoint.msgpack`` if it exists (its
            configuration must equal ``config``).
        progress: show a progress bar with live metrics (on a terminal).
        on_epoch_end: called with each epoch's history record.
        mesh: a :class:`jax.sharding.Mesh` with a ``"batch"`` axis
            (:func:`mldiff.parallel.make_mesh`) for data-parallel training: each
            batch is split over its devices, parameters are replicated, and the
            results equal single-device training up to reduction order.
            ``config.batch_size`` must be a multiple of the batch-axis size.
            ``None``: one device. A mesh over the devices of several processes
            (``jax.distributed``, every process calling ``train`` alike) works
            the same: process 0 writes the checkpoints, every process resumes
            from them, so ``out_dir`` must be on a file system all hosts share.
        spec: the model to train (default: :func:`model_spec_from_data`);
            ignored when resuming.
        initial_params: starting parameters, e.g. a pretrained model's
            (default: ``potential.init`` with ``config.seed``).
        optimizer_fn: ``(config, steps_per_epoch) -> (optimizer, schedule)``,
            e.g. with frozen parameter groups (default: :func:`make_optimizer`).

    Returns:
        :class:`TrainResult`.

    Raises:
        ConfigError: a resumed run with another configuration, or a batch size
            that does not divide over the mesh.
    """
    from tqdm.auto import tqdm

    from mldiff.data import batching

    if mesh is not None:
        from mldiff import parallel

        parallel.check_divisible(config.batch_size, mesh, parallel.BATCH, "batch_size")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        from mldiff.errors import PrecisionError

        raise PrecisionError(
            "dtype='float64' needs jax.config.update('jax_enable_x64', True)"
        )
    if not len(train_items) or not len(val_items):
        raise ConfigError(
            f"training needs labelled structures in both sets, got "
            f"{len(train_items)} for training and {len(val_items)} for "
            "validation (the best epoch and early stopping are chosen on the "
            "validation set); give validation structures or a validation "
            "fraction > 0"
        )
    fingerprint = data_fingerprint(train_items, val_items)
    ckpt_path = os.path.join(out_dir, CHECKPOINT)
    # the same checkpoint on every process of a multi-host run, or none
    found = checkpoint.resume_point(ckpt_path) if resume else None
    resumed = found is not None
    if resumed:
        meta, payload = found
        if meta["train_config"] != json.loads(json.dumps(to_dict(config))):
            raise ConfigError(
                f"{ckpt_path} was written with a different training configuration; "
                "use a new output directory or resume=False to start over"
            )
        if meta.get("data_fingerprint", fingerprint) != fingerprint:
            raise ConfigError(
                f"{ckpt_path} was trained on different data (training or "
                "validation structures changed); use a new output directory, or "
                "resume=False (--restart) to start over on the new data"
            )
        spec = ModelSpec.from_dict(meta["model"])
    elif spec is None:
        spec = model_spec_from_data(config, train_items)
    potential = build(spec)
    cutoff = potential.cutoff
    with_stress = config.stress_weight > 0
    everything = batching.Dataset.build(list(train_items) + list(val_items), cutoff)
    train_set = everything.subset(np.arange(len(train_items)))
    val_set = everything.subset(np.arange(len(train_items), len(everything)))
    # one bucket set for both splits: the step and the evaluation compile at most
    # n_buckets times each
    buckets = batching.make_buckets(
        everything, batch_size=config.batch_size, n_buckets=config.n_buckets
    )

    def epoch_batches(ds, shuffle, epoch=0):
        out = batching.batches(
            ds,
            batch_size=config.batch_size,
            buckets=buckets,
            shuffle=shuffle,
            seed=config.seed,
            epoch=epoch,
            dtype=dtype,
        )
        if mesh is None:
            return out
        return (parallel.shard_batch(b, mesh) for b in out)

    steps_per_epoch = batching.n_batches(train_set, config.batch_size, buckets=buckets)
    optimizer, schedule = (optimizer_fn or make_optimizer)(config, steps_per_epoch)

    key = jax.random.key(config.seed)
    if initial_params is None:
        initial_params = potential.init(key, train_items[0].structure)
    params = _cast(initial_params, dtype)
    opt_state = optimizer.init(params)
    ema = params
    state = {
        "epoch": 0,
        "history": [],
        "best_val": float("inf"),
        "best_epoch": -1,
        "wait": 0,
        "stopped_early": False,
        "stage_two_epoch": stage_two_epoch(config),
    }
    best = ema
    if resumed:
        arrays = payload["arrays"]
        params = checkpoint.restore(params, arrays["params"])
        ema = checkpoint.restore(ema, arrays["ema"])
        best = checkpoint.restore(best, payload["params"])
        opt_state = checkpoint.restore(opt_state, arrays["opt_state"])
        state = meta["state"]
        state.setdefault("stage_two_epoch", stage_two_epoch(config))

    loss = losses.loss_fn(potential.energy, *loss_weights(config, 1))
    if mesh is None:
        step = jax.jit(train_step(loss, optimizer, config.ema_decay))
    else:
        step = parallel.data_parallel(
            train_step(loss, optimizer, config.ema_decay), mesh
        )
    # stage two multiplies the energy weight; an argument, not a constant, so
    # both stages run one compiled step
    energy_factor = {
        1: jnp.asarray(1.0, dtype),
        2: jnp.asarray(config.stage_two_energy_factor, dtype),
    }
    sums_fn = jax.jit(losses.error_sums(potential.energy, with_stress))
    # validation loss in the weights of the last stage, the model's final
    # objective: best epoch and early stopping compare like with like across
    # the stage switch
    last_stage = 2 if stage_two_epoch(config) < config.epochs else 1
    val_loss_weights = dict(
        zip(
            (
                "energy_rmse_mev_per_atom",
                "forces_rmse_mev_per_angstrom",
                "stress_rmse_gpa",
            ),
            loss_weights(config, last_stage),
            strict=True,
        )
    )

    def save_state():
        header = {
            "train_config": to_dict(config),
            "state": state,
            "data_fingerprint": fingerprint,
        }
        arrays = {"params": params, "ema": ema, "opt_state": opt_state}
        checkpoint.save(ckpt_path, spec=spec, params=best, header=header, arrays=arrays)

    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        desc="train",
        unit="epoch",
        disable=None if progress else True,
    )
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        stage = 2 if epoch >= state["stage_two_epoch"] else 1
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for batch in epoch_batches(train_set, shuffle=True, epoch=epoch):
            params, ema, opt_state, value = step(
                params, ema, opt_state, batch, energy_factor[stage]
            )
            total, count = total + float(value), count + 1
        metrics = evaluate(
            potential, ema, epoch_batches(val_set, shuffle=False), with_stress, sums_fn
        )
        val_loss = sum(
            w * metrics.get(k, 0.0) ** 2 for k, w in val_loss_weights.items()
        )
        if not (np.isfinite(total) and np.isfinite(val_loss)):
            last = state["best_epoch"]
            kept = (
                f"the best model so far (epoch {last}) stays in {out_dir}"
                if last >= 0
                else "no model was written"
            )
            mean = total / max(count, 1)
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch} (loss {mean:.3g}, "
                f"validation loss {val_loss:.3g}); lower learning_rate (now "
                f"{config.learning_rate:g}) or check the labels for outliers; {kept}"
            )
        record = {
            "epoch": epoch,
            "stage": stage,
            "train_loss": total / max(count, 1),
            "val_loss": val_loss,
            "learning_rate": float(schedule((epoch + 1) * steps_per_epoch)),
            "seconds": time.perf_counter() - t0,
            **metrics,
        }
        state["history"].append(record)
        if val_loss < state["best_val"]:
            state.update(best_val=val_loss, best_epoch=epoch, wait=0)
            best = ema
            checkpoint.save(
                os.path.join(out_dir, MODEL),
                spec=spec,
                params=best,
                header={
                    "train_config": to_dict(config),
                    "epoch": epoch,
                    "metrics": metrics,
                },
            )
        else:
            state["wait"] += 1
            if config.patience and state["wait"] >= config.patience:
                if stage == 1 and last_stage == 2:  # stage one stalled: on to two
                    state.update(stage_two_epoch=epoch + 1, wait=0)
                else:
                    state["stopped_early"] = True
        state["epoch"] = epoch + 1
        save_state()
        bar.update(1)
        bar.set_postfix(
            loss=f"{record['train_loss']:.3g}",
            E=f"{metrics.get('energy_mae_mev_per_atom', float('nan')):.2f}meV/at",
            F=f"{metrics.get('forces_mae_mev_per_angstrom', float('nan')):.1f}meV/Å",
        )
        if on_epoch_end is not None:
            on_epoch_end(record)
    bar.close()
    return TrainResult(
        model=checkpoint.Model(potential, best),
        history=state["history"],
        best_epoch=state["best_epoch"],
        stopped_early=state["stopped_early"],
        out_dir=out_dir,
    )
