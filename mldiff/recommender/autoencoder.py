"""Warm start: a masked denoising autoencoder over each row's measured entries.

A low-rank factorisation predicts a missing entry as a *linear* function of
its row's latent factors. The transport properties depend on each other
nonlinearly: a metal has a Seebeck coefficient near zero whatever its
conductivity, a semiconductor's Seebeck coefficient follows the logarithm of
its effective mass, the power factor is ``S² σ``. A neighbour method
(scikit-learn's ``KNNImputer``) follows such relations and beats the
factorisation on the Seebeck columns.

This module learns them directly: an MLP reads a row's standardised entries
(missing ones set to zero), the mask of measured entries and, optionally, the
row's standardised composition descriptors, and outputs every entry of the
row (Vincent et al., "Extracting and composing robust features with denoising
autoencoders", ICML 2008; used for imputation by Gondara and Wang, "MIDA",
PAKDD 2018). Each training step hides a random ``drop_rate`` of a batch's
measured entries from the input and fits all measured entries, the hidden
ones weighted ``1 + hidden_weight``: the network learns to predict an entry
from the others, which is what imputation asks. Training is one jitted
``lax.scan`` of Adam steps on random row batches, in float32.

:func:`held_out_error` gives each column's mean squared error when every
measured entry is hidden from the input in turn; :class:`MatrixFactorization`
uses it as the imputer's noise variance.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(400, 1))
    >>> z = np.concatenate([t, t ** 2, t ** 3], axis=1)      # nonlinear columns
    >>> observed = rng.random(z.shape) < 0.8
    >>> params = fit(z, observed, jax.random.key(0), hidden=(32, 32), steps=1500,
    ...              batch=128, learning_rate=3e-3)
    >>> err = held_out_error(params, z, observed)            # per column
    >>> bool(np.all(err < 0.4 * z.var(0)))                   # R² > 0.6 each
    True
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mldiff._typing import ArrayLike
from mldiff.recommender.cold_start import mlp_apply, mlp_init

__all__ = ["fit", "impute", "held_out_error"]


def _inputs(z, mask, extra):
    """Network input ``[n, 2 m + p]``: masked entries, mask, extra features."""
    return jnp.concatenate([z * mask, mask, extra], axis=1)


def _as_arrays(z, observed, extra):
    observed = np.asarray(observed, bool)
    z = jnp.asarray(np.where(observed, np.asarray(z, np.float64), 0.0), jnp.float32)
    mask = jnp.asarray(observed, jnp.float32)
    extra = (
        jnp.zeros((z.shape[0], 0), jnp.float32)
        if extra is None
        else jnp.asarray(extra, jnp.float32)
    )
    return z, mask, extra


def fit(
    z: ArrayLike,
    observed: ArrayLike,
    key,
    extra: ArrayLike | None = None,
    *,
    hidden: tuple[int, ...] = (128, 128, 128),
    steps: int = 6000,
    batch: int = 512,
    drop_rate: float = 0.25,
    hidden_weight: float = 2.0,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
) -> list:
    """Train the denoising imputer on the measured entries of ``z``.

    Args:
        z: ``[n, m]`` standardised values (missing entries: anything).
        observed: ``[n, m]`` bool, the measured entries.
        key: JAX PRNG key (initialisation and batches).
        extra: ``[n, p]`` extra row features (e.g. standardised composition
            descriptors) read with the entries, or ``None``.
        hidden: widths of the ReLU hidden layers.
        steps: Adam steps (cosine-decayed learning rate).
        batch: rows per step (capped at ``n``).
        drop_rate: fraction of a row's measured entries hidden per step.
        hidden_weight: extra loss weight of the hidden entries.
        learning_rate: peak Adam step size.
        weight_decay: AdamW weight decay.

    Returns:
        MLP parameters (float32) for :func:`impute`.
    """
    z, mask, extra = _as_arrays(z, observed, extra)
    n, m = z.shape
    k_init, k_train = jax.random.split(key)
    params = mlp_init(k_init, (2 * m + extra.shape[1], *hidden, m), jnp.float32)
    return _train(
        params,
        z,
        mask,
        extra,
        k_train,
        int(steps),
        min(int(batch), n),
        float(drop_rate),
        float(hidden_weight),
        float(learning_rate),
        float(weight_decay),
    )


@functools.partial(jax.jit, static_argnames=("steps", "batch"))
def _train(
    params,
    z,
    mask,
    extra,
    key,
    steps,
    batch,
    drop_rate,
    hidden_weight,
    learning_rate,
    weight_decay,
):
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1))
    optimizer = optax.adamw(schedule, weight_decay=weight_decay)

    def loss(p, zb, mb, hide, eb):
        out = mlp_apply(p, _inputs(zb, mb - hide, eb))
        weight = mb + hidden_weight * hide
        return jnp.sum(weight * (out - zb) ** 2) / jnp.maximum(jnp.sum(weight), 1.0)

    def step(carry, k):
        p, state = carry
        k_rows, k_hide = jax.random.split(k)
        rows = jax.random.randint(k_rows, (batch,), 0, z.shape[0])
        zb, mb, eb = z[rows], mask[rows], extra[rows]
        hide = mb * (jax.random.uniform(k_hide, mb.shape) < drop_rate)
        grads = jax.grad(loss)(p, zb, mb, hide, eb)
        updates, state = optimizer.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(
        step, (params, optimizer.init(params)), jax.random.split(key, steps)
    )
    return params


@jax.jit
def _apply(params, z, mask, extra):
    return mlp_apply(params, _inputs(z, mask, extra))


def impute(params: list, z, observed, extra=None) -> np.ndarray:
    """Every entry ``[n, m]`` (float64) predicted from the measured ones."""
    return np.asarray(_apply(params, *_as_arrays(z, observed, extra)), np.float64)


def held_out_error(params: list, z, observed, extra=None) -> np.ndarray:
    """Per-column mean squared error ``[m]`` with each measured entry hidden.

    Column ``j`` is predicted for every row with ``j`` removed from the input
    (the row's other entries kept), and compared where it was measured; a
    column without measured entries gets NaN. One compiled program serves
    every column.
    """
    observed = np.asarray(observed, bool)
    target = np.asarray(z, np.float64)
    zs, mask, extra = _as_arrays(z, observed, extra)
    out = np.full(observed.shape[1], np.nan)
    for j in range(observed.shape[1]):
        rows = observed[:, j]
        if not rows.any():
            continue
        pred = np.asarray(_apply(params, zs, mask.at[:, j].set(0.0), extra))[:, j]
        out[j] = float(np.mean((pred[rows] - target[rows, j]) ** 2))
    return out
