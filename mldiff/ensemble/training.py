"""Training an ensemble: the single-model loop over stacked members.

:func:`train_ensemble` runs :func:`mldiff.training.loop.fit` with ``K``
stacked members: one jitted step, the single-model step vmapped over the
member axis (:func:`mldiff.training.step.ensemble_train_step`), on shared
batches, optionally bootstrap-resampled through per-member weights on the
batch slots (:func:`bootstrap_counts`). :func:`load_ensemble` rebuilds
``(potential, stacked_params)`` from its output.
"""

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import calibration as calib
from mldiff import parallel
from mldiff.ensemble.members import Ensemble, init_ensemble
from mldiff.errors import ConfigError
from mldiff.structure import Structure
from mldiff.training import checkpoint, loop, losses
from mldiff.training.config import TrainConfig
from mldiff.training.models import ModelSpec, build
from mldiff.training.step import ensemble_train_step

__all__ = [
    "CHECKPOINT",
    "MODEL",
    "EnsembleResult",
    "bootstrap_counts",
    "weighted_loss_fn",
    "ensemble_train_step",
    "train_ensemble",
    "load_ensemble",
]

CHECKPOINT = "ensemble_checkpoint.msgpack"  # full training state, for resuming
MODEL = "ensemble.msgpack"  # best (EMA) stacked parameters, for load_ensemble


def bootstrap_counts(n_structures: int, n_members: int, seed: int) -> np.ndarray:
    """How often each member sees each structure in a bootstrap resample.

    Member ``k`` draws ``n_structures`` structures with replacement (seeded by
    ``(seed, k)``); its count vector is the multinomial sample.

    Args:
        n_structures: training-set size ``N``.
        n_members: ensemble size ``K``.
        seed: seed of the resampling.

    Returns:
        ``[K, N]`` int64 counts; each row sums to ``N`` (about 37 % zeros).

    Example:
        >>> c = bootstrap_counts(5, 2, seed=0)
        >>> c.shape, c.sum(axis=1).tolist()
        ((2, 5), [5, 5])
    """
    n, k = int(n_structures), int(n_members)
    out = np.empty((k, n), dtype=np.int64)
    for m in range(k):
        rng = np.random.default_rng([int(seed), 0xB007, m])
        out[m] = rng.multinomial(n, np.full(n, 1.0 / n)) if n else []
    return out


def weighted_loss_fn(energy_fn, energy_weight, forces_weight, stress_weight):
    """``(params, batch, weights [B]) -> loss``: per-structure weighted losses.

    The loss of :func:`mldiff.training.losses.loss_fn` with each structure's
    terms (and their normalising counts) multiplied by ``weights``; unit
    weights give exactly that loss, integer weights the loss of a batch in which
    each structure appears that many times (bootstrap).

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        energy_weight: weight of squared per-atom energy errors, 1/(eV/atom)².
        forces_weight: weight of squared force-component errors, 1/(eV/Å)².
        stress_weight: weight of squared stress-component errors, 1/(eV/Å³)².

    Returns:
        The loss function (pure, jit/vmap-compatible).

    Example:
        >>> from mldiff import potentials
        >>> loss = weighted_loss_fn(potentials.get("lj").energy, 1.0, 10.0, 0.0)
        >>> callable(loss)
        True
    """
    # the single-model loss already takes per-slot weights
    return losses.loss_fn(energy_fn, energy_weight, forces_weight, stress_weight)


@dataclasses.dataclass
class EnsembleResult:
    """Outcome of :func:`train_ensemble`.

    Attributes:
        ensemble: best (EMA) parameters of each member, stacked.
        history: one dict per epoch; ``train_loss`` and ``val_loss`` are
            ``[K]`` lists, ``members`` the validation metrics of each member.
        best_epoch: ``[K]`` epoch of each member's best validation loss.
        stopped_early: True if every member ran out of patience.
        counts: ``[K, N]`` bootstrap counts (all ones without bootstrap).
        out_dir: where the checkpoints are.
        spec: the model's :class:`~mldiff.training.models.ModelSpec`.
        calibration: scales on the committee spreads fitted on the validation
            structures (:func:`mldiff.calibration.fit_committee`), also in
            ``out_dir/calibration.json``; ``None`` without validation data.
    """

    ensemble: Ensemble
    history: list[dict[str, Any]]
    best_epoch: list[int]
    stopped_early: bool
    counts: np.ndarray
    out_dir: str
    spec: ModelSpec
    calibration: calib.Calibration | None = None


def train_ensemble(
    config: TrainConfig,
    n_members: int,
    train_items: Sequence,
    val_items: Sequence,
    out_dir: str | os.PathLike,
    *,
    bootstrap: bool = False,
    resume: bool = True,
    progress: bool = False,
    on_epoch_end: Callable[[dict], None] | None = None,
    spec: ModelSpec | None = None,
    initial_params=None,
    mesh=None,
) -> EnsembleResult:
    """Train ``n_members`` models together, one vmapped step for all.

    The single-model loop (:func:`mldiff.training.loop.fit`) over stacked
    parameters: the optimiser, schedule, clipping, EMA, both loss stages,
    validation, early stopping, checkpoints and resume are those of
    :func:`mldiff.training.train`, member by member. Member ``k`` is
    initialised from ``jax.random.key(config.seed + k)``, so without bootstrap
    member 0 follows exactly :func:`mldiff.training.train` (``patience`` 0).
    All members see the same batches in the same order (the single-model
    shuffle of ``(config.seed, epoch)``). With ``bootstrap``, member ``k``
    weights each structure by its count in a resample with replacement
    (:func:`bootstrap_counts`, seeded by ``config.seed``) through per-member
    weights on the batch slots, so shapes stay static and one program serves
    every member. (A batch whose structures a member did not draw gives it a
    zero gradient, but AdamW's momentum and weight decay still move it, as in
    any weighted loss.) Each member keeps its EMA parameters of its best
    validation epoch; stage two starts early, or the run stops, once every
    member has waited ``patience`` epochs. The jitted step and validation are
    cached per (model spec, config), so a run resumed in the same process does
    not recompile.

    Args:
        config: training configuration (as for :func:`mldiff.training.train`).
        n_members: ensemble size ``K``.
        train_items: labelled structures to fit.
        val_items: labelled structures for validation.
        out_dir: output directory for ``ensemble_checkpoint.msgpack`` (full
            state, rewritten atomically each epoch) and ``ensemble.msgpack``
            (best stacked EMA parameters, for :func:`load_ensemble`); at the
            end, ``calibration.json`` (the spread scales fitted on
            ``val_items``, :func:`mldiff.calibration.read`).
        bootstrap: resample the training set per member.
        resume: continue from the checkpoint in ``out_dir`` if there is one
            (its configuration, ``n_members`` and ``bootstrap`` must match).
        progress: show a progress bar.
        on_epoch_end: called with each epoch's history record.
        spec: the model (species, reference energies, scale); default fitted
            to ``train_items`` (:func:`mldiff.training.loop.model_spec_from_data`).
            Pass the previous run's ``spec`` to warm-start on more data.
        initial_params: stacked parameters ``[K, ...]`` to start from instead
            of fresh seeds (warm start, e.g. the previous round of active
            learning); they must belong to ``spec``.
        mesh: a :class:`jax.sharding.Mesh` (:func:`mldiff.parallel.make_mesh`)
            for data / member parallelism: batches are split over its
            ``"batch"`` axis and members over its ``"member"`` axis (each
            replicated when the mesh lacks that axis); results equal
            single-device training up to reduction order. ``config.batch_size``
            and ``n_members`` must be multiples of those axis sizes. ``None``:
            one device. A mesh over the devices of several processes
            (``jax.distributed``, every process calling this alike) works the
            same, members split over hosts included: process 0 writes the
            checkpoints from gathered arrays and every process resumes from
            them, so ``out_dir`` must be on a file system all hosts share.

    Returns:
        :class:`EnsembleResult`.

    Raises:
        ConfigError: resuming with different settings, ``n_members < 1``, or
            sizes that do not divide over the mesh.
        TrainingDivergedError: a non-finite loss of any member.

    Example:
        >>> from mldiff.training import TrainConfig
        >>> TrainConfig(model="nequip", epochs=2).epochs  # see tests/test_ensemble.py
        2
    """
    if int(n_members) < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members!r}")
    k_members = int(n_members)
    if bootstrap:
        counts = bootstrap_counts(len(train_items), k_members, config.seed)
    else:
        counts = np.ones((k_members, len(train_items)), dtype=np.int64)
    run = loop.fit(
        config,
        train_items,
        val_items,
        out_dir,
        n_members=k_members,
        counts=counts,
        settings={"n_members": k_members, "bootstrap": bool(bootstrap)},
        files=(CHECKPOINT, MODEL),
        # the active-learning loop resumes a round's ensemble on labels re-read
        # from extxyz files, which round what it trained on in memory
        check_data=False,
        resume=resume,
        progress=progress,
        on_epoch_end=on_epoch_end,
        mesh=mesh,
        spec=spec,
        initial_params=initial_params,
    )
    calibration = None
    if len(val_items):  # Musil et al.'s global scale on the spread (calibration.py)
        host_params = run.params if mesh is None else parallel.to_host(run.params)
        calibration, scores = calib.fit_committee(
            run.potential, host_params, val_items, batch_size=config.batch_size
        )
        if jax.process_index() == 0:
            calib.write(run.out_dir, calibration, scores)
    return EnsembleResult(
        ensemble=Ensemble(run.potential, run.params),
        history=run.history,
        best_epoch=list(run.best_epoch),
        stopped_early=run.stopped_early,
        counts=counts,
        out_dir=run.out_dir,
        spec=run.spec,
        calibration=calibration,
    )


def load_ensemble(path, dtype=None) -> Ensemble:
    """Rebuild ``(potential, stacked_params)`` from an ensemble checkpoint.

    Args:
        path: ``ensemble.msgpack`` / ``ensemble_checkpoint.msgpack``, or a
            :func:`train_ensemble` output directory.
        dtype: cast floating parameters to this dtype (default: as saved).

    Returns:
        :class:`Ensemble` (unpacks as ``potential, stacked_params``). The
        spread calibration kept beside it is ``mldiff.calibration.read(path)``.

    Raises:
        ConfigError: a missing file, or a single-model checkpoint.

    Example:
        >>> load_ensemble("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        mldiff.errors.ConfigError: checkpoint '/nonexistent' does not exist
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MODEL)
    meta, payload = checkpoint.read(path)
    if "ensemble" not in meta:
        raise ConfigError(
            f"{path!r} holds a single model, not an ensemble; load it with "
            "mldiff.training.load, or stack several models with ensemble.stack"
        )
    spec = ModelSpec.from_dict(meta["model"])
    potential = build(spec)
    probe = Structure.create([[0.0, 0.0, 0.0]], np.eye(3) * 10.0, [spec.species[0]])
    template = init_ensemble(
        potential, jax.random.key(0), probe, int(meta["ensemble"]["n_members"])
    )
    params = checkpoint.restore(template, payload["params"])

    def cast(x):
        x = np.asarray(x)
        if dtype is not None and np.issubdtype(x.dtype, np.floating):
            x = x.astype(dtype)
        return jnp.asarray(x)

    return Ensemble(potential, jax.tree.map(cast, params))
