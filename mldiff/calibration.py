"""Calibrated committee uncertainty: one global scale factor on the spread.

A committee of ``K`` models predicts a mean ``ȳ`` and a spread ``σ`` (the
standard deviation over members) for every force component, energy or phonon
frequency. Small committees are overconfident: the errors ``e = ȳ − y`` of the
mean are several ``σ`` wide. The cheap fix of Musil et al. (2019) is one
global factor ``α`` on the spread, ``σ_cal = α σ``, fitted on validation
structures and applied to every later prediction.

Maximising the Gaussian likelihood ``∏_i N(e_i; 0, α² σ_i²)`` of the
validation errors over ``α`` gives the closed form

    α² = mean_i(e_i² / σ_i²)                               (``"likelihood"``)

Musil et al. also correct for the finite committee: if the ``K`` members
scatter around their own mean with the (unknown) variance ``σ²`` and ``s²`` is
the unbiased (``ddof = 1``) sample variance, then ``ȳ`` carries an extra
variance ``σ²/K`` and ``E[1/s²] = (K−1)/((K−3) σ²)``, so that

    α² = −1/K + (K−3)/(K−1) · mean_i(e_i² / s_i²)           (``"musil"``)

which needs ``K > 3`` and multiplies the ``ddof = 1`` spread ``s`` (as in
Imbalzano et al. 2021 and matscipy's ``CommitteeUncertainty``); it is
converted here to a factor on the spread as passed (any ``ddof``).

Scores of the calibrated spreads: coverage of the central Gaussian intervals
(the fraction of errors with ``|e| ≤ z_p σ``, ``z_p`` the two-sided normal
quantile of ``p``), the mean Gaussian negative log-likelihood, and the
miscalibration area (the area between the observed coverage ``p̂(p)`` of the
central ``p`` intervals and the ideal ``p̂ = p``, Tran et al. 2020, as in
uncertainty-toolbox). The area is computed exactly from the sorted
probability-integral transforms ``u_i = 2Φ(|e_i|/σ_i) − 1`` (the observed
coverage curve is their empirical CDF), the limit of uncertainty-toolbox's
100-bin version.

The committee's force scale ``α_F`` also scales the spreads of the other
derivatives of the energy (stress, force constants, phonon frequencies); the
energy scale ``α_E`` scales energy spreads. :func:`write` / :func:`read` keep
the fitted :class:`Calibration` as ``calibration.json`` beside an ensemble's
checkpoint (:func:`mldiff.ensemble.train_ensemble` fits and writes it).

References:
    F. Musil, M. J. Willatt, M. A. Langovoy and M. Ceriotti, "Fast and accurate
    uncertainty estimation in chemical machine learning", J. Chem. Theory
    Comput. 15, 906 (2019).
    G. Imbalzano, Y. Zhuang, V. Kapil, K. Rossi, E. A. Engel, F. Grasselli and
    M. Ceriotti, "Uncertainty estimation for molecular dynamics and sampling",
    J. Chem. Phys. 154, 074102 (2021).
    K. Tran, W. Neiswanger, J. Yoon, Q. Zhang, E. Xing and Z. W. Ulissi,
    "Methods for comparing uncertainty quantifications for material property
    predictions", Mach. Learn.: Sci. Technol. 1, 025006 (2020).
    V. Kuleshov, N. Fenner and S. Ermon, "Accurate uncertainties for deep
    learning using calibrated regression", ICML (2018).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sigma = rng.uniform(0.5, 2.0, 20000)
    >>> errors = 3.0 * sigma * rng.standard_normal(20000)   # 3x overconfident
    >>> round(fit_scale(errors, sigma), 1)
    3.0
    >>> round(coverage(errors, 3.0 * sigma, 0.95), 2)
    0.95
"""

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Literal

import jax
import numpy as np

from mldiff._config import check_types
from mldiff.errors import ConfigError
from mldiff.io.files import write_json

__all__ = [
    "FILENAME",
    "LEVELS",
    "Calibration",
    "fit_scale",
    "normal_quantile",
    "coverage",
    "gaussian_nll",
    "calibration_curve",
    "miscalibration_area",
    "uncertainty_metrics",
    "scale_members",
    "apply",
    "fit_committee",
    "residuals",
    "fit",
    "write",
    "read",
]

FILENAME = "calibration.json"
LEVELS = (0.68, 0.95)  # central Gaussian intervals scored by coverage

Method = Literal["likelihood", "musil"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Calibration:
    """Global scale factors on a committee's spreads (dimensionless).

    Attributes:
        forces_scale: ``α_F`` on force-component spreads, and on the spreads
            of the other position / strain derivatives (stress, force
            constants, phonon frequencies).
        energy_scale: ``α_E`` on energy spreads (total, per atom, atomic).
        method: ``"likelihood"`` or ``"musil"`` (see the module docstring).
        n_members: committee size ``K`` the scales were fitted for.
        ddof: delta degrees of freedom of the spreads the scales multiply.
        n_forces: validation force components used (0: ``forces_scale`` 1,
            not fitted).
        n_energies: validation energies used (0: ``energy_scale`` 1, not
            fitted).
    """

    forces_scale: float = 1.0
    energy_scale: float = 1.0
    method: Method = "likelihood"
    n_members: int = 1
    ddof: int = 0
    n_forces: int = 0
    n_energies: int = 0

    def __post_init__(self):
        """Check types and that the scales are positive and finite."""
        check_types(self)
        for name in ("forces_scale", "energy_scale"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be positive and finite, got {v!r}")


# ---------------------------------------------------------------- scores


def normal_quantile(level):
    """Two-sided standard normal quantile ``z`` with ``P(|Z| ≤ z) = level``.

    Args:
        level: central probability(ies) in ``[0, 1]``.

    Returns:
        ``z = Φ⁻¹((1 + level) / 2)`` (``inf`` at 1), same shape.

    Example:
        >>> round(float(normal_quantile(0.95)), 3)
        1.96
    """
    from scipy.special import ndtri

    return ndtri(0.5 * (1.0 + np.asarray(level, np.float64)))


def _z(errors, spreads):
    """``[M]`` float64 standardised errors over entries with a positive spread."""
    e = np.ravel(np.asarray(errors, np.float64))
    s = np.ravel(np.asarray(spreads, np.float64))
    if e.shape != s.shape:
        raise ConfigError(
            f"errors and spreads must have the same number of entries, got "
            f"{e.size} and {s.size}"
        )
    ok = np.isfinite(e) & np.isfinite(s) & (s > 0)
    if not ok.any():
        raise ConfigError(
            f"no entry has a positive, finite spread (of {e.size}); a committee "
            "of identical members cannot be calibrated"
        )
    return e[ok] / s[ok], s[ok], e[ok]


def fit_scale(
    errors, spreads, *, method: Method = "likelihood", n_members=None, ddof: int = 0
) -> float:
    """The factor ``α`` on the spreads that calibrates them on these errors.

    Args:
        errors: ``[...]`` errors of the committee mean, prediction − reference
            (any unit).
        spreads: ``[...]`` committee spreads, the unit of ``errors``; entries
            with a zero spread are left out.
        method: ``"likelihood"``: ``α² = mean(e²/σ²)``, the maximum of the
            Gaussian likelihood; ``"musil"``: Musil et al.'s finite-committee
            correction (needs ``n_members > 3``).
        n_members: committee size ``K`` (``"musil"`` only).
        ddof: delta degrees of freedom the spreads were computed with
            (``"musil"`` only).

    Returns:
        ``α`` (dimensionless), to multiply spreads computed as the given ones.

    Raises:
        ConfigError: no positive spread, ``K ≤ 3`` for ``"musil"``, or errors
            so small that Musil's ``α²`` is not positive.

    Example:
        >>> fit_scale([2.0, -2.0], [1.0, 1.0])
        2.0
    """
    z, _, _ = _z(errors, spreads)
    mean_z2 = float(np.mean(z * z))
    if method == "likelihood":
        return math.sqrt(mean_z2)
    if method != "musil":
        raise ConfigError(f"method must be 'likelihood' or 'musil', got {method!r}")
    k = 0 if n_members is None else int(n_members)
    if k <= 3:
        raise ConfigError(
            f"Musil's finite-committee scale needs more than 3 members, got "
            f"n_members={n_members!r}; use method='likelihood'"
        )
    to_unbiased = (k - 1) / (k - int(ddof))  # σ²(ddof) / s²(ddof = 1)
    alpha2_s = -1.0 / k + (k - 3) / (k - 1) * mean_z2 * to_unbiased
    if alpha2_s <= 0:
        raise ConfigError(
            f"Musil's α² = {alpha2_s:.3g} is not positive: the errors (mean "
            f"e²/σ² = {mean_z2:.3g}) are smaller than a {k}-member committee "
            "mean's own scatter; use method='likelihood'"
        )
    return math.sqrt(alpha2_s / to_unbiased)


def coverage(errors, spreads, level: float) -> float:
    """Fraction of errors inside the central Gaussian ``level`` interval.

    Args:
        errors: ``[...]`` errors (any unit).
        spreads: ``[...]`` predicted standard deviations, same unit.
        level: the interval's probability, e.g. 0.95 (``|e| ≤ 1.96 σ``).

    Returns:
        The observed fraction in ``[0, 1]`` (ideal: ``level``).

    Example:
        >>> coverage([0.5, 1.5, 2.5], [1.0, 1.0, 1.0], 0.95)
        0.6666666666666666
    """
    z, _, _ = _z(errors, spreads)
    return float(np.mean(np.abs(z) <= normal_quantile(level)))


def gaussian_nll(errors, spreads) -> float:
    """Mean Gaussian negative log-likelihood of the errors, nats per entry.

    ``mean_i [½ ln(2π σ_i²) + e_i² / (2 σ_i²)]``; it depends on the unit of
    the errors through ``ln σ`` (compare values in one unit only).

    Args:
        errors: ``[...]`` errors.
        spreads: ``[...]`` predicted standard deviations, same unit.

    Returns:
        The mean negative log-likelihood.

    Example:
        >>> round(gaussian_nll([0.0], [1.0]), 4)
        0.9189
    """
    z, s, _ = _z(errors, spreads)
    return float(np.mean(0.5 * np.log(2.0 * np.pi * s * s) + 0.5 * z * z))


def calibration_curve(errors, spreads, n_points: int = 101):
    """Reliability-diagram data: observed against expected interval coverage.

    Args:
        errors: ``[...]`` errors.
        spreads: ``[...]`` predicted standard deviations, same unit.
        n_points: number of expected levels, evenly spaced on ``[0, 1]``.

    Returns:
        ``(expected [n_points], observed [n_points])``: the fraction of errors
        inside each central Gaussian interval.

    Example:
        >>> p, obs = calibration_curve([0.1, 3.0], [1.0, 1.0], n_points=3)
        >>> p.tolist(), obs.tolist()
        ([0.0, 0.5, 1.0], [0.0, 0.5, 1.0])
    """
    z, _, _ = _z(errors, spreads)
    expected = np.linspace(0.0, 1.0, int(n_points))
    q = normal_quantile(expected)  # [p]
    observed = np.mean(np.abs(z)[None, :] <= q[:, None], axis=1)
    return expected, observed


def miscalibration_area(errors, spreads) -> float:
    """Area between the observed and the ideal coverage curve, in ``[0, ½]``.

    ``∫₀¹ |p̂(p) − p| dp`` with ``p̂`` the empirical CDF of the
    probability-integral transforms ``u_i = 2Φ(|e_i|/σ_i) − 1``, integrated
    exactly piece by piece between the sorted ``u_i`` (0 for perfect
    calibration as the data grow; ½ when every error is far outside its
    interval).

    Args:
        errors: ``[...]`` errors.
        spreads: ``[...]`` predicted standard deviations, same unit.

    Returns:
        The area (dimensionless).

    Example:
        >>> miscalibration_area([100.0], [1.0])   # p̂(p) = 0 for all p < 1
        0.5
    """
    from scipy.special import erf

    z, _, _ = _z(errors, spreads)
    u = np.sort(erf(np.abs(z) / math.sqrt(2.0)))  # 2Φ(|z|) − 1
    n = u.size
    edges = np.concatenate([[0.0], u, [1.0]])  # p̂ = k / n on [edges_k, edges_k+1]
    c = np.arange(n + 1) / n
    a, b = edges[:-1], edges[1:]

    def primitive(x, c):  # ∫₀ˣ |c − p| dp
        return np.where(x <= c, c * x - 0.5 * x * x, 0.5 * c * c + 0.5 * (x - c) ** 2)

    return float(np.sum(primitive(b, c) - primitive(a, c)))


def uncertainty_metrics(errors, spreads, prefix: str, suffix: str = "") -> dict:
    """Coverage at :data:`LEVELS`, NLL and miscalibration area, as named keys.

    Args:
        errors: ``[...]`` errors.
        spreads: ``[...]`` spreads (already scaled as wanted), same unit.
        prefix: the quantity, e.g. ``"forces"``.
        suffix: appended to each key, e.g. ``"_uncalibrated"``.

    Returns:
        ``{prefix}_coverage_68``, ``{prefix}_coverage_95``, ``{prefix}_nll``
        (nats per entry, in the unit of the errors) and
        ``{prefix}_miscalibration_area``, each followed by ``suffix``.

    Example:
        >>> sorted(uncertainty_metrics([0.5], [1.0], "forces"))[:2]
        ['forces_coverage_68', 'forces_coverage_95']
    """
    out = {
        f"{prefix}_coverage_{round(100 * p)}{suffix}": coverage(errors, spreads, p)
        for p in LEVELS
    }
    out[f"{prefix}_nll{suffix}"] = gaussian_nll(errors, spreads)
    out[f"{prefix}_miscalibration_area{suffix}"] = miscalibration_area(errors, spreads)
    return out


# ---------------------------------------------------------------- applying


def scale_members(members, scale: float, axis: int = 0):
    """Committee members spread ``scale`` times wider about their mean.

    ``ȳ + α (y_k − ȳ)`` (Musil et al.'s rescaled committee): the mean is
    unchanged and every spread over ``axis`` (any ``ddof``) is multiplied by
    ``α``, so quantities derived member by member inherit the calibration.

    Args:
        members: ``[K, ...]`` member values (any unit; NumPy or JAX).
        scale: ``α`` (dimensionless).
        axis: the member axis.

    Returns:
        Rescaled members, same shape and unit.

    Example:
        >>> scale_members(np.array([1.0, 3.0]), 2.0).tolist()
        [0.0, 4.0]
    """
    mean = members.mean(axis=axis, keepdims=True)
    return mean + scale * (members - mean)


def apply(calibration: Calibration | None, values: dict, *, calibrated=True) -> dict:
    """Scale the spreads in a dict of committee results.

    Every key containing ``_std_`` is multiplied by ``energy_scale`` when it
    names an energy (``energy_std_ev``, ``atom_energy_std_ev``, ...) and by
    ``forces_scale`` otherwise (forces, stress, phonon frequencies); the
    unscaled value is kept under the same key with ``_std_`` replaced by
    ``_std_uncalibrated_`` (``forces_std_uncalibrated_ev_per_angstrom``).
    Works inside ``jit``.

    Args:
        calibration: the scales; ``None`` returns ``values`` unchanged.
        values: committee results (e.g. :func:`mldiff.ensemble.committee`).
        calibrated: ``False`` returns ``values`` unchanged.

    Returns:
        A new dict.

    Example:
        >>> cal = Calibration(forces_scale=2.0, energy_scale=3.0)
        >>> out = apply(cal, {"energy_std_ev": 1.0, "forces_std_ev_per_angstrom": 1.0})
        >>> out["energy_std_ev"], out["forces_std_ev_per_angstrom"]
        (3.0, 2.0)
        >>> out["forces_std_uncalibrated_ev_per_angstrom"]
        1.0
    """
    out = dict(values)
    if calibration is None or not calibrated:
        return out
    for key, v in values.items():
        if "_std_" not in key or "_uncalibrated" in key:
            continue
        energy = "energy" in key
        out[key] = v * (
            calibration.energy_scale if energy else calibration.forces_scale
        )
        out[key.replace("_std_", "_std_uncalibrated_", 1)] = v
    return out


# ---------------------------------------------------------------- fitting


def residuals(items: Sequence, predictions: dict[str, list]) -> dict:
    """Errors of the committee mean and its spreads, flattened, where labelled.

    Args:
        items: labelled structures.
        predictions: :func:`mldiff.training.evaluation.committee_predict_items`
            of the same items.

    Returns:
        ``forces_error_ev_per_angstrom`` and ``forces_std_ev_per_angstrom``
        ``[M]`` (every force component of the items with forces),
        ``energy_error_ev_per_atom`` and ``energy_std_ev_per_atom`` ``[N]``;
        errors are prediction − reference.
    """
    f_err, f_std, e_err, e_std = [np.zeros(0)], [np.zeros(0)], [], []
    for it, e, es, f, fs in zip(
        items,
        predictions["energy"],
        predictions["energy_std"],
        predictions["forces"],
        predictions["forces_std"],
        strict=True,
    ):
        n = len(it.structure)
        if it.energy is not None:
            e_err.append((e - float(it.energy)) / n)
            e_std.append(es / n)
        if it.forces is not None:
            f_err.append(np.ravel(f - np.asarray(it.forces, np.float64)))
            f_std.append(np.ravel(fs))
    return {
        "forces_error_ev_per_angstrom": np.concatenate(f_err),
        "forces_std_ev_per_angstrom": np.concatenate(f_std),
        "energy_error_ev_per_atom": np.asarray(e_err, np.float64),
        "energy_std_ev_per_atom": np.asarray(e_std, np.float64),
    }


def fit(
    res: dict, *, n_members: int, method: Method = "likelihood", ddof: int = 0
) -> Calibration:
    """Fit the force and energy scales on validation residuals.

    Args:
        res: :func:`residuals` of the validation structures.
        n_members: committee size ``K``.
        method: ``"likelihood"`` or ``"musil"`` (:func:`fit_scale`).
        ddof: delta degrees of freedom of the spreads.

    Returns:
        The :class:`Calibration`; a quantity without labels or without a
        positive spread keeps scale 1 (its count is 0).

    Example:
        >>> res = {"forces_error_ev_per_angstrom": np.array([0.2, -0.2]),
        ...        "forces_std_ev_per_angstrom": np.array([0.1, 0.1]),
        ...        "energy_error_ev_per_atom": np.zeros(0),
        ...        "energy_std_ev_per_atom": np.zeros(0)}
        >>> fit(res, n_members=2).forces_scale
        2.0
    """
    scales, counts = {}, {}
    for name, err, std in (
        ("forces", "forces_error_ev_per_angstrom", "forces_std_ev_per_angstrom"),
        ("energy", "energy_error_ev_per_atom", "energy_std_ev_per_atom"),
    ):
        e, s = np.asarray(res[err], np.float64), np.asarray(res[std], np.float64)
        used = int(np.sum(np.isfinite(e) & np.isfinite(s) & (s > 0)))
        counts[name] = used
        scales[name] = (
            fit_scale(e, s, method=method, n_members=n_members, ddof=ddof)
            if used
            else 1.0
        )
    return Calibration(
        forces_scale=scales["forces"],
        energy_scale=scales["energy"],
        method=method,
        n_members=int(n_members),
        ddof=int(ddof),
        n_forces=counts["forces"],
        n_energies=counts["energy"],
    )


def fit_committee(
    potential, stacked_params, items: Sequence, *, batch_size: int = 8, **options
) -> tuple[Calibration, dict]:
    """Predict ``items`` with the committee, fit the scales, score both spreads.

    Args:
        potential: the members' potential.
        stacked_params: ``[K, ...]`` stacked parameters.
        items: labelled validation structures.
        batch_size: structures per padded batch.
        **options: ``method``, ``ddof`` as for :func:`fit`.

    Returns:
        ``(calibration, scores)``: the :class:`Calibration` and the
        :func:`uncertainty_metrics` of the validation forces with the
        calibrated spreads and (suffix ``_uncalibrated``) the raw ones.
    """
    from mldiff.training.evaluation import committee_predict_items

    ddof = int(options.get("ddof", 0))
    pred = committee_predict_items(
        potential, stacked_params, items, batch_size=batch_size, ddof=ddof
    )
    res = residuals(items, pred)
    k = int(np.shape(jax.tree.leaves(stacked_params)[0])[0])
    cal = fit(res, n_members=k, **options)
    e, s = res["forces_error_ev_per_angstrom"], res["forces_std_ev_per_angstrom"]
    scores = {}
    if cal.n_forces:
        scores.update(uncertainty_metrics(e, cal.forces_scale * s, "forces"))
        scores.update(uncertainty_metrics(e, s, "forces", "_uncalibrated"))
    return cal, scores


# ---------------------------------------------------------------- files


def _directory(path) -> str:
    path = os.fspath(path)
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def write(path, calibration: Calibration, validation: dict | None = None) -> str:
    """Write ``calibration.json`` atomically into an ensemble's directory.

    Args:
        path: the ensemble's output directory (or a file in it).
        calibration: the fitted scales.
        validation: optional scores to keep beside them (e.g.
            :func:`validation_metrics`).

    Returns:
        The path written.
    """
    target = os.path.join(_directory(path), FILENAME)
    body = dataclasses.asdict(calibration)
    if validation:
        body["validation"] = validation
    write_json(target, body)
    return target


def read(path) -> Calibration | None:
    """The :class:`Calibration` kept beside an ensemble, or ``None`` if none is.

    Args:
        path: the ensemble's directory, or its ``ensemble.msgpack``.

    Raises:
        ConfigError: a ``calibration.json`` that cannot be parsed.

    Example:
        >>> read("/nonexistent") is None
        True
    """
    target = os.path.join(_directory(path), FILENAME)
    if not os.path.exists(target):
        return None
    try:
        with open(target, encoding="utf-8") as fh:
            body = json.load(fh)
        names = {f.name for f in dataclasses.fields(Calibration)}
        return Calibration(**{k: v for k, v in body.items() if k in names})
    except (json.JSONDecodeError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"{target} is not a calibration file ({err}); delete it and refit "
            "with mldiff.calibration.fit, or retrain the ensemble"
        ) from err
