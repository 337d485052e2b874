"""One optimiser step: AdamW with its schedule, loss stages, EMA; vmapped for K.

* :func:`make_optimizer`: gradient clipping + AdamW with linear warm-up and
  cosine decay.
* :func:`stage_two_epoch`, :func:`loss_weights`: the two loss stages (MACE).
* :func:`train_step`: one pure step of one model.
* :func:`ensemble_train_step`: the same step for ``K`` stacked members, a
  ``jax.vmap`` of :func:`train_step` over the member axis.

Example:
    >>> import optax
    >>> from mldiff import potentials
    >>> from mldiff.training import losses
    >>> loss = losses.loss_fn(potentials.get("lj").energy, 1.0, 100.0, 0.0)
    >>> step = ensemble_train_step(loss, optax.sgd(1e-3), 0.0)
    >>> callable(step)
    True
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mldiff.errors import ConfigError
from mldiff.training.config import TrainConfig

__all__ = [
    "make_optimizer",
    "stage_two_epoch",
    "loss_weights",
    "train_step",
    "ensemble_train_step",
]


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Gradient clipping + AdamW with linear warm-up and cosine decay.

    Args:
        config: the run's configuration (learning rate, warm-up epochs,
            final ratio, clipping norm, ``adam_beta2``, weight decay).
        steps_per_epoch: optimiser steps in one epoch.

    Returns:
        ``(optimizer, schedule)``: the optax transformation and the learning
        rate as a function of the step count.
    """
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

    Optional arguments are passed on to ``loss`` (:func:`losses.loss_fn`):
    ``energy_factor`` (scalar array; the training stages differ only in its
    value, so one compiled step serves both) and ``weights`` (``[B]`` per-slot
    weights, e.g. an ensemble member's bootstrap counts).

    Args:
        loss: ``(params, batch, weights=None, energy_factor=1) -> scalar``.
        optimizer: an optax transformation (:func:`make_optimizer`).
        ema_decay: decay of the exponential moving average of the parameters
            (0: the EMA is the parameters).

    Returns:
        ``step(params, ema, opt_state, batch, energy_factor=None,
        weights=None)``.
    """

    def step(params, ema, opt_state, batch, energy_factor=None, weights=None):
        extra = {} if energy_factor is None else {"energy_factor": energy_factor}
        if weights is not None:
            extra["weights"] = weights
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


def ensemble_train_step(loss, optimizer, ema_decay: float):
    """:func:`train_step` of every member, vmapped over the member axis.

    Each member takes the single-model step (clipping, AdamW, EMA) on the
    shared batch with its own slot weights; the stage's energy factor is
    shared.

    Args:
        loss: ``(params, batch, weights [B], energy_factor) -> scalar``
            (:func:`mldiff.training.losses.loss_fn`).
        optimizer: an optax transformation (:func:`make_optimizer`).
        ema_decay: EMA decay of the parameters (0: EMA = parameters).

    Returns:
        ``step(params, ema, opt_state, batch, weights [K, B],
        energy_factor=None) -> (params, ema, opt_state, loss [K])`` over
        stacked pytrees (pure; jit it).
    """
    step = train_step(loss, optimizer, ema_decay)

    def member_step(params, ema, opt_state, batch, weights, energy_factor):
        return step(params, ema, opt_state, batch, energy_factor, weights)

    members = jax.vmap(member_step, in_axes=(0, 0, 0, None, 0, None))

    def ensemble_step(params, ema, opt_state, batch, weights, energy_factor=None):
        return members(params, ema, opt_state, batch, weights, energy_factor)

    return ensemble_step


def _initial_state(
    potential, optimizer, config, structure, dtype, n_members, initial_params
):
    """Parameters (fresh from the seed or given) and optimiser state.

    ``K`` members: member ``k`` from ``jax.random.key(config.seed + k)``, all
    drawn in one ``vmap``; given ``initial_params`` must be stacked like them.
    """
    if n_members is None:
        if initial_params is None:
            initial_params = potential.init(jax.random.key(config.seed), structure)
        params = _cast(initial_params, dtype)
        return params, optimizer.init(params)
    seeds = jnp.arange(int(config.seed), int(config.seed) + int(n_members))
    keys = jax.vmap(jax.random.key)(seeds)
    params = _cast(jax.vmap(lambda k: potential.init(k, structure))(keys), dtype)
    if initial_params is not None:
        params = _warm_start(params, initial_params)
    return params, jax.vmap(optimizer.init)(params)


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


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )
