"""Sparse GP regression with inducing points: Titsias' collapsed bound (SGPR).

For 10⁴–10⁵ training points, ``m ≪ n`` inducing inputs ``Z [m, d]`` summarise
the data; fitting costs ``O(n m²)`` time and ``O(n m)`` memory, with no
minibatching or variational parameters: for Gaussian noise the optimal
variational distribution of the inducing values is known in closed form, so the
evidence lower bound (ELBO) is deterministic and is maximised over the kernel
hyperparameters (and optionally ``Z``) by the same optax L-BFGS as the exact GP.
With ``Z = x`` the bound equals the exact log marginal likelihood and the
predictions equal the exact GP's.

Noise is heteroscedastic: ``Λ = noise / scale² + white(x)`` per point, where
``white(x)`` is the white-noise part of the kernel, ``diag(hyper, x) -
diag(hyper, x, x)``. ``Λ`` must be positive: give ``noise > 0`` or a white term.

Inducing inputs come from :func:`kmeans` (k-means++ seeding and Lloyd
iterations) or :func:`random_subset`.

References:
    M. Titsias, "Variational learning of inducing variables in sparse Gaussian
    processes", AISTATS 2009, eqs. 9-10; GPflow 2 ``SGPR`` (numerically stable
    form through ``B = I + A Aᵀ``), read for the algebra.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from mldiff.gp import kernels
    >>> k = kernels.rbf(1.0)
    >>> x = jnp.linspace(0.0, 3.0, 50)[:, None]
    >>> z = kmeans(x, 10, key=jax.random.key(0))
    >>> state = fit_sparse(k, k.init(), x, jnp.sin(x[:, 0]), 1e-4, z)
    >>> mean, var = predict_sparse(k, state, jnp.array([[1.5]]))
    >>> round(float(mean[0]), 3)
    0.997
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, Bool, Float

from mldiff._typing import ArrayLike
from mldiff.errors import MldiffError, check_float64
from mldiff.gp import _common, _optimize
from mldiff.gp.kernels import Kernel

__all__ = [
    "SparseGP",
    "fit_sparse",
    "predict_sparse",
    "collapsed_bound",
    "fit_hyperparameters_sparse",
    "kmeans",
    "random_subset",
]


class SparseGP(NamedTuple):
    """A fitted SGPR model (a pytree; the kernel is passed alongside).

    Attributes:
        z: inducing inputs ``[m, d]``, unit of the descriptors.
        chol_uu: lower Cholesky factor of ``K(z, z) + jitter·I``, ``[m, m]``.
        chol_b: lower Cholesky factor of ``B = I + A Aᵀ``, ``[m, m]``,
            ``A = L_uu⁻¹ K(z, x) Λ^{-1/2}``.
        c: ``L_B⁻¹ A Λ^{-1/2} (y - offset) / scale``, ``[m]``.
        offset: prior mean of y, ``[]``, unit of y.
        scale: standardisation of y, ``[]``, unit of y.
        hyper: kernel hyperparameters (unconstrained pytree).
        jitter: jitter added to ``K(z, z)``, ``[]``, standardised units.
        ok: ``[]`` bool, False if a factorisation failed.
        elbo: collapsed lower bound on ``log p(y)``, ``[]``, nats.
    """

    z: Float[Array, "m d"]
    chol_uu: Float[Array, "m m"]
    chol_b: Float[Array, "m m"]
    c: Float[Array, " m"]
    offset: Float[Array, ""]
    scale: Float[Array, ""]
    hyper: Any
    jitter: Float[Array, ""]
    ok: Bool[Array, ""]
    elbo: Float[Array, ""]


@functools.partial(jax.jit, static_argnames=("kernel", "normalize_y", "has_mean"))
def _fit(kernel, hyper, x, y, noise, z, mean, normalize_y, has_mean):
    offset, scale = _common.scaling(y, normalize_y, mean if has_mean else None)
    yn = (y - offset) / scale
    kff = kernel.diag(hyper, x, x)  # [n], noise-free
    lam = noise / scale**2 + (kernel.diag(hyper, x) - kff)  # [n]
    kuu = kernel(hyper, z, z)  # [m, m], no white part
    chol_uu, jitter, ok_uu = _common.jittered_cholesky(kuu)
    kuf = kernel(hyper, z, x)  # [m, n]
    s = jax.lax.rsqrt(lam)
    # explicit L_uu⁻¹ (m × m), then one matmul: faster than a triangular solve
    # with n right-hand sides, forward and backward, for m ≪ n
    inv_uu = solve_triangular(
        chol_uu, jnp.eye(kuu.shape[0], dtype=kuu.dtype), lower=True
    )
    a = (inv_uu @ kuf) * s[None, :]  # [m, n]
    m, n = a.shape
    b = jnp.eye(m, dtype=a.dtype) + a @ a.T
    chol_b = jnp.linalg.cholesky(b)
    c = solve_triangular(chol_b, a @ (yn * s), lower=True)  # [m]
    elbo = (
        -0.5 * n * math.log(2.0 * math.pi)
        - jnp.sum(jnp.log(jnp.diag(chol_b)))
        - 0.5 * jnp.sum(jnp.log(lam))
        - 0.5 * jnp.sum(yn * yn / lam)
        + 0.5 * jnp.dot(c, c)
        - 0.5 * jnp.sum(kff / lam)
        + 0.5 * jnp.sum(a * a)
        - n * jnp.log(scale)
    )
    ok = ok_uu & jnp.all(jnp.isfinite(chol_b)) & jnp.all(lam > 0)
    return SparseGP(z, chol_uu, chol_b, c, offset, scale, hyper, jitter, ok, elbo)


def _check_z(z, d):
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[1] != d:
        raise MldiffError(
            f"inducing inputs z must have shape [m, {d}] like x, got {z.shape}; "
            "use kmeans(x, m, key=...) or random_subset(x, m, key=...)"
        )
    check_float64(_common._FLOAT64, z=z)
    return z


def _check_lambda(kernel, hyper, x, noise):
    if _common._concrete(x, noise) and float(jnp.min(noise)) <= 0.0:
        w = kernel.diag(hyper, x[:1]) - kernel.diag(hyper, x[:1], x[:1])
        if not _common._concrete(w) or float(w[0]) <= 0.0:
            raise MldiffError(
                "the sparse GP needs a positive noise variance at every point: got "
                f"min(noise) = {float(jnp.min(noise))} and no white() term in the "
                "kernel; pass noise > 0 or add kernels.white(...)"
            )


def fit_sparse(
    kernel: Kernel,
    hyper,
    x: ArrayLike,
    y: ArrayLike,
    noise,
    z: ArrayLike,
    *,
    normalize_y: bool = False,
    mean=None,
) -> SparseGP:
    """Fit SGPR with fixed hyperparameters and inducing inputs (float64).

    Args:
        kernel: covariance function.
        hyper: unconstrained hyperparameters.
        x: training inputs ``[n, d]``, float64, unit of the descriptors.
        y: targets ``[n]``, float64.
        noise: noise variance, scalar or ``[n]``, unit of y squared; together with
            any white term of the kernel it must be positive everywhere.
        z: inducing inputs ``[m, d]``, unit of the descriptors.
        normalize_y: standardise y before fitting (as the exact GP).
        mean: constant prior mean, unit of y.

    Returns:
        the fitted :class:`SparseGP` (``.elbo`` is Titsias' bound, nats).

    Raises:
        PrecisionError: non-float64 input.
        MldiffError: bad shapes, NaN, non-positive total noise, or (outside jit)
            an indefinite ``K(z, z)`` after the jitter search.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.rbf()
        >>> x = jnp.zeros((2, 1))
        >>> s = fit_sparse(k, k.init(), x, jnp.ones(2), 1.0, x[:1])
        >>> s.c.shape
        (1,)
    """
    x, y, noise = _common.check_inputs(x, y, noise)
    z = _check_z(z, x.shape[1])
    _check_lambda(kernel, hyper, x, noise)
    state = _fit(
        kernel,
        hyper,
        x,
        y,
        noise,
        z,
        0.0 if mean is None else mean,
        normalize_y,
        mean is not None,
    )
    _common.raise_if_failed(state.ok, "K(z, z) of the inducing inputs")
    return state


def collapsed_bound(
    kernel: Kernel, hyper, x: ArrayLike, y: ArrayLike, noise, z: ArrayLike, **kw
) -> Float[Array, ""]:
    """Titsias' collapsed evidence lower bound on ``log p(y)``, nats.

    Args:
        kernel: covariance function.
        hyper: unconstrained hyperparameters.
        x: inputs ``[n, d]``.
        y: targets ``[n]``.
        noise: noise variance, scalar or ``[n]``, unit of y squared.
        z: inducing inputs ``[m, d]``.
        **kw: ``normalize_y``, ``mean`` as in :func:`fit_sparse`.

    Returns:
        scalar bound ≤ the exact log marginal likelihood (equal when ``z = x``).

    References:
        Titsias (2009), eq. 9.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.rbf()
        >>> x = jnp.zeros((1, 1))
        >>> round(float(collapsed_bound(k, k.init(), x, jnp.zeros(1), 1.0, x)), 6)
        -1.265512
    """
    return fit_sparse(kernel, hyper, x, y, noise, z, **kw).elbo


def predict_sparse(
    kernel: Kernel, state: SparseGP, xs: ArrayLike, *, full_cov: bool = False
):
    """Predictive mean and variance (or covariance) of SGPR at test inputs.

    As for the exact GP, the variance includes the kernel's white-noise term at
    ``xs`` but not the training ``noise``.

    Args:
        kernel: the kernel used in :func:`fit_sparse`.
        state: the fitted model.
        xs: test inputs ``[s, d]``.
        full_cov: return ``[s, s]`` covariance instead of the variance.

    Returns:
        ``(mean [s], var [s])`` or ``(mean [s], cov [s, s])``; unit of y, y².

    References:
        Titsias (2009), eq. 10.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.rbf()
        >>> x = jnp.zeros((1, 1))
        >>> s = fit_sparse(k, k.init(), x, jnp.ones(1), 1.0, x)
        >>> [round(float(v[0]), 12) for v in predict_sparse(k, s, x)]
        [0.5, 0.5]
    """
    xs = _common.check_test_inputs(xs, state.z.shape[1])
    return _predict(kernel, state, xs, full_cov)


@functools.partial(jax.jit, static_argnames=("kernel", "full_cov"))
def _predict(kernel, state, xs, full_cov):
    kus = kernel(state.hyper, state.z, xs)  # [m, s]
    t1 = solve_triangular(state.chol_uu, kus, lower=True)
    t2 = solve_triangular(state.chol_b, t1, lower=True)
    mean = t2.T @ state.c * state.scale + state.offset
    if full_cov:
        cov = kernel(state.hyper, xs) - t1.T @ t1 + t2.T @ t2
        return mean, cov * state.scale**2
    var = kernel.diag(state.hyper, xs) - jnp.sum(t1 * t1, 0) + jnp.sum(t2 * t2, 0)
    return mean, jnp.maximum(var, 0.0) * state.scale**2


def fit_hyperparameters_sparse(
    kernel: Kernel,
    hyper0,
    x: ArrayLike,
    y: ArrayLike,
    noise,
    z: ArrayLike,
    *,
    key,
    n_restarts: int = 0,
    optimizer: str = "lbfgs",
    max_steps: int = 200,
    train_inducing: bool = False,
    normalize_y: bool = False,
    mean=None,
):
    """Maximise the collapsed bound over hyperparameters (and optionally ``z``).

    Args:
        kernel: covariance function.
        hyper0: initial unconstrained hyperparameters.
        x: inputs ``[n, d]``.
        y: targets ``[n]``.
        noise: fixed noise variance, scalar or ``[n]``, unit of y squared.
        z: (initial) inducing inputs ``[m, d]``.
        key: PRNG key for the restarts (``hyper0 + U(-3, 3)``; ``z`` unperturbed).
        n_restarts: random restarts besides ``hyper0``.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        max_steps: iterations per start.
        train_inducing: optimise ``z`` too.
        normalize_y: as in :func:`fit_sparse`.
        mean: as in :func:`fit_sparse`.

    Returns:
        ``(hyper, z [m, d], elbo [])`` of the best start.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.white(1.0)
        >>> x = jnp.zeros((2, 1))
        >>> h, z, elbo = fit_hyperparameters_sparse(
        ...     k, k.init(), x, jnp.array([1.0, -1.0]), 0.0, x[:1],
        ...     key=jax.random.key(0))
        >>> round(float(kernels.to_natural(h["log_variance"])), 4)
        1.0
    """
    x, y, noise = _common.check_inputs(x, y, noise)
    z = _check_z(z, x.shape[1])
    _check_lambda(kernel, hyper0, x, noise)
    r = _optimize.random_starts(key, hyper0, n_restarts)
    zs = jnp.broadcast_to(z, (n_restarts + 1, *z.shape))
    best, loss = _minimize(
        kernel,
        {"hyper": r, "z": zs},
        x,
        y,
        noise,
        0.0 if mean is None else mean,
        normalize_y,
        mean is not None,
        optimizer,
        max_steps,
        train_inducing,
    )
    return best["hyper"], best["z"], -loss * y.shape[0]


@functools.partial(
    jax.jit,
    static_argnames=(
        "kernel",
        "normalize_y",
        "has_mean",
        "optimizer",
        "max_steps",
        "train_z",
    ),
)
def _minimize(
    kernel,
    starts,
    x,
    y,
    noise,
    mean,
    normalize_y,
    has_mean,
    optimizer,
    max_steps,
    train_z,
):
    n = y.shape[0]
    z0 = starts["z"][0]

    def loss(p):
        hyper, zz = (p["hyper"], p["z"]) if train_z else (p, z0)
        s = _fit(kernel, hyper, x, y, noise, zz, mean, normalize_y, has_mean)
        return -s.elbo / n

    best, value, _ = _optimize.minimize(
        loss,
        starts if train_z else starts["hyper"],
        optimizer=optimizer,
        max_steps=max_steps,
    )
    if not train_z:
        best = {"hyper": best, "z": z0}
    return best, value


def random_subset(x: ArrayLike, m: int, *, key) -> Float[Array, "m d"]:
    """``m`` distinct rows of ``x`` chosen uniformly at random.

    Args:
        x: inputs ``[n, d]``.
        m: number of inducing inputs, ``m ≤ n``.
        key: PRNG key.

    Returns:
        ``[m, d]`` rows of ``x``, unit of ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> random_subset(jnp.zeros((5, 2)), 3, key=jax.random.key(0)).shape
        (3, 2)
    """
    x = jnp.asarray(x)
    if not 0 < m <= x.shape[0]:
        raise MldiffError(f"need 0 < m <= n = {x.shape[0]} inducing inputs, got {m}")
    return x[jax.random.choice(key, x.shape[0], (m,), replace=False)]


def kmeans(x: ArrayLike, m: int, *, key, iters: int = 25) -> Float[Array, "m d"]:
    """``m`` k-means centroids of ``x``: k-means++ seeding, then Lloyd iterations.

    Empty clusters keep their previous centre.

    Args:
        x: inputs ``[n, d]``.
        m: number of centroids, ``m ≤ n``.
        key: PRNG key for the seeding.
        iters: Lloyd iterations.

    Returns:
        centroids ``[m, d]``, unit of ``x``.

    References:
        S. Lloyd, IEEE Trans. Inf. Theory 28, 129 (1982); D. Arthur and
        S. Vassilvitskii, "k-means++", SODA 2007.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.array([[0.0], [0.1], [10.0], [10.2]])
        >>> sorted(kmeans(x, 2, key=jax.random.key(1))[:, 0].round(2).tolist())
        [0.05, 10.1]
    """
    x = jnp.asarray(x)
    if not 0 < m <= x.shape[0]:
        raise MldiffError(f"need 0 < m <= n = {x.shape[0]} inducing inputs, got {m}")
    return _kmeans(x, key, m, iters)


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _kmeans(x, key, m, iters):
    n = x.shape[0]
    xx = jnp.sum(x * x, axis=1)
    keys = jax.random.split(key, m)
    first = x[jax.random.randint(keys[0], (), 0, n)]

    def seed(i, c):
        z, d2 = c
        logits = jnp.where(d2 > 0, jnp.log(jnp.where(d2 > 0, d2, 1.0)), -jnp.inf)
        logits = jnp.where(jnp.any(d2 > 0), logits, 0.0)
        new = x[jax.random.categorical(keys[i], logits)]
        return z.at[i].set(new), jnp.minimum(d2, jnp.sum((x - new) ** 2, axis=1))

    z0 = jnp.zeros((m, x.shape[1]), x.dtype).at[0].set(first)
    z0, _ = jax.lax.fori_loop(1, m, seed, (z0, jnp.sum((x - first) ** 2, axis=1)))

    def step(z, _):
        d2 = xx[:, None] + jnp.sum(z * z, axis=1)[None, :] - 2.0 * x @ z.T
        label = jnp.argmin(d2, axis=1)
        sums = jax.ops.segment_sum(x, label, num_segments=m)
        counts = jax.ops.segment_sum(jnp.ones_like(xx), label, num_segments=m)
        znew = sums / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where((counts > 0)[:, None], znew, z), None

    return jax.lax.scan(step, z0, None, length=iters)[0]
