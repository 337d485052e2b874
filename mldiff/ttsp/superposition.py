"""Automatic time–temperature superposition: shift factors with uncertainty (JAX).

Each isotherm is modelled by its own Gaussian process in log–log coordinates
(``y = log10 quantity`` against ``x = log10 ω``, or ``-log10 t``), with a smooth
(RBF) + linear trend + learned white-noise kernel. For each pair of
neighbouring temperatures ``Tᵢ < Tⱼ`` the relative shift
``s = log10 aTⱼ - log10 aTᵢ`` (and optionally ``v = log10 bTⱼ - log10 bTᵢ``)
maximises the likelihood of each curve's points, shifted, under the other
curve's GP posterior mean, with the two curves' learned noise variances
``σ² = σᵢ² + σⱼ²``:

    NLL(s, v) = ½ n̄ · Σ w z² / Σ w,   z = (y + v - μ_other(x + s)) / σ,

over both directions and every quantity superposed together (e.g. G′ and G″).
The weights ``w`` are a smooth window (edge width :data:`EDGE_WIDTH`) selecting
points that land inside the other curve's measured range: GP extrapolation
would bias the shift, and a mean (rather than a sum) neither rewards nor
penalises overlap. ``n̄`` is the number of overlapping points held fixed
(``stop_gradient``), so near the optimum the Hessian is that of ``½ Σ z²``. The
objective is multimodal, so ``s`` is first chosen on a grid spanning every
shift with at least :data:`MIN_OVERLAP` decades of overlap (``v`` profiled out
in closed form), then refined by damped Newton steps with ``jax.grad`` /
``jax.hessian``. The pair's covariance is the inverse Hessian at the minimum;
as ``σᵢ² + σⱼ²`` exceeds the true residual variance, it errs on the large side.
Pairwise shifts are chained to the reference temperature, variances adding
along the chain (pairs treated as independent).

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

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff.gp import ExactGP, fit, fit_hyperparameters, kernels, predict
from mldiff.ttsp.data import TTSPData, TTSPDataError

__all__ = [
    "CURVE_KERNEL",
    "ShiftFactors",
    "CurveModel",
    "curve_model",
    "pair_objective",
    "pairwise_shift",
    "overlap_misfit",
    "noise_variance",
    "curve_models",
    "default_quantities",
    "shift_factors",
    "master_curve",
]

#: kernel of the per-isotherm GPs: smooth curve in log–log space + learned noise
CURVE_KERNEL = kernels.rbf(1.0) + kernels.linear(1.0, 1.0) + kernels.white(1e-2)

#: grid points of the global search over the relative shift
GRID_SIZE = 161
#: minimum overlap (decades of x) a shift must leave between two curves
MIN_OVERLAP = 0.5
#: width of the smooth edge of the overlap window, decades of x
EDGE_WIDTH = 0.05
#: smallest noise variance of a curve, (log10 unit)² (0.1 % relative ≈ 4e-4 dex)
NOISE_FLOOR = 1e-7
#: damped Newton refinement steps
NEWTON_STEPS = 25


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
        pair_dof: ``[m-1]`` (smoothly weighted) number of those points.
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
        >>> x = np.linspace(-1.0, 2.0, 31)
        >>> m = curve_model(x, 0.5 * x + 6.0)
        >>> mean, _ = predict(CURVE_KERNEL, m.gp, np.array([[0.55]]))
        >>> round(float(mean[0]), 3)
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


def _overlap_weight(xs, curve):
    """Smooth indicator ``[p]`` of ``xs`` lying inside ``curve``'s x range."""
    lo, hi = jnp.min(curve.x), jnp.max(curve.x)
    return jax.nn.sigmoid((xs - lo) / EDGE_WIDTH) * jax.nn.sigmoid(
        (hi - xs) / EDGE_WIDTH
    )


def noise_variance(curve: CurveModel) -> Float[Array, ""]:
    """Learned white-noise variance of a curve's GP, (log10 unit)², floored.

    The floor :data:`NOISE_FLOOR` keeps noise-free data well conditioned.
    """
    learned = jnp.exp(curve.gp.hyper[1]["log_variance"]) * curve.gp.scale**2
    return jnp.maximum(learned, NOISE_FLOOR)


def _directions(s, v, pairs, kernel):
    """Yield ``(weight, residual, variance, sign of v)`` of shifted points.

    Both directions of each pair: curve j's points under curve i's GP, and
    curve i's points under curve j's GP.
    """
    for ci, cj in pairs:
        noise = noise_variance(ci) + noise_variance(cj)
        for model, xs, ys, sign in (
            (ci, cj.x + s, cj.y + v, 1.0),
            (cj, ci.x - s, ci.y - v, -1.0),
        ):
            mean = predict(kernel, model.gp, xs[:, None])[0]
            yield _overlap_weight(xs, model), ys - mean, noise, sign


def pair_objective(params, pairs, kernel=CURVE_KERNEL):
    """Overlap misfit of a relative shift between two isotherms (NLL, nats).

    Only points that land inside the other curve's measured range count (a
    smooth window of width :data:`EDGE_WIDTH`); GP extrapolation beyond the
    data would otherwise bias the shift. The weighted mean of the squared
    standardised residuals is scaled by the (gradient-free) number of
    overlapping points, so that near the optimum the value and its Hessian are
    those of the Gaussian negative log-likelihood ``½ Σ z²`` of the overlap.

    Args:
        params: ``[1]`` (``s``) or ``[2]`` (``s, v``), log10 units.
        pairs: sequence of ``(curve_i, curve_j)`` :class:`CurveModel` pairs, one
            per quantity superposed together (``Tᵢ < Tⱼ``).
        kernel: the curves' kernel.

    Returns:
        scalar, nats (up to a constant).

    Example:
        >>> x = np.linspace(0.0, 3.0, 31)
        >>> a, b = curve_model(x, np.sin(x)), curve_model(x, np.sin(x + 0.5))
        >>> f = lambda s: pair_objective(jnp.array([s]), [(a, b)])
        >>> bool(f(0.5) < f(0.3) and f(0.5) < f(0.7))
        True
    """
    s = params[0]
    v = params[1] if params.shape[0] > 1 else 0.0
    wz2, wsum = 0.0, 0.0
    for w, r, var, _ in _directions(s, v, pairs, kernel):
        wz2 = wz2 + jnp.sum(w * r**2) / var
        wsum = wsum + jnp.sum(w)
    return 0.5 * wz2 * jax.lax.stop_gradient(wsum) / wsum


def _profiled_v(s, pairs, kernel):
    """Closed-form best vertical shift at horizontal shift ``s`` (weighted mean)."""
    num, den = 0.0, 0.0
    for w, r, var, sign in _directions(s, 0.0, pairs, kernel):
        num = num - sign * jnp.sum(w * r) / var
        den = den + jnp.sum(w) / var
    return num / den


@functools.partial(jax.jit, static_argnames=("vertical", "kernel"))
def _optimise_pair(pairs, lo, hi, vertical, kernel):
    grid = jnp.linspace(lo, hi, GRID_SIZE)
    step = grid[1] - grid[0]

    def params_at(s):
        if vertical:
            return jnp.stack([s, _profiled_v(s, pairs, kernel)])
        return jnp.stack([s])

    def objective(p):
        return pair_objective(p, pairs, kernel)

    values = jax.vmap(lambda s: objective(params_at(s)))(grid)
    p0 = params_at(grid[jnp.argmin(values)])
    grad = jax.grad(objective)
    hess = jax.hessian(objective)

    def newton(_, p):
        g, h = grad(p), hess(p)
        eig = jnp.linalg.eigvalsh(h)
        ok = jnp.all(eig > 0)
        scale = jnp.maximum(jnp.abs(eig[-1]), 1.0)
        h_safe = jnp.where(ok, h, jnp.eye(p.shape[0], dtype=h.dtype) * scale)
        dp = -jnp.linalg.solve(h_safe, g)
        dp = dp.at[0].set(jnp.clip(dp[0], -step, step))  # stay in the grid's basin
        f0 = objective(p)
        full, half = objective(p + dp) <= f0, objective(p + 0.5 * dp) <= f0
        return jnp.where(full, p + dp, jnp.where(half, p + 0.5 * dp, p))

    p = jax.lax.fori_loop(0, NEWTON_STEPS, newton, p0)
    h = hess(p)
    cov = jnp.linalg.inv(h)
    return p, cov, jnp.all(jnp.linalg.eigvalsh(h) > 0)


def overlap_misfit(p, pairs, kernel=CURVE_KERNEL):
    """Overlap-weighted misfit of two curves at a given relative shift.

    Args:
        p: ``[1]`` (``s``) or ``[2]`` (``s, v``), log10 units.
        pairs: ``(curve_i, curve_j)`` :class:`CurveModel` pairs.
        kernel: the curves' kernel.

    Returns:
        ``(chi2, n)``: Σ w z² over shifted points, ``z`` the residual from the
        other curve's GP mean over the two curves' summed noise std, ``w`` the
        overlap window; and the (weighted) number ``n = Σ w`` of those points.
        Under TTSP, ``chi2`` is at most χ²-distributed with ``n`` degrees of
        freedom (the summed noise overestimates the residual variance).
    """
    s = p[0]
    v = p[1] if p.shape[0] > 1 else 0.0
    chi2, n = 0.0, 0.0
    for w, r, var, _ in _directions(s, v, pairs, kernel):
        chi2 += float(jnp.sum(w * r**2) / var)
        n += float(jnp.sum(w))
    return chi2, n


def pairwise_shift(pairs, *, vertical: bool = False, kernel=CURVE_KERNEL):
    """Optimal relative shift of two neighbouring isotherms and its covariance.

    Args:
        pairs: ``(curve_i, curve_j)`` :class:`CurveModel` pairs, one per quantity
            (``Tᵢ < Tⱼ``).
        vertical: also fit the relative vertical shift ``v``.
        kernel: the curves' kernel.

    Returns:
        ``(params [1|2], cov [1|2, 1|2], chi2, dof)``: ``s`` (and ``v``) in
        log10 units, their covariance from the inverse Hessian, and the misfit
        of the overlapping points (see :class:`ShiftFactors`).

    Raises:
        TTSPDataError: the objective has no proper minimum (flat or concave),
            e.g. featureless curves whose shift is not identifiable.
    """
    xi = np.concatenate([np.asarray(ci.x) for ci, _ in pairs])
    xj = np.concatenate([np.asarray(cj.x) for _, cj in pairs])
    lo = xi.min() - xj.max() + MIN_OVERLAP
    hi = xi.max() - xj.min() - MIN_OVERLAP
    if not lo < hi:
        lo, hi = xi.min() - xj.max(), xi.max() - xj.min()
    p, cov, ok = _optimise_pair(tuple(pairs), lo, hi, vertical, kernel)
    if not bool(ok):
        raise TTSPDataError(
            f"the superposition objective has no proper minimum near shift "
            f"{float(p[0]):.3f} decades (flat or concave: the curves have too "
            "little shape to fix a shift); measure a wider window or closer "
            "temperatures"
        )
    chi2, dof = overlap_misfit(p, pairs, kernel)
    return np.asarray(p), np.asarray(cov), chi2, dof


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
