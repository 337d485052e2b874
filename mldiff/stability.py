"""Probability that a material lies within δ of the convex hull, ``P(E_hull < δ)``.

Given a Gaussian predictive formation energy per atom ``E_f ~ N(μ, σ²)`` of a
candidate and the formation energies of known competing phases, the energy
above the hull of the known phases is ``E_hull = E_f - h``, where ``h`` is the
formation energy of the lower convex hull at the candidate's composition
(pymatgen ``PhaseDiagram.get_hull_energy_per_atom``). Then

    P(E_hull < δ) = Φ((h + δ - μ) / σ),

with Φ the standard normal CDF (a step function when σ = 0). ``E_hull`` may be
negative: the candidate would lie below the known hull.

Pieces:

- :func:`hull_energies`: ``h`` for many candidates, one pymatgen
  ``PhaseDiagram`` per (chemical system, excluded phase) group.
- :func:`probability_stable`: Φ((h + δ - μ)/σ), pure JAX, differentiable in
  μ, σ, h and δ.
- :func:`fit_formation_energy`: a GP (:class:`mldiff.gp.GaussianProcess`) on
  standardised :func:`mldiff.descriptors.composition_features`; returns a
  function ``formulas -> (mean, std)``.
- :func:`predict_stability`: all three for a training table and candidates
  (the training compounds are also the competing phases).

Conventions and assumptions:

- Energies are formation energies per atom (eV/atom) relative to the elements,
  which sit at 0; every element of a candidate is added at 0 even if no phase
  contains it. Elemental rows among the phases must be 0 (by definition).
- A candidate whose reduced formula is among the phases is left out of its own
  hull (otherwise a known stable compound would always sit on its own hull and
  ``E_hull ≤ 0`` trivially).
- The competing phases' energies are taken as exact; their uncertainties are
  not propagated to ``h`` (only the candidate's σ enters).

References:
    S. P. Ong, L. Wang, B. Kang and G. Ceder, "Li–Fe–P–O₂ phase diagram from
    first principles calculations", Chem. Mater. 20, 1798 (2008) (pymatgen's
    phase-diagram construction).
    C. J. Bartel et al., "A critical examination of compound stability
    predictions from machine-learned formation energies", npj Comput. Mater.
    6, 97 (2020) (why stability must be judged on the hull, not on E_f).

Example:
    >>> h = hull_energies(["Li2O"], [-2.0], ["Li2O2"])  # hull: Li2O -- O
    >>> round(float(h[0]), 6)  # 3/4 of the way from O to Li2O in fraction
    -1.5
    >>> p = probability_stable(-1.6, 0.0, h, 0.05)
    >>> float(p[0])
    1.0
"""

import dataclasses
import warnings
from collections.abc import Iterable, Sequence

import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from mldiff import descriptors, gp
from mldiff._typing import ArrayLike
from mldiff.errors import StabilityError

__all__ = [
    "StabilityError",
    "StabilityConfig",
    "hull_energies",
    "probability_stable",
    "fit_formation_energy",
    "predict_stability",
    "default_kernel",
]

TRAIN_COLUMNS = ("formula", "formation_energy_ev_per_atom")
UNCERTAINTY_COLUMN = "uncertainty_ev_per_atom"
# Formation energies of known compounds lie within about -4.5 (fluorides) and
# a few eV/atom; beyond ±10 eV/atom a value is in the wrong unit or a total.
MAX_FORMATION_ENERGY = 10.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class StabilityConfig:
    """Settings of the formation-energy GP behind :func:`predict_stability`.

    Attributes:
        kernel: ``"matern"`` (Matérn 5/2), ``"rbf"`` or ``"rational_quadratic"``,
            with one length scale per descriptor (ARD) when ``ard``; a
            learnable white-noise term is always added.
        ard: one length scale per descriptor instead of one in total.
        n_restarts: random restarts of the hyperparameter optimisation.
        max_steps: L-BFGS iterations per start.
        seed: seed of the restarts.
    """

    kernel: str = "matern"
    ard: bool = False
    n_restarts: int = 1
    max_steps: int = 200
    seed: int = 0


def _compositions(formulas, what: str):
    from pymatgen.core import Composition

    out = []
    for f in formulas:
        if isinstance(f, Composition):
            out.append(f)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(Composition(str(f)))
        except Exception as err:
            raise StabilityError(
                f"cannot parse {what} formula {f!r} ({err}); write it like 'Fe2O3'"
            ) from None
    return out


def hull_energies(
    phase_formulas: Iterable,
    phase_energies: ArrayLike | Sequence[float],
    candidates: Iterable,
    *,
    exclude_self: bool = True,
    progress: bool | None = False,
) -> np.ndarray:
    """Formation energy of the known convex hull at each candidate's composition.

    Candidates are grouped by chemical system (and by the phase they exclude),
    and one pymatgen ``PhaseDiagram`` is built per group from the phases whose
    elements all belong to that system, plus every element of the system at 0.

    Args:
        phase_formulas: formulas (or pymatgen ``Composition`` s) of the ``p``
            competing phases.
        phase_energies: their formation energies ``[p]``, eV/atom.
        candidates: ``m`` formulas or ``Composition`` s.
        exclude_self: leave a phase with the candidate's reduced formula out of
            that candidate's hull.
        progress: tqdm bar over phase diagrams (``None``: only on a terminal).

    Returns:
        ``h [m]``, float64 NumPy, eV/atom (≤ 0: the elements are at 0).

    Raises:
        StabilityError: unparsable formulas, lengths that differ, non-finite
            energies, or an elemental phase with a non-zero energy.

    Example:
        >>> round(float(hull_energies(["NaCl"], [-2.13], ["Na3Cl"])[0]), 4)
        -1.065
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition
    from tqdm import tqdm

    phases = _compositions(phase_formulas, "phase")
    energies = np.asarray(phase_energies, dtype=np.float64).reshape(-1)
    if energies.shape[0] != len(phases):
        raise StabilityError(
            f"{len(phases)} phase formulas but {energies.shape[0]} energies; give "
            "one formation energy per phase"
        )
    if not np.all(np.isfinite(energies)):
        bad = int(np.argmax(~np.isfinite(energies)))
        raise StabilityError(
            f"phase {phases[bad].reduced_formula} has formation energy "
            f"{energies[bad]}; drop it or give a finite value in eV/atom"
        )
    keep = []
    for i, c in enumerate(phases):
        if len(c.elements) == 1:
            if abs(energies[i]) > 1e-12:
                raise StabilityError(
                    f"elemental phase {c.reduced_formula} has formation energy "
                    f"{energies[i]} eV/atom; an element's formation energy is 0 by "
                    "definition (drop the row or set it to 0)"
                )
            continue  # the elements are added at 0 anyway
        keep.append(i)
    phase_sets = [frozenset(e.symbol for e in phases[i].elements) for i in keep]
    phase_names = [phases[i].reduced_formula for i in keep]
    cands = _compositions(candidates, "candidate")

    groups: dict[tuple[frozenset, str | None], list[int]] = {}
    names = set(phase_names)
    for j, c in enumerate(cands):
        system = frozenset(e.symbol for e in c.elements)
        name = (
            c.reduced_formula if exclude_self and c.reduced_formula in names else None
        )
        groups.setdefault((system, name), []).append(j)

    out = np.empty(len(cands), dtype=np.float64)
    bar = tqdm(
        groups.items(),
        desc="phase diagrams",
        disable=True if progress is False else None,
    )
    for (system, excluded), members in bar:
        entries = [PDEntry(Composition(el), 0.0) for el in sorted(system)]
        for k, i in enumerate(keep):
            if phase_sets[k] <= system and phase_names[k] != excluded:
                entries.append(PDEntry(phases[i], energies[i] * phases[i].num_atoms))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            diagram = PhaseDiagram(entries)
            for j in members:
                out[j] = diagram.get_hull_energy_per_atom(cands[j])
    return out


def probability_stable(
    mean: ArrayLike | float,
    std: ArrayLike | float,
    hull_energy: ArrayLike | float,
    delta: ArrayLike | float,
) -> Float[Array, "*m"]:
    """``P(E_hull < δ) = Φ((h + δ - μ) / σ)`` for Gaussian formation energies.

    Pure JAX (``jit`` / ``vmap`` / ``grad``); σ = 0 gives the step function
    ``μ - h < δ`` (the same limit, with zero gradient in σ there).

    Args:
        mean: predictive mean μ of the formation energy, eV/atom, any shape.
        std: predictive standard deviation σ ≥ 0, eV/atom, broadcastable.
        hull_energy: hull formation energy h at the composition, eV/atom.
        delta: tolerance δ above the hull, eV/atom.

    Returns:
        probabilities in [0, 1], broadcast shape (at least 1-D).

    Example:
        >>> float(probability_stable(-1.0, 0.1, -1.0, 0.0)[0])
        0.5
    """
    mean = jnp.atleast_1d(jnp.asarray(mean))
    std = jnp.asarray(std, mean.dtype)
    margin = (
        jnp.asarray(hull_energy, mean.dtype) + jnp.asarray(delta, mean.dtype) - mean
    )
    ok = std > 0
    z = margin / jnp.where(ok, std, 1.0)
    return jnp.where(ok, norm.cdf(z), (margin > 0).astype(mean.dtype))


def default_kernel(n_features: int, config: StabilityConfig = StabilityConfig()):
    """The GP kernel of :func:`fit_formation_energy` for standardised descriptors.

    Args:
        n_features: number of descriptor columns d.
        config: kernel choice and ARD.

    Returns:
        ``stationary(ℓ = √d, σ² = 1) + white(0.05)`` (standardised targets), ARD
        when ``config.ard``.

    Example:
        >>> default_kernel(4).name
        'matern2.5(ℓ=2.0, σ²=1.0) + white(0.05)'
    """
    from mldiff.gp import kernels

    ls = float(np.sqrt(n_features))
    if config.ard:
        ls = np.full(n_features, ls)
    if config.kernel == "matern":
        k = kernels.matern(2.5, length_scale=ls)
    elif config.kernel == "rbf":
        k = kernels.rbf(length_scale=ls)
    elif config.kernel == "rational_quadratic":
        k = kernels.rational_quadratic(length_scale=ls)
    else:
        raise StabilityError(
            f"unknown kernel {config.kernel!r}; use 'matern', 'rbf' or "
            "'rational_quadratic'"
        )
    return k + kernels.white(0.05)


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
    (``normalize_y``). Known per-point uncertainties enter as fixed noise
    variances ``u²``; a missing (NaN) uncertainty counts as 0, leaving that
    point to the learned white noise.

    Args:
        formulas: ``n`` training formulas or ``Composition`` s.
        energies: formation energies ``[n]``, eV/atom.
        uncertainties: standard uncertainties ``[n]``, eV/atom, or None.
        config: kernel and optimiser settings.

    Returns:
        ``predict(formulas) -> (mean [m], std [m])`` in eV/atom; the std
        includes the learned white noise (a prediction of a measured value).
        The fitted :class:`~mldiff.gp.GaussianProcess` is ``predict.gp``.

    Raises:
        StabilityError: NaN / inf energies, negative uncertainties or lengths
            that differ.
        CompositionError: unparsable formulas or unknown elements.

    Example:
        >>> import numpy as np
        >>> predict = fit_formation_energy(
        ...     ["LiF", "NaF", "KF", "LiCl", "NaCl", "KCl"],
        ...     [-3.2, -2.98, -2.94, -2.11, -2.13, -2.25])
        >>> mean, std = predict(["RbCl"])
        >>> bool(-3.5 < mean[0] < -1.5 and std[0] > 0)
        True
    """
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
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = gp.GaussianProcess(
        default_kernel(x.shape[1], config),
        n_restarts=config.n_restarts,
        max_steps=config.max_steps,
        seed=config.seed,
    )
    model.fit((x - center) / scale, y, noise=noise)

    def predict(candidates):
        xs = (descriptors.composition_features(candidates) - center) / scale
        return model.predict(xs)

    predict.gp = model
    return predict


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
    """GP formation energies and ``P(E_hull < δ)`` for candidate compositions.

    Args:
        train: table (pandas DataFrame or mapping of columns) with ``formula``
            and ``formation_energy_ev_per_atom`` (eV/atom), optionally
            ``uncertainty_ev_per_atom`` (eV/atom, NaN where unknown). The
            training compounds are also the competing phases.
        candidates: formulas, or a table with a ``formula`` column.
        delta: tolerance δ above the hull, eV/atom.
        config: GP settings.
        progress: tqdm bar over phase diagrams (``None``: only on a terminal).

    Returns:
        pandas DataFrame with ``formula``, ``formation_energy_mean``,
        ``formation_energy_std``, ``hull_energy`` (h), ``e_hull_mean`` (μ - h)
        in eV/atom and ``p_stable``, one row per candidate in input order.

    Raises:
        StabilityError: missing columns (named), NaN energies, bad formulas.

    Example:
        >>> train = {"formula": ["LiF", "Li2O", "NaF", "Na2O", "NaCl", "LiCl"],
        ...          "formation_energy_ev_per_atom":
        ...              [-3.2, -2.07, -2.98, -1.44, -2.13, -2.11]}
        >>> out = predict_stability(train, ["KF", "KCl"], 0.05)
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
    mean, std = predict(cand)
    h = hull_energies(formulas, energies, cand, exclude_self=True, progress=progress)
    p = np.asarray(probability_stable(jnp.asarray(mean), jnp.asarray(std), h, delta))
    return pd.DataFrame(
        {
            "formula": [getattr(c, "reduced_formula", c) for c in cand],
            "formation_energy_mean": mean,
            "formation_energy_std": std,
            "hull_energy": h,
            "e_hull_mean": mean - h,
            "p_stable": p,
        }
    )
