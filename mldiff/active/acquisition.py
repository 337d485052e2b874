"""Acquisition functions and batch selection for active learning.

Scores say how much a label at each candidate is worth; larger is better. They
are pure JAX functions of a predictive mean and standard deviation (or of a
committee's disagreement), jit- and vmap-compatible:

* :func:`max_variance` — the predictive standard deviation (uncertainty
  sampling; for a committee, its disagreement: query by committee);
* :func:`upper_confidence_bound` — ``±μ + κσ`` (Srinivas et al. 2010);
* :func:`expected_improvement` — ``E[max(0, ±(f − f*) − ξ)]`` under a Gaussian
  (Jones, Schonlau & Welch 1998);
* :func:`random_scores` — uniform noise, the baseline every curve is compared
  against.

:func:`select_batch` turns scores into a batch: greedy top-``k`` with
diversity rules, so one event (one region of a trajectory, one cluster of
similar compounds) cannot fill the batch.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jax.typing import ArrayLike

from mldiff.errors import ConfigError

__all__ = [
    "ACQUISITIONS",
    "max_variance",
    "upper_confidence_bound",
    "expected_improvement",
    "random_scores",
    "trusted_scores",
    "scores",
    "select_batch",
]


def max_variance(mean: ArrayLike, std: ArrayLike) -> jax.Array:
    """Uncertainty sampling: the predictive standard deviation ``σ`` (unit of y).

    Example:
        >>> import jax.numpy as jnp
        >>> max_variance(jnp.zeros(2), jnp.array([0.1, 0.3])).tolist()
        [0.1, 0.3]
    """
    del mean
    return jnp.asarray(std)


def upper_confidence_bound(
    mean: ArrayLike, std: ArrayLike, *, kappa: float = 2.0, maximize: bool = True
) -> jax.Array:
    """``μ + κσ`` (or ``−μ + κσ`` when minimising), unit of y.

    Args:
        mean: predictive means ``[n]``.
        std: predictive standard deviations ``[n]``.
        kappa: exploration weight ``κ ≥ 0``.
        maximize: look for large values of y (else small ones).

    Example:
        >>> import jax.numpy as jnp
        >>> upper_confidence_bound(jnp.array([1.0]), jnp.array([0.5])).tolist()
        [2.0]
    """
    sign = 1.0 if maximize else -1.0
    return sign * jnp.asarray(mean) + kappa * jnp.asarray(std)


def expected_improvement(
    mean: ArrayLike,
    std: ArrayLike,
    *,
    best: float,
    maximize: bool = True,
    xi: float = 0.0,
) -> jax.Array:
    """Expected improvement over ``best`` of a Gaussian prediction, unit of y.

    ``EI = (d − ξ) Φ(z) + σ φ(z)`` with ``d = μ − best`` (``best − μ`` when
    minimising) and ``z = (d − ξ)/σ``; ``max(d − ξ, 0)`` where ``σ = 0``.

    Args:
        mean: predictive means ``[n]``.
        std: predictive standard deviations ``[n]``.
        best: the best value labeled so far.
        maximize: improvement means larger y (else smaller).
        xi: margin ``ξ ≥ 0`` that favours exploration.

    Example:
        >>> import jax.numpy as jnp
        >>> ei = expected_improvement(jnp.array([0.0]), jnp.array([1.0]), best=0.0)
        >>> round(float(ei[0]), 6)  # σ φ(0) = 1/√(2π)
        0.398942
    """
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    d = (mean - best if maximize else best - mean) - xi
    safe = jnp.where(std > 0, std, 1.0)
    z = d / safe
    ei = d * norm.cdf(z) + safe * norm.pdf(z)
    return jnp.where(std > 0, ei, jnp.maximum(d, 0.0))


def random_scores(key: jax.Array, n: int) -> jax.Array:
    """``[n]`` uniform random scores: random selection as an acquisition.

    Example:
        >>> import jax
        >>> random_scores(jax.random.key(0), 3).shape
        (3,)
    """
    return jax.random.uniform(key, (int(n),))


def trusted_scores(
    score: ArrayLike | Sequence[float],
    trust_high: float,
    *,
    groups=None,
    frames=None,
) -> np.ndarray:
    """Committee spreads under an upper trust level (DP-GEN's), for ranking.

    Candidates at or below ``trust_high`` keep their spread and come first,
    largest first; those above it follow, nearest to the level first (score
    ``trust_high − spread < 0``). So a batch takes the most uncertain trusted
    frames and, only when too few are trusted, the least untrusted ones: a
    budgeted loop still labels a full batch while its first, poor committees'
    MD produces almost nothing but near-collisions.

    With ``groups`` (the trajectory of each frame) and ``frames`` (its index
    there), a trajectory is cut at its first frame above the level, as
    on-the-fly learning stops its MD there (Vandermause et al., npj Comput.
    Mater. 6, 20 (2020)): that exit frame stays a candidate, and the later
    frames get NaN, so they are never taken. They were made by a force field
    that had already left its data, and can be near-collisions on which the
    committee members agree only because all of them are equally wrong there.

    Args:
        score: ``[n]`` committee spreads (e.g. max force std, eV/Å).
        trust_high: the level, same unit.
        groups: optional ``[n]`` trajectory labels.
        frames: optional ``[n]`` frame indices in the trajectories (needed
            with ``groups``).

    Returns:
        ``[n]`` float scores for :func:`select_batch` (NaN stays NaN).

    Example:
        >>> trusted_scores([0.1, 0.25, 2.0, 0.5], 0.3).tolist()
        [0.1, 0.25, -1.7, -0.2]
        >>> trusted_scores([0.1, 0.5, 0.2, 0.1], 0.3, groups=[0, 0, 0, 1],
        ...                frames=[0, 1, 2, 0]).tolist()
        [0.1, -0.2, nan, 0.1]
    """
    s = np.asarray(score, dtype=np.float64)
    out = np.where(s <= trust_high, s, trust_high - s)
    if groups is None:
        return out
    if frames is None:
        raise ConfigError("trusted_scores: groups need frames (the frame indices)")
    g = np.asarray(groups).reshape(s.shape)
    f = np.asarray(frames).reshape(s.shape)
    for label in np.unique(g):
        members = np.flatnonzero(g == label)
        exits = members[s[members] > trust_high]
        if exits.size:
            first_exit = np.min(f[exits])
            out[members[f[members] > first_exit]] = np.nan
    return out


ACQUISITIONS = (
    "max_variance",
    "upper_confidence_bound",
    "expected_improvement",
    "random",
)


def scores(
    acquisition: str,
    mean,
    std,
    *,
    key=None,
    best: float | None = None,
    maximize: bool = True,
    kappa: float = 2.0,
    xi: float = 0.0,
) -> np.ndarray:
    """Scores ``[n]`` of one of :data:`ACQUISITIONS` (dispatch by name).

    Args:
        acquisition: ``"max_variance"``, ``"upper_confidence_bound"``,
            ``"expected_improvement"`` or ``"random"``.
        mean: predictive means ``[n]``.
        std: predictive standard deviations ``[n]``.
        key: PRNG key (``"random"`` only).
        best: best labeled value (``"expected_improvement"`` only).
        maximize: direction of ``upper_confidence_bound`` / ``expected_improvement``.
        kappa: UCB exploration weight.
        xi: EI margin.

    Raises:
        ConfigError: unknown name, or a missing ``key`` / ``best``.
    """
    if acquisition == "max_variance":
        out = max_variance(mean, std)
    elif acquisition == "upper_confidence_bound":
        out = upper_confidence_bound(mean, std, kappa=kappa, maximize=maximize)
    elif acquisition == "expected_improvement":
        if best is None:
            raise ConfigError(
                "expected_improvement needs best= (the best label so far)"
            )
        out = expected_improvement(mean, std, best=best, maximize=maximize, xi=xi)
    elif acquisition == "random":
        if key is None:
            raise ConfigError("random acquisition needs key= (a jax.random key)")
        out = random_scores(key, np.shape(mean)[0])
    else:
        raise ConfigError(
            f"unknown acquisition {acquisition!r}; choose one of {ACQUISITIONS}"
        )
    return np.asarray(out, dtype=np.float64)


def select_batch(
    score: ArrayLike | Sequence[float],
    k: int,
    *,
    features=None,
    min_distance: float = 0.0,
    groups=None,
    frames=None,
    min_frame_gap: int = 0,
    max_per_group: int | None = None,
) -> np.ndarray:
    """Greedy top-``k`` indices by score, with diversity rules.

    Candidates are visited from the highest score down; one is taken unless

    * ``features`` ``[n, d]`` is given and it lies closer than
      ``min_distance`` (Euclidean, unit of the features) to one already taken;
    * ``groups`` (e.g. the trajectory a frame comes from) and ``frames`` (its
      index in that trajectory) are given and a taken candidate of the same
      group is fewer than ``min_frame_gap`` frames away (one event of an MD
      run does not fill the batch);
    * ``max_per_group`` candidates of its group are taken already.

    Non-finite scores are never taken. Fewer than ``k`` indices come back when
    the rules exclude the rest.

    Args:
        score: ``[n]`` acquisition scores, larger is better.
        k: batch size.
        features: optional ``[n, d]`` descriptors for the distance rule.
        min_distance: minimum distance between taken candidates.
        groups: optional ``[n]`` group labels.
        frames: optional ``[n]`` frame indices within the groups.
        min_frame_gap: minimum frame separation within a group.
        max_per_group: cap per group.

    Returns:
        ``[≤ k]`` int indices into the candidates, best first.

    Example:
        >>> select_batch([0.9, 0.8, 0.1, 0.5], 2, groups=[0, 0, 1, 0],
        ...              frames=[10, 11, 0, 30], min_frame_gap=5).tolist()
        [0, 3]
    """
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    n = s.shape[0]
    if int(k) < 0:
        raise ConfigError(f"batch size k must be >= 0, got {k}")
    x = None if features is None else np.asarray(features, np.float64).reshape(n, -1)
    g = None if groups is None else np.asarray(groups).reshape(n)
    fr = None if frames is None else np.asarray(frames).reshape(n)
    order = np.argsort(-np.where(np.isfinite(s), s, -np.inf), kind="stable")
    taken: list[int] = []
    for i in order:
        if len(taken) >= int(k) or not np.isfinite(s[i]):
            break
        if x is not None and min_distance > 0 and taken:
            if np.min(np.linalg.norm(x[taken] - x[i], axis=1)) < min_distance:
                continue
        if g is not None:
            same = [j for j in taken if g[j] == g[i]]
            if max_per_group is not None and len(same) >= max_per_group:
                continue
            if fr is not None and min_frame_gap > 0 and same:
                if np.min(np.abs(fr[same] - fr[i])) < min_frame_gap:
                    continue
        taken.append(int(i))
    return np.asarray(taken, dtype=np.int64)
