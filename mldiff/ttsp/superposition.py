"""Automatic time–temperature superposition: shift factors with uncertainty (JAX).

Each isotherm is modelled by its own Gaussian process in log–log coordinates
(:mod:`~mldiff.ttsp.curves`); each pair of neighbouring isotherms gets its
relative shift, with covariance, from a global search over every quantity
superposed together (:mod:`~mldiff.ttsp.pairwise`); the pairwise shifts are
chained to the reference temperature, variances adding along the chain
(pairs treated as independent).

Convention: the reduced frequency is ``ω aT`` (reduced time ``t / aT``) and the
reduced quantity ``bT · G``, so ``log10 aT < 0`` above the reference.

References:
    K. R. Lennon, G. H. McKinley and J. W. Swan, "A data-driven method for
    automated data superposition with applications in soft matter science",
    Data-Centric Engineering 4, e13 (2023); the ``mastercurves`` package.

Example:
    >>> from mldiff.ttsp.data import wlf_maxwell_data, wlf_shift
    >>> d = wlf_maxwell_data(n_temperatures=3, noise=0.0)
    >>> sf = shift_factors(d, 373.0)
    >>> truth = wlf_shift(sf.temperatures_k, 17.44, 51.6, 373.0)
    >>> bool(np.max(np.abs(sf.log10_aT - truth)) < 0.03)
    True
"""

from typing import NamedTuple

import numpy as np

from mldiff.ttsp.curves import (  # noqa: F401  (re-exported: the curve layer)
    CURVE_KERNEL,
    MIN_LENGTH_SCALE,
    CurveModel,
    curve_mean,
    curve_model,
    noise_variance,
    overlap_weight,
)
from mldiff.ttsp.data import TTSPData, TTSPDataError
from mldiff.ttsp.pairwise import (  # noqa: F401  (re-exported: the pair layer)
    QUANTILE,
    PairShift,
    overlap_misfit,
    pair_objective,
    pairwise_shift,
    search_pair_shift,
)

__all__ = [
    "CURVE_KERNEL",
    "MIN_LENGTH_SCALE",
    "ShiftFactors",
    "CurveModel",
    "curve_model",
    "PairShift",
    "QUANTILE",
    "pair_objective",
    "search_pair_shift",
    "pairwise_shift",
    "overlap_misfit",
    "noise_variance",
    "curve_mean",
    "overlap_weight",
    "curve_models",
    "default_quantities",
    "shift_factors",
    "master_curve",
]


class ShiftFactors(NamedTuple):
    """Shift factors of a set of isotherms, relative to a reference temperature.

    Attributes:
        temperatures_k: ``[m]`` measured temperatures, ascending, K.
        reference_temperature_k: the reference, K.
        log10_aT: ``[m]`` horizontal shift factors (dimensionless, log10).
        log10_aT_std: ``[m]`` their standard deviations.
        log10_aT_cov: ``[m, m]`` their covariance (chained pairs, so correlated).
        log10_bT: ``[m]`` vertical shift factors (zeros unless ``vertical``).
        log10_bT_std: ``[m]`` their standard deviations.
        pair_shift: ``[m-1]`` relative shifts ``log10 aTⱼ - log10 aTᵢ`` of
            neighbours.
        pair_shift_std: ``[m-1]`` their standard deviations.
        pair_vshift: ``[m-1]`` relative vertical shifts.
        pair_chi2: ``[m-1]`` Σ of squared standardised residuals of the points
            that overlap the neighbour's range, at the optimum.
        pair_dof: ``[m-1]`` (window-weighted) number of those points.
        quantities: names of the quantities superposed together.
    """

    temperatures_k: np.ndarray
    reference_temperature_k: float
    log10_aT: np.ndarray
    log10_aT_std: np.ndarray
    log10_aT_cov: np.ndarray
    log10_bT: np.ndarray
    log10_bT_std: np.ndarray
    pair_shift: np.ndarray
    pair_shift_std: np.ndarray
    pair_vshift: np.ndarray
    pair_chi2: np.ndarray
    pair_dof: np.ndarray
    quantities: tuple


def _combine(edges, values, variances, m):
    """Absolute values (first = 0) from relative ones by generalised least squares.

    Args:
        edges: ``[e, 2]`` pairs ``(i, j)``; each value estimates ``x_j - x_i``.
        values: ``[e]`` the estimates.
        variances: ``[e]`` their variances.
        m: number of curves.

    Returns:
        ``(x [m], cov [m, m], chi2)``: ``x_0 = 0`` with zero variance, and the
        weighted residual sum of squares (0 when ``e = m - 1``).
    """
    design = np.zeros((len(edges), m))
    for row, (i, j) in enumerate(edges):
        design[row, i], design[row, j] = -1.0, 1.0
    design = design[:, 1:]
    weight = 1.0 / np.asarray(variances)
    cov = np.linalg.inv(design.T @ (weight[:, None] * design))
    x = cov @ design.T @ (weight * values)
    resid = values - design @ x
    full = np.zeros((m, m))
    full[1:, 1:] = cov
    return np.concatenate([[0.0], x]), full, float(np.sum(weight * resid**2))


def shift_factors(
    data: TTSPData,
    reference_temperature_k: float,
    *,
    quantities=None,
    vertical: bool = False,
    seed: int = 0,
    models=None,
) -> ShiftFactors:
    """Shift factors log10 aT (and log10 bT) of every isotherm, with uncertainty.

    Args:
        data: the table.
        reference_temperature_k: where ``aT = bT = 1``, K; a measured
            temperature or one between them (then interpolated linearly in
            1/T between the two nearest isotherms).
        quantities: names superposed together (default: every quantity of the
            table except ``tan_delta`` when moduli are present).
        vertical: also fit vertical shifts bT.
        seed: seed of the GP hyperparameter restarts.
        models: precomputed ``{name: [CurveModel per temperature]}`` (from
            :func:`curve_models`), to reuse GP fits.

    Returns:
        the :class:`ShiftFactors`.

    Raises:
        TTSPDataError: reference outside the measured range, unknown quantity,
            or a pair without a proper optimum.
    """
    temps = data.temperatures_k()
    t_ref = float(reference_temperature_k)
    if not temps[0] <= t_ref <= temps[-1]:
        raise TTSPDataError(
            f"reference temperature {t_ref} K is outside the measured range "
            f"{temps[0]}–{temps[-1]} K; choose one inside it (shift factors "
            "beyond it come from the WLF/Arrhenius fits)"
        )
    if quantities is None:
        quantities = default_quantities(data)
    quantities = tuple(quantities)
    if models is None:
        models = curve_models(data, quantities, seed=seed)
    m = temps.size
    npar = 2 if vertical else 1
    params = np.zeros((m - 1, npar))
    covs = np.zeros((m - 1, npar, npar))
    chi2 = np.zeros(m - 1)
    dof = np.zeros(m - 1)
    for k in range(m - 1):
        pairs = [(models[q][k], models[q][k + 1]) for q in quantities]
        params[k], covs[k], chi2[k], dof[k] = pairwise_shift(pairs, vertical=vertical)
    edges = [(k, k + 1) for k in range(m - 1)]
    values, variances = params, np.array([np.diag(c) for c in covs])
    a, a_cov, _ = _combine(edges, values[:, 0], variances[:, 0], m)
    if vertical:
        b, b_cov, _ = _combine(edges, values[:, 1], variances[:, 1], m)
    else:
        b, b_cov = np.zeros(m), np.zeros((m, m))
    # reference: the isotherm itself, or interpolated linearly in 1/T between
    # the two isotherms around it
    ref = int(np.clip(np.searchsorted(temps, t_ref, side="right") - 1, 0, m - 2))
    w = (1 / temps[ref] - 1 / t_ref) / (1 / temps[ref] - 1 / temps[ref + 1])
    e = np.zeros(m)
    e[ref] = 1.0 - w
    e[ref + 1] = w
    shift = np.eye(m) - e[None, :]  # x - (1-w) x_ref - w x_{ref+1}
    a, a_cov = shift @ a, shift @ a_cov @ shift.T
    b, b_cov = shift @ b, shift @ b_cov @ shift.T
    return ShiftFactors(
        temperatures_k=temps,
        reference_temperature_k=t_ref,
        log10_aT=a,
        log10_aT_std=np.sqrt(np.maximum(np.diag(a_cov), 0.0)),
        log10_aT_cov=a_cov,
        log10_bT=b,
        log10_bT_std=np.sqrt(np.maximum(np.diag(b_cov), 0.0)),
        pair_shift=params[:, 0],
        pair_shift_std=np.sqrt(covs[:, 0, 0]),
        pair_vshift=params[:, 1] if vertical else np.zeros(m - 1),
        pair_chi2=chi2,
        pair_dof=dof,
        quantities=quantities,
    )


def default_quantities(data: TTSPData) -> tuple:
    """Quantities superposed by default: the moduli (G′, G″) if present, else all."""
    moduli = tuple(q for q in data.quantities if q != "tan_delta")
    return moduli or tuple(data.quantities)


def curve_models(data: TTSPData, quantities, *, seed: int = 0) -> dict:
    """GP models of every isotherm of every quantity.

    Args:
        data: the table.
        quantities: names of the quantities.
        seed: seed of the hyperparameter restarts.

    Returns:
        ``{name: [CurveModel, …]}`` ordered by ascending temperature.
    """
    temps = data.temperatures_k()
    return {
        q: [curve_model(*data.log_curve(q, t), seed=seed) for t in temps]
        for q in quantities
    }


def master_curve(data: TTSPData, shifts: ShiftFactors, name: str):
    """Every point of one quantity moved onto the master curve.

    Args:
        data: the table.
        shifts: its shift factors.
        name: the quantity.

    Returns:
        ``(x [n], y [n], temperature_k [n])``: reduced log10 rate
        (``log10 ω aT`` or ``-log10 t/aT``), log10 of ``bT ·`` quantity, and the
        temperature of each point.
    """
    xs, ys, ts = [], [], []
    for k, t in enumerate(shifts.temperatures_k):
        x, y = data.log_curve(name, t)
        xs.append(x + shifts.log10_aT[k])
        ys.append(y + shifts.log10_bT[k])
        ts.append(np.full(x.size, t))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)
