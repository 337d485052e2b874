"""Shared GP plumbing: boundary checks, jittered float64 Cholesky, y scaling."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from mldiff.errors import MldiffError, check_float64
from mldiff.gp import _linalg

#: first jitter tried after a failed plain Cholesky, times the mean diagonal
JITTER_START = 1e-10
#: number of ×10 jitter increases tried (1e-10 … 1e-3 of the mean diagonal)
JITTER_TRIES = 8

_FLOAT64 = "GP Cholesky factorisations"  # what needs float64, for the message


def _concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def check_inputs(x, y, noise):
    """Validate and convert ``x [n, d]``, ``y [n]``, ``noise`` (scalar or ``[n]``).

    Returns:
        ``(x, y, noise)`` as float64 JAX arrays, ``noise`` broadcast to ``[n]``.
    """
    check_float64(_FLOAT64)
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim != 2:
        raise MldiffError(
            f"x must be 2-D [n_samples, n_features], got shape {x.shape}; "
            "use x.reshape(-1, 1) for a single feature"
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise MldiffError(
            f"y must be 1-D with one value per row of x ({x.shape[0]}), got shape "
            f"{y.shape}; fit one output at a time"
        )
    check_float64(_FLOAT64, x=x, y=y)
    noise = jnp.asarray(0.0 if noise is None else noise, dtype=y.dtype)
    if noise.ndim not in (0, 1) or (noise.ndim == 1 and noise.shape != y.shape):
        raise MldiffError(
            f"noise must be a scalar or have shape {y.shape} (one variance per "
            f"point), got shape {noise.shape}"
        )
    noise = jnp.broadcast_to(noise, y.shape)
    if _concrete(x, y, noise):
        xa, ya, na = np.asarray(x), np.asarray(y), np.asarray(noise)
        if not np.all(np.isfinite(xa)):
            bad = int(np.argmax(~np.all(np.isfinite(xa), axis=1)))
            raise MldiffError(f"x has NaN or inf (first in row {bad}); drop or impute")
        if not np.all(np.isfinite(ya)):
            bad = int(np.argmax(~np.isfinite(ya)))
            raise MldiffError(
                f"y has NaN or inf (first at index {bad}: {ya[bad]}); drop those "
                "points before fitting"
            )
        if not np.all(np.isfinite(na) & (na >= 0)):
            bad = int(np.argmax(~(np.isfinite(na) & (na >= 0))))
            raise MldiffError(
                f"noise variances must be finite and >= 0, got {na[bad]} at index "
                f"{bad}; pass variances (std²), not log values"
            )
    return x, y, noise


def check_test_inputs(xs, d: int):
    """Validate test inputs ``[s, d]`` against ``d`` training features."""
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != d:
        raise MldiffError(
            f"x must have shape [n_samples, {d}] like the training inputs, got "
            f"{xs.shape}"
        )
    check_float64(_FLOAT64, x=xs)
    return xs


def jittered_cholesky(a: jax.Array):
    """Lower Cholesky factor of a symmetric ``[n, n]`` matrix, adding jitter if needed.

    Only the lower triangle of ``a`` is read. The plain factorisation is tried
    first. If it fails (non-finite entries), ``jitter · I`` is added with
    ``jitter = JITTER_START · mean(diag(a)) · 10^k`` for
    ``k = 0 … JITTER_TRIES - 1``, the first that succeeds being kept. The
    search runs under ``stop_gradient`` in a ``while_loop`` (so it works inside
    ``jit`` and ``vmap``, and a failed try leaks no NaN cotangents); the factor
    it finds carries the derivative of a Cholesky factor with respect to ``a``
    (the jitter held constant), so one factorisation serves value and gradient.

    Returns:
        ``(L [n, n], jitter [], ok [] bool)``; ``ok`` is False if every try failed.
    """
    ac = jax.lax.stop_gradient(a)
    scale = jnp.mean(jnp.abs(jnp.diag(ac)))
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1.0)

    def factor(m):
        chol = _linalg.cholesky(m)
        return chol, jnp.all(jnp.isfinite(jnp.diag(chol)))  # NaN factor if failed

    def cond(c):  # c = (chol, ok, jitter, try)
        return (~c[1]) & (c[3] <= JITTER_TRIES)

    def body(c):
        k = c[3]
        jitter = JITTER_START * scale * 10.0 ** (k - 1).astype(a.dtype)
        eye = jnp.eye(a.shape[0], dtype=a.dtype)
        return *factor(ac + jitter * eye), jitter, k + 1

    # the plain factorisation outside the loop: no jitter matrix and no loop
    # carry to copy in the common case that it succeeds
    init = (*factor(ac), jnp.zeros((), a.dtype), jnp.asarray(1))
    chol, ok, jitter, _ = jax.lax.while_loop(cond, body, init)
    return _with_cholesky_derivative(a, chol), jitter, ok


@jax.custom_jvp
def _with_cholesky_derivative(a, chol):
    """``chol``, the factor of ``a + jitter·I``, differentiable in ``a``."""
    return chol


@_with_cholesky_derivative.defjvp
def _with_cholesky_derivative_jvp(primals, tangents):
    # dL = L Φ(L⁻¹ dA L⁻ᵀ), Φ = lower triangle with the diagonal halved
    # (Murray 2016, "Differentiation of the Cholesky decomposition", eq. 10)
    a, chol = primals
    da = tangents[0]
    chol = _with_cholesky_derivative(a, chol)  # so higher orders see it too
    da = jnp.tril(da) + jnp.tril(da, -1).T  # the factorisation reads tril(a)
    x = solve_triangular(chol, da, lower=True)
    x = solve_triangular(chol, x.T, lower=True)  # L⁻¹ dA L⁻ᵀ
    phi = jnp.tril(x) - 0.5 * jnp.diag(jnp.diag(x))
    return chol, chol @ phi


@jax.custom_jvp
def gaussian_log_density(k: jax.Array, y: jax.Array) -> jax.Array:
    """``log N(y | 0, K) + (n/2) log 2π = -½ yᵀK⁻¹y - ½ log det K``, nats.

    ``K`` is factorised with :func:`jittered_cholesky` (the jitter is treated
    as a constant). The derivative uses the closed form
    ``∂/∂K = ½ (ααᵀ - K⁻¹)``, ``∂/∂y = -α`` with ``α = K⁻¹y`` (Rasmussen &
    Williams 2006, eq. 5.9): one Cholesky and one ``K⁻¹`` per gradient, about
    half the work of differentiating through the factorisation. Forward and
    reverse mode, any order.

    Args:
        k: symmetric positive-definite ``[n, n]``, float64; only its lower
            triangle is read (value and derivatives alike).
        y: ``[n]``.

    Returns:
        the scalar log density without its ``-(n/2) log 2π`` constant; NaN if
        the factorisation failed.
    """
    chol, _, _ = jittered_cholesky(k)
    alpha = cho_solve((chol, True), y)
    return -0.5 * jnp.dot(y, alpha) - jnp.sum(jnp.log(jnp.diag(chol)))


@gaussian_log_density.defjvp
def _gaussian_log_density_jvp(primals, tangents):
    k, y = primals
    dk, dy = tangents
    chol, _, _ = jittered_cholesky(k)
    alpha = cho_solve((chol, True), y)
    value = -0.5 * jnp.dot(y, alpha) - jnp.sum(jnp.log(jnp.diag(chol)))
    # K is read by its lower triangle (as the factorisation reads it), so the
    # derivative in K is that of the lower triangle: off-diagonal entries of
    # the symmetric ∂/∂K = ½(ααᵀ - K⁻¹) count twice, entries above count zero
    k_inv_lower = _linalg.cholesky_inverse_lower(chol)
    grad_k = jnp.tril(jnp.outer(alpha, alpha)) - k_inv_lower
    grad_k = grad_k * (2.0 - jnp.eye(k.shape[0], dtype=k.dtype))
    dvalue = 0.5 * jnp.sum(grad_k * dk) - jnp.dot(alpha, dy)
    return value, dvalue


def scaling(y: jax.Array, normalize_y: bool, mean, weights=None):
    """``(offset, scale)`` so the GP models ``(y - offset) / scale``.

    ``offset`` is ``mean`` if given, else the sample mean when ``normalize_y``,
    else 0; ``scale`` is the population standard deviation (1 if zero) when
    ``normalize_y``, else 1. Both in the unit of ``y``. ``weights`` (1 for a
    data point, 0 for padding; default all ones) restrict both to the data.
    """
    w = jnp.ones_like(y) if weights is None else weights
    n = jnp.sum(w)
    if mean is not None:
        offset = jnp.asarray(mean, y.dtype)
    elif normalize_y:
        offset = jnp.sum(w * y) / n
    else:
        offset = jnp.zeros((), y.dtype)
    if normalize_y:
        sd = jnp.sqrt(jnp.sum(w * (y - jnp.sum(w * y) / n) ** 2) / n)
        scale = jnp.where(sd > 0, sd, 1.0)
    else:
        scale = jnp.ones((), y.dtype)
    return offset, scale


def check_mask(mask, y: jax.Array) -> jax.Array:
    """``[n]`` float weights from a mask (``None``: all ones), checked."""
    if mask is None:
        return jnp.ones_like(y)
    w = jnp.asarray(mask).astype(y.dtype)
    if w.shape != y.shape:
        raise MldiffError(
            f"mask must have one entry per point, shape {y.shape}, got {w.shape}"
        )
    if _concrete(w):
        wa = np.asarray(w)
        if not np.all((wa == 0) | (wa == 1)) or wa.sum() == 0:
            raise MldiffError(
                "mask must hold 1 (data) or 0 (padding) with at least one data point"
            )
    return w


def bucket_size(n: int) -> int:
    """Padded size for ``n`` points: at most 12.5 % larger, few distinct sizes.

    Multiples of 16 up to 128, then multiples of an eighth of the power of two
    below ``n`` (128 → 144, 1000 → 1024, 1100 → 1152), so a loop over growing
    data sets compiles once per bucket instead of once per size.

    Example:
        >>> [bucket_size(n) for n in (1, 16, 17, 129, 1000, 1100)]
        [16, 16, 32, 144, 1024, 1152]
    """
    step = 16 if n <= 128 else 2 ** (int(n - 1).bit_length() - 1) // 8
    return max(16, -(-n // step) * step)


def raise_if_failed(ok, jitter_tries_what: str) -> None:
    """Outside jit, raise when a jittered Cholesky failed; inside jit, do nothing."""
    if _concrete(ok) and not bool(ok):
        raise MldiffError(
            f"{jitter_tries_what} is not positive definite even with jitter up to "
            f"{JITTER_START * 10 ** (JITTER_TRIES - 1):g} × its mean diagonal; add "
            "noise (a white() term or noise=...), remove duplicated inputs, or "
            "bound the length scale"
        )
