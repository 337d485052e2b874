"""The training loop for learned potentials, one model or a stacked ensemble.

optax AdamW with warm-up and cosine decay, gradient clipping, an EMA of the
parameters, two loss stages, validation each epoch, early stopping, atomic
checkpoints and exact resume (the step itself is :mod:`mldiff.training.step`).
:func:`fit` is the one loop; :func:`train` runs it for one model and
:func:`mldiff.ensemble.train_ensemble` for ``K`` stacked members, whose step
is the single-model step vmapped over the member axis.

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
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.errors import ConfigError, TrainingDivergedError
from mldiff.training import checkpoint, losses
from mldiff.training.checkpoint import data_fingerprint
from mldiff.training.config import TrainConfig, from_dict, to_dict
from mldiff.training.models import ModelSpec, build, model_spec_from_data
from mldiff.training.step import (
    _initial_state,
    _select,
    ensemble_train_step,
    loss_weights,
    make_optimizer,
    stage_two_epoch,
    train_step,
)

__all__ = [
    "TrainResult",
    "Run",
    "fit",
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


def evaluate(potential, params, batches, with_stress: bool, sums_fn=None) -> dict:
    """Metrics (meV/atom, meV/Å, GPa) of ``params`` over an iterable of batches."""
    sums_fn = sums_fn or jax.jit(losses.error_sums(potential.energy, with_stress))
    total: dict[str, float] = {}
    for batch in batches:
        for k, v in sums_fn(params, batch).items():
            total[k] = total.get(k, 0.0) + float(v)
    return losses.metrics_from_sums(total)


@dataclasses.dataclass
class Run:
    """Outcome of :func:`fit`, for one model or ``K`` stacked members.

    Attributes:
        potential: the trained potential.
        spec: its :class:`ModelSpec`.
        params: best (EMA) parameters; stacked ``[K, ...]`` for members.
        history: one dict per epoch (see :func:`fit`).
        best_epoch: epoch of the best validation loss; ``[K]`` for members.
        stopped_early: True if early stopping ended the run.
        out_dir: where the checkpoints are.
    """

    potential: Any
    spec: ModelSpec
    params: Any
    history: list[dict[str, Any]]
    best_epoch: int | list[int]
    stopped_early: bool
    out_dir: str


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

    :func:`fit` with one model.

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
        TrainingDivergedError: a non-finite training or validation loss.
    """
    run = fit(
        config,
        train_items,
        val_items,
        out_dir,
        resume=resume,
        progress=progress,
        on_epoch_end=on_epoch_end,
        mesh=mesh,
        spec=spec,
        initial_params=initial_params,
        optimizer_fn=optimizer_fn,
    )
    return TrainResult(
        model=checkpoint.Model(run.potential, run.params),
        history=run.history,
        best_epoch=run.best_epoch,
        stopped_early=run.stopped_early,
        out_dir=run.out_dir,
    )


def fit(
    config: TrainConfig,
    train_items: Sequence,
    val_items: Sequence,
    out_dir: str | os.PathLike,
    *,
    n_members: int | None = None,
    counts: np.ndarray | None = None,
    settings: dict | None = None,
    files: tuple[str, str] = (CHECKPOINT, MODEL),
    check_data: bool = True,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None,
    mesh=None,
    spec: ModelSpec | None = None,
    initial_params=None,
    optimizer_fn: Callable | None = None,
) -> Run:
    """The training loop, for one model or ``K`` stacked members in one step.

    Epochs of shuffled padded batches through one compiled step
    (:func:`train_step`, or :func:`ensemble_train_step` over stacked
    parameters), the two loss stages, validation of the EMA parameters, the
    best epoch and early stopping per member, divergence checks, and an atomic
    checkpoint of the full state after every epoch. ``K`` members follow the
    rules of one model member by member: member ``k`` starts from
    ``jax.random.key(config.seed + k)`` (member 0 as a single model does), all
    members see the same batches, each keeps its EMA parameters of its best
    validation epoch, and stage two starts early, or the run stops, once every
    member has waited ``config.patience`` epochs.

    Args:
        config: the run's configuration.
        train_items: labelled structures to fit.
        val_items: labelled structures for validation and early stopping.
        out_dir: output directory for the two files of ``files``.
        n_members: ``None``: one model with unstacked parameters; ``K``: ``K``
            members with stacked parameters ``[K, ...]``.
        counts: with members, ``[K, N]`` weights of the ``N`` training
            structures for each member (bootstrap counts); default all ones.
        settings: JSON-able settings stored in every header under
            ``"ensemble"`` and checked when resuming (``None``: a single model).
        files: names of the full-state checkpoint and of the best-model file.
        check_data: refuse to resume on data whose digest
            (:func:`data_fingerprint`) differs from the checkpoint's.
        resume: continue from the checkpoint in ``out_dir`` if it exists.
        progress: show a progress bar with live metrics (on a terminal).
        on_epoch_end: called with each epoch's history record.
        mesh: a :class:`jax.sharding.Mesh`; batches are split over its
            ``"batch"`` axis and stacked members over its ``"member"`` axis
            (see :func:`train`).
        spec: the model to train (default: :func:`model_spec_from_data`);
            ignored when resuming.
        initial_params: starting parameters (stacked for members) instead of
            fresh ones from ``config.seed``.
        optimizer_fn: ``(config, steps_per_epoch) -> (optimizer, schedule)``.

    Returns:
        :class:`Run`. History records hold ``epoch``, ``stage``,
        ``learning_rate``, ``seconds`` and, for one model, ``train_loss``,
        ``val_loss`` and the validation metrics; for members ``[K]`` lists
        ``train_loss``, ``val_loss`` and ``members``, each member's metrics.

    Raises:
        ConfigError: a resumed run with other settings or data, no data, or
            sizes that do not divide over the mesh.
        TrainingDivergedError: a non-finite training or validation loss.
    """
    from tqdm.auto import tqdm

    from mldiff import parallel
    from mldiff.data import batching

    stacked = n_members is not None
    k_members = int(n_members) if stacked else 1
    if k_members < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members!r}")
    if mesh is not None:
        parallel.check_divisible(config.batch_size, mesh, parallel.BATCH, "batch_size")
        if stacked:
            parallel.check_divisible(
                k_members, mesh, parallel.MEMBER, "number of ensemble members"
            )
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
    ckpt_path = os.path.join(out_dir, files[0])
    # the same checkpoint on every process of a multi-host run, or none
    found = checkpoint.resume_point(ckpt_path) if resume else None
    if found is not None:
        meta, payload = found
        same = meta["train_config"] == json.loads(json.dumps(to_dict(config)))
        if not same or meta.get("ensemble") != settings:
            raise ConfigError(
                f"{ckpt_path} was written with a different training configuration"
                + (f" or ensemble settings ({meta.get('ensemble')} vs {settings})")
                * stacked
                + "; use a new output directory or resume=False to start over"
            )
        if check_data and meta.get("data_fingerprint", fingerprint) != fingerprint:
            raise ConfigError(
                f"{ckpt_path} was trained on different data (training or "
                "validation structures changed); use a new output directory, or "
                "resume=False (--restart) to start over on the new data"
            )
        spec = ModelSpec.from_dict(meta["model"])
    elif spec is None:
        spec = model_spec_from_data(config, train_items)
    cutoff = build(spec).cutoff
    everything = batching.Dataset.build(list(train_items) + list(val_items), cutoff)
    train_set = everything.subset(np.arange(len(train_items)))
    val_set = everything.subset(np.arange(len(train_items), len(everything)))
    # one bucket set for both splits: the step and the evaluation compile at most
    # n_buckets times each
    buckets = batching.make_buckets(
        everything, batch_size=config.batch_size, n_buckets=config.n_buckets
    )

    def epoch_batches(ds, shuffle, epoch=0):  # host batches
        return batching.batches(
            ds,
            batch_size=config.batch_size,
            buckets=buckets,
            shuffle=shuffle,
            seed=config.seed,
            epoch=epoch,
            dtype=dtype,
        )

    def on_host(x) -> np.ndarray:  # [K] per-member values (one model: K = 1)
        x = x if mesh is None else parallel.to_host(x)
        return np.reshape(np.asarray(x, np.float64), (-1,))

    steps_per_epoch = batching.n_batches(train_set, config.batch_size, buckets=buckets)
    potential, optimizer, schedule, step, sums_fn = _programs(
        spec.to_json(),
        json.dumps(to_dict(config), sort_keys=True),
        steps_per_epoch,
        stacked,
        mesh,
        optimizer_fn,
    )
    params, opt_state = _initial_state(
        potential, optimizer, config, train_items[0].structure, dtype,
        n_members, initial_params,
    )  # fmt: skip
    ema = best = params
    last_stage = 2 if stage_two_epoch(config) < config.epochs else 1
    state = {
        "epoch": 0,
        "history": [],
        "best_val": _unlist([float("inf")] * k_members, stacked),
        "best_epoch": _unlist([-1] * k_members, stacked),
        "wait": _unlist([0] * k_members, stacked),
        "stopped_early": False,
        "stage_two_epoch": stage_two_epoch(config),
    }
    if found is not None:
        arrays = payload["arrays"]
        params = checkpoint.restore(params, arrays["params"])
        ema = checkpoint.restore(ema, arrays["ema"])
        best = checkpoint.restore(best, payload["params"])
        opt_state = checkpoint.restore(opt_state, arrays["opt_state"])
        state = meta["state"]
        state.setdefault("stage_two_epoch", stage_two_epoch(config))
    if stacked and mesh is not None:  # members split over "member"
        params, ema, best, opt_state = parallel.shard_members(
            (params, ema, best, opt_state), mesh
        )
    if counts is None:
        counts = np.ones((k_members, len(train_set)), dtype=np.int64)

    # stage two multiplies the energy weight; an argument, not a constant, so
    # both stages run one compiled step
    energy_factor = {
        1: jnp.asarray(1.0, dtype),
        2: jnp.asarray(config.stage_two_energy_factor, dtype),
    }
    if stacked and mesh is not None:
        energy_factor = parallel.replicate(energy_factor, mesh)

    def on_mesh(batch):  # host batch -> split over the "batch" axis
        return batch if mesh is None else parallel.shard_batch(batch, mesh)

    def step_args(batch, stage):  # host batch -> the step's last arguments
        if not stacked:
            return (energy_factor[stage],)
        idx = np.asarray(batch.index)  # [B], -1 for padded slots
        w = counts[:, np.maximum(idx, 0)] * (idx >= 0)[None, :]  # [K, B]
        w = jnp.asarray(w, dtype)
        if mesh is not None:
            sharding = parallel.named_sharding(mesh, parallel.MEMBER, parallel.BATCH)
            w = parallel.place(w, sharding)
        return (w, energy_factor[stage])

    # validation loss in the weights of the last stage, the model's final
    # objective: best epoch and early stopping compare like with like across
    # the stage switch
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

    def header(**extra):
        out = {"train_config": to_dict(config), **extra}
        return out if settings is None else {**out, "ensemble": settings}

    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        desc="train" if not stacked else "ensemble",
        unit="epoch",
        disable=None if progress else True,
    )
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        stage = 2 if epoch >= state["stage_two_epoch"] else 1
        t0 = time.perf_counter()
        total, count = np.zeros(k_members), 0
        for batch in epoch_batches(train_set, shuffle=True, epoch=epoch):
            params, ema, opt_state, value = step(
                params, ema, opt_state, on_mesh(batch), *step_args(batch, stage)
            )
            total, count = total + on_host(value), count + 1
        sums: dict[str, np.ndarray] = {}
        for batch in epoch_batches(val_set, shuffle=False):
            for key, v in sums_fn(ema, on_mesh(batch)).items():
                sums[key] = sums.get(key, 0.0) + on_host(v)
        metrics = [
            losses.metrics_from_sums({key: v[m] for key, v in sums.items()})
            for m in range(k_members)
        ]
        val_loss = [
            sum(w * mt.get(key, 0.0) ** 2 for key, w in val_loss_weights.items())
            for mt in metrics
        ]
        train_loss = total / max(count, 1)
        _check_finite(train_loss, val_loss, epoch, config, state, out_dir, stacked)
        record = {"epoch": epoch, "stage": stage}
        if stacked:
            record.update(train_loss=train_loss.tolist(), val_loss=val_loss)
        else:
            record.update(train_loss=float(train_loss[0]), val_loss=val_loss[0])
        record.update(
            learning_rate=float(schedule((epoch + 1) * steps_per_epoch)),
            seconds=time.perf_counter() - t0,
        )
        record.update({"members": metrics} if stacked else metrics[0])
        state["history"].append(record)
        best_val, best_epoch = _listed(state["best_val"]), _listed(state["best_epoch"])
        wait = _listed(state["wait"])
        improved = [v < b for v, b in zip(val_loss, best_val, strict=True)]
        for m in range(k_members):
            if improved[m]:
                best_val[m], best_epoch[m], wait[m] = val_loss[m], epoch, 0
            else:
                wait[m] += 1
        if any(improved):
            best = _select(improved, ema, best) if stacked else ema
        stop = bool(config.patience) and min(wait) >= config.patience
        if stop and stage == 1 and last_stage == 2:  # stage one stalled: on to two
            state["stage_two_epoch"], wait, stop = epoch + 1, [0] * k_members, False
        state.update(
            best_val=_unlist(best_val, stacked),
            best_epoch=_unlist(best_epoch, stacked),
            wait=_unlist(wait, stacked),
            stopped_early=stop,
            epoch=epoch + 1,
        )
        # the model file first: a kill between the two writes only repeats work
        if stacked:  # the best of every member, each epoch
            model_header = header(state=state)
        else:  # the best model when it improves
            model_header = header(epoch=epoch, metrics=metrics[0])
        if stacked or improved[0]:
            checkpoint.save(
                os.path.join(out_dir, files[1]),
                spec=spec,
                params=best,
                header=model_header,
            )
        checkpoint.save(
            ckpt_path,
            spec=spec,
            params=best,
            header=header(state=state, data_fingerprint=fingerprint),
            arrays={"params": params, "ema": ema, "opt_state": opt_state},
        )
        bar.update(1)
        bar.set_postfix(
            loss=f"{float(np.mean(train_loss)):.3g}",
            E=f"{_mean_metric(metrics, 'energy_mae_mev_per_atom'):.2f}meV/at",
            F=f"{_mean_metric(metrics, 'forces_mae_mev_per_angstrom'):.1f}meV/Å",
        )
        if on_epoch_end is not None:
            on_epoch_end(record)
    bar.close()
    return Run(
        potential=potential,
        spec=spec,
        params=best,
        history=state["history"],
        best_epoch=state["best_epoch"],
        stopped_early=bool(state["stopped_early"]),
        out_dir=out_dir,
    )


def _listed(x) -> list:
    """A per-member state entry as a list (one model stores a scalar)."""
    return list(x) if isinstance(x, list) else [x]


def _unlist(values: list, stacked: bool):
    return list(values) if stacked else values[0]


def _mean_metric(metrics: list[dict], key: str) -> float:
    return float(np.mean([m.get(key, float("nan")) for m in metrics]))


def _check_finite(train_loss, val_loss, epoch, config, state, out_dir, stacked):
    """Raise :class:`TrainingDivergedError` on a non-finite loss of any member."""
    bad = ~(np.isfinite(train_loss) & np.isfinite(np.asarray(val_loss)))
    if not bad.any():
        return
    last = min(_listed(state["best_epoch"]))
    kept = (
        f"the best model so far (epoch {last}) stays in {out_dir}"
        if last >= 0
        else "no model was written"
    )
    who = f" for member(s) {np.flatnonzero(bad).tolist()}" if stacked else ""
    loss = train_loss.tolist() if stacked else f"{train_loss[0]:.3g}"
    vloss = list(val_loss) if stacked else f"{val_loss[0]:.3g}"
    raise TrainingDivergedError(
        f"training diverged in epoch {epoch}{who} (loss {loss}, validation loss "
        f"{vloss}); lower learning_rate (now {config.learning_rate:g}) or check "
        f"the labels for outliers; {kept}"
    )


@functools.lru_cache(maxsize=4)
def _programs(spec_json, config_json, steps_per_epoch, stacked, mesh, optimizer_fn):
    """Potential, optimiser, schedule and the compiled step / validation sums.

    Cached on the JSON of the model spec and the training config (and the
    mesh and optimiser builder), so that a killed run resumed in the same
    process reuses the compiled programs; results do not depend on the cache.
    """
    from mldiff import parallel

    spec = ModelSpec.from_dict(json.loads(spec_json))
    config = from_dict(json.loads(config_json))
    potential = build(spec)
    optimizer, schedule = (optimizer_fn or make_optimizer)(config, steps_per_epoch)
    loss = losses.loss_fn(potential.energy, *loss_weights(config, 1))
    sums = losses.error_sums(potential.energy, config.stress_weight > 0)
    if stacked:  # GSPMD places the members and batch as their inputs are
        step = jax.jit(ensemble_train_step(loss, optimizer, config.ema_decay))
        return potential, optimizer, schedule, step, jax.jit(jax.vmap(sums, (0, None)))
    step = train_step(loss, optimizer, config.ema_decay)
    step = jax.jit(step) if mesh is None else parallel.data_parallel(step, mesh)
    return potential, optimizer, schedule, step, jax.jit(sums)
