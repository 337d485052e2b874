"""Deep ensembles: stacked parameters, one ``vmap``, committee mean and spread.

An ensemble of ``K`` members of one :class:`~mldiff.potentials.Potential` is a
single parameter pytree whose every leaf has a leading member axis ``[K, ...]``
("stacked params"). Everything else is composition of JAX transforms over the
same pure ``energy``::

    committee_energy = jax.vmap(pot.energy, in_axes=(0, None, None))   # [K] eV

* :func:`init_ensemble`, :func:`stack`, :func:`unstack`: make and take apart
  stacked parameters.
* :func:`committee`: energy, forces and stress mean / std from one ``vmap`` of
  :func:`mldiff.quantities.energy_forces_stress` over members, with
  committee-disagreement scores per structure and per atom.
* :func:`train_ensemble`: all members trained in one jitted, vmapped step on
  shared batches (optionally bootstrap-resampled through per-member weights on
  the batch slots), the optimiser / EMA of :mod:`mldiff.training.loop`,
  validation per member, atomic checkpoints and exact resume;
  :func:`load_ensemble` rebuilds ``(potential, stacked_params)``.
* :func:`ensemble_phonons`, :func:`phonon_frequencies_with_uncertainty`:
  phonon frequencies with error bars by vmapping the parameter-dependent part
  of the phonon pipeline (Hessian rows → symmetry → sum rule → ``D(q)`` →
  eigenvalues) over members.

Spreads are the standard deviation over members with ``ddof = 0`` by default:
the spread of the equally weighted mixture of the members' predictions (deep
ensembles), not an unbiased estimate of a population variance.

Other derived quantities compose the same way. A pure ``fn(params) -> array``
is vmapped; e.g. the clamped-ion elastic tensor from the strain Hessian::

    g = neighbors.allocate(structure, pot.cutoff)
    a_fn = lambda p: strain_derivatives(pot.energy)(p, structure, g)[0]  # [6, 6] eV
    c0 = jax.vmap(a_fn)(stacked_params) / volume * units.eV_per_A3_to_GPa  # [K,6,6]
    mean, std = mean_std(c0)

A pipeline with host-side checks (``mldiff.phonons.elastic.run`` raises on
unrelaxed ions) is looped over members instead::

    cs = np.stack([elastic.run(structure, pot, p).relaxed_ion_gpa
                   for p in unstack(stacked_params)])                    # [K, 6, 6]

References:
    B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and scalable
    predictive uncertainty estimation using deep ensembles", NeurIPS (2017).
    L. Zhang et al., "Active learning of uniformly accurate interatomic
    potentials for materials simulation" (DP-GEN), Phys. Rev. Mater. 3, 023804
    (2019): the per-atom force deviation ``max_i ‖σ_F,i‖`` used as a score.
    H. S. Seung, M. Opper and H. Sompolinsky, "Query by committee", COLT (1992).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from mldiff import neighbors, potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("lj", sigma=2.0, epsilon=0.01)
    >>> s = Structure.create([[0, 0, 0], [2.3, 0, 0]], None, [18, 18], pbc=False)
    >>> g = neighbors.allocate(s, pot.cutoff)
    >>> members = [{"sigma": jnp.asarray(x), "epsilon": jnp.asarray(0.01)}
    ...            for x in (1.9, 2.0, 2.1)]
    >>> out = jax.jit(committee(pot.energy))(stack(members), s, g)
    >>> out["forces_std_ev_per_angstrom"].shape, bool(out["energy_std_ev"] > 0)
    ((2, 3), True)
"""

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import calibration as calib
from mldiff import neighbors, quantities, space, units
from mldiff.errors import ConfigError, TrainingDivergedError, check_float64
from mldiff.phonons import Phonons, dynamical_matrix
from mldiff.phonons import force_constants as _fc
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure
from mldiff.training import checkpoint, loop, losses
from mldiff.training.config import TrainConfig, from_dict, to_dict
from mldiff.training.models import ModelSpec, build

__all__ = [
    "Ensemble",
    "EnsembleResult",
    "init_ensemble",
    "stack",
    "unstack",
    "n_members",
    "mean_std",
    "committee",
    "bootstrap_counts",
    "weighted_loss_fn",
    "ensemble_train_step",
    "train_ensemble",
    "load_ensemble",
    "ensemble_phonons",
    "committee_frequencies",
    "phonon_frequencies_with_uncertainty",
]

CHECKPOINT = "ensemble_checkpoint.msgpack"  # full training state, for resuming
MODEL = "ensemble.msgpack"  # best (EMA) stacked parameters, for load_ensemble


class Ensemble(NamedTuple):
    """A loaded ensemble: a potential and its stacked parameters.

    Attributes:
        potential: the shared :class:`~mldiff.potentials.Potential`.
        params: stacked parameters, every leaf ``[K, ...]``.
    """

    potential: Any
    params: Any


# ---------------------------------------------------------------- parameters


def init_ensemble(potential: Potential, key, structure: Structure, n_members: int):
    """Stacked parameters of ``n_members`` members from split keys.

    Member ``k`` gets ``potential.init(jax.random.split(key, n_members)[k],
    structure)``; the members are drawn in one ``vmap`` over the keys.

    Args:
        potential: any potential whose ``init`` uses its key.
        key: a PRNG key.
        structure: passed to ``init`` (sets dtype and checks species).
        n_members: ensemble size ``K`` (≥ 1).

    Returns:
        Stacked parameters, every leaf ``[K, ...]``.

    Example:
        >>> import jax
        >>> from mldiff.potentials.nequip import NequIPConfig, nequip
        >>> from mldiff.structure import Structure
        >>> cfg = NequIPConfig(num_layers=1, features=4, l_max=1, radial_mlp=(8,))
        >>> pot = nequip(cfg, species=(14,))
        >>> s = Structure.create([[0, 0, 0]], None, [14], pbc=False)
        >>> p = init_ensemble(pot, jax.random.key(0), s, 3)
        >>> n_members(p)
        3
    """
    if int(n_members) < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members!r}")
    keys = jax.random.split(key, int(n_members))
    return _init_from_keys(potential, keys, structure)


def _init_from_keys(potential, keys, structure):
    return jax.vmap(lambda k: potential.init(k, structure))(keys)


def stack(params_list: Sequence):
    """Stack per-member parameter pytrees along a new leading axis.

    Args:
        params_list: ``K`` pytrees of one structure and leaf shapes.

    Returns:
        One pytree with leaves ``[K, ...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> stack([{"a": jnp.zeros(2)}, {"a": jnp.ones(2)}])["a"].shape
        (2, 2)
    """
    params_list = list(params_list)
    if not params_list:
        raise ConfigError("stack needs at least one parameter pytree, got none")
    return jax.tree.map(lambda *x: jnp.stack(x), *params_list)


def unstack(stacked_params) -> list:
    """The ``K`` per-member pytrees of stacked parameters (inverse of :func:`stack`).

    Example:
        >>> import jax.numpy as jnp
        >>> [float(p["a"]) for p in unstack({"a": jnp.array([1.0, 2.0])})]
        [1.0, 2.0]
    """
    k = n_members(stacked_params)
    return [jax.tree.map(lambda x, i=i: x[i], stacked_params) for i in range(k)]


def n_members(stacked_params) -> int:
    """Ensemble size ``K``: the common leading axis of every leaf.

    Example:
        >>> import jax.numpy as jnp
        >>> n_members({"a": jnp.zeros((4, 2)), "b": jnp.zeros(4)})
        4
    """
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(stacked_params)}
    if len(sizes) != 1:
        raise ConfigError(
            f"stacked parameters must share one leading member axis; got sizes "
            f"{sorted(sizes)}. Build them with stack() or init_ensemble()"
        )
    return sizes.pop()


# ---------------------------------------------------------------- committee


def mean_std(x, ddof: int = 0, axis: int = 0):
    """Mean and standard deviation over the member axis, safe to differentiate.

    Args:
        x: ``[K, ...]`` member values (any unit).
        ddof: delta degrees of freedom; 0 is the mixture's spread.
        axis: the member axis.

    Returns:
        ``(mean [...], std [...])`` in the unit of ``x``; the square root is
        guarded so that gradients stay finite where members agree exactly.

    Example:
        >>> import jax.numpy as jnp
        >>> [float(v) for v in mean_std(jnp.array([1.0, 3.0]))]
        [2.0, 1.0]
    """
    k = x.shape[axis]
    mean = jnp.mean(x, axis=axis)
    dev = x - jnp.expand_dims(mean, axis)
    var = jnp.sum(dev * dev, axis=axis) / max(k - int(ddof), 1)
    return mean, space.safe_sqrt(var)


def committee(
    energy_fn: Callable,
    *,
    atomic_energies_fn: Callable | None = None,
    with_stress: bool | None = None,
    ddof: int = 0,
    calibration: calib.Calibration | None = None,
    calibrated: bool = True,
):
    """Committee predictions and disagreement of stacked parameters.

    Energy, forces and stress of all members come from one ``vmap`` over the
    member axis of :func:`mldiff.quantities.energy_forces_stress`.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV`` of one member.
        atomic_energies_fn: optional ``(params, structure, graph) -> [n]`` eV
            per-atom energies summing to ``energy_fn`` (e.g.
            :func:`mldiff.potentials.nequip.nequip_atomic_energies`); adds the
            per-atom energy spread.
        with_stress: compute the stress (needs a cell with non-zero volume);
            ``None``: when any direction of the structure is periodic.
        ddof: delta degrees of freedom of the spread (0: mixture spread).
        calibration: scales on the spreads (:mod:`mldiff.calibration`, e.g.
            ``calibration.read(ensemble_dir)``): with it and ``calibrated``,
            every ``*_std_*`` value below is the calibrated spread and the raw
            one is kept as ``*_std_uncalibrated_*``.
        calibrated: apply ``calibration`` (``False``: raw spreads only).

    Returns:
        ``committee_fn(stacked_params, structure, graph) -> dict`` (jit- and
        vmap-compatible; vmap it over a padded batch with ``in_axes=(None, 0,
        0)``). Atoms with atomic number 0 (padding ghosts) are left out of the
        per-structure scores. Keys:

        * ``energy_members_ev`` ``[K]``; ``energy_mean_ev``, ``energy_std_ev``.
        * ``forces_mean_ev_per_angstrom``, ``forces_std_ev_per_angstrom``
          ``[n, 3]``, componentwise.
        * ``stress_mean_ev_per_angstrom3``, ``stress_std_ev_per_angstrom3``
          ``[3, 3]`` (when the stress is computed).
        * ``energy_std_ev_per_atom``: energy spread / number of atoms.
        * ``atom_force_std_ev_per_angstrom`` ``[n]``: ``‖σ_F,i‖ =
          √(Σ_a σ²_F,ia)``, the root-mean-square deviation of the members'
          force vectors on atom ``i`` from their mean (DP-GEN's deviation).
        * ``max_force_std_ev_per_angstrom``, ``mean_force_std_ev_per_angstrom``:
          maximum and mean of that over atoms.
        * with ``atomic_energies_fn``: ``atom_energy_mean_ev``,
          ``atom_energy_std_ev`` ``[n]`` and ``max_atom_energy_std_ev``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff import neighbors, potentials
        >>> from mldiff.structure import Structure
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> s = Structure.create([[0, 0, 0], [2.5, 0, 0]], jnp.eye(3) * 9.0,
        ...                      [29, 29])
        >>> g = neighbors.allocate(s, pot.cutoff)
        >>> p = stack([pot.init(None, s)] * 2)          # identical members
        >>> out = jax.jit(committee(pot.energy))(p, s, g)
        >>> float(out["max_force_std_ev_per_angstrom"])
        0.0
        >>> out["stress_std_ev_per_angstrom3"].shape
        (3, 3)
    """
    efs = quantities.energy_forces_stress(energy_fn)
    ef = quantities.energy_and_forces(energy_fn)

    def committee_fn(stacked_params, structure, graph) -> dict:
        stress_on = any(structure.pbc) if with_stress is None else bool(with_stress)
        members = jax.vmap(efs if stress_on else ef, in_axes=(0, None, None))
        out_members = members(stacked_params, structure, graph)
        e, f = out_members[0], out_members[1]  # [K] eV, [K, n, 3] eV/Å
        real = structure.numbers > 0  # [n]
        n_real = jnp.maximum(jnp.sum(real), 1).astype(e.dtype)
        e_mean, e_std = mean_std(e, ddof)
        f_mean, f_std = mean_std(f, ddof)
        atom_f = space.safe_sqrt(jnp.sum(f_std * f_std, axis=-1))  # [n]
        atom_f = jnp.where(real, atom_f, 0.0)
        out = {
            "energy_members_ev": e,
            "energy_mean_ev": e_mean,
            "energy_std_ev": e_std,
            "forces_mean_ev_per_angstrom": f_mean,
            "forces_std_ev_per_angstrom": f_std,
            "energy_std_ev_per_atom": e_std / n_real,
            "atom_force_std_ev_per_angstrom": atom_f,
            "max_force_std_ev_per_angstrom": jnp.max(atom_f),
            "mean_force_std_ev_per_angstrom": jnp.sum(atom_f) / n_real,
        }
        if stress_on:
            s_mean, s_std = mean_std(out_members[2], ddof)
            out["stress_mean_ev_per_angstrom3"] = s_mean
            out["stress_std_ev_per_angstrom3"] = s_std
        if atomic_energies_fn is not None:
            ea = jax.vmap(atomic_energies_fn, in_axes=(0, None, None))(
                stacked_params, structure, graph
            )  # [K, n] eV
            ea_mean, ea_std = mean_std(ea, ddof)
            ea_std = jnp.where(real, ea_std, 0.0)
            out["atom_energy_mean_ev"] = ea_mean
            out["atom_energy_std_ev"] = ea_std
            out["max_atom_energy_std_ev"] = jnp.max(ea_std)
        return calib.apply(calibration, out, calibrated=calibrated)

    return committee_fn


# ---------------------------------------------------------------- training


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


def ensemble_train_step(loss, optimizer, ema_decay: float):
    """One optimiser step of every member, vmapped over the member axis.

    Each member takes :func:`mldiff.training.loop.train_step` (clipping, AdamW,
    EMA) on the shared batch with its own slot weights.

    Args:
        loss: ``(params, batch, weights [B]) -> scalar`` (see
            :func:`weighted_loss_fn`).
        optimizer: an optax transformation (:func:`loop.make_optimizer`).
        ema_decay: EMA decay of the parameters (0: EMA = parameters).

    Returns:
        ``step(params, ema, opt_state, batch, weights [K, B]) -> (params, ema,
        opt_state, loss [K])`` over stacked pytrees (pure; jit it).

    Example:
        >>> import optax
        >>> from mldiff import potentials
        >>> loss = weighted_loss_fn(potentials.get("lj").energy, 1.0, 10.0, 0.0)
        >>> step = ensemble_train_step(loss, optax.sgd(1e-3), 0.0)
        >>> callable(step)
        True
    """

    def member_step(params, ema, opt_state, batch, weights):
        def member_loss(p, b):
            return loss(p, b, weights)

        step = loop.train_step(member_loss, optimizer, ema_decay)
        return step(params, ema, opt_state, batch)

    return jax.vmap(member_step, in_axes=(0, 0, 0, None, 0))


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


def _cast(tree, dtype):
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


def _warm_start(fresh, given):
    """``given`` stacked parameters in the dtypes of ``fresh``, shapes checked."""
    same_tree = jax.tree.structure(fresh) == jax.tree.structure(given)
    shapes_f = [np.shape(x) for x in jax.tree.leaves(fresh)]
    shapes_g = [np.shape(x) for x in jax.tree.leaves(given)] if same_tree else []
    if not same_tree or shapes_f != shapes_g:
        raise ConfigError(
            "initial_params do not match the model and n_members (tree or leaf "
            "shapes differ); pass the stacked parameters of an ensemble of the "
            "same spec and size, e.g. the previous EnsembleResult.ensemble.params"
        )
    return jax.tree.map(lambda f, g: jnp.asarray(g, f.dtype), fresh, given)


def _select(mask, new, old):
    """Per member (``mask`` ``[K]`` bool), ``new`` where True, else ``old``."""

    def pick(a, b):
        return jnp.where(jnp.asarray(mask).reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def _member_seeds(seed: int, n: int):
    # member k starts like a single-model run with seed + k (member 0 == train())
    return jax.vmap(jax.random.key)(jnp.arange(int(seed), int(seed) + int(n)))


@functools.lru_cache(maxsize=4)
def _programs(spec_json: str, config_json: str, steps_per_epoch: int):
    """Potential, optimiser, schedule and the jitted step / validation sums.

    Cached on the JSON of the model spec and the training config, so that a
    killed run resumed in the same process (or a second ensemble of the same
    model) reuses the compiled programs; results do not depend on the cache.
    """
    spec = ModelSpec.from_dict(json.loads(spec_json))
    config = from_dict(json.loads(config_json))
    potential = build(spec)
    optimizer, schedule = loop.make_optimizer(config, steps_per_epoch)
    loss = weighted_loss_fn(
        potential.energy,
        config.energy_weight,
        config.forces_weight,
        config.stress_weight,
    )
    step = jax.jit(ensemble_train_step(loss, optimizer, config.ema_decay))
    error_sums = losses.error_sums(potential.energy, config.stress_weight > 0)
    sums_fn = jax.jit(jax.vmap(error_sums, in_axes=(0, None)))
    return potential, optimizer, schedule, step, sums_fn


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

    Member ``k`` is initialised from ``jax.random.key(config.seed + k)``, so
    without bootstrap member 0 follows exactly :func:`mldiff.training.train`
    (``patience`` 0). All members see the same batches in the same order (the
    single-model shuffle of ``(config.seed, epoch)``). With ``bootstrap``, member
    ``k`` weights each structure by its count in a resample with replacement
    (:func:`bootstrap_counts`, seeded by ``config.seed``) through per-member
    weights on the batch slots, so shapes stay static and one program serves
    every member. (A batch whose structures a member did not draw gives it a
    zero gradient, but AdamW's momentum and weight decay still move it, as in
    any weighted loss.) Optimiser, schedule, clipping and EMA are those of the
    single-model loop. Each member keeps its EMA parameters of its best
    validation epoch; early stopping ends the run once every member has waited
    ``patience`` epochs. The jitted step and validation are cached per (model
    spec, config), so a run resumed in the same process does not recompile.

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

    Example:
        >>> from mldiff.training import TrainConfig
        >>> TrainConfig(model="nequip", epochs=2).epochs  # see tests/test_ensemble.py
        2
    """
    from tqdm.auto import tqdm

    from mldiff.data import batching

    if int(n_members) < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members!r}")
    k_members = int(n_members)
    if mesh is not None:
        from mldiff import parallel

        parallel.check_divisible(config.batch_size, mesh, parallel.BATCH, "batch_size")
        parallel.check_divisible(
            k_members, mesh, parallel.MEMBER, "number of ensemble members"
        )
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    if dtype == jnp.float64:
        check_float64("ensemble training with dtype='float64'")
    settings = {"n_members": k_members, "bootstrap": bool(bootstrap)}
    ckpt_path = os.path.join(out_dir, CHECKPOINT)
    # the same checkpoint on every process of a multi-host run, or none
    found = checkpoint.resume_point(ckpt_path) if resume else None
    resumed = found is not None
    if resumed:
        meta, payload = found
        same = meta["train_config"] == json.loads(json.dumps(to_dict(config)))
        if not same or meta.get("ensemble") != settings:
            raise ConfigError(
                f"{ckpt_path} was written with a different training configuration "
                f"or ensemble settings ({meta.get('ensemble')} vs {settings}); use a "
                "new output directory or resume=False to start over"
            )
        spec = ModelSpec.from_dict(meta["model"])
    elif spec is None:
        spec = loop.model_spec_from_data(config, train_items)
    cutoff = build(spec).cutoff
    everything = batching.Dataset.build(list(train_items) + list(val_items), cutoff)
    train_set = everything.subset(np.arange(len(train_items)))
    val_set = everything.subset(np.arange(len(train_items), len(everything)))
    buckets = batching.make_buckets(
        everything, batch_size=config.batch_size, n_buckets=config.n_buckets
    )

    def epoch_batches(ds, shuffle, epoch=0):
        return batching.batches(
            ds,
            batch_size=config.batch_size,
            buckets=buckets,
            shuffle=shuffle,
            seed=config.seed,
            epoch=epoch,
            dtype=dtype,
        )

    def on_mesh(batch):  # host batch -> split over the "batch" axis
        return batch if mesh is None else parallel.shard_batch(batch, mesh)

    def on_host(x):  # [K] per-member values, whose members may span hosts
        return np.asarray(x if mesh is None else parallel.to_host(x), np.float64)

    steps_per_epoch = batching.n_batches(train_set, config.batch_size, buckets=buckets)
    potential, optimizer, schedule, step, sums_fn = _programs(
        spec.to_json(),
        json.dumps(to_dict(config), sort_keys=True),
        steps_per_epoch,
    )
    if bootstrap:
        counts = bootstrap_counts(len(train_set), k_members, config.seed)
    else:
        counts = np.ones((k_members, len(train_set)), dtype=np.int64)

    keys = _member_seeds(config.seed, k_members)
    params = _cast(_init_from_keys(potential, keys, train_items[0].structure), dtype)
    if initial_params is not None:
        params = _warm_start(params, initial_params)
    opt_state = jax.vmap(optimizer.init)(params)
    ema = params
    state = {
        "epoch": 0,
        "history": [],
        "best_val": [float("inf")] * k_members,
        "best_epoch": [-1] * k_members,
        "wait": [0] * k_members,
        "stopped_early": False,
    }
    best = ema
    if resumed:
        arrays = payload["arrays"]
        params = checkpoint.restore(params, arrays["params"])
        ema = checkpoint.restore(ema, arrays["ema"])
        best = checkpoint.restore(best, payload["params"])
        opt_state = checkpoint.restore(opt_state, arrays["opt_state"])
        state = meta["state"]
    if mesh is not None:  # members split over "member" (replicated without it)
        params, ema, best, opt_state = parallel.shard_members(
            (params, ema, best, opt_state), mesh
        )

    val_loss_weights = {
        "energy_rmse_mev_per_atom": config.energy_weight,
        "forces_rmse_mev_per_angstrom": config.forces_weight,
        "stress_rmse_gpa": config.stress_weight,
    }

    def slot_weights(batch):
        idx = np.asarray(batch.index)  # [B], -1 for padded slots
        w = counts[:, np.maximum(idx, 0)] * (idx >= 0)[None, :]  # [K, B]
        if mesh is None:
            return jnp.asarray(w, dtype)
        sharding = parallel.named_sharding(mesh, parallel.MEMBER, parallel.BATCH)
        return parallel.place(jnp.asarray(w, dtype), sharding)

    def save(path, arrays=None):
        header = {
            "train_config": to_dict(config),
            "ensemble": settings,
            "state": state,
        }
        checkpoint.save(path, spec=spec, params=best, header=header, arrays=arrays)

    bar = tqdm(
        total=config.epochs,
        initial=state["epoch"],
        desc="ensemble",
        unit="epoch",
        disable=None if progress else True,
    )
    while state["epoch"] < config.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        t0 = time.perf_counter()
        total, count = np.zeros(k_members), 0
        for batch in epoch_batches(train_set, shuffle=True, epoch=epoch):
            params, ema, opt_state, value = step(
                params, ema, opt_state, on_mesh(batch), slot_weights(batch)
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
        if not (np.isfinite(total).all() and np.isfinite(val_loss).all()):
            bad = sorted(
                set(np.flatnonzero(~np.isfinite(total)).tolist())
                | set(np.flatnonzero(~np.isfinite(val_loss)).tolist())
            )
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch} for member(s) {bad} (loss "
                f"{(total / max(count, 1)).tolist()}); lower learning_rate (now "
                f"{config.learning_rate:g}) or check the labels for outliers; the "
                f"last good state (epoch {epoch - 1}) stays in {out_dir}"
            )
        record = {
            "epoch": epoch,
            "train_loss": (total / max(count, 1)).tolist(),
            "val_loss": val_loss,
            "learning_rate": float(schedule((epoch + 1) * steps_per_epoch)),
            "seconds": time.perf_counter() - t0,
            "members": metrics,
        }
        state["history"].append(record)
        improved = np.array(
            [v < b for v, b in zip(val_loss, state["best_val"], strict=True)]
        )
        for m in range(k_members):
            if improved[m]:
                state["best_val"][m] = val_loss[m]
                state["best_epoch"][m] = epoch
                state["wait"][m] = 0
            else:
                state["wait"][m] += 1
        if improved.any():
            best = _select(improved, ema, best)
        if config.patience and min(state["wait"]) >= config.patience:
            state["stopped_early"] = True
        state["epoch"] = epoch + 1
        # the model file first: a kill between the two writes only repeats work
        save(os.path.join(out_dir, MODEL))
        save(ckpt_path, {"params": params, "ema": ema, "opt_state": opt_state})
        bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(record)
    bar.close()
    calibration = None
    if len(val_items):  # Musil et al.'s global scale on the spread (calibration.py)
        host_best = best if mesh is None else parallel.to_host(best)
        calibration, scores = calib.fit_committee(
            potential, host_best, val_items, batch_size=config.batch_size
        )
        if jax.process_index() == 0:
            calib.write(out_dir, calibration, scores)
    return EnsembleResult(
        ensemble=Ensemble(potential, best),
        history=state["history"],
        best_epoch=list(state["best_epoch"]),
        stopped_early=bool(state["stopped_early"]),
        counts=counts,
        out_dir=out_dir,
        spec=spec,
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


# ---------------------------------------------------------------- phonons


def ensemble_phonons(
    structure: Structure,
    potential: Potential,
    stacked_params,
    supercell_matrix=(2, 2, 2),
    *,
    primitive_matrix=None,
    masses=None,
    use_symmetry: bool = True,
    enforce_sum_rule: bool = True,
    chunk_size: int = _fc.DEFAULT_CHUNK_SIZE,
    symprec: float = 1e-5,
) -> Phonons:
    """Phonons of every member, the force constants from one vmapped program.

    The host-side geometry (supercell, primitive cell, neighbor graph, spglib
    site symmetry, supercell images) does not depend on the parameters and is
    built once, as in :func:`mldiff.phonons.run`; the parameter-dependent part
    (Hessian rows of the independent atoms → symmetry distribution → index
    symmetry and acoustic sum rule) is ``jit(vmap(...))`` over members.
    Arguments are those of :func:`mldiff.phonons.run`. Float64 only.

    Returns:
        :class:`~mldiff.phonons.Phonons` whose ``force_constants`` are
        ``[K, n, 3, n, 3]`` eV/Å² (one per member); the rest is shared. Take
        ``K`` members apart with ``ph._replace(force_constants=fc[k])``.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> p = stack([pot.init(None, cu)] * 2)
        >>> ensemble_phonons(cu, pot, p, [2, 2, 2]).force_constants.shape
        (2, 8, 3, 8, 3)
    """
    check_float64("phonons", structure=structure)
    check_species(potential, np.asarray(structure.numbers))
    if masses is None:
        masses = units.masses_amu(structure.numbers)
    masses = np.asarray(masses, np.float64)
    if masses.shape != (len(structure),):
        raise ConfigError(
            f"masses must have shape ({len(structure)},), one per unit-cell atom "
            f"in amu, got {masses.shape}"
        )
    sc = dynamical_matrix.supercell(structure, supercell_matrix)
    prim = dynamical_matrix.primitive(structure, primitive_matrix, symprec=symprec)
    graph = neighbors.check(neighbors.allocate(sc, potential.cutoff))
    symmetry = _fc.site_symmetry(sc, symprec=symprec) if use_symmetry else None
    if symmetry is not None and len(symmetry.independent) == len(sc):
        symmetry = None  # nothing to gain: differentiate every row directly
    atoms = jnp.asarray(
        np.arange(len(sc)) if symmetry is None else symmetry.independent
    )
    rows_fn = _fc.force_constant_rows(potential.energy, chunk_size=chunk_size)

    def fc_of(params):
        rows = rows_fn(params, sc, graph, atoms)  # [k, 3, n, 3]
        fc = rows if symmetry is None else _fc.distribute(rows, symmetry)
        return _fc.symmetrize(fc) if enforce_sum_rule else fc

    fcs = jax.jit(jax.vmap(fc_of))(stacked_params)
    sc_masses = jnp.asarray(masses[dynamical_matrix.site_map(sc, structure)])
    im = dynamical_matrix.images(sc, prim, symprec=symprec)
    return Phonons(fcs, sc_masses, sc, prim, im)


@jax.jit
def committee_frequencies(phonons: Phonons, qpoints):
    """Frequencies of every member at q-points, one vmapped eigen-solve.

    Args:
        phonons: from :func:`ensemble_phonons` (force constants ``[K, ...]``).
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``[K, k, 3p]`` frequencies, THz, ascending per member; imaginary modes
        negative.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> ph = ensemble_phonons(cu, pot, stack([pot.init(None, cu)] * 2))
        >>> committee_frequencies(ph, [[0.5, 0.5, 0.0]]).shape
        (2, 1, 3)
    """
    return jax.vmap(dynamical_matrix.frequencies_at, in_axes=(0, None, None, None))(
        phonons.force_constants, phonons.masses, phonons.images, qpoints
    )


def phonon_frequencies_with_uncertainty(
    potential: Potential,
    stacked_params,
    structure: Structure,
    supercell_matrix,
    qpoints,
    *,
    ddof: int = 0,
    calibration: calib.Calibration | None = None,
    calibrated: bool = True,
    **phonon_options,
) -> dict:
    """Committee phonon frequencies with error bars at q-points.

    :func:`ensemble_phonons` then :func:`committee_frequencies`: one vmapped
    program over members for the force constants and one for ``D(q)`` and its
    eigenvalues. The mean and std are per band index (frequencies sorted
    ascending per member), so band crossings mix branches, as for any
    band-by-band error bar.

    Args:
        potential: the shared potential.
        stacked_params: stacked parameters ``[K, ...]``.
        structure: periodic unit cell (float64), Å.
        supercell_matrix: ``[3]`` or ``[3, 3]`` integers, phonopy's convention.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        ddof: delta degrees of freedom of the spread.
        calibration: spread scales (:mod:`mldiff.calibration`); with
            ``calibrated``, ``frequencies_std_thz`` is the raw spread times
            ``forces_scale`` and the raw one is ``frequencies_std_uncalibrated_thz``.
        calibrated: apply ``calibration``.
        **phonon_options: ``primitive_matrix``, ``masses``, ``use_symmetry``,
            ``enforce_sum_rule``, ``chunk_size``, ``symprec`` as for
            :func:`mldiff.phonons.run`.

    Returns:
        ``frequencies_thz`` ``[K, k, 3p]`` (members), ``frequencies_mean_thz``
        and ``frequencies_std_thz`` ``[k, 3p]``, THz.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> p = stack([pot.init(None, cu)] * 2)
        >>> out = phonon_frequencies_with_uncertainty(pot, p, cu, [2, 2, 2],
        ...                                           [[0.5, 0.5, 0.0]])
        >>> float(out["frequencies_std_thz"].max())
        0.0
    """
    ph = ensemble_phonons(
        structure, potential, stacked_params, supercell_matrix, **phonon_options
    )
    freqs = committee_frequencies(ph, jnp.asarray(qpoints, jnp.float64))
    mean, std = mean_std(freqs, ddof)
    out = {
        "frequencies_thz": freqs,
        "frequencies_mean_thz": mean,
        "frequencies_std_thz": std,
    }
    return calib.apply(calibration, out, calibrated=calibrated)
