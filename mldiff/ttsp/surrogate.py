"""Super-TTSP surrogate: one GP of log modulus over (log rate, temperature).

Where superposition fails (thermorheologically complex materials) the data can
still be modelled directly: a Gaussian process with an anisotropic (ARD)
squared-exponential kernel over ``(log10 ω, T)`` is trained on every isotherm
jointly. Its predictive standard deviation grows away from the data, and a
prediction is flagged as extrapolating when it lies outside the measured box or
its standard deviation exceeds :data:`EXTRAPOLATION_RATIO` times the typical
in-range value.

Example (fitting takes seconds, see ``tests/ttsp/test_surrogate.py``):
    >>> SURROGATE_KERNEL.init()[0]["log_length_scale"].shape  # (log10 ω, T)
    (2,)
"""

from typing import NamedTuple

import jax
import numpy as np

from mldiff.gp import ExactGP, fit, fit_hyperparameters, kernels, predict
from mldiff.ttsp.data import TTSPData, TTSPDataError

__all__ = [
    "SURROGATE_KERNEL",
    "EXTRAPOLATION_RATIO",
    "Surrogate",
    "fit_surrogate",
    "predict_surrogate",
]

#: ARD kernel over (log10 rate in decades, temperature in K) + learned noise
SURROGATE_KERNEL = kernels.rbf([1.0, 10.0]) + kernels.white(1e-2)
#: std / typical in-range std above which a prediction counts as extrapolation
EXTRAPOLATION_RATIO = 3.0


class Surrogate(NamedTuple):
    """A fitted super-TTSP surrogate of one quantity.

    Attributes:
        name: the quantity modelled (its log10), e.g. ``"storage_modulus_pa"``.
        gp: the :class:`~mldiff.gp.ExactGP` over ``[log10 rate, T (K)]``.
        x_range: ``[2, 2]`` min/max of log10 rate and of temperature (K).
        in_range_std: median predictive std at the training inputs, log10 unit.
    """

    name: str
    gp: ExactGP
    x_range: np.ndarray
    in_range_std: float


def fit_surrogate(
    data: TTSPData, name: str, *, exclude_temperatures_k=(), seed: int = 0
) -> Surrogate:
    """Train the surrogate on every isotherm of one quantity.

    Args:
        data: the table.
        name: quantity to model (log10 of it), e.g. ``"loss_modulus_pa"``.
        exclude_temperatures_k: isotherms left out (K), e.g. for validation.
        seed: seed of the hyperparameter restarts.

    Returns:
        the :class:`Surrogate`.

    Raises:
        TTSPDataError: fewer than 2 isotherms left to train on.
    """
    temps = [t for t in data.temperatures_k() if t not in set(exclude_temperatures_k)]
    if len(temps) < 2:
        raise TTSPDataError(
            f"the surrogate needs at least 2 isotherms, got {len(temps)}; exclude fewer"
        )
    xs, ys = [], []
    for t in temps:
        x, y = data.log_curve(name, t)
        xs.append(np.stack([x, np.full(x.size, t)], axis=1))
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    k = SURROGATE_KERNEL
    hyper, _ = fit_hyperparameters(
        k, k.init(), x, y, 0.0, key=jax.random.key(seed), n_restarts=1, normalize_y=True
    )
    gp = fit(k, hyper, x, y, 0.0, normalize_y=True)
    _, var = predict(k, gp, x)
    x_range = np.stack([x.min(axis=0), x.max(axis=0)], axis=1)
    return Surrogate(name, gp, x_range, float(np.median(np.sqrt(np.asarray(var)))))


def predict_surrogate(surrogate: Surrogate, log10_rate, temperature_k):
    """Predict with uncertainty and an extrapolation flag.

    Args:
        surrogate: the fitted surrogate.
        log10_rate: ``[s]`` log10 ω (rad/s), or ``-log10 t`` (s) for time data.
        temperature_k: ``[s]`` temperatures, K (broadcast against ``log10_rate``).

    Returns:
        ``(mean [s], std [s], extrapolating [s] bool)``: log10 of the quantity,
        its predictive standard deviation (log10 unit, noise included), and
        whether the point is outside the measured box or has a std above
        :data:`EXTRAPOLATION_RATIO` × the in-range value.
    """
    x, t = np.broadcast_arrays(
        np.asarray(log10_rate, dtype=np.float64),
        np.asarray(temperature_k, dtype=np.float64),
    )
    xs = np.stack([x.reshape(-1), t.reshape(-1)], axis=1)
    mean, var = predict(SURROGATE_KERNEL, surrogate.gp, xs)
    std = np.sqrt(np.asarray(var))
    lo, hi = surrogate.x_range[:, 0], surrogate.x_range[:, 1]
    outside = np.any((xs < lo) | (xs > hi), axis=1)
    extrapolating = outside | (std > EXTRAPOLATION_RATIO * surrogate.in_range_std)
    return np.asarray(mean), std, extrapolating
