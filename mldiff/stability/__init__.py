"""Probability that a material lies within δ of the convex hull, ``P(E_hull < δ)``.

A candidate of formation energy per atom ``E`` lies ``E_hull = E - h`` above
the lower convex hull ``h`` of its competing phases at its composition (the
elements at 0). With a Gaussian-process prediction of ``E`` this becomes a
probability. Three things make that probability worth more than the base rate
of stable compounds:

1. A GP that predicts well: one length scale per composition descriptor (ARD),
   fitted by maximum marginal likelihood within bounds
   (:func:`fit_formation_energy`).
2. Correlated errors on the hull: the candidates' energies are drawn jointly
   from the GP's full predictive covariance, and the other candidates compete
   on the hull with their sampled energies (:func:`probability_stable_joint`,
   :func:`hull_decompositions`); an error shared by a candidate and its
   competitors cancels in ``E_hull``.
3. Recalibration: Platt scaling fitted by cross-validation inside the training
   table (:func:`calibrate`), which brings in what the GP does not know, such
   as the prior that known compounds are mostly stable.

:func:`predict_stability` runs all three for a training table and candidates;
:func:`probability_stable` is the closed form ``Φ((h + δ - μ)/σ)`` when the
competing phases are exact and only the candidate is uncertain.

Conventions and assumptions:

- Energies are formation energies per atom (eV/atom) relative to the elements,
  which sit at 0; every element of a candidate is added at 0 even if no phase
  contains it. Elemental rows among the phases must be 0 (by definition).
- A candidate whose reduced formula is among the phases is left out of its own
  hull (otherwise a known stable compound would always sit on its own hull and
  ``E_hull ≤ 0`` trivially).
- The known phases' energies are taken as exact (as measured).

References:
    S. P. Ong, L. Wang, B. Kang and G. Ceder, "Li–Fe–P–O₂ phase diagram from
    first principles calculations", Chem. Mater. 20, 1798 (2008) (pymatgen's
    phase-diagram construction).
    C. J. Bartel et al., "A critical examination of compound stability
    predictions from machine-learned formation energies", npj Comput. Mater.
    6, 97 (2020) (why stability must be judged on the hull, not on E_f).
    J. Platt, in Advances in Large Margin Classifiers (MIT Press, 1999)
    (Platt scaling).

Example:
    >>> h = hull_energies(["Li2O"], [-2.0], ["Li2O2"])  # hull: Li2O -- O
    >>> round(float(h[0]), 6)  # 3/4 of the way from O to Li2O in fraction
    -1.5
    >>> p = probability_stable(-1.6, 0.0, h, 0.05)
    >>> float(p[0])
    1.0
"""

from mldiff.errors import StabilityError
from mldiff.stability._calibration import fit_platt, platt
from mldiff.stability._hull import (
    HullDecompositions,
    hull_decompositions,
    hull_energies,
    probability_stable,
    probability_stable_joint,
)
from mldiff.stability._model import (
    StabilityConfig,
    calibrate,
    default_kernel,
    fit_formation_energy,
    predict_stability,
)

__all__ = [
    "StabilityError",
    "StabilityConfig",
    "HullDecompositions",
    "hull_energies",
    "hull_decompositions",
    "probability_stable",
    "probability_stable_joint",
    "fit_formation_energy",
    "calibrate",
    "fit_platt",
    "platt",
    "predict_stability",
    "default_kernel",
]
