"""Relative shift of two neighbouring isotherms: global search, identifiability, error.

For isotherms ``Tᵢ < Tⱼ`` (one :class:`~mldiff.ttsp.curves.CurveModel` per
quantity superposed together, e.g. G′ and G″) the relative shift
``s = log10 aTⱼ - log10 aTᵢ`` (and optionally ``v = log10 bTⱼ - log10 bTᵢ``)
maximises the likelihood of each curve's points, shifted, under the other
curve's GP posterior mean, with the two curves' learned noise variances
``σ² = σᵢ² + σⱼ²``:

    NLL(s, v) = ½ n̄ · Σ w z² / Σ w,   z = (y + v - μ_other(x + s)) / σ,

over both directions and every quantity. The weights ``w`` are a C² window
(:func:`~mldiff.ttsp.curves.overlap_weight`) selecting points that land
inside the other curve's measured range: GP extrapolation would bias the
shift. ``n̄`` is the number of overlapping points held fixed
(``stop_gradient``), so near the optimum the Hessian is that of ``½ Σ z²``.

The objective is multimodal, and its value must be compared between shifts
with different overlaps, so the search (:func:`search_pair_shift`) ranks
shifts by the mean ``Σ w z² / Σ w`` (a sum would reward the smallest overlap):
a grid over every shift with at least :data:`MIN_OVERLAP` decades of overlap
(``v`` profiled out in closed form), then damped Newton steps (``jax.grad`` /
``jax.hessian``) from its lowest local minima and from an optional start (the
joint shift, when one quantity is superposed alone). The likelihood-ratio set
around the optimum tells whether the shift is identifiable: another minimum
inside it, or a set reaching the window's edge, means it is not.

The covariance propagates each curve's learned noise to the optimum
(implicit-function theorem through the GP means), widened to the
likelihood-ratio interval where the objective is flat; the inverse Hessian
alone is about 1.4 times too small, as it treats the GP mean's correlated
errors as independent.

References:
    K. R. Lennon, G. H. McKinley and J. W. Swan, "A data-driven method for
    automated data superposition with applications in soft matter science",
    Data-Centric Engineering 4, e13 (2023); the ``mastercurves`` package.
    S. S. Wilks, Ann. Math. Statist. 9, 60 (1938) (likelihood-ratio
    confidence sets).

Example:
    >>> from mldiff.ttsp.curves import curve_model
    >>> x = np.linspace(0.0, 3.0, 31)
    >>> a, b = curve_model(x, np.sin(x)), curve_model(x, np.sin(x + 0.5))
    >>> params, cov, chi2, dof = pairwise_shift([(a, b)])
    >>> round(float(params[0]), 2)
    0.5
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from mldiff.ttsp.curves import (
    CURVE_KERNEL,
    curve_mean,
    noise_variance,
    overlap_weight,
)
from mldiff.ttsp.data import TTSPDataError

__all__ = [
    "GRID_SIZE",
    "MIN_OVERLAP",
    "NEWTON_STEPS",
    "N_STARTS",
    "QUANTILE",
    "PairShift",
    "pair_objective",
    "overlap_misfit",
    "search_pair_shift",
    "pairwise_shift",
]

#: grid points of the global search over the relative shift
GRID_SIZE = 161
#: minimum overlap (decades of x) a shift must leave between two curves
MIN_OVERLAP = 0.5
#: damped Newton refinement steps
NEWTON_STEPS = 25
#: lowest local minima of the grid refined besides the caller's start
N_STARTS = 4
#: confidence level of the likelihood-ratio set of a shift (see
#: :func:`search_pair_shift`), and of each TTSP diagnostic's χ² threshold
QUANTILE = 0.999


def _directions(s, v, pairs, kernel, ys=None):
    """Yield ``(weight, residual, variance, sign of v)`` of shifted points.

    Both directions of each pair: curve j's points under curve i's GP, and
    curve i's points under curve j's GP. ``ys`` (``[(y_i, y_j)]`` per pair)
    replaces the curves' data, to differentiate with respect to them.
    """
    if ys is None:
        ys = [(ci.y, cj.y) for ci, cj in pairs]
    for (ci, cj), (yi, yj) in zip(pairs, ys, strict=True):
        noise = noise_variance(ci) + noise_variance(cj)
        for model, y_model, xs, ys_other, sign in (
            (ci, yi, cj.x + s, yj + v, 1.0),
            (cj, yj, ci.x - s, yi - v, -1.0),
        ):
            mean = curve_mean(model, xs, kernel, y=y_model)
            w = overlap_weight(xs, jnp.min(model.x), jnp.max(model.x))
            yield w, ys_other - mean, noise, sign


def _sums(p, pairs, kernel, ys=None):
    """``(Σ w z², Σ w)`` over both directions of every pair at ``p = (s[, v])``."""
    s = p[0]
    v = p[1] if p.shape[0] > 1 else 0.0
    wz2, wsum = 0.0, 0.0
    for w, r, var, _ in _directions(s, v, pairs, kernel, ys):
        wz2 = wz2 + jnp.sum(w * r**2) / var
        wsum = wsum + jnp.sum(w)
    return wz2, wsum


def pair_objective(params, pairs, kernel=CURVE_KERNEL):
    """Overlap misfit of a relative shift between two isotherms (NLL, nats).

    Only points that land inside the other curve's measured range count (a C²
    window with ramps of width :data:`~mldiff.ttsp.curves.EDGE_WIDTH`); GP
    extrapolation beyond
    the data would otherwise bias the shift. The weighted mean of the squared
    standardised residuals is scaled by the (gradient-free) number of
    overlapping points, so that near the optimum the value and its Hessian are
    those of the Gaussian negative log-likelihood ``½ Σ z²`` of the overlap.
    The value is therefore ``½ Σ w z²``, which shrinks with the overlap:
    compare shifts by the mean, as :func:`search_pair_shift` does.

    Args:
        params: ``[1]`` (``s``) or ``[2]`` (``s, v``), log10 units.
        pairs: sequence of ``(curve_i, curve_j)``
            :class:`~mldiff.ttsp.curves.CurveModel` pairs, one per quantity
            superposed together (``Tᵢ < Tⱼ``).
        kernel: the curves' kernel.

    Returns:
        scalar, nats (up to a constant).

    Example:
        >>> from mldiff.ttsp.curves import curve_model
        >>> x = np.linspace(0.0, 3.0, 31)
        >>> a, b = curve_model(x, np.sin(x)), curve_model(x, np.sin(x + 0.5))
        >>> f = lambda s: pair_objective(jnp.array([s]), [(a, b)])
        >>> bool(f(0.5) < f(0.3) and f(0.5) < f(0.7))
        True
    """
    wz2, wsum = _sums(params, pairs, kernel)
    return 0.5 * wz2 * jax.lax.stop_gradient(wsum) / wsum


def _profiled_v(s, pairs, kernel):
    """Closed-form best vertical shift at horizontal shift ``s`` (weighted mean)."""
    num, den = 0.0, 0.0
    for w, r, var, sign in _directions(s, 0.0, pairs, kernel):
        num = num - sign * jnp.sum(w * r) / var
        den = den + jnp.sum(w) / var
    return num / den


def _reduced(p, pairs, kernel, ys=None):
    """Mean ``½ Σ w z² / Σ w`` over the overlap: comparable between shifts."""
    wz2, wsum = _sums(p, pairs, kernel, ys)
    return 0.5 * wz2 / wsum


@functools.partial(jax.jit, static_argnames=("vertical", "kernel"))
def _optimise_pair(pairs, lo, hi, start, vertical, kernel):
    """Grid over ``[lo, hi]``, then Newton from several starts (all candidates).

    Returns ``(values [GRID_SIZE], p [c, npar], reduced [c], hessian [c, npar,
    npar])``: the mean misfit on the grid, and the ``c = N_STARTS + 1`` refined
    candidates: the ``N_STARTS`` lowest grid local minima of the mean misfit,
    and ``start`` (NaN: the best grid point).
    """
    grid = jnp.linspace(lo, hi, GRID_SIZE)
    step = grid[1] - grid[0]

    def params_at(s):
        if vertical:
            return jnp.stack([s, _profiled_v(s, pairs, kernel)])
        return jnp.stack([s])

    def objective(p):
        return pair_objective(p, pairs, kernel)

    def reduced(p):
        return _reduced(p, pairs, kernel)

    values = jax.vmap(lambda s: reduced(params_at(s)))(grid)
    # local minima of the mean misfit on the grid (edges compare one side)
    padded = jnp.concatenate([values[:1], values, values[-1:]])
    is_min = (values <= padded[:-2]) & (values <= padded[2:])
    ranked = jnp.argsort(jnp.where(is_min, values, jnp.inf))[:N_STARTS]
    best = jnp.argmin(values)
    ranked = jnp.where(is_min[ranked], ranked, best)
    s_start = jnp.clip(jnp.where(jnp.isnan(start), grid[best], start), lo, hi)
    starts = jnp.concatenate([grid[ranked], s_start[None]])
    grad = jax.grad(objective)
    hess = jax.hessian(objective)

    def newton(_, p):
        g, h = grad(p), hess(p)
        eig = jnp.linalg.eigvalsh(h)
        ok = jnp.all(eig > 0)
        scale = jnp.maximum(jnp.abs(eig[-1]), 1.0)
        h_safe = jnp.where(ok, h, jnp.eye(p.shape[0], dtype=h.dtype) * scale)
        dp = -jnp.linalg.solve(h_safe, g)
        dp = dp.at[0].set(jnp.clip(dp[0], -step, step))  # stay in the basin
        # compare means, not sums: a sum would reward shrinking the overlap
        f0 = reduced(p)
        full, half = reduced(p + dp) <= f0, reduced(p + 0.5 * dp) <= f0
        p = jnp.where(full, p + dp, jnp.where(half, p + 0.5 * dp, p))
        return p.at[0].set(jnp.clip(p[0], lo, hi))

    def refine(s):
        p = jax.lax.fori_loop(0, NEWTON_STEPS, newton, params_at(s))
        return p, reduced(p), hess(p)

    return (values, *jax.vmap(refine)(starts))


@functools.partial(jax.jit, static_argnames=("kernel",))
def _shift_covariance(p, pairs, kernel):
    """Covariance ``[npar, npar]`` of the optimum ``p`` of the mean misfit.

    The covariance propagates each curve's noise (its learned variance,
    independent between points) to the optimum by the implicit-function
    theorem: ``dp/dy = -H⁻¹ ∂²m/∂p∂y``, ``cov = Σ_c σ_c² (dp/dy_c)(dp/dy_c)ᵀ``.
    Unlike the inverse Hessian alone, it counts that a GP mean averages
    neighbouring points (correlated errors) and that both directions of a
    pair reuse the same data.
    """
    ys = [(ci.y, cj.y) for ci, cj in pairs]
    hess = jax.hessian(_reduced)(p, pairs, kernel, ys)
    mixed = jax.jacobian(jax.grad(_reduced), argnums=3)(p, pairs, kernel, ys)
    cov = jnp.zeros_like(hess)
    for (ci, cj), (d_yi, d_yj) in zip(pairs, mixed, strict=True):
        for curve, d_y in ((ci, d_yi), (cj, d_yj)):
            jac = -jnp.linalg.solve(hess, d_y)  # [npar, p]
            cov = cov + noise_variance(curve) * jac @ jac.T
    return cov


def overlap_misfit(p, pairs, kernel=CURVE_KERNEL):
    """Overlap-weighted misfit of two curves at a given relative shift.

    Args:
        p: ``[1]`` (``s``) or ``[2]`` (``s, v``), log10 units.
        pairs: ``(curve_i, curve_j)`` :class:`~mldiff.ttsp.curves.CurveModel`
            pairs.
        kernel: the curves' kernel.

    Returns:
        ``(chi2, n)``: Σ w z² over shifted points, ``z`` the residual from the
        other curve's GP mean over the two curves' summed noise std, ``w`` the
        overlap window; and the (weighted) number ``n = Σ w`` of those points.
        Under TTSP, ``chi2`` is at most χ²-distributed with ``n`` degrees of
        freedom (the summed noise overestimates the residual variance).
    """
    chi2, n = _sums(jnp.asarray(p), pairs, kernel)
    return float(chi2), float(n)


class PairShift(NamedTuple):
    """Global optimum of the relative shift of two isotherms, and whether it is unique.

    Attributes:
        params: ``[1|2]`` ``s`` (and ``v``) at the lowest mean overlap misfit,
            log10 units.
        cov: ``[1|2, 1|2]`` their covariance, log10 units²: the curves' noise
            propagated to the optimum, with the standard deviation of ``s``
            raised to ``interval``'s half-width over ``√χ²₁`` (at
            :data:`QUANTILE`) when that is larger (a flat, noisy objective);
            ``inf`` if the Hessian is not positive definite.
        chi2: Σ w z² of the overlapping points there (see :func:`overlap_misfit`).
        dof: Σ w, the (window-weighted) number of those points.
        interval: ``[2]`` the connected set of shifts around the optimum whose
            misfit is within the :data:`QUANTILE` likelihood-ratio bound,
            log10 units.
        proper: the Hessian is positive definite there (a located minimum).
        at_edge: ``interval`` reaches the edge of the admissible window
            (:data:`MIN_OVERLAP` decades of overlap): the data do not bound the
            shift on that side.
        alternatives: ``[k]`` shifts (log10) of other minima, outside
            ``interval``, within the same likelihood-ratio bound: the objective
            is multimodal.
        identifiable: ``proper``, not ``at_edge`` and no ``alternatives``: the
            data fix one shift.
    """

    params: np.ndarray
    cov: np.ndarray
    chi2: float
    dof: float
    interval: np.ndarray
    proper: bool
    at_edge: bool
    alternatives: np.ndarray
    identifiable: bool


def _shift_window(pairs):
    """``(lo, hi)``: shifts leaving at least :data:`MIN_OVERLAP` decades of overlap."""
    xi = np.concatenate([np.asarray(ci.x) for ci, _ in pairs])
    xj = np.concatenate([np.asarray(cj.x) for _, cj in pairs])
    lo = xi.min() - xj.max() + MIN_OVERLAP
    hi = xi.max() - xj.min() - MIN_OVERLAP
    if not lo < hi:
        lo, hi = xi.min() - xj.max(), xi.max() - xj.min()
    return float(lo), float(hi)


def search_pair_shift(
    pairs, *, vertical: bool = False, start=None, kernel=CURVE_KERNEL
) -> PairShift:
    """Global search for the relative shift of two isotherms, and whether it is unique.

    The mean overlap misfit ``m(s) = ½ Σ w z² / Σ w`` is evaluated on a grid of
    :data:`GRID_SIZE` shifts spanning every shift with at least
    :data:`MIN_OVERLAP` decades of overlap (``v`` profiled out); its
    :data:`N_STARTS` lowest local minima, and ``start`` if given, are refined
    by damped Newton steps, and the refined candidate with the lowest ``m`` is
    the optimum ``s*``. The mean (not the sum, which shrinks with the overlap)
    makes shifts with different overlaps comparable.

    With ``n*`` overlapping points at ``s*``, ``n* (m(s) - m(s*))`` is the
    likelihood ratio of ``s`` against ``s*`` (the same scaling as the
    Hessian), and the shifts where it is at most ``½ χ²₁`` at
    :data:`QUANTILE` form a confidence set. Its connected part around ``s*``
    is ``interval`` (its half-width, over ``√χ²₁``, bounds the standard
    deviation from below); any other part (a grid point or refined minimum
    outside ``interval``) is an ``alternative``, and an ``interval`` that
    reaches the window's edge is not bounded by the data. Either makes the
    shift not identifiable from these quantities, e.g. one featureless
    (plateau) or nearly periodic quantity alone.

    Args:
        pairs: ``(curve_i, curve_j)`` :class:`~mldiff.ttsp.curves.CurveModel`
            pairs, one per quantity superposed together (``Tᵢ < Tⱼ``).
        vertical: also fit the relative vertical shift ``v``.
        start: an extra starting shift (log10), e.g. the joint shift of all
            quantities when superposing one alone.
        kernel: the curves' kernel.

    Returns:
        the :class:`PairShift`.

    References:
        S. S. Wilks, Ann. Math. Statist. 9, 60 (1938) (likelihood-ratio
        confidence sets).

    Example:
        >>> from mldiff.ttsp.curves import curve_model
        >>> x = np.linspace(0.0, 3.0, 31)
        >>> a, b = curve_model(x, np.sin(x)), curve_model(x, np.sin(x + 0.5))
        >>> r = search_pair_shift([(a, b)])
        >>> round(float(r.params[0]), 2), r.identifiable
        (0.5, True)
    """
    lo, hi = _shift_window(pairs)
    s0 = np.nan if start is None else float(start)
    values, p, red, hess = (
        np.asarray(a)
        for a in _optimise_pair(tuple(pairs), lo, hi, s0, vertical, kernel)
    )
    red = np.where(np.isfinite(red), red, np.inf)
    grid = np.linspace(lo, hi, GRID_SIZE)
    step = grid[1] - grid[0]
    pd = np.array([bool(np.all(np.linalg.eigvalsh(h) > 0)) for h in hess])
    pool = np.flatnonzero(pd) if pd.any() else np.arange(red.size)
    best = int(pool[np.argmin(red[pool])])
    s_best = float(p[best, 0])
    chi2, dof = overlap_misfit(p[best], pairs, kernel)
    # likelihood-ratio confidence set, on the grid and the refined minima
    bound = red[best] + 0.5 * stats.chi2.ppf(QUANTILE, 1) / max(dof, 1.0)
    inside = values <= bound
    k = int(np.clip(np.searchsorted(grid, s_best), 0, GRID_SIZE - 1))
    left = right = None
    for j in (k - 1, k):  # grid points next to s* that are inside the set
        if 0 <= j < GRID_SIZE and inside[j]:
            left = j if left is None else left
            right = j
    if left is None:
        interval = np.array([s_best, s_best])
        at_edge = False
    else:
        while left > 0 and inside[left - 1]:
            left -= 1
        while right < GRID_SIZE - 1 and inside[right + 1]:
            right += 1
        interval = np.array([min(grid[left], s_best), max(grid[right], s_best)])
        at_edge = left == 0 or right == GRID_SIZE - 1
    outside = (grid < interval[0] - step) | (grid > interval[1] + step)
    far = inside & outside
    others = list(zip(grid[far], values[far], strict=True))
    others += [
        (p[c, 0], red[c])
        for c in range(red.size)
        if red[c] <= bound and not interval[0] - step <= p[c, 0] <= interval[1] + step
    ]
    runs = []  # runs of nearby shifts, each represented by its lowest misfit
    for shift, value in sorted(others):
        if runs and shift - runs[-1][-1][0] <= 2.0 * step:
            runs[-1].append((shift, value))
        else:
            runs.append([(shift, value)])
    alternatives = [float(min(run, key=lambda sv: sv[1])[0]) for run in runs]
    if pd[best]:
        # noise propagated to the optimum, widened by the profile-likelihood
        # interval where the objective is flatter than its local curvature
        cov = np.asarray(_shift_covariance(jnp.asarray(p[best]), tuple(pairs), kernel))
        half = max(s_best - interval[0], interval[1] - s_best)
        profile = half / np.sqrt(stats.chi2.ppf(QUANTILE, 1))
        scale = np.ones(cov.shape[0])
        scale[0] = max(1.0, profile / np.sqrt(cov[0, 0]))
        cov = cov * scale[:, None] * scale[None, :]
    else:
        cov = np.full_like(hess[best], np.inf)
    return PairShift(
        params=p[best],
        cov=cov,
        chi2=chi2,
        dof=dof,
        interval=interval,
        proper=bool(pd[best]),
        at_edge=bool(at_edge),
        alternatives=np.array(alternatives),
        identifiable=bool(pd[best] and not at_edge and not alternatives),
    )


def pairwise_shift(pairs, *, vertical: bool = False, kernel=CURVE_KERNEL):
    """Optimal relative shift of two neighbouring isotherms and its covariance.

    The global optimum of :func:`search_pair_shift`; superposing several
    quantities together, as :func:`~mldiff.ttsp.superposition.shift_factors`
    does, usually makes it unique.

    Args:
        pairs: ``(curve_i, curve_j)`` :class:`~mldiff.ttsp.curves.CurveModel`
            pairs, one per quantity (``Tᵢ < Tⱼ``).
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
    r = search_pair_shift(pairs, vertical=vertical, kernel=kernel)
    if not r.proper:
        raise TTSPDataError(
            f"the superposition objective has no proper minimum near shift "
            f"{float(r.params[0]):.3f} decades (flat or concave: the curves have "
            "too little shape to fix a shift); measure a wider window or closer "
            "temperatures"
        )
    return r.params, r.cov, r.chi2, r.dof
