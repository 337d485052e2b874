"""Shift-factor models: WLF and Arrhenius fits with parameter uncertainty.

Both are fitted by generalised least squares to ``log10 aT(T)`` with the full
covariance of the shift factors (chained shifts are correlated) plus a small
floor :data:`FLOOR` on the diagonal (the reference itself has zero variance).
Parameter covariances come from the Jacobian, ``(Jᵀ C⁻¹ J)⁻¹``.

"Where each holds": a model holds over a temperature window if its reduced χ²
there is consistent with the stated uncertainties (χ² below the 99 % quantile
for its degrees of freedom). The widest contiguous window of at least
:data:`MIN_WINDOW` temperatures that passes is reported (the whole range when
the model fits everywhere).

Example:
    >>> t = np.array([368.0, 373.0, 378.0, 383.0, 388.0])
    >>> fit = fit_wlf(t, wlf(17.44, 51.6, 373.0)(t), 0.01 * np.eye(5), 373.0)
    >>> round(fit["c1"], 2), round(fit["c2"], 1)
    (17.44, 51.6)
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from mldiff.ttsp.data import GAS_CONSTANT_J_MOL_K, TTSPDataError

__all__ = ["wlf", "arrhenius", "fit_wlf", "fit_arrhenius", "FLOOR"]

#: standard deviation added to every log10 aT before fitting (decades)
FLOOR = 0.005
#: smallest temperature window over which a model's validity is judged
MIN_WINDOW = 4
#: quantile of χ² below which a fit is accepted
ACCEPT_QUANTILE = 0.99


def wlf(c1, c2, t_ref_k: float):
    """WLF shift function ``T -> log10 aT = -C1 (T - Tref) / (C2 + T - Tref)``.

    Args:
        c1: dimensionless.
        c2: K.
        t_ref_k: reference temperature, K.

    Returns:
        a pure function of temperature (K, any shape) giving log10 aT.

    References:
        M. L. Williams, R. F. Landel and J. D. Ferry, J. Am. Chem. Soc. 77,
        3701 (1955).

    Example:
        >>> round(float(wlf(17.44, 51.6, 373.0)(383.0)), 4)
        -2.8312
    """

    def shift_fn(temperature_k):
        d = temperature_k - t_ref_k
        return -c1 * d / (c2 + d)

    return shift_fn


def arrhenius(activation_energy_kj_mol, t_ref_k: float):
    """Arrhenius shift function ``T -> Ea / (R ln 10) · (1/T - 1/Tref)``.

    Args:
        activation_energy_kj_mol: Ea, kJ/mol.
        t_ref_k: reference temperature, K.

    Returns:
        a pure function of temperature (K) giving log10 aT.

    Example:
        >>> round(float(arrhenius(100.0, 300.0)(310.0)), 4)
        -0.5617
    """
    k = 1e3 / (GAS_CONSTANT_J_MOL_K * math.log(10.0))

    def shift_fn(temperature_k):
        return activation_energy_kj_mol * k * (1.0 / temperature_k - 1.0 / t_ref_k)

    return shift_fn


def _covariance(cov, n):
    c = np.zeros((n, n)) if cov is None else np.asarray(cov, dtype=np.float64)
    if c.ndim == 1:
        c = np.diag(c**2)  # standard deviations given
    return c + FLOOR**2 * np.eye(n)


def _gls(model, p0, t, y, c, steps=50):
    """Gauss–Newton (Levenberg-damped) GLS fit of ``model(p, t)`` to ``y``."""
    w = np.linalg.inv(c)
    jac = jax.jacfwd(lambda p: model(p, jnp.asarray(t)))  # tiny: no jit
    f = lambda p: model(p, jnp.asarray(t))  # noqa: E731
    p, lam = np.asarray(p0, dtype=np.float64), 1e-3

    def chi2(p):
        r = y - np.asarray(f(p))
        return float(r @ w @ r)

    current = chi2(p)
    for _ in range(steps):
        j = np.asarray(jac(p))
        r = y - np.asarray(f(p))
        a = j.T @ w @ j
        step = np.linalg.solve(a + lam * np.diag(np.diag(a)), j.T @ w @ r)
        trial = chi2(p + step)
        if np.isfinite(trial) and trial <= current:
            p, lam = p + step, lam / 3
            if current - trial < 1e-12 * max(current, 1.0):
                current = trial
                break
            current = trial
        else:
            lam *= 10
    j = np.asarray(jac(p))
    return p, np.linalg.inv(j.T @ w @ j), current


def _acceptable(chi2, dof):
    return dof <= 0 or chi2 <= stats.chi2.ppf(ACCEPT_QUANTILE, dof)


def _window(fit_fn, t, y, c, n_params):
    """Widest contiguous temperature window where ``fit_fn`` is acceptable."""
    n = t.size
    for width in range(n, max(MIN_WINDOW, n_params + 2) - 1, -1):
        best = None
        for i in range(n - width + 1):
            sl = slice(i, i + width)
            try:
                chi2 = fit_fn(t[sl], y[sl], c[sl, sl])
            except (np.linalg.LinAlgError, TTSPDataError):
                continue
            if _acceptable(chi2, width - n_params) and (best is None or chi2 < best[0]):
                best = (chi2, [float(t[sl][0]), float(t[sl][-1])])
        if best is not None:
            return best[1]
    return None


def _summary(chi2, n, n_params, t, window):
    dof = n - n_params
    return {
        "chi2": float(chi2),
        "dof": int(dof),
        "reduced_chi2": float(chi2 / dof) if dof > 0 else float("nan"),
        "chi2_threshold": float(stats.chi2.ppf(ACCEPT_QUANTILE, dof))
        if dof > 0
        else None,
        "holds_over_data": bool(_acceptable(chi2, dof)),
        "data_range_k": [float(t.min()), float(t.max())],
        "valid_range_k": window,
    }


def _wlf_model(t_ref):
    def model(p, t):
        return wlf(p[0], p[1], t_ref)(t)

    return model


def _wlf_start(t, y, t_ref):
    """Linearised WLF: (T - Tref) / log aT = -C2/C1 - (T - Tref)/C1."""
    d = t - t_ref
    keep = np.abs(y) > 1e-3
    if keep.sum() >= 2:
        slope, intercept = np.polyfit(d[keep], d[keep] / y[keep], 1)
        c1 = -1.0 / slope
        c2 = intercept * -c1
        if np.isfinite(c1) and np.isfinite(c2) and c1 > 0 and c2 > 0:
            return np.array([c1, c2])
    return np.array([17.44, 51.6])


def fit_wlf(temperature_k, log10_aT, cov, t_ref_k: float) -> dict:
    """Fit WLF constants C1, C2 to shift factors.

    Args:
        temperature_k: ``[m]`` temperatures, K.
        log10_aT: ``[m]`` shift factors relative to ``t_ref_k``.
        cov: ``[m, m]`` their covariance, or ``[m]`` standard deviations, or
            None (then only :data:`FLOOR`).
        t_ref_k: the reference temperature of the shift factors, K.

    Returns:
        dict: ``c1``, ``c1_std`` (dimensionless), ``c2``, ``c2_std`` (K),
        ``t_ref_k``, ``c1_c2_correlation``, and the fit quality (``chi2``,
        ``dof``, ``reduced_chi2``, ``chi2_threshold``, ``holds_over_data``,
        ``data_range_k``, ``valid_range_k``).

    Raises:
        TTSPDataError: fewer than 3 temperatures.
    """
    t = np.asarray(temperature_k, dtype=np.float64)
    y = np.asarray(log10_aT, dtype=np.float64)
    if t.size < 3:
        raise TTSPDataError(f"a WLF fit needs at least 3 temperatures, got {t.size}")
    c = _covariance(cov, t.size)
    model = _wlf_model(t_ref_k)
    p, pcov, chi2 = _gls(model, _wlf_start(t, y, t_ref_k), t, y, c)

    def window_fit(tw, yw, cw):
        return _gls(model, p, tw, yw, cw)[2]

    std = np.sqrt(np.diag(pcov))
    return {
        "c1": float(p[0]),
        "c1_std": float(std[0]),
        "c2": float(p[1]),
        "c2_std": float(std[1]),
        "c1_c2_correlation": float(pcov[0, 1] / (std[0] * std[1])),
        "t_ref_k": float(t_ref_k),
        **_summary(chi2, t.size, 2, t, _window(window_fit, t, y, c, 2)),
    }


def fit_arrhenius(temperature_k, log10_aT, cov, t_ref_k: float) -> dict:
    """Fit an Arrhenius activation energy to shift factors (linear GLS).

    Args:
        temperature_k: ``[m]`` temperatures, K.
        log10_aT: ``[m]`` shift factors relative to ``t_ref_k``.
        cov: ``[m, m]`` covariance, ``[m]`` standard deviations, or None.
        t_ref_k: reference temperature, K.

    Returns:
        dict: ``activation_energy_kj_mol``, ``activation_energy_std_kj_mol``,
        ``t_ref_k`` and the fit quality (as :func:`fit_wlf`).

    Example:
        >>> t = np.array([300.0, 310.0, 320.0, 330.0])
        >>> y = arrhenius(80.0, 300.0)(t)
        >>> round(fit_arrhenius(t, y, None, 300.0)["activation_energy_kj_mol"], 3)
        80.0
    """
    t = np.asarray(temperature_k, dtype=np.float64)
    y = np.asarray(log10_aT, dtype=np.float64)
    if t.size < 2:
        raise TTSPDataError(
            f"an Arrhenius fit needs at least 2 temperatures, got {t.size}"
        )
    c = _covariance(cov, t.size)

    def solve(tw, yw, cw):
        x = arrhenius(1.0, t_ref_k)(tw)
        w = np.linalg.inv(cw)
        var = 1.0 / (x @ w @ x)
        ea = var * (x @ w @ yw)
        r = yw - ea * x
        return ea, var, float(r @ w @ r)

    ea, var, chi2 = solve(t, y, c)
    return {
        "activation_energy_kj_mol": float(ea),
        "activation_energy_std_kj_mol": float(np.sqrt(var)),
        "t_ref_k": float(t_ref_k),
        **_summary(chi2, t.size, 1, t, _window(lambda *a: solve(*a)[2], t, y, c, 1)),
    }
