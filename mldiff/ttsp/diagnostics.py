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
   must lie on one curve: Σ d² of each point's distance to its neighbour's
   curve, standardised by the two curves' noise (learned by their GPs),
   against the number of overlapping points (:func:`plane_misfit`, in the
   equivalent ``(log G′, log G″)`` plane; the joint shift only selects which
   points overlap).
3. ``overlap_misfit`` — after the joint shift, the overlapping points of
   neighbours must agree to within noise: the same Σ z² on the master curve.

A test fails only on evidence: its statistic exceeds its threshold. A test
the data cannot run is undetermined (``passed`` None): ``shift_agreement``
compares only pairs whose shift G′ and G″ each fix alone (an identifiable
optimum of :func:`~mldiff.ttsp.pairwise.search_pair_shift`: not flat,
multimodal or unbounded), lists the others in ``undetermined_pairs_k``, and is
undetermined if no pair is left; a single-quantity fit that found no unique
optimum is no evidence against TTSP. The verdict ``ttsp_holds`` is False if
any test fails, None ("undetermined") if none fails but one is undetermined,
and True if every applicable test passes; ``reasons`` name each failed test
with its statistic and threshold, and each undetermined test with why.

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

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from mldiff.ttsp import curves, pairwise, superposition
from mldiff.ttsp.data import TTSPData
from mldiff.ttsp.pairwise import QUANTILE

__all__ = [
    "QUANTILE",
    "VERDICTS",
    "diagnose",
    "van_gurp_palmen",
    "plane_misfit",
    "shift_agreement",
]

#: verdicts of ``diagnose``: ``ttsp_holds`` True, False or None
VERDICTS = {True: "holds", False: "fails", None: "undetermined"}


def _test(statistic, dof, description, undetermined_because="", **extra) -> dict:
    """A χ² test's record; ``statistic=None`` marks it undetermined (and why)."""
    if statistic is None:
        threshold, passed = None, None
        extra["undetermined_because"] = undetermined_because
    else:
        threshold = float(stats.chi2.ppf(QUANTILE, dof))
        statistic = float(statistic)
        passed = bool(statistic <= threshold)
    return {
        "statistic": statistic,
        "dof": float(dof),
        "threshold": threshold,
        "quantile": QUANTILE,
        "passed": passed,
        "status": {True: "passed", False: "failed", None: "undetermined"}[passed],
        "description": description,
        **extra,
    }


def _json_floats(values) -> list:
    """Floats for JSON, NaN and inf (undetermined) as None."""
    return [float(v) if np.isfinite(v) else None for v in values]


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


#: grid points along an isotherm's curve in the van Gurp–Palmen test
PLANE_GRID = 128
#: Newton steps refining each point's closest curve point
PLANE_NEWTON_STEPS = 12


@functools.partial(jax.jit, static_argnames=("kernel",))
def _plane_misfit(curve_a, points_b, reduced_b, var, kernel):
    """``Σ w d²`` and ``Σ w`` of isotherm b's points against isotherm a's curve.

    Args:
        curve_a: ``(storage, loss)`` :class:`~mldiff.ttsp.curves.CurveModel`
            of isotherm a.
        points_b: ``[p, 2]`` isotherm b's ``(log10 G′, log10 G″)``.
        reduced_b: ``[p]`` their log10 rates shifted onto a's (selects overlap).
        var: ``[2]`` noise variances of the two coordinates (a's plus b's).
        kernel: the curves' kernel.
    """
    storage, loss = curve_a
    lo, hi = jnp.min(storage.x), jnp.max(storage.x)
    grid = jnp.linspace(lo, hi, PLANE_GRID)
    step = grid[1] - grid[0]

    def curve(x):  # [g] -> [g, 2], a's curve in the (log G', log G'') plane
        return jnp.stack(
            [
                curves.curve_mean(storage, x, kernel),
                curves.curve_mean(loss, x, kernel),
            ],
            axis=-1,
        )

    def d2(x, y):  # squared Mahalanobis distance of point y to a's curve at x
        return jnp.sum((y - curve(x[None])[0]) ** 2 / var)

    on_grid = jnp.sum((points_b[:, None, :] - curve(grid)[None]) ** 2 / var, -1)
    x0 = grid[jnp.argmin(on_grid, axis=1)]
    f = jax.vmap(d2)
    g = jax.vmap(jax.grad(d2))
    h = jax.vmap(jax.grad(jax.grad(d2)))

    def newton(_, x):
        gx, hx = g(x, points_b), h(x, points_b)
        dx = jnp.where(hx > 0, -gx / jnp.where(hx > 0, hx, 1.0), -jnp.sign(gx) * step)
        dx = jnp.clip(dx, -step, step)
        f0 = f(x, points_b)
        full = jnp.clip(x + dx, lo, hi)
        half = jnp.clip(x + 0.5 * dx, lo, hi)
        x = jnp.where(f(half, points_b) <= f0, half, x)
        return jnp.where(f(full, points_b) <= f(x, points_b), full, x)

    x = jax.lax.fori_loop(0, PLANE_NEWTON_STEPS, newton, x0)
    w = curves.overlap_weight(reduced_b, lo, hi)
    return jnp.sum(w * f(x, points_b)), jnp.sum(w)


def plane_misfit(curves_a, curves_b, shift, kernel=curves.CURVE_KERNEL):
    """Distance between two isotherms' van Gurp–Palmen curves, within noise.

    The van Gurp–Palmen curve (δ against log10 |G*|) of an isotherm is, by a
    smooth change of coordinates, its curve ω ↦ (log10 G′, log10 G″) in the
    plane, where the noise of the two coordinates is independent (the GPs'
    learned variances). Each point of one isotherm is matched to the closest
    point (Mahalanobis) of the other's GP curve, ``d² = min_x Σ_q (y_q -
    μ_q(x))² / (σ_q,a² + σ_q,b²)``, a χ² with one degree of freedom under
    TTSP (two residuals, one fitted position); no shift enters ``d²``.
    Measuring across the curve keeps the test well conditioned on the rubbery
    plateau, where |G*| hardly changes while δ does. For the same reason the
    overlap is not chosen by |G*| (on a plateau noise moves points in and
    out of the neighbour's |G*| range): a point counts if its rate, moved by
    the joint ``shift``, falls in the range the other isotherm measured
    (:func:`~mldiff.ttsp.curves.overlap_weight`).

    Args:
        curves_a: ``(storage, loss)`` curve models of one isotherm (Tᵢ).
        curves_b: the same for its neighbour (Tⱼ > Tᵢ).
        shift: joint relative shift ``log10 aTⱼ - log10 aTᵢ``.
        kernel: the curves' kernel.

    Returns:
        ``(chi2, n)``: ``Σ w d²`` over both directions and ``Σ w``.

    Example:
        >>> from mldiff.ttsp.data import wlf_maxwell_data
        >>> d = wlf_maxwell_data(n_temperatures=3, noise=0.0)
        >>> m = superposition.curve_models(d, superposition.default_quantities(d))
        >>> sf = superposition.shift_factors(d, 373.0, models=m)
        >>> chi2, n = plane_misfit(
        ...     (m["storage_modulus_pa"][0], m["loss_modulus_pa"][0]),
        ...     (m["storage_modulus_pa"][1], m["loss_modulus_pa"][1]),
        ...     sf.pair_shift[0])
        >>> bool(n > 10 and chi2 < n)
        True
    """
    var = jnp.stack(
        [
            curves.noise_variance(a) + curves.noise_variance(b)
            for a, b in zip(curves_a, curves_b, strict=True)
        ]
    )
    chi2, n = 0.0, 0.0
    for one, other, moved in (
        (curves_a, curves_b, curves_b[0].x + shift),
        (curves_b, curves_a, curves_a[0].x - shift),
    ):
        points = jnp.stack([c.y for c in other], axis=-1)
        c, k = _plane_misfit(tuple(one), points, moved, var, kernel)
        chi2, n = chi2 + float(c), n + float(k)
    return chi2, n


def shift_agreement(
    models: dict, names=("storage_modulus_pa", "loss_modulus_pa"), *, start=None
):
    """Neighbour shifts from two quantities separately, and their z-scores.

    Each shift is the global optimum of
    :func:`~mldiff.ttsp.pairwise.search_pair_shift`, refined also from
    ``start``. A pair whose shift one of the quantities alone does not
    identify (flat, multimodal or unbounded objective) is undetermined: its
    ``z`` is NaN, and it is no evidence either way.

    Args:
        models: ``{name: [CurveModel per temperature]}``.
        names: the two quantities compared.
        start: ``[m-1]`` joint neighbour shifts (log10), extra starting points.

    Returns:
        ``(s_a [m-1], σ_a [m-1], s_b [m-1], σ_b [m-1], z [m-1], identified
        [2, m-1])``: shifts and standard deviations in log10 units, z-scores
        (NaN where undetermined), and whether each quantity fixes each shift.
    """
    out, identified = [], []
    for name in names:
        isotherms = models[name]
        found = [
            pairwise.search_pair_shift(
                [(a, b)], start=None if start is None else start[k]
            )
            for k, (a, b) in enumerate(zip(isotherms, isotherms[1:], strict=False))
        ]
        out.append(np.array([r.params[0] for r in found]))
        out.append(np.sqrt(np.array([r.cov[0, 0] for r in found])))
        identified.append([r.identifiable for r in found])
    sa, ea, sb, eb = out
    identified = np.array(identified, dtype=bool)
    ok = identified.all(axis=0)
    z = np.full(sa.shape, np.nan)
    z[ok] = (sa[ok] - sb[ok]) / np.hypot(ea[ok], eb[ok])
    return sa, ea, sb, eb, z, identified


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
        dict: ``ttsp_holds`` (True, False, or None when undetermined),
        ``verdict`` (``"holds"``, ``"fails"`` or ``"undetermined"``),
        ``reasons`` (list of str: each failed or undetermined test) and
        ``tests`` ``{name: {statistic, dof, threshold, quantile, passed,
        status, description, …}}`` with ``status`` ``"passed"``,
        ``"failed"`` or ``"undetermined"``; an undetermined test has
        ``statistic``, ``threshold`` and ``passed`` None and says why in
        ``undetermined_because``. ``shift_agreement`` also gives each
        quantity's neighbour shifts and standard deviations (log10; None
        where not finite), ``z`` (None where undetermined), ``identified``
        ``{quantity: [bool per pair]}`` and ``undetermined_pairs_k``.
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
        names = ("storage_modulus_pa", "loss_modulus_pa")
        sa, ea, sb, eb, z, identified = shift_agreement(
            models, names, start=shifts.pair_shift
        )
        pairs_k = [[float(a), float(b)] for a, b in zip(temps, temps[1:], strict=False)]
        done = ~np.isnan(z)
        tests["shift_agreement"] = _test(
            float(np.sum(z[done] ** 2)) if done.any() else None,
            int(done.sum()),
            "neighbour shifts from G' and G'' alone agree within their "
            "uncertainty (sum of z^2, one per pair whose shift both fix)",
            pairs_k=pairs_k,
            z=_json_floats(z),
            storage_log10_shift=sa.tolist(),
            storage_log10_shift_std=_json_floats(ea),
            loss_log10_shift=sb.tolist(),
            loss_log10_shift_std=_json_floats(eb),
            identified={
                n: row.tolist() for n, row in zip(names, identified, strict=True)
            },
            undetermined_pairs_k=[
                pk for pk, d in zip(pairs_k, done, strict=True) if not d
            ],
            undetermined_because=(
                "no pair's shift is identifiable from G' and from G'' alone "
                f"(G' fixes {int(identified[0].sum())} of {z.size}, G'' "
                f"{int(identified[1].sum())}: a flat, multimodal or unbounded "
                "single-quantity objective), so their agreement cannot be "
                "tested"
            ),
        )
        chi2, dof = 0.0, 0.0
        for k in range(temps.size - 1):
            c, n = plane_misfit(
                tuple(models[q][k] for q in names),
                tuple(models[q][k + 1] for q in names),
                shifts.pair_shift[k],
            )
            chi2, dof = chi2 + c, dof + n
        if dof >= 1.0:
            tests["van_gurp_palmen"] = _test(
                chi2,
                dof,
                "neighbouring isotherms lie on one van Gurp-Palmen curve (log G'' "
                "vs log G') within noise (sum of squared distances to the "
                "neighbour's curve over overlapping points)",
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
    reasons = []
    for name, t in tests.items():
        if t["passed"] is False:
            reasons.append(
                f"{name} fails: statistic {t['statistic']:.4g} > threshold "
                f"{t['threshold']:.4g} ({t['description']})"
            )
        elif t["passed"] is None:
            reasons.append(f"{name} undetermined: {t['undetermined_because']}")
    passed = [t["passed"] for t in tests.values()]
    holds = False if False in passed else None if None in passed else True
    return {
        "ttsp_holds": holds,
        "verdict": VERDICTS[holds],
        "reasons": reasons,
        "tests": tests,
    }
