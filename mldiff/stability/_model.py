"""The formation-energy GP and the calibrated stability predictor built on it."""

import dataclasses
import warnings
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import _config, descriptors, gp
from mldiff._typing import ArrayLike
from mldiff.errors import ConfigError, StabilityError
from mldiff.stability import _calibration, _hull

__all__ = [
    "StabilityConfig",
    "default_kernel",
    "fit_formation_energy",
    "calibrate",
    "predict_stability",
]

TRAIN_COLUMNS = ("formula", "formation_energy_ev_per_atom")
UNCERTAINTY_COLUMN = "uncertainty_ev_per_atom"
# Formation energies of known compounds lie within about -4.5 (fluorides) and
# a few eV/atom; beyond ±10 eV/atom a value is in the wrong unit or a total.
MAX_FORMATION_ENERGY = 10.0
KERNELS = ("matern", "rbf", "rational_quadratic")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StabilityConfig:
    """Settings of the formation-energy GP and of ``P(E_hull < δ)``.

    Attributes:
        kernel: ``"matern"`` (Matérn 5/2), ``"rbf"`` or ``"rational_quadratic"``,
            with one length scale per descriptor (ARD) when ``ard``; a
            learnable white-noise term is always added.
        ard: one length scale per descriptor instead of one in total.
        length_scale_bounds: ``(lower, upper)`` of the fitted length scales,
            in units of the standardised descriptors (the optimiser works on
            a logistic map of ``log ℓ`` onto this interval).
        n_restarts: random restarts of the hyperparameter optimisation.
        max_steps: L-BFGS iterations per start.
        seed: seed of the restarts, the calibration folds and the samples.
        n_samples: joint Monte-Carlo samples of the candidates' energies.
        candidates_compete: other candidates count as competing phases (with
            their sampled energies); False: only the training compounds.
        calibration_folds: folds of the cross-validation inside the training
            table that fits the Platt recalibration; 0 turns it off.

    Example:
        >>> StabilityConfig(calibration_folds=0).ard
        True
    """

    kernel: str = "rbf"
    ard: bool = True
    length_scale_bounds: tuple[float, float] = (0.3, 1000.0)
    n_restarts: int = 1
    max_steps: int = 200
    seed: int = 0
    n_samples: int = 2048
    candidates_compete: bool = True
    calibration_folds: int = 5

    def __post_init__(self):
        """Check types and ranges; raise :class:`ConfigError` naming the field."""
        _config.check_types(self)
        if self.kernel not in KERNELS:
            raise StabilityError(
                f"unknown kernel {self.kernel!r}; use 'matern', 'rbf' or "
                "'rational_quadratic'"
            )
        lo, hi = self.length_scale_bounds
        if not 0 < lo < hi < np.inf:
            raise ConfigError(
                f"length_scale_bounds must satisfy 0 < lower < upper < inf, got "
                f"{self.length_scale_bounds}"
            )
        for name in ("n_restarts", "calibration_folds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.calibration_folds == 1:
            raise ConfigError("calibration_folds must be 0 (off) or >= 2, got 1")
        for name in ("max_steps", "n_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def default_kernel(n_features: int, config: StabilityConfig = StabilityConfig()):
    """The GP kernel of :func:`fit_formation_energy` for standardised descriptors.

    Args:
        n_features: number of descriptor columns d.
        config: kernel choice, ARD and length-scale bounds.

    Returns:
        ``stationary(ℓ = √d, σ² = 1) + white(0.05)`` (standardised targets),
        ARD when ``config.ard``, ℓ confined to ``config.length_scale_bounds``
        (:func:`mldiff.gp.kernels.bounded`).

    Example:
        >>> default_kernel(4, StabilityConfig(ard=False)).name
        'bounded[length_scale,0.3,1000.0](rbf(ℓ=2.0, σ²=1.0)) + white(0.05)'
    """
    from mldiff.gp import kernels

    lo, hi = config.length_scale_bounds
    ls = float(np.clip(np.sqrt(n_features), lo * 1.01, hi / 1.01))
    if config.ard:
        ls = np.full(n_features, ls)
    if config.kernel == "matern":
        k = kernels.matern(2.5, length_scale=ls)
    elif config.kernel == "rbf":
        k = kernels.rbf(length_scale=ls)
    else:
        k = kernels.rational_quadratic(length_scale=ls)
    return kernels.bounded(k, "length_scale", lo, hi) + kernels.white(0.05)


def _checked_training(formulas, energies, uncertainties):
    """``(x [n, d], y [n], noise [n] | None)`` of a training table, checked."""
    y = np.asarray(energies, dtype=np.float64).reshape(-1)
    x = descriptors.composition_features(formulas)
    if y.shape[0] != x.shape[0]:
        raise StabilityError(
            f"{x.shape[0]} formulas but {y.shape[0]} energies; give one each"
        )
    if not np.all(np.isfinite(y)):
        bad = int(np.argmax(~np.isfinite(y)))
        raise StabilityError(
            f"formation energy of {list(formulas)[bad]!r} is {y[bad]}; drop the row "
            "or give a finite value in eV/atom"
        )
    if np.any(np.abs(y) > MAX_FORMATION_ENERGY):
        bad = int(np.argmax(np.abs(y) > MAX_FORMATION_ENERGY))
        raise StabilityError(
            f"formation energy of {list(formulas)[bad]!r} is {y[bad]:g} eV/atom, "
            f"outside ±{MAX_FORMATION_ENERGY:g} eV/atom where every known compound "
            "lies; give formation energies per atom in eV (not total energies, "
            "per formula unit or kJ/mol)"
        )
    noise = None
    if uncertainties is not None:
        u = np.asarray(uncertainties, dtype=np.float64).reshape(-1)
        if u.shape != y.shape:
            raise StabilityError(
                f"{u.shape[0]} uncertainties for {y.shape[0]} energies; give one "
                "per row (NaN where unknown)"
            )
        if np.any(u[np.isfinite(u)] < 0) or np.any(np.isinf(u)):
            raise StabilityError(
                "uncertainties must be finite standard deviations >= 0 (NaN where "
                "unknown)"
            )
        noise = np.where(np.isfinite(u), u, 0.0) ** 2
    return np.asarray(x), y, noise


def fit_formation_energy(
    formulas: Iterable,
    energies: ArrayLike | Sequence[float],
    uncertainties: ArrayLike | Sequence[float] | None = None,
    *,
    config: StabilityConfig = StabilityConfig(),
):
    """Fit a GP of formation energy per atom on composition descriptors.

    Descriptors (:func:`mldiff.descriptors.composition_features`) are
    standardised with the training mean and standard deviation (constant
    columns are left unscaled); targets are standardised by the GP
    (``normalize_y``). The hyperparameters (one length scale per descriptor
    by default, within ``config.length_scale_bounds``, the signal and the
    white-noise variance) maximise the log marginal likelihood, by L-BFGS from
    ``1 + config.n_restarts`` starts in one compiled program. Known per-point
    uncertainties enter as fixed noise variances ``u²``; a missing (NaN)
    uncertainty counts as 0, leaving that point to the learned white noise.

    Args:
        formulas: ``n`` training formulas or ``Composition`` s.
        energies: formation energies ``[n]``, eV/atom.
        uncertainties: standard uncertainties ``[n]``, eV/atom, or None.
        config: kernel and optimiser settings.

    Returns:
        ``predict(formulas, full_cov=False) -> (mean [m], std [m])`` in
        eV/atom, or ``(mean [m], cov [m, m])`` in eV/atom and (eV/atom)² with
        ``full_cov``; the spread includes the learned white noise (a
        prediction of a measured value). The fitted
        :class:`~mldiff.gp.GaussianProcess` is ``predict.gp``;
        ``predict.refit(rows)`` conditions the same hyperparameters on the
        training rows ``rows`` only and returns a predictor like ``predict``.

    Raises:
        StabilityError: NaN / inf energies, negative uncertainties or lengths
            that differ.
        CompositionError: unparsable formulas or unknown elements.

    Example:
        >>> predict = fit_formation_energy(
        ...     ["LiF", "NaF", "KF", "LiCl", "NaCl", "KCl"],
        ...     [-3.2, -2.98, -2.94, -2.11, -2.13, -2.25])
        >>> mean, std = predict(["RbCl"])
        >>> bool(-3.5 < mean[0] < -1.5 and std[0] > 0)
        True
    """
    x, y, noise = _checked_training(formulas, energies, uncertainties)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    xs = (x - center) / scale
    kernel = default_kernel(x.shape[1], config)
    model = gp.GaussianProcess(
        kernel,
        n_restarts=config.n_restarts,
        max_steps=config.max_steps,
        seed=config.seed,
    )
    model.fit(xs, y, noise=noise)

    def predictor(state):
        def predict(candidates, full_cov: bool = False):
            xc = np.asarray(descriptors.composition_features(candidates)) - center
            mean, spread = gp.predict(kernel, state, xc / scale, full_cov=full_cov)
            if full_cov:
                return np.asarray(mean), np.asarray(spread)
            return np.asarray(mean), np.sqrt(np.asarray(spread))

        return predict

    def refit(rows):
        rows = np.asarray(rows)
        sub_noise = 0.0 if noise is None else noise[rows]
        state = gp.fit(
            kernel, model.hyper_, xs[rows], y[rows], sub_noise, normalize_y=True
        )
        return predictor(state)

    predict = predictor(model.state_)
    predict.gp = model
    predict.refit = refit
    return predict


def _e_above_hull(formulas: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """``[n]`` energy of each compound above the hull of all of them, eV/atom."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comps = _hull.compositions(formulas, "training")
    entries = [
        PDEntry(c, e * c.num_atoms) for c, e in zip(comps, energies, strict=True)
    ]
    systems = [frozenset(e.symbol for e in c.elements) for c in comps]
    out = np.empty(len(comps))
    groups: dict[frozenset, list[int]] = {}
    for i, s in enumerate(systems):
        groups.setdefault(s, []).append(i)
    for system, members in groups.items():
        pool = [PDEntry(Composition(el), 0.0) for el in sorted(system)]
        pool += [entries[k] for k, s in enumerate(systems) if s <= system]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            diagram = PhaseDiagram(pool)
            for i in members:
                out[i] = diagram.get_e_above_hull(entries[i], allow_negative=True)
    return out


def _raw_probabilities(predict, formulas, energies, candidates, delta, config, key):
    """``(mean, cov, hull decompositions, P [m])`` before recalibration."""
    dec = _hull.hull_decompositions(
        formulas,
        energies,
        candidates,
        exclude_self=True,
        candidates_compete=config.candidates_compete,
    )
    mean, cov = predict(candidates, full_cov=True)
    p = _hull.probability_stable_joint(
        jnp.asarray(mean),
        jnp.asarray(cov),
        dec,
        delta,
        key=key,
        n_samples=config.n_samples,
    )
    return mean, cov, dec, np.asarray(p)


def calibrate(
    predict,
    formulas: Iterable,
    energies: ArrayLike,
    delta: float,
    *,
    config: StabilityConfig = StabilityConfig(),
) -> tuple[float, float]:
    """Platt recalibration of ``P(E_hull < δ)`` from the training table alone.

    ``config.calibration_folds``-fold cross-validation inside the training
    table: each fold's compounds are the candidates, the other folds the known
    phases, and the GP (hyperparameters of ``predict``, conditioned on the
    other folds only) gives their joint energies; a compound's label is
    whether it lies within δ of the hull of the whole training table. The
    held-out ``(P, label)`` pairs fit :func:`_calibration.fit_platt`. Nothing
    outside the training table enters. (The hyperparameters were fitted on
    all training rows, a mild optimism of the held-out spread.)

    Args:
        predict: from :func:`fit_formation_energy` on these rows.
        formulas: the ``n`` training formulas.
        energies: their formation energies ``[n]``, eV/atom.
        delta: tolerance δ above the hull, eV/atom.
        config: folds, samples, seed.

    Returns:
        ``(a, b)`` of ``P' = σ(a · logit(P) + b)``; ``(1, 0)`` (no change)
        without folds, or with a warning when the table has fewer than two
        compounds per fold or only one outcome (all stable, say).
    """
    if config.calibration_folds == 0:
        return 1.0, 0.0
    formulas = np.asarray([str(f) for f in formulas], dtype=object)
    energies = np.asarray(energies, dtype=np.float64)
    n = len(formulas)
    labels = (_e_above_hull(formulas, energies) < delta).astype(np.float64)
    if n < 2 * config.calibration_folds or labels.min() == labels.max():
        warnings.warn(
            f"no recalibration: {n} training compounds ({int(labels.sum())} within "
            f"δ of their hull) are too few for {config.calibration_folds} folds "
            "with both outcomes; P(E_hull < δ) is left uncalibrated",
            stacklevel=2,
        )
        return 1.0, 0.0
    rng = np.random.default_rng(config.seed)
    folds = np.array_split(rng.permutation(n), config.calibration_folds)
    keys = jax.random.split(jax.random.key(config.seed), len(folds))
    p = np.empty(n)
    for fold, key in zip(folds, keys, strict=True):
        rest = np.setdiff1d(np.arange(n), fold)
        *_, p[fold] = _raw_probabilities(
            predict.refit(rest),
            formulas[rest],
            energies[rest],
            formulas[fold],
            delta,
            config,
            key,
        )
    return _calibration.fit_platt(p, labels)


def _column(table, name: str, what: str):
    try:
        return np.asarray(table[name])
    except (KeyError, IndexError, TypeError, ValueError):
        cols = list(getattr(table, "columns", getattr(table, "keys", list)()))
        raise StabilityError(
            f"{what} has no column {name!r} (columns: {cols}); add it"
        ) from None


def predict_stability(
    train,
    candidates,
    delta: float = 0.05,
    *,
    config: StabilityConfig = StabilityConfig(),
    progress: bool | None = False,
):
    """GP formation energies and calibrated ``P(E_hull < δ)`` for candidates.

    1. :func:`fit_formation_energy` on the training table.
    2. Joint predictive distribution of all candidates' energies (full
       covariance) and :func:`probability_stable_joint` against the training
       compounds and (``config.candidates_compete``) the other candidates.
    3. Platt recalibration fitted by :func:`calibrate` on the training table.

    Args:
        train: table (pandas DataFrame or mapping of columns) with ``formula``
            and ``formation_energy_ev_per_atom`` (eV/atom), optionally
            ``uncertainty_ev_per_atom`` (eV/atom, NaN where unknown). The
            training compounds are also the competing phases.
        candidates: formulas, or a table with a ``formula`` column.
        delta: tolerance δ above the hull, eV/atom.
        config: GP, sampling and calibration settings.
        progress: tqdm bar over phase diagrams (``None``: only on a terminal).

    Returns:
        pandas DataFrame with ``formula``, ``formation_energy_mean``,
        ``formation_energy_std``, ``hull_energy`` (h of the training
        compounds), ``e_hull_mean`` (μ - h) in eV/atom,
        ``p_stable_uncalibrated`` and ``p_stable`` (recalibrated), one row per
        candidate in input order; ``attrs["calibration"]`` holds ``(a, b)``.

    Raises:
        StabilityError: missing columns (named), NaN energies, bad formulas.

    Example:
        >>> train = {"formula": ["LiF", "Li2O", "NaF", "Na2O", "NaCl", "LiCl"],
        ...          "formation_energy_ev_per_atom":
        ...              [-3.2, -2.07, -2.98, -1.44, -2.13, -2.11]}
        >>> config = StabilityConfig(calibration_folds=0)
        >>> out = predict_stability(train, ["KF", "KCl"], 0.05, config=config)
        >>> ok = (out.p_stable >= 0) & (out.p_stable <= 1)
        >>> list(out.columns)[-1], bool(ok.all())
        ('p_stable', True)
    """
    import pandas as pd

    formulas = [str(f) for f in _column(train, "formula", "the training table")]
    energies = _column(train, "formation_energy_ev_per_atom", "the training table")
    try:
        energies = energies.astype(np.float64)
    except ValueError:
        raise StabilityError(
            "formation_energy_ev_per_atom must hold numbers (eV/atom)"
        ) from None
    has_u = UNCERTAINTY_COLUMN in getattr(
        train, "columns", getattr(train, "keys", list)()
    )
    u = (
        _column(train, UNCERTAINTY_COLUMN, "the training table").astype(np.float64)
        if has_u
        else None
    )
    if hasattr(candidates, "columns") or isinstance(candidates, dict):
        cand = [str(f) for f in _column(candidates, "formula", "the candidate table")]
    else:
        cand = [str(f) if not hasattr(f, "reduced_formula") else f for f in candidates]
    if not cand:
        raise StabilityError("no candidates given; pass at least one formula")
    descriptors.composition_features(cand)  # bad formulas fail before the fit
    predict = fit_formation_energy(formulas, energies, u, config=config)
    a, b = calibrate(predict, formulas, energies, delta, config=config)
    key = jax.random.key(config.seed + 1)
    mean, cov, dec, p = _raw_probabilities(
        predict, formulas, energies, cand, delta, config, key
    )
    h = dec.known_hull_ev_per_atom
    out = pd.DataFrame(
        {
            "formula": [getattr(c, "reduced_formula", c) for c in cand],
            "formation_energy_mean": mean,
            "formation_energy_std": np.sqrt(np.diag(cov)),
            "hull_energy": h,
            "e_hull_mean": mean - h,
            "p_stable_uncalibrated": p,
            "p_stable": p if (a, b) == (1.0, 0.0) else _calibration.platt(p, a, b),
        }
    )
    out.attrs["calibration"] = (a, b)
    return out
