"""Diagnostics of thermorheological simplicity: does TTSP hold for these data?

Three tests, each a χ² statistic compared with the :data:`QUANTILE` quantile
of its χ² distribution under the hypothesis that TTSP holds (so a simple
material fails a test by chance with probability 1 - QUANTILE):

1. ``shift_agreement`` — G′ and G″ superposed separately must give the same
   neighbour shifts: ``z = (s′ - s″) / √(σ′² + σ″²)`` per pair, statistic
   ``Σ z²`` with one degree of freedom per pair. Different relaxation processes
   dominate G′ and G″ differently, so a complex material shifts them apart.
2. ``van_gurp_palmen`` — the phase angle ``δ = atan(G″/G′)`` against
   ``log10 |G*|`` needs no shift at all under TTSP, so neighbouring isotherms
   must lie on one curve: Σ z² of each isotherm's points that fall in its
   neighbour's |G*| range, standardised by the two curves' noise (learned by
   their GPs), against the number of those points.
3. ``overlap_misfit`` — after the joint shift, the overlapping points of
   neighbours must agree to within noise: the same Σ z² on the master curve.

The verdict ``ttsp_holds`` is True only if every applicable test passes; the
reasons name each failed test with its statistic and threshold.

References:
    M. van Gurp and J. Palmen, Rheol. Bull. 67, 5 (1998); J. Dealy and D.
    Plazek, Rheol. Bull. 78, 16 (2009) ("Time-temperature superposition — a
    users guide").

Example:
    >>> from mldiff.ttsp.data import wlf_maxwell_data
    >>> d = wlf_maxwell_data(n_temperatures=4)
    >>> report = diagnose(d, 373.0)
    >>> report["ttsp_holds"], sorted(report["tests"])
    (True, ['overlap_misfit', 'shift_agreement', 'van_gurp_palmen'])
"""

import numpy as np
from scipy import stats

from mldiff.ttsp import superposition
from mldiff.ttsp.data import TTSPData

__all__ = ["QUANTILE", "diagnose", "van_gurp_palmen", "shift_agreement"]

#: quantile of the χ² distribution used as each test's threshold
QUANTILE = 0.999


def _test(statistic, dof, description, **extra) -> dict:
    threshold = float(stats.chi2.ppf(QUANTILE, dof))
    return {
        "statistic": float(statistic),
        "dof": float(dof),
        "threshold": threshold,
        "quantile": QUANTILE,
        "passed": bool(statistic <= threshold),
        "description": description,
        **extra,
    }


def van_gurp_palmen(data: TTSPData):
    """Van Gurp–Palmen coordinates of every isotherm.

    Args:
        data: a table with storage and loss moduli.

    Returns:
        list of ``(temperature_k, log10 |G*| [p] (Pa), δ [p] (degrees))``.

    Example:
        >>> from mldiff.ttsp.data import wlf_maxwell_data
        >>> t, g, delta = van_gurp_palmen(wlf_maxwell_data(noise=0.0))[0]
        >>> bool(0.0 < delta.min() and delta.max() < 90.0)
        True
    """
    out = []
    for t in data.temperatures_k():
        _, ls = data.log_curve("storage_modulus_pa", t)
        _, ll = data.log_curve("loss_modulus_pa", t)
        g_abs = 0.5 * np.log10(10 ** (2 * ls) + 10 ** (2 * ll))
        delta = np.degrees(np.arctan2(10**ll, 10**ls))
        order = np.argsort(g_abs)
        out.append((float(t), g_abs[order], delta[order]))
    return out


def shift_agreement(models: dict, names=("storage_modulus_pa", "loss_modulus_pa")):
    """Neighbour shifts from two quantities separately, and their z-scores.

    Args:
        models: ``{name: [CurveModel per temperature]}``.
        names: the two quantities compared.

    Returns:
        ``(s_a [m-1], σ_a [m-1], s_b [m-1], σ_b [m-1], z [m-1])``, log10 units.
    """
    out = []
    for name in names:
        curves = models[name]
        pairs = [
            superposition.pairwise_shift([(a, b)])
            for a, b in zip(curves, curves[1:], strict=False)
        ]
        out.append(np.array([p[0][0] for p in pairs]))
        out.append(np.sqrt(np.array([p[1][0, 0] for p in pairs])))
    sa, ea, sb, eb = out
    return sa, ea, sb, eb, (sa - sb) / np.hypot(ea, eb)


def diagnose(
    data: TTSPData,
    reference_temperature_k: float,
    *,
    shifts=None,
    models=None,
    seed: int = 0,
) -> dict:
    """Run every applicable test and give a verdict with its evidence.

    Args:
        data: the table.
        reference_temperature_k: reference of the joint shift factors, K.
        shifts: the joint :class:`~mldiff.ttsp.superposition.ShiftFactors`
            (computed if None).
        models: precomputed curve GPs ``{name: [CurveModel, …]}``.
        seed: seed of the GP restarts.

    Returns:
        dict: ``ttsp_holds`` (bool), ``reasons`` (list of str), ``tests``
        ``{name: {statistic, dof, threshold, quantile, passed, description, …}}``.
    """
    quantities = superposition.default_quantities(data)
    if models is None:
        models = superposition.curve_models(data, quantities, seed=seed)
    if shifts is None:
        shifts = superposition.shift_factors(
            data, reference_temperature_k, quantities=quantities, models=models
        )
    temps = shifts.temperatures_k
    tests = {}
    if data.dynamic():
        sa, ea, sb, eb, z = shift_agreement(models)
        tests["shift_agreement"] = _test(
            float(np.sum(z**2)),
            z.size,
            "neighbour shifts from G' and G'' alone agree within their "
            "uncertainty (sum of z^2, one per pair)",
            pairs_k=[
                [float(a), float(b)] for a, b in zip(temps, temps[1:], strict=False)
            ],
            z=z.tolist(),
            storage_log10_shift=sa.tolist(),
            loss_log10_shift=sb.tolist(),
        )
        vgp = [
            superposition.curve_model(g, d, seed=seed)
            for _, g, d in van_gurp_palmen(data)
        ]
        chi2, dof = 0.0, 0.0
        for a, b in zip(vgp, vgp[1:], strict=False):
            c, n = superposition.overlap_misfit(
                np.zeros(1), [(a, b)], superposition.CURVE_KERNEL
            )
            chi2, dof = chi2 + c, dof + n
        if dof >= 1.0:
            tests["van_gurp_palmen"] = _test(
                chi2,
                dof,
                "phase angle vs log|G*| of neighbouring isotherms lies on one "
                "curve within noise (sum of z^2 over overlapping points)",
            )
    tests["overlap_misfit"] = _test(
        float(np.sum(shifts.pair_chi2)),
        float(np.sum(shifts.pair_dof)),
        "after the joint shift, overlapping points of neighbours agree within "
        "noise (sum of z^2 over overlapping points)",
        per_pair_reduced_chi2=(
            shifts.pair_chi2 / np.maximum(shifts.pair_dof, 1e-12)
        ).tolist(),
    )
    reasons = [
        f"{name} fails: statistic {t['statistic']:.4g} > threshold "
        f"{t['threshold']:.4g} ({t['description']})"
        for name, t in tests.items()
        if not t["passed"]
    ]
    return {"ttsp_holds": not reasons, "reasons": reasons, "tests": tests}
