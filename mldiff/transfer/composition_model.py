"""A permutation-invariant network over element embeddings weighted by fractions.

For data that have a formula but no structure. A composition is a set of
``(element, fraction)`` pairs; the network is

1. ``embedding``: a learned vector per element, ``[k, F]``, concatenated with
   the element's atomic fraction;
2. ``encoder``: an MLP applied to each element (the φ of deep sets);
3. ``attention_a``: fraction-weighted self-attention between the elements of a
   composition (weights ``∝ f_j · exp(q_i·k_j / √F)``, as in Roost), with a
   residual connection;
4. pooling ``Σ_i f_i h_i`` over the elements;
5. ``readout``: an MLP to ``n_outputs`` numbers.

Every step is symmetric under permuting the elements, and the fractions are
normalised to sum to one, so Fe2O3 and Fe4O6 give the same output. Padded
slots (fraction 0) take part in nothing. :func:`fit` trains it on any table
of properties (missing labels as NaN are masked out of the loss).

References:
    M. Zaheer et al., "Deep sets", NeurIPS (2017).
    R. E. A. Goodall and A. A. Lee, "Predicting materials properties without
    crystal structure: deep representation learning from stoichiometry"
    (Roost), Nat. Commun. 11, 6280 (2020).

Example:
    >>> import jax
    >>> model = composition_model(CompositionConfig(features=8, hidden=(8,),
    ...                                             readout=(8,)))
    >>> params = model.init(jax.random.key(0))
    >>> z, f = encode_formulas(["Fe2O3", "O3Fe2"], model.config.max_elements)
    >>> y = model.apply(params, z, f)
    >>> y.shape, bool(abs(y[0, 0] - y[1, 0]) < 1e-6)
    ((2, 1), True)
"""

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int

from mldiff.descriptors import N_ELEMENTS, fractions_from_formulas
from mldiff.errors import ConfigError, check_float64
from mldiff.io.files import atomic_write

__all__ = [
    "CompositionConfig",
    "CompositionModel",
    "TrainedComposition",
    "composition_model",
    "encode_formulas",
    "masked_mse",
    "train_step",
    "fit",
    "predict",
    "save",
    "load",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompositionConfig:
    """Hyperparameters of the composition model.

    Attributes:
        features: width F of the element embedding and of the element states.
        hidden: hidden widths of the per-element encoder MLP.
        attention_layers: number of fraction-weighted self-attention blocks.
        readout: hidden widths of the readout MLP.
        n_outputs: number of predicted properties.
        max_elements: element slots per composition (padding beyond).
        dtype: ``"float32"`` or ``"float64"`` for parameters and inputs.
    """

    features: int = 64
    hidden: tuple[int, ...] = (64,)
    attention_layers: int = 1
    readout: tuple[int, ...] = (64,)
    n_outputs: int = 1
    max_elements: int = 8
    dtype: str = "float32"

    def __post_init__(self):
        """Validate values."""
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(
                f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        if min(self.features, self.n_outputs, self.max_elements) < 1:
            raise ConfigError(
                "features, n_outputs and max_elements must be ≥ 1, got "
                f"{self.features}, {self.n_outputs}, {self.max_elements}"
            )


class CompositionModel(NamedTuple):
    """``init(key) -> params`` and ``apply(params, elements, fractions) -> [n, o]``."""

    init: Callable[[Any], Any]
    apply: Callable[..., Float[Array, "n o"]]
    config: CompositionConfig


class _MLP(nn.Module):
    widths: Sequence[int]
    dtype: Any
    activate_last: bool = True

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.widths):
            x = nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype)(x)
            if i < len(self.widths) - 1 or self.activate_last:
                x = nn.silu(x)
        return x


class _Attention(nn.Module):
    """Fraction-weighted self-attention among the elements of each composition."""

    features: int
    dtype: Any

    @nn.compact
    def __call__(self, h, fractions, present):
        dense = lambda name: nn.Dense(  # noqa: E731
            self.features, dtype=self.dtype, param_dtype=self.dtype, name=name
        )
        q, k, v = dense("query")(h), dense("key")(h), dense("value")(h)
        scores = jnp.einsum("nif,njf->nij", q, k) / np.sqrt(self.features)
        log_f = jnp.log(jnp.where(present, fractions, 1.0))  # guarded log
        logits = jnp.where(present[:, None, :], scores + log_f[:, None, :], -1e9)
        weights = jax.nn.softmax(logits, axis=-1)  # [n, k, k]
        return h + dense("out")(nn.silu(jnp.einsum("nij,njf->nif", weights, v)))


class _CompositionNet(nn.Module):
    config: CompositionConfig

    @nn.compact
    def __call__(self, elements, fractions):
        c = self.config
        dtype = jnp.float64 if c.dtype == "float64" else jnp.float32
        fractions = fractions.astype(dtype)
        present = fractions > 0
        total = jnp.sum(fractions, axis=1, keepdims=True)
        fractions = fractions / jnp.where(total > 0, total, 1.0)  # scale invariance
        x = nn.Embed(N_ELEMENTS, c.features, param_dtype=dtype, name="embedding")(
            elements
        )
        x = jnp.concatenate([x, fractions[..., None]], axis=-1)
        h = _MLP((*c.hidden, c.features), dtype, name="encoder")(x)  # [n, k, F]
        for a in range(c.attention_layers):
            h = _Attention(c.features, dtype, name=f"attention_{a}")(
                h, fractions, present
            )
        pooled = jnp.sum(fractions[..., None] * h, axis=1)  # [n, F]
        return _MLP((*c.readout, c.n_outputs), dtype, False, name="readout")(pooled)


def composition_model(config: CompositionConfig | None = None) -> CompositionModel:
    """The composition network as pure ``init`` / ``apply`` functions.

    Args:
        config: hyperparameters (default :class:`CompositionConfig`).

    Returns:
        :class:`CompositionModel`; ``apply(params, elements [n, k] int (Z - 1),
        fractions [n, k])`` returns ``[n, n_outputs]`` in the units of the
        targets it was trained on.

    Raises:
        PrecisionError: ``dtype="float64"`` without ``jax_enable_x64``.
    """
    config = config or CompositionConfig()
    if config.dtype == "float64":
        check_float64("CompositionConfig(dtype='float64')")
    net = _CompositionNet(config)
    k = config.max_elements

    def init(key):
        return net.init(key, jnp.zeros((1, k), jnp.int32), jnp.ones((1, k)))

    def apply(
        params, elements: Int[ArrayLike, "n k"], fractions: Float[ArrayLike, "n k"]
    ) -> Float[Array, "n o"]:
        return net.apply(params, jnp.asarray(elements), jnp.asarray(fractions))

    return CompositionModel(init, apply, config)


def encode_formulas(formulas, max_elements: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Element indices and atomic fractions of formulas, padded to ``max_elements``.

    Args:
        formulas: formula strings or pymatgen ``Composition`` s (see
            :func:`mldiff.descriptors.fractions_from_formulas`).
        max_elements: slots per composition.

    Returns:
        ``(elements [n, k] int32, Z - 1, 0 in padded slots; fractions [n, k]
        float64, summing to 1 per row, 0 in padded slots)``; elements in
        order of Z.

    Raises:
        ConfigError: a composition has more than ``max_elements`` elements.
        CompositionError: an unparsable formula.

    Example:
        >>> z, f = encode_formulas(["Fe4O6"], 3)
        >>> z.tolist(), f.round(12).tolist()
        ([[7, 25, 0]], [[0.6, 0.4, 0.0]])
    """
    frac = fractions_from_formulas(formulas)
    n = frac.shape[0]
    elements = np.zeros((n, max_elements), np.int32)
    fractions = np.zeros((n, max_elements), np.float64)
    for i in range(n):
        (nz,) = np.nonzero(frac[i])
        if nz.size > max_elements:
            raise ConfigError(
                f"composition {i} has {nz.size} elements, more than max_elements="
                f"{max_elements}; raise max_elements or drop it"
            )
        elements[i, : nz.size] = nz
        fractions[i, : nz.size] = frac[i, nz]
    return elements, fractions


def masked_mse(apply) -> Callable:
    """``(params, elements, fractions, targets [n, o]) -> mean squared error``.

    Targets that are NaN are left out; the mean is over the present ones.
    """

    def loss_fn(params, elements, fractions, targets):
        pred = apply(params, elements, fractions)
        ok = ~jnp.isnan(targets)
        err = jnp.where(ok, pred - jnp.where(ok, targets, 0.0), 0.0)
        return jnp.sum(err**2) / jnp.maximum(jnp.sum(ok), 1)

    return loss_fn


def train_step(apply, optimizer: optax.GradientTransformation) -> Callable:
    """One optimiser step on :func:`masked_mse`, pure.

    Returns:
        ``(params, opt_state, elements, fractions, targets) -> (params,
        opt_state, loss)``.
    """
    loss_fn = masked_mse(apply)

    def step(params, opt_state, elements, fractions, targets):
        value, grads = jax.value_and_grad(loss_fn)(params, elements, fractions, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def fit(
    model: CompositionModel,
    params,
    elements,
    fractions,
    targets,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[Any, list[float]]:
    """Minimise :func:`masked_mse` over shuffled mini-batches.

    The last, partial batch of an epoch is padded with repeated rows whose
    targets are NaN, so every step has the same shape (one compilation).

    Args:
        model: the composition model.
        params: starting parameters.
        elements: ``[n, k]`` element indices (:func:`encode_formulas`).
        fractions: ``[n, k]`` atomic fractions.
        targets: ``[n, o]`` (or ``[n]``) targets, NaN where missing.
        optimizer: e.g. ``optax.adam(1e-3)`` or
            :func:`~mldiff.transfer.freezing.partition_optimizer`.
        epochs: passes over the data.
        batch_size: compositions per step.
        seed: seed of the batch order.

    Returns:
        ``(params, [mean training loss per epoch])``.
    """
    dtype = jnp.float64 if model.config.dtype == "float64" else jnp.float32
    targets = np.asarray(targets, np.float64)
    targets = targets[:, None] if targets.ndim == 1 else targets
    n = targets.shape[0]
    if n == 0:
        raise ConfigError("fit needs at least one labelled composition")
    batch_size = min(batch_size, n)
    step = jax.jit(train_step(model.apply, optimizer))
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        order = rng.permutation(n)
        pad = (-n) % batch_size
        order = np.concatenate([order, order[:pad]])
        hide = np.zeros(order.size, bool)
        hide[n:] = True
        losses = []
        for start in range(0, order.size, batch_size):
            idx = order[start : start + batch_size]
            y = np.where(hide[start : start + batch_size, None], np.nan, targets[idx])
            params, opt_state, value = step(
                params,
                opt_state,
                jnp.asarray(elements[idx]),
                jnp.asarray(fractions[idx], dtype),
                jnp.asarray(y, dtype),
            )
            losses.append(float(value))
        history.append(float(np.mean(losses)))
    return params, history


class TrainedComposition(NamedTuple):
    """A composition model with its parameters and target standardisation.

    Predictions in target units are ``apply(...) * std + mean``.
    """

    model: CompositionModel
    params: Any
    target_names: tuple[str, ...]
    mean: np.ndarray  # [o], target units
    std: np.ndarray  # [o], target units


def predict(trained: TrainedComposition, formulas) -> np.ndarray:
    """Predicted properties of formulas, ``[n, o]`` in the targets' units.

    Example:
        >>> import jax
        >>> m = composition_model(CompositionConfig(features=4, hidden=(4,),
        ...                                         readout=(4,)))
        >>> t = TrainedComposition(m, m.init(jax.random.key(0)), ("y",),
        ...                        np.array([1.0]), np.array([0.0]))
        >>> predict(t, ["NaCl"]).tolist()   # std 0: every prediction is the mean
        [[1.0]]
    """
    z, f = encode_formulas(formulas, trained.model.config.max_elements)
    dtype = jnp.float64 if trained.model.config.dtype == "float64" else jnp.float32
    out = np.asarray(trained.model.apply(trained.params, z, jnp.asarray(f, dtype)))
    return out.astype(np.float64) * trained.std + trained.mean


def save(path, trained: TrainedComposition, header: dict | None = None) -> None:
    """Write a composition model atomically (msgpack; JSON header with its config).

    Args:
        path: output file, e.g. ``composition.msgpack``.
        trained: the model, parameters and standardisation.
        header: extra JSON-able metadata (e.g. frozen groups, data source).
    """
    meta = {
        "kind": "composition_model",
        "config": dataclasses.asdict(trained.model.config),
        "target_names": list(trained.target_names),
        "mean": np.asarray(trained.mean, np.float64).tolist(),
        "std": np.asarray(trained.std, np.float64).tolist(),
        **(header or {}),
    }
    state = jax.tree_util.tree_map(np.asarray, trained.params)
    payload = {"meta": json.dumps(meta), "params": state}
    atomic_write(path, flax.serialization.msgpack_serialize(payload))


def load(path) -> tuple[TrainedComposition, dict]:
    """Read a file written by :func:`save`: ``(trained, meta)``.

    Raises:
        ConfigError: the file is missing or is not a composition model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"composition model {path!r} does not exist")
    with open(path, "rb") as fh:
        try:
            payload = flax.serialization.msgpack_restore(fh.read())
            meta = json.loads(payload["meta"])
        except Exception as err:
            raise ConfigError(f"{path!r} is not a readable model file: {err}") from err
    if meta.get("kind") != "composition_model":
        raise ConfigError(
            f"{path!r} is not a composition model (a potential checkpoint? load "
            "it with mldiff.load)"
        )
    values = {
        k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()
    }
    model = composition_model(CompositionConfig(**values))
    params = flax.serialization.from_state_dict(
        model.init(jax.random.key(0)), payload["params"]
    )
    params = jax.tree_util.tree_map(jnp.asarray, params)
    trained = TrainedComposition(
        model,
        params,
        tuple(meta["target_names"]),
        np.asarray(meta["mean"], np.float64),
        np.asarray(meta["std"], np.float64),
    )
    return trained, meta
