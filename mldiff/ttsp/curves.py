"""GP models of single isotherms in log–log coordinates, and their overlap windows.

Each isotherm of each quantity is modelled by its own Gaussian process of
``y = log10 quantity`` against ``x = log10 ω`` (or ``-log10 t``): a smooth RBF
term with a length scale of at least :data:`MIN_LENGTH_SCALE` decades, a
linear trend and learned white noise (:data:`CURVE_KERNEL`). The posterior
mean (:func:`curve_mean`) is what a neighbouring isotherm is compared with;
only inside the measured range (:func:`overlap_weight`), where the GP
interpolates.

Example:
    >>> import numpy as np
    >>> x = np.linspace(-1.0, 2.0, 31)
    >>> m = curve_model(x, 0.5 * x + 6.0)
    >>> bool(noise_variance(m) < 1e-4)
    True
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jaxtyping import Array, Float

from mldiff.gp import ExactGP, fit, fit_hyperparameters, kernels

__all__ = [
    "CURVE_KERNEL",
    "MIN_LENGTH_SCALE",
    "EDGE_WIDTH",
    "NOISE_FLOOR",
    "CurveModel",
    "curve_model",
    "curve_mean",
    "noise_variance",
    "overlap_weight",
]

#: shortest RBF length scale of an isotherm's GP, decades of x. The narrowest
#: feature of a linear viscoelastic function in log–log coordinates is a single
#: Maxwell mode's (G″ bends from slope +1 to -1 over about one decade), so a
#: shorter length scale only fits noise: without the floor, maximum likelihood
#: sometimes interpolates 5 % noise (ℓ ≈ point spacing, noise at the floor) and
#: every neighbour then misfits by tens of σ.
MIN_LENGTH_SCALE = 0.25


def _length_scale_floor(kernel: kernels.Kernel, floor: float) -> kernels.Kernel:
    """``kernel`` (one stationary term) with ``ℓ = floor + exp(log_length_scale)``."""

    def lift(hyper):
        ls = floor + jnp.exp(hyper["log_length_scale"])
        return {**hyper, "log_length_scale": jnp.log(ls)}

    return kernels.Kernel(
        init=kernel.init,
        apply=lambda hyper, x1, x2=None: kernel.apply(lift(hyper), x1, x2),
        diag=lambda hyper, x, x2=None: kernel.diag(lift(hyper), x, x2),
        natural=lambda hyper: kernel.natural(lift(hyper)),
        name=f"{kernel.name} (ℓ ≥ {floor})",
        structure=f"{kernel.structure}[ℓ≥{floor}]",
    )


#: kernel of the per-isotherm GPs: smooth curve in log–log space (RBF with
#: ℓ ≥ MIN_LENGTH_SCALE) + linear trend + learned noise
CURVE_KERNEL = (
    _length_scale_floor(kernels.rbf(1.0), MIN_LENGTH_SCALE)
    + kernels.linear(1.0, 1.0)
    + kernels.white(1e-2)
)

#: width of the C² ramp at each edge of the overlap window (inside the
#: other curve's range), decades of x
EDGE_WIDTH = 0.05
#: smallest noise variance of a curve, (log10 unit)² (0.1 % relative ≈ 4e-4 dex)
NOISE_FLOOR = 1e-7


class CurveModel(NamedTuple):
    """One isotherm of one quantity and its fitted GP (a pytree).

    Attributes:
        x: ``[p]`` log10 rate (``log10 ω`` in rad/s, or ``-log10 t`` in s).
        y: ``[p]`` log10 of the quantity (in its unit).
        gp: the :class:`~mldiff.gp.ExactGP` of ``y(x)`` with :data:`CURVE_KERNEL`.
    """

    x: Float[Array, " p"]
    y: Float[Array, " p"]
    gp: ExactGP


def curve_model(x, y, *, seed: int = 0, kernel=CURVE_KERNEL) -> CurveModel:
    """Fit a GP to one isotherm (maximum marginal likelihood, normalised y).

    Args:
        x: ``[p]`` log10 rate.
        y: ``[p]`` log10 quantity.
        seed: seed of the hyperparameter restarts.
        kernel: covariance function (default :data:`CURVE_KERNEL`).

    Returns:
        the :class:`CurveModel`.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(-1.0, 2.0, 31)
        >>> m = curve_model(x, 0.5 * x + 6.0)
        >>> round(float(curve_mean(m, np.array([0.55]))[0]), 3)
        6.275
    """
    x = jnp.asarray(x, jnp.float64)
    y = jnp.asarray(y, jnp.float64)
    hyper, _ = fit_hyperparameters(
        kernel,
        kernel.init(),
        x[:, None],
        y,
        0.0,
        key=jax.random.key(seed),
        n_restarts=2,
        normalize_y=True,
    )
    return CurveModel(x, y, fit(kernel, hyper, x[:, None], y, 0.0, normalize_y=True))


def overlap_weight(xs, lo, hi):
    """C² window: 0 outside ``[lo, hi]``, 1 deeper inside than EDGE_WIDTH.

    A quintic smoothstep on each side, inside the range, so that no point
    where a GP would extrapolate carries any weight (a sigmoid's tail lets
    extrapolation errors of hundreds of σ into a noise-free misfit).

    Args:
        xs: ``[s]`` positions, e.g. log10 rates.
        lo: start of the measured range, same unit.
        hi: its end.

    Returns:
        ``[s]`` weights in [0, 1].

    Example:
        >>> [round(float(w), 3) for w in overlap_weight(jnp.array([-0.1, 0.5]), 0, 1)]
        [0.0, 1.0]
    """

    def step(t):
        t = jnp.clip(t, 0.0, 1.0)
        return t**3 * (10.0 - 15.0 * t + 6.0 * t**2)

    return step((xs - lo) / EDGE_WIDTH) * step((hi - xs) / EDGE_WIDTH)


def noise_variance(curve: CurveModel) -> Float[Array, ""]:
    """Learned white-noise variance of a curve's GP, (log10 unit)², floored.

    The floor :data:`NOISE_FLOOR` keeps noise-free data well conditioned.
    """
    learned = jnp.exp(curve.gp.hyper[1]["log_variance"]) * curve.gp.scale**2
    return jnp.maximum(learned, NOISE_FLOOR)


def curve_mean(
    curve: CurveModel, xs, kernel=CURVE_KERNEL, *, y=None
) -> Float[Array, " s"]:
    """GP posterior mean of an isotherm (jit- and grad-compatible).

    Equals :func:`~mldiff.gp.predict`'s mean; written as the linear smoother
    ``k*ᵀ K⁻¹ (y - ȳ) + ȳ`` (hyperparameters fixed) so that it can also be
    differentiated with respect to the data ``y``.

    Args:
        curve: the :class:`CurveModel`.
        xs: ``[s]`` log10 rates.
        kernel: the curve's kernel.
        y: ``[p]`` data in place of ``curve.y`` (same ``x``), log10 units.

    Returns:
        ``[s]`` log10 of the quantity.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0.0, 2.0, 21)
        >>> round(float(curve_mean(curve_model(x, 2.0 * x), np.array([1.05]))[0]), 3)
        2.1
    """
    y = curve.y if y is None else y
    ks = kernel(curve.gp.hyper, curve.gp.x, jnp.asarray(xs)[:, None])  # [p, s]
    offset = jnp.mean(y)
    return ks.T @ cho_solve((curve.gp.chol, True), y - offset) + offset
