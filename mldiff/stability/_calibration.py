"""Recalibration of stability probabilities (Platt scaling on the logit).

A model's ``P(E_hull < δ)`` can rank compounds well and still be
miscalibrated: the GP's error is not Gaussian, its variance is estimated from
the energies (not from the hull distances that decide stability), and known
compounds are mostly stable, a prior the GP does not know. Platt scaling fits
``P' = σ(a · logit(P) + b)`` to held-out (probability, label) pairs by
maximum likelihood (logistic regression on one feature); ``a`` rescales the
spread, ``b`` carries the base rate. The map is monotone in ``P`` (for
``a > 0``), so the ranking (ROC-AUC) is unchanged.

The pairs must come from data the model was not conditioned on and never from
the compounds being evaluated: :func:`mldiff.stability.predict_stability`
makes them by cross-validation inside the training table.

References:
    J. Platt, "Probabilistic outputs for support vector machines and
    comparisons to regularized likelihood methods", in Advances in Large
    Margin Classifiers (MIT Press, 1999).
    A. Niculescu-Mizil and R. Caruana, "Predicting good probabilities with
    supervised learning", ICML 2005 (Platt scaling of probabilistic models).
"""

import numpy as np

from mldiff.errors import StabilityError

__all__ = ["fit_platt", "platt"]

#: probabilities are clipped to [EPS, 1 - EPS] before the logit (Monte-Carlo
#: estimates are exactly 0 or 1 in the tails)
EPS = 1e-4


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(
    probabilities, labels, *, l2: float = 1e-3, max_steps: int = 100
) -> tuple[float, float]:
    """Fit ``(a, b)`` of ``σ(a · logit(p) + b)`` to binary labels.

    Newton's method on the mean logistic loss plus ``l2/2 · (a - 1)²``, a weak
    pull towards the identity map ``(a, b) = (1, 0)`` that keeps the fit
    finite when the classes are separable.

    Args:
        probabilities: ``[n]`` held-out predicted probabilities in [0, 1].
        labels: ``[n]`` observed outcomes, 0 or 1 (or bool).
        l2: strength of the pull of ``a`` towards 1.
        max_steps: Newton iterations (converges in a handful).

    Returns:
        ``(a, b)`` as floats.

    Raises:
        StabilityError: lengths that differ, fewer than 2 points, labels other
            than 0/1, or probabilities outside [0, 1].

    Example:
        >>> p = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1])
        >>> y = np.array([1, 1, 1, 0, 0, 0])
        >>> a, b = fit_platt(p, y)
        >>> round(float(platt(0.9, a, b)), 2)  # observed 3 of 4
        0.75
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size < 2:
        raise StabilityError(
            f"need one label per probability and at least 2 of each, got "
            f"{p.size} probabilities and {y.size} labels"
        )
    if not np.all((y == 0) | (y == 1)):
        raise StabilityError("labels must be 0 or 1 (stable within δ or not)")
    if not np.all((p >= 0) & (p <= 1)):
        raise StabilityError("probabilities must lie in [0, 1]")
    f = np.stack([_logit(p), np.ones_like(p)], axis=1)  # [n, 2]
    w = np.array([1.0, 0.0])
    prior = np.array([1.0, 0.0])
    reg = np.diag([l2, 0.0]) + 1e-12 * np.eye(2)
    for _ in range(max_steps):
        q = 1.0 / (1.0 + np.exp(-(f @ w)))
        grad = f.T @ (q - y) / p.size + reg @ (w - prior)
        hess = (f * (q * (1 - q))[:, None]).T @ f / p.size + reg
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


def platt(probabilities, a: float, b: float) -> np.ndarray:
    """Recalibrated probabilities ``σ(a · logit(p) + b)``.

    Args:
        probabilities: any shape, in [0, 1].
        a: slope from :func:`fit_platt`.
        b: intercept from :func:`fit_platt`.

    Returns:
        float64 array of the same shape, in (0, 1).

    Example:
        >>> float(platt(0.5, 1.0, 0.0))
        0.5
    """
    z = a * _logit(probabilities) + b
    return np.asarray(1.0 / (1.0 + np.exp(-z)))
