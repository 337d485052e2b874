"""Cold start: composition descriptors → latent row factors, fitted jointly.

A material never measured has no row factors. Here each row's factors and
bias ``θ_i = [U_i, b_i]`` get a prior mean from its composition descriptors
``x_i`` through a small MLP ``g``, and everything is fitted together on

    ``J = ½ Σ W (Y - Ŷ(θ))² + ½ λ ‖θ - g(x)‖² + ½ λ ‖[V, c]‖²``
    ``    + ½ α Σ W (Y - Ŷ(g(x)))²``,

with ``Ŷ(θ)_ij = μ + b_i + c_j + U_i · V_j``. The last term trains ``g`` to
predict the observed entries by itself, as it must for a new material; its
entries are weighted per column by ``(mean count / count_j) ** balance`` so
that a sparse column (the formation enthalpy: 2 % of the rows) is not drowned
by the dense ones. One outer iteration is: rows ``θ`` in closed form (ridge
towards ``g(x_i)``), columns ``[V, c]`` in closed form, ``μ``, then a few
mini-batch Adam steps on the map for the ``g``-terms. The whole loop is one
jitted ``lax.scan``.

The map ``g`` is a ReLU MLP on the *piecewise-linear encoding* of the
descriptors (Gorishniy, Rubachev and Babenko, "On embeddings for numerical
features in tabular deep learning", NeurIPS 2022): each descriptor becomes
``T`` numbers, the fraction of each of its ``T`` quantile bins that lies below
it (:func:`encoding_edges`, :func:`encode`). A plain MLP on the standardised
descriptors is too smooth for properties that change sharply between
neighbouring compositions; with the encoding, an MLP follows them as a
random forest's thresholds do. The map runs in float32 (its
parameters and encoding); the closed-form blocks in the matrix's dtype.

A new formula is predicted from ``θ = g(x)`` (:func:`predict_cold`), plus
optionally the inverse-distance mean of the latent residuals ``θ_i - g(x_i)``
of its nearest fitted rows (:func:`neighbor_residual`), which recovers local
structure the small MLP smooths over. The neighbours are best taken in the
map's last hidden layer (:func:`mlp_features`, a "deep k-NN": Papernot and
McDaniel, arXiv:1803.04765, 2018), where the distance weighs the descriptors
as the map learned to, rather than in standardised descriptor space, where
all 77 count alike. The warm rows use their fitted ``θ``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.linspace(-1.0, 1.0, 40)[:, None]            # one descriptor
    >>> y = jnp.concatenate([x, -x, 2 * x], axis=1)         # rank-1 in x
    >>> w = jnp.ones_like(y)
    >>> e = encode(encoding_edges(x, bins=8), x)            # [40, 8]
    >>> model = fit_joint(y, w, e, rank=1, reg=0.1, key=jax.random.key(0),
    ...                   hidden=(16,), iterations=20, inner_steps=20, batch=20,
    ...                   learning_rate=1e-2)
    >>> bool(jnp.sqrt(jnp.mean((predict_cold(model, e) - y) ** 2)) < 0.1)
    True
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from mldiff._typing import ArrayLike
from mldiff.descriptors import features_from_fractions, fractions_from_formulas
from mldiff.recommender.factorization import Factors, _ridge_rows

__all__ = [
    "MAP_VERSION",
    "JointModel",
    "encoding_edges",
    "encode",
    "mlp_init",
    "mlp_features",
    "mlp_apply",
    "fit_joint",
    "predict_cold",
    "descriptors",
    "neighbor_residual",
]


#: the descriptor map's form; saved models record it (an older form is refused)
MAP_VERSION = "piecewise-linear-encoding+relu-mlp/1"


def encoding_edges(x, bins: int = 16) -> np.ndarray:
    """Quantile bin edges ``[d, bins + 1]`` of each descriptor column of ``x [n, d]``.

    Example:
        >>> encoding_edges(np.arange(5.0)[:, None], bins=2)
        array([[0., 2., 4.]])
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be ≥ 1, got {bins!r}")
    q = np.linspace(0.0, 1.0, int(bins) + 1)
    return np.ascontiguousarray(np.quantile(np.asarray(x, np.float64), q, axis=0).T)


def encode(edges: ArrayLike, x: ArrayLike) -> Float[Array, "n dT"]:
    """Piecewise-linear encoding ``[n, d·T]`` (float32) of ``x [n, d]`` given ``edges``.

    Entry ``(i, j·T + t)`` is ``clip((x_ij - e_jt) / (e_j,t+1 - e_jt), 0, 1)``:
    0 below bin ``t`` of descriptor ``j``, 1 above it, linear inside (a bin of
    zero width, from repeated quantiles, becomes a step just above its edge).

    Example:
        >>> encode(np.array([[0.0, 2.0, 4.0]]), jnp.array([[1.0], [3.0], [9.0]]))
        Array([[0.5, 0. ],
               [1. , 0.5],
               [1. , 1. ]], dtype=float32)
    """
    edges = jnp.asarray(edges, jnp.float32)
    lo, width = edges[:, :-1], jnp.maximum(edges[:, 1:] - edges[:, :-1], 1e-6)
    x = jnp.asarray(x, jnp.float32)
    e = jnp.clip((x[:, :, None] - lo[None]) / width[None], 0.0, 1.0)
    return e.reshape(x.shape[0], -1)


@flax.struct.dataclass
class JointModel:
    """Fitted joint factorisation and descriptor map (standardised units).

    Attributes:
        factors: warm :class:`Factors` (``U [n, k]``, ``V [m, k]``, biases).
        mlp: list of ``{"w": [a, b], "b": [b]}`` float32 layers, encoded
            descriptors ``[d·T]`` → ``[k + 1]`` (row factors, then row bias).
    """

    factors: Factors
    mlp: list


def mlp_init(key, sizes: tuple[int, ...], dtype=None) -> list:
    """He-normal weights, zero biases; the last layer Glorot, scaled by 0.1.

    Example:
        >>> p = mlp_init(jax.random.key(0), (3, 8, 2))
        >>> [layer["w"].shape for layer in p]
        [(3, 8), (8, 2)]
    """
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        scale = 0.1 * jnp.sqrt(2.0 / (a + b)) if last else jnp.sqrt(2.0 / a)
        layers.append(
            {"w": scale * jax.random.normal(k, (a, b), dtype), "b": jnp.zeros(b, dtype)}
        )
    return layers


def mlp_features(params: list, x: Float[Array, "n d"]) -> Float[Array, "n h"]:
    """The last hidden layer's ReLU activations ``[n, h]`` (``x`` if none).

    These are the features the output layer is linear in: the map's own
    notion of which compositions are alike (:func:`neighbor_residual`).

    Example:
        >>> p = mlp_init(jax.random.key(0), (3, 8, 2))
        >>> mlp_features(p, jnp.ones((5, 3))).shape
        (5, 8)
    """
    h = jnp.asarray(x, params[0]["w"].dtype)
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h


def mlp_apply(params: list, x: Float[Array, "n d"]) -> Float[Array, "n o"]:
    """ReLU hidden layers, linear output (in the parameters' dtype).

    Example:
        >>> p = mlp_init(jax.random.key(0), (3, 8, 2))
        >>> mlp_apply(p, jnp.ones((5, 3))).shape
        (5, 2)
    """
    return mlp_features(params, x) @ params[-1]["w"] + params[-1]["b"]


def _predict(mu, col_bias, cols, theta):
    return mu + theta[:, -1:] + col_bias[None, :] + theta[:, :-1] @ cols.T


@functools.partial(
    jax.jit,
    static_argnames=("rank", "hidden", "iterations", "inner_steps", "batch"),
)
def fit_joint(
    y: Float[Array, "n m"],
    w: Float[Array, "n m"],
    x: Float[Array, "n p"],
    *,
    rank: int,
    reg,
    key,
    hidden: tuple[int, ...] = (256, 256, 256),
    iterations: int = 30,
    inner_steps: int = 100,
    batch: int = 512,
    cold_weight=1.0,
    balance=1.0,
    learning_rate=1e-3,
    weight_decay=1e-4,
) -> JointModel:
    """Fit factors and the descriptor map jointly (see the module docstring).

    Args:
        y: standardised matrix ``[n, m]`` (ignored where ``w == 0``).
        w: weights ``[n, m]``, 0 where missing.
        x: encoded descriptors ``[n, p]`` of the rows (:func:`encode`; any
            standardised features work).
        rank: latent dimension ``k``.
        reg: ``λ`` of the row prior and of the column ridge.
        key: PRNG key (starts and mini-batches).
        hidden: hidden layer widths of the map's MLP.
        iterations: outer iterations (closed-form blocks + map steps).
        inner_steps: Adam steps on the map per outer iteration.
        batch: rows per map mini-batch.
        cold_weight: ``α`` of the cold-start term.
        balance: column weights ``(mean count / count_j) ** balance`` in the
            cold-start term (0: every observed entry alike; 1: every column
            alike).
        learning_rate: peak Adam (``adamw``) step size of the map, decayed
            along a cosine over all ``iterations × inner_steps`` steps.
        weight_decay: decoupled weight decay of the map.

    Returns:
        the fitted :class:`JointModel`.
    """
    n, m = y.shape
    y = jnp.where(w > 0, y, 0.0)
    k_init, k_mlp, k_batch = jax.random.split(key, 3)
    mlp = mlp_init(k_mlp, (x.shape[1], *hidden, rank + 1), jnp.float32)
    cols = 0.1 * jax.random.normal(k_init, (m, rank), y.dtype)
    count = jnp.maximum(jnp.sum(w > 0, axis=0), 1).astype(jnp.float32)
    column_weight = (jnp.mean(count) / count) ** balance  # [m]
    schedule = optax.cosine_decay_schedule(learning_rate, iterations * inner_steps)
    opt = optax.adamw(schedule, weight_decay=weight_decay)
    y32, w32 = y.astype(jnp.float32), w.astype(jnp.float32)

    def map_loss(params, theta, mu, col_bias, cols, idx):
        g = mlp_apply(params, x[idx])
        wb = w32[idx]
        r = y32[idx] - _predict(mu, col_bias, cols, g)
        cold = jnp.sum(wb * column_weight * r**2) / jnp.maximum(
            jnp.sum(wb * column_weight), 1e-30
        )
        pull = reg * jnp.sum((theta[idx] - g) ** 2) / jnp.maximum(jnp.sum(wb), 1e-30)
        return cold_weight * cold + pull

    def outer(carry, key):
        (mu, col_bias, cols), _, mlp, opt_state = carry
        g = mlp_apply(mlp, x).astype(y.dtype)  # [n, k + 1] prior means
        # rows: argmin Σ_j w (t - a_j·θ)² + λ ‖θ - g‖²  (shift θ = g + δ)
        a = jnp.concatenate([cols, jnp.ones((m, 1), y.dtype)], axis=1)
        t = y - mu - col_bias[None, :]
        theta = g + _ridge_rows(a, t - g @ a.T, w, reg)
        ones = jnp.ones((n, 1), y.dtype)
        phi = _ridge_rows(
            jnp.concatenate([theta[:, :-1], ones], 1),
            (y - mu - theta[:, -1:]).T,
            w.T,
            reg,
        )
        cols, col_bias = phi[:, :-1], phi[:, -1]
        resid = y - (_predict(mu, col_bias, cols, theta) - mu)
        mu = jnp.sum(w * resid) / jnp.maximum(jnp.sum(w), 1e-300)
        blocks32 = [v.astype(jnp.float32) for v in (theta, mu, col_bias, cols)]

        def inner(c, k):
            params, s = c
            idx = jax.random.randint(k, (batch,), 0, n)
            grad = jax.grad(map_loss)(params, *blocks32, idx)
            updates, s = opt.update(grad, s, params)
            return (optax.apply_updates(params, updates), s), None

        (mlp, opt_state), _ = jax.lax.scan(
            inner, (mlp, opt_state), jax.random.split(key, inner_steps)
        )
        return ((mu, col_bias, cols), theta, mlp, opt_state), None

    theta0 = jnp.zeros((n, rank + 1), y.dtype)
    carry = ((jnp.zeros((), y.dtype), jnp.zeros(m, y.dtype), cols), theta0, mlp)
    carry = (*carry, opt.init(mlp))
    (state, theta, mlp, _), _ = jax.lax.scan(
        outer, carry, jax.random.split(k_batch, iterations)
    )
    mu, col_bias, cols = state
    factors = Factors(
        mu=mu, row_bias=theta[:, -1], col_bias=col_bias, rows=theta[:, :-1], cols=cols
    )
    return JointModel(factors=factors, mlp=mlp)


def predict_cold(model: JointModel, x: Float[Array, "q p"]) -> Float[Array, "q m"]:
    """Predictions for new rows from their encoded descriptors ``[q, p]``.

    Returns:
        ``[q, m]`` in standardised units (the factors' dtype).
    """
    f = model.factors
    g = mlp_apply(model.mlp, x).astype(f.cols.dtype)
    return _predict(f.mu, f.col_bias, f.cols, g)


_features = jax.jit(features_from_fractions)


def descriptors(formulas, chunk: int = 4096) -> np.ndarray:
    """Composition descriptors ``[q, d]`` (float64) of formulas, computed once each.

    Duplicated formulas are parsed once; the features run jitted in chunks of
    ``chunk`` rows (padded), so 35,000 formulas take seconds.

    Raises:
        mldiff.descriptors.CompositionError: an unparsable formula or an
            unknown element (the formula is named).

    Example:
        >>> from mldiff.descriptors import composition_features
        >>> a = descriptors(["NaCl", "Fe2O3", "NaCl"])
        >>> bool(np.allclose(a, composition_features(["NaCl", "Fe2O3", "NaCl"])))
        True
    """
    formulas = [str(f) if not isinstance(f, str) else f for f in formulas]
    unique, inverse = np.unique(np.asarray(formulas, dtype=object), return_inverse=True)
    fractions = fractions_from_formulas(list(unique))
    n = fractions.shape[0]
    size = min(chunk, 1 << max(n - 1, 1).bit_length())  # few shapes: few compiles
    padded = np.zeros((-(-n // size) * size, fractions.shape[1]))
    padded[:n] = fractions
    padded[n:, 0] = 1.0  # hydrogen: valid, discarded
    out = np.concatenate(
        [
            np.asarray(_features(jnp.asarray(padded[i : i + size])))
            for i in range(0, padded.shape[0], size)
        ]
    )
    return out[:n][inverse.ravel()]


@functools.partial(jax.jit, static_argnames=("k",))
def _neighbor_mean(query, reference, values, k: int, eps):
    # candidates: the 2k nearest by float32 squared distances (XLA's CPU top_k
    # is ~100× faster on float32 than on float64); then the exact distances of
    # the candidates in the inputs' dtype pick the k nearest among them (the
    # exact k nearest unless float32 rounding pushes one past 2k candidates)
    q32, r32 = query.astype(jnp.float32), reference.astype(jnp.float32)
    d2 = jnp.sum(q32**2, 1)[:, None] - 2.0 * q32 @ r32.T + jnp.sum(r32**2, 1)[None, :]
    _, candidates = jax.lax.top_k(-d2, min(2 * k, reference.shape[0]))
    diff = query[:, None, :] - reference[candidates].astype(query.dtype)
    neg, order = jax.lax.top_k(-jnp.sqrt(jnp.sum(diff**2, axis=-1)), k)
    idx = jnp.take_along_axis(candidates, order, axis=1)
    weights = 1.0 / (-neg + eps)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    return jnp.einsum("qk,qkp->qp", weights, values[idx])


def neighbor_residual(
    query: np.ndarray,
    reference: np.ndarray,
    residual: np.ndarray,
    k: int = 10,
    eps: float = 0.1,
    chunk: int = 1024,
) -> np.ndarray:
    """Inverse-distance mean of latent residuals ``θ - g(x)`` over k neighbours.

    Args:
        query: features of new rows ``[q, d]``: the map's hidden features
            (:func:`mlp_features`) or standardised descriptors.
        reference: the same features of the fitted rows ``[n, d]``.
        residual: their latent residuals ``θ_i - g(x_i)`` ``[n, k + 1]``.
        k: neighbours (Euclidean, in the features' units).
        eps: added to distances before inverting (the features' units).
        chunk: queries per jitted block.

    Returns:
        ``[q, k + 1]`` correction to add to ``g(x)``.

    Example:
        >>> ref = np.array([[0.0], [1.0], [5.0]])
        >>> neighbor_residual(np.array([[0.0]]), ref, np.array([[1.0], [3.0], [9.0]]),
        ...                   k=1)
        array([[1.]])
    """
    k = min(k, reference.shape[0])
    ref = jnp.asarray(reference)
    val = jnp.asarray(residual)
    q = query.shape[0]
    size = min(chunk, max(8, 1 << max(q - 1, 1).bit_length()))  # few shapes
    padded = np.zeros((-(-q // size) * size, query.shape[1]))
    padded[:q] = query
    parts = [
        np.asarray(_neighbor_mean(jnp.asarray(padded[i : i + size]), ref, val, k, eps))
        for i in range(0, padded.shape[0], size)
    ]
    return np.concatenate(parts)[:q]
