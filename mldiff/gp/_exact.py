"""Exact Gaussian-process regression in float64: fit, predict, marginal likelihood.

The model is ``y_i = offset + scale · (f(x_i) + ε_i)``, ``f ~ GP(0, k)``,
``ε_i ~ N(0, noise_i / scale²)``. ``noise`` is given per point as a variance in
the unit of ``y`` squared (e.g. squared experimental uncertainties); learnable
homoscedastic noise is a :func:`~mldiff.gp.kernels.white` term of the kernel.
With ``normalize_y`` the kernel models the standardised targets, as in
scikit-learn (whose ``alpha`` is therefore ``noise / std(y)²``).

The log marginal likelihood is the density of ``y`` in its own unit, i.e.
scikit-learn's value on the standardised targets minus ``n log std(y)``.

Everything is pure and works under ``jit``, ``vmap`` and ``grad`` (with respect
to hyperparameters, training data and test inputs). Outside ``jit`` a matrix
that stays indefinite after the jitter search raises; inside ``jit`` the flag
``ExactGP.ok`` is returned instead.

References:
    C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine
    Learning* (MIT Press, 2006), Algorithm 2.1 and eq. 2.30.

Example:
    >>> import jax.numpy as jnp
    >>> from mldiff.gp import kernels
    >>> k = kernels.rbf(1.0)
    >>> x = jnp.linspace(0.0, 3.0, 8)[:, None]
    >>> state = fit(k, k.init(), x, jnp.sin(x[:, 0]), 1e-6)
    >>> mean, var = predict(k, state, jnp.array([[1.5]]))
    >>> bool(abs(mean[0] - jnp.sin(1.5)) < 1e-3)
    True
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular
from jaxtyping import Array, Bool, Float

from mldiff._typing import ArrayLike
from mldiff.gp import _common, _optimize
from mldiff.gp.kernels import Kernel

__all__ = [
    "ExactGP",
    "fit",
    "predict",
    "log_marginal_likelihood",
    "fit_hyperparameters",
]


class ExactGP(NamedTuple):
    """A fitted exact GP (a pytree; the kernel is passed alongside).

    Attributes:
        x: training inputs ``[n, d]``, unit of the descriptors.
        alpha: ``(K + Λ)⁻¹ (y - offset) / scale``, ``[n]``, 1/(unit of y).
        chol: lower Cholesky factor of ``K + Λ + jitter·I``, ``[n, n]``,
            standardised units.
        offset: prior mean of y, ``[]``, unit of y.
        scale: standard deviation used to standardise y, ``[]``, unit of y.
        hyper: the kernel hyperparameters (unconstrained pytree).
        jitter: jitter added to the diagonal, ``[]``, standardised units.
        ok: ``[]`` bool, False if the factorisation failed (NaN results).
        log_marginal_likelihood: ``log p(y)``, ``[]``, nats (density in y's unit).
        mask: ``[n]`` 1 for data points, 0 for padding rows of ``x`` (which
            then carry no weight: see ``mask`` of :func:`fit`).
    """

    x: Float[Array, "n d"]
    alpha: Float[Array, " n"]
    chol: Float[Array, "n n"]
    offset: Float[Array, ""]
    scale: Float[Array, ""]
    hyper: Any
    jitter: Float[Array, ""]
    ok: Bool[Array, ""]
    log_marginal_likelihood: Float[Array, ""]
    mask: Float[Array, " n"]


def _checked(x, y, noise, normalize_y: bool, mean, mask) -> tuple:
    """``(x, y, noise, mean, normalize_y, has_mean, w)``, checked.

    The data arguments of ``_fit``, ``_log_marginal_likelihood`` and
    ``_minimize``, in their order.
    """
    x, y, noise = _common.check_inputs(x, y, noise)
    w = _common.check_mask(mask, y)
    return x, y, noise, 0.0 if mean is None else mean, normalize_y, mean is not None, w


def _standardised(kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w):
    """``(K + Λ/scale² [n, n], standardised y [n], offset, scale)``.

    Padding rows (``w = 0``) become an identity block with ``y = 0``: they
    leave the solve, the quadratic form and the log-determinant unchanged.
    """
    offset, scale = _common.scaling(y, normalize_y, mean if has_mean else None, w)
    yn = w * (y - offset) / scale
    k = kernel(hyper, x) + jnp.diag(noise / scale**2)
    k = k * (w[:, None] * w[None, :]) + jnp.diag(1.0 - w)
    return k, yn, offset, scale


def _log_marginal_likelihood(
    kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w
):
    """``log p(y)`` in nats, as ``_fit`` computes it.

    Differentiates by the closed form of
    :func:`mldiff.gp._common.gaussian_log_density`, about half the work of
    differentiating through ``_fit``'s factorisation.
    """
    k, yn, _, scale = _standardised(
        kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w
    )
    n = jnp.sum(w)
    return (
        _common.gaussian_log_density(k, yn)
        - 0.5 * n * math.log(2.0 * math.pi)
        - n * jnp.log(scale)
    )


@functools.partial(jax.jit, static_argnames=("kernel", "normalize_y", "has_mean"))
def _fit(kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w):
    k, yn, offset, scale = _standardised(
        kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w
    )
    chol, jitter, ok = _common.jittered_cholesky(k)
    alpha = cho_solve((chol, True), yn)
    n = jnp.sum(w)
    lml = (
        -0.5 * jnp.dot(yn, alpha)
        - jnp.sum(jnp.log(jnp.diag(chol)))
        - 0.5 * n * math.log(2.0 * math.pi)
        - n * jnp.log(scale)
    )
    return ExactGP(x, alpha, chol, offset, scale, hyper, jitter, ok, lml, w)


def fit(
    kernel: Kernel,
    hyper,
    x: ArrayLike,
    y: ArrayLike,
    noise=0.0,
    *,
    normalize_y: bool = False,
    mean=None,
    mask=None,
) -> ExactGP:
    """Condition a GP with fixed hyperparameters on data (float64 Cholesky).

    Args:
        kernel: covariance function.
        hyper: its unconstrained hyperparameters (``kernel.init()`` or fitted).
        x: training inputs ``[n, d]``, float64, unit of the descriptors.
        y: targets ``[n]``, float64, any unit.
        noise: noise variance, scalar or ``[n]`` (per point), unit of y squared.
        normalize_y: standardise y (sample mean and std) before fitting.
        mean: constant prior mean in the unit of y (overrides the sample mean).
        mask: ``[n]`` 1 for data points, 0 for padding rows (any finite
            values), which then change nothing: pad growing data sets to a few
            sizes (:func:`mldiff.gp.bucket_size`) to compile once per
            size. Default: all data.

    Returns:
        the fitted :class:`ExactGP`.

    Raises:
        PrecisionError: non-float64 input or ``jax_enable_x64`` off.
        MldiffError: bad shapes, NaN/inf, negative noise, or (outside jit) a
            covariance that stays indefinite after the jitter search.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.matern(2.5)
        >>> s = fit(k, k.init(), jnp.zeros((1, 1)), jnp.ones(1), 1.0)
        >>> round(float(s.alpha[0]), 12)
        0.5
    """
    state = _fit(kernel, hyper, *_checked(x, y, noise, normalize_y, mean, mask))
    _common.raise_if_failed(state.ok, "the training covariance K + noise")
    return state


def predict(kernel: Kernel, state: ExactGP, xs: ArrayLike, *, full_cov: bool = False):
    """Predictive mean and variance (or covariance) of y at test inputs.

    The variance is that of the latent function plus any white-noise term of the
    kernel at ``xs`` (as scikit-learn); per-point ``noise`` of the training data
    is not added.

    Args:
        kernel: the kernel used in :func:`fit`.
        state: the fitted GP.
        xs: test inputs ``[s, d]``, unit of the descriptors.
        full_cov: return the ``[s, s]`` covariance instead of the variance.

    Returns:
        ``(mean [s], var [s])`` or ``(mean [s], cov [s, s])``; unit of y, y².

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.rbf()
        >>> s = fit(k, k.init(), jnp.zeros((1, 1)), jnp.ones(1), 1.0)
        >>> [round(float(v[0]), 12) for v in predict(k, s, jnp.zeros((1, 1)))]
        [0.5, 0.5]
    """
    xs = _common.check_test_inputs(xs, state.x.shape[1])
    return _predict(kernel, state, xs, full_cov)


@functools.partial(jax.jit, static_argnames=("kernel", "full_cov"))
def _predict(kernel, state, xs, full_cov):
    ks = kernel(state.hyper, state.x, xs) * state.mask[:, None]  # [n, s]
    mean = ks.T @ state.alpha * state.scale + state.offset
    v = solve_triangular(state.chol, ks, lower=True)  # [n, s]
    if full_cov:
        cov = kernel(state.hyper, xs) - v.T @ v
        return mean, cov * state.scale**2
    var = kernel.diag(state.hyper, xs) - jnp.sum(v * v, axis=0)
    return mean, jnp.maximum(var, 0.0) * state.scale**2


def log_marginal_likelihood(
    kernel: Kernel,
    hyper,
    x: ArrayLike,
    y: ArrayLike,
    noise=0.0,
    *,
    normalize_y: bool = False,
    mean=None,
    mask=None,
) -> Float[Array, ""]:
    """``log p(y | x, hyper)`` in nats, the density of y in its own unit.

    Args:
        kernel: covariance function.
        hyper: unconstrained hyperparameters.
        x: inputs ``[n, d]``.
        y: targets ``[n]``.
        noise: noise variance, scalar or ``[n]``, unit of y squared.
        normalize_y: as in :func:`fit`.
        mean: as in :func:`fit`.
        mask: as in :func:`fit`.

    Returns:
        scalar log marginal likelihood (differentiable in ``hyper``, ``x``, ``y``).

    References:
        Rasmussen & Williams (2006), eq. 2.30.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.white(1.0)
        >>> lml = log_marginal_likelihood(k, k.init(), jnp.zeros((1, 1)), jnp.zeros(1))
        >>> round(float(lml), 6)  # log N(0 | 0, 1)
        -0.918939
    """
    lml = _jit_log_marginal_likelihood(
        kernel, hyper, *_checked(x, y, noise, normalize_y, mean, mask)
    )
    _common.raise_if_failed(jnp.isfinite(lml), "the training covariance K + noise")
    return lml


_jit_log_marginal_likelihood = jax.jit(
    _log_marginal_likelihood, static_argnames=("kernel", "normalize_y", "has_mean")
)


def fit_hyperparameters(
    kernel: Kernel,
    hyper0,
    x: ArrayLike,
    y: ArrayLike,
    noise=0.0,
    *,
    key,
    n_restarts: int = 0,
    optimizer: str = "lbfgs",
    max_steps: int = 200,
    normalize_y: bool = False,
    mean=None,
    mask=None,
):
    """Maximise the log marginal likelihood over the hyperparameters (optax).

    Starts from ``hyper0`` and ``n_restarts`` random starts ``hyper0 + U(-3, 3)``
    in unconstrained (log) units, all optimised in one compiled program (one
    after another); the best finite result is returned.

    Args:
        kernel: covariance function.
        hyper0: initial unconstrained hyperparameters.
        x: inputs ``[n, d]``.
        y: targets ``[n]``.
        noise: fixed noise variance, scalar or ``[n]``, unit of y squared.
        key: PRNG key for the restarts.
        n_restarts: number of random restarts besides ``hyper0``.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        max_steps: iterations per start.
        normalize_y: as in :func:`fit`.
        mean: as in :func:`fit`.
        mask: as in :func:`fit`.

    Returns:
        ``(hyper, log_marginal_likelihood [])`` of the best start.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.gp import kernels
        >>> k = kernels.white(1.0)
        >>> h, lml = fit_hyperparameters(
        ...     k, k.init(), jnp.zeros((2, 1)), jnp.array([1.0, -1.0]),
        ...     key=jax.random.key(0))
        >>> round(float(kernels.to_natural(h["log_variance"])), 4)  # ML variance
        1.0
    """
    data = _checked(x, y, noise, normalize_y, mean, mask)
    starts = _optimize.random_starts(key, hyper0, n_restarts)
    best, loss, _ = _minimize(kernel, starts, *data, optimizer, max_steps)
    return best, -loss * jnp.sum(data[-1])


@functools.partial(
    jax.jit,
    static_argnames=("kernel", "normalize_y", "has_mean", "optimizer", "max_steps"),
)
def _minimize(
    kernel, starts, x, y, noise, mean, normalize_y, has_mean, w, optimizer, max_steps
):
    n = jnp.sum(w)

    def loss(hyper):
        lml = _log_marginal_likelihood(
            kernel, hyper, x, y, noise, mean, normalize_y, has_mean, w
        )
        return -lml / n

    return _optimize.minimize(loss, starts, optimizer=optimizer, max_steps=max_steps)
