"""Convex hulls of formation energies and the probability of lying near them.

The energy above the hull of a candidate of formation energy ``E`` at
composition ``c`` is ``E_hull = E - h(c)``, with ``h`` the lower convex hull of
the competing phases (and the elements at 0) at ``c``. A linear programme gives
``h``: the minimum over decompositions ``c = Σ_k λ_k c_k`` (``λ ≥ 0``) of
``Σ_k λ_k E_k``; an optimal decomposition uses at most as many phases as the
system has elements (Carathéodory), so ``h`` is the minimum of finitely many
*linear* functions of the phase energies.

Two estimates of ``P(E_hull < δ)``:

- :func:`probability_stable`: the competing phases are exact and only the
  candidate's ``E ~ N(μ, σ²)`` is uncertain: ``Φ((h + δ - μ)/σ)``.
- :func:`probability_stable_joint`: other candidates compete too, and the
  energies of all candidates are drawn jointly from one Gaussian
  ``N(μ, Σ)`` (a GP's full predictive covariance), so that correlated errors
  of a candidate and its competitors partly cancel in ``E_hull``. The
  decompositions that involve other candidates are enumerated once
  (:func:`hull_decompositions`); each Monte-Carlo sample is then a few
  gathers and a segment minimum.

References:
    S. P. Ong, L. Wang, B. Kang and G. Ceder, Chem. Mater. 20, 1798 (2008)
    (pymatgen's phase-diagram construction).
    C. J. Bartel et al., npj Comput. Mater. 6, 97 (2020) (stability must be
    judged on the hull, where errors of competing phases partly cancel).
"""

import dataclasses
import itertools
import math
import warnings
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from mldiff._typing import ArrayLike
from mldiff.errors import StabilityError

__all__ = [
    "HullDecompositions",
    "hull_energies",
    "hull_decompositions",
    "probability_stable",
    "probability_stable_joint",
]

#: most decompositions enumerated per candidate; beyond it the competing
#: candidates farthest in composition are dropped (a warning says how many)
MAX_DECOMPOSITIONS = 20000


def compositions(formulas, what: str):
    """The ``Composition`` of each formula; StabilityError if unparsable."""
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


def _known_phases(phase_formulas, phase_energies):
    """``(compositions, energies [p])`` of the non-elemental phases, checked."""
    phases = compositions(phase_formulas, "phase")
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
    return [phases[i] for i in keep], energies[keep]


def _diagrams(phases, energies, cands, exclude_self: bool, progress):
    """Yield ``(PhaseDiagram, system, members)`` per (system, excluded phase)."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition
    from tqdm import tqdm

    phase_sets = [frozenset(e.symbol for e in c.elements) for c in phases]
    phase_names = [c.reduced_formula for c in phases]
    names = set(phase_names)
    groups: dict[tuple[frozenset, str | None], list[int]] = {}
    for j, c in enumerate(cands):
        system = frozenset(e.symbol for e in c.elements)
        name = (
            c.reduced_formula if exclude_self and c.reduced_formula in names else None
        )
        groups.setdefault((system, name), []).append(j)
    bar = tqdm(
        groups.items(),
        desc="phase diagrams",
        disable=True if progress is False else None,
    )
    for (system, excluded), members in bar:
        entries = [PDEntry(Composition(el), 0.0) for el in sorted(system)]
        for k, c in enumerate(phases):
            if phase_sets[k] <= system and phase_names[k] != excluded:
                entries.append(PDEntry(c, energies[k] * c.num_atoms))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield PhaseDiagram(entries), system, members


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
    phases, energies = _known_phases(phase_formulas, phase_energies)
    cands = compositions(candidates, "candidate")
    out = np.empty(len(cands), dtype=np.float64)
    for diagram, _, members in _diagrams(
        phases, energies, cands, exclude_self, progress
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class HullDecompositions:
    """Hull energies of ``m`` candidates as minima of linear functions.

    ``h_i(E) = min(known_hull_ev_per_atom[i],
    min_{j: candidate[j] = i} offset_ev_per_atom[j]
    + Σ_k coefficients[j, k] · E[members[j, k]])`` for candidate energies
    ``E [m]``: the hull of the known phases and of the *other* candidates at
    candidate ``i``'s composition (its own formula left out).

    Attributes:
        known_hull_ev_per_atom: ``[m]`` hull of the known phases alone, eV/atom.
        candidate: ``[J]`` int, the candidate each decomposition belongs to.
        offset_ev_per_atom: ``[J]`` ``Σ λ E`` over the known phases (and
            elements at 0) of the decomposition, eV/atom.
        members: ``[J, k]`` int, the other candidates in the decomposition
            (padding: index 0 with coefficient 0).
        coefficients: ``[J, k]`` their atomic fractions λ, dimensionless.
    """

    known_hull_ev_per_atom: np.ndarray
    candidate: np.ndarray
    offset_ev_per_atom: np.ndarray
    members: np.ndarray
    coefficients: np.ndarray

    def hull(self, energies: Float[Array, "*s m"]) -> Float[Array, "*s m"]:
        """``h(E)`` for candidate energies ``[..., m]`` (eV/atom), JAX."""
        e = jnp.asarray(energies)
        m = self.known_hull_ev_per_atom.shape[0]
        known = jnp.broadcast_to(jnp.asarray(self.known_hull_ev_per_atom), e.shape)
        if self.candidate.size == 0:
            return known
        lin = jnp.asarray(self.offset_ev_per_atom) + jnp.sum(
            jnp.asarray(self.coefficients) * e[..., self.members], axis=-1
        )  # [..., J]
        lead = lin.shape[:-1]
        lin = lin.reshape(-1, lin.shape[-1])
        seg = jax.vmap(
            lambda v: jax.ops.segment_min(
                v, self.candidate, num_segments=m, indices_are_sorted=True
            )
        )(lin).reshape(*lead, m)
        return jnp.minimum(known, seg)


def _fractions(comp, elements) -> np.ndarray:
    return np.array([comp.get_atomic_fraction(el) for el in elements])


def _decompositions_of(target, fixed_x, fixed_e, rand_x, rand_idx, k_max):
    """Decompositions of ``target [d]`` with at least one random phase.

    Returns lists of ``(offset, members, coefficients)``.
    """
    nf = fixed_x.shape[0]
    x = np.concatenate([fixed_x, rand_x])
    rows = []
    for k in range(1, min(k_max, x.shape[0]) + 1):
        combos = [
            s
            for s in itertools.combinations(range(x.shape[0]), k)
            if s[-1] >= nf  # sorted: the last index is random if any is
        ]
        if not combos:
            continue
        combos = np.asarray(combos)  # [N, k]
        a = np.transpose(x[combos], (0, 2, 1))  # [N, d, k]: columns are phases
        lam = np.einsum("nkd,d->nk", np.linalg.pinv(a), target)
        resid = np.linalg.norm(np.einsum("ndk,nk->nd", a, lam) - target, axis=1)
        full_rank = np.linalg.matrix_rank(a, tol=1e-9) == k
        ok = (resid < 1e-9) & np.all(lam > -1e-12, axis=1) & full_rank
        for s, lam_s in zip(combos[ok], lam[ok], strict=True):
            lam_s = np.maximum(lam_s, 0.0)
            fixed = s < nf
            offset = float(np.dot(lam_s[fixed], fixed_e[s[fixed]]))
            rows.append((offset, rand_idx[s[~fixed] - nf], lam_s[~fixed]))
    return rows


def hull_decompositions(
    phase_formulas: Iterable,
    phase_energies: ArrayLike | Sequence[float],
    candidates: Iterable,
    *,
    exclude_self: bool = True,
    candidates_compete: bool = True,
    progress: bool | None = False,
) -> HullDecompositions:
    """The decompositions through which candidates compete with each other.

    For every candidate ``i``: the hull of the known phases at its composition
    (as :func:`hull_energies`), and every decomposition of its composition into
    known-hull vertices (elements included) and at least one *other*
    candidate whose elements lie in ``i``'s system and whose reduced formula
    differs. Known phases above their own hull never enter (they stay above
    any lower hull), so only the vertices are used.

    Args:
        phase_formulas: the ``p`` known phases (formulas or ``Composition`` s).
        phase_energies: their formation energies ``[p]``, eV/atom.
        candidates: ``m`` formulas or ``Composition`` s.
        exclude_self: leave a known phase with the candidate's reduced formula
            out of that candidate's hull.
        candidates_compete: enumerate decompositions through other candidates
            (False: only the known hull).
        progress: tqdm bar over phase diagrams (``None``: only on a terminal).

    Returns:
        :class:`HullDecompositions`.

    Example:
        >>> d = hull_decompositions(["Li2O"], [-2.0], ["Li2O2", "LiO2"])
        >>> d.known_hull_ev_per_atom.round(6).tolist()  # Li2O -- O
        [-1.5, -1.0]
        >>> round(float(d.hull(jnp.array([-1.7, -1.4]))[0]), 6)  # Li2O + LiO2
        -1.7
    """
    phases, energies = _known_phases(phase_formulas, phase_energies)
    cands = compositions(candidates, "candidate")
    m = len(cands)
    known = np.empty(m, dtype=np.float64)
    cand_sets = [frozenset(e.symbol for e in c.elements) for c in cands]
    cand_names = [c.reduced_formula for c in cands]
    rows: list[list] = [[] for _ in range(m)]
    dropped = 0
    for diagram, system, members in _diagrams(
        phases, energies, cands, exclude_self, progress
    ):
        elements = sorted(system)
        verts = [e for e in diagram.stable_entries]
        fixed_x = np.array([_fractions(e.composition, elements) for e in verts])
        fixed_e = np.array([diagram.get_form_energy_per_atom(e) for e in verts])
        for i in members:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                known[i] = diagram.get_hull_energy_per_atom(cands[i])
            if not candidates_compete:
                continue
            target = _fractions(cands[i], elements)
            rand = [
                j
                for j in range(m)
                if cand_sets[j] <= system and cand_names[j] != cand_names[i]
            ]
            rand_x = np.array([_fractions(cands[j], elements) for j in rand])
            k_max = len(elements)
            count = sum(
                math.comb(len(verts) + len(rand), k) - math.comb(len(verts), k)
                for k in range(1, k_max + 1)
            )
            while rand and count > MAX_DECOMPOSITIONS:
                far = int(np.argmax(np.abs(rand_x - target).sum(axis=1)))
                rand.pop(far)
                rand_x = np.delete(rand_x, far, axis=0)
                dropped += 1
                count = sum(
                    math.comb(len(verts) + len(rand), k) - math.comb(len(verts), k)
                    for k in range(1, k_max + 1)
                )
            if rand:
                rows[i] = _decompositions_of(
                    target, fixed_x, fixed_e, rand_x, np.asarray(rand), k_max
                )
    if dropped:
        warnings.warn(
            f"{dropped} competing candidates left out of crowded systems (more "
            f"than {MAX_DECOMPOSITIONS} decompositions per candidate)",
            stacklevel=2,
        )
    k = max([len(r[1]) for rs in rows for r in rs], default=1)
    flat = [(i, *r) for i, rs in enumerate(rows) for r in rs]
    members = np.zeros((len(flat), k), dtype=np.int64)
    coefficients = np.zeros((len(flat), k))
    for n, (_, _, idx, lam) in enumerate(flat):
        members[n, : len(idx)] = idx
        coefficients[n, : len(lam)] = lam
    return HullDecompositions(
        known_hull_ev_per_atom=known,
        candidate=np.array([r[0] for r in flat], dtype=np.int64),
        offset_ev_per_atom=np.array([r[1] for r in flat], dtype=np.float64),
        members=members,
        coefficients=coefficients,
    )


def probability_stable_joint(
    mean: Float[Array, " m"],
    cov: Float[Array, "m m"],
    decompositions: HullDecompositions,
    delta: float,
    *,
    key,
    n_samples: int = 4096,
    batch_size: int = 256,
) -> Float[Array, " m"]:
    """Monte-Carlo ``P(E_i - h_i(E) < δ)`` for ``E ~ N(mean, cov)`` drawn jointly.

    Each sample draws the energies of all candidates at once, builds every
    candidate's hull from the known phases and the *sampled* energies of the
    other candidates (:class:`HullDecompositions`), and counts the candidates
    within δ of it. With a diagonal ``cov`` and no competing candidates this
    is :func:`probability_stable` up to Monte-Carlo error
    ``√(P(1-P)/n_samples)``.

    Args:
        mean: predictive means of the candidates' formation energies ``[m]``,
            eV/atom.
        cov: their predictive covariance ``[m, m]``, (eV/atom)²; symmetric
            positive semi-definite (negative eigenvalues from round-off are
            clipped).
        decompositions: from :func:`hull_decompositions` for these candidates.
        delta: tolerance δ above the hull, eV/atom.
        key: PRNG key of the samples.
        n_samples: number of joint samples.
        batch_size: samples evaluated at once (memory ``batch_size · J``).

    Returns:
        ``[m]`` probabilities, multiples of ``1/n_samples``.

    Example:
        >>> import jax
        >>> d = hull_decompositions(["Li2O"], [-2.0], ["Li2O2"])
        >>> p = probability_stable_joint(
        ...     jnp.array([-1.5]), jnp.array([[0.01]]), d, 0.0,
        ...     key=jax.random.key(0), n_samples=4000)
        >>> bool(abs(float(p[0]) - 0.5) < 0.03)
        True
    """
    mean = jnp.asarray(mean)
    cov = jnp.asarray(cov, mean.dtype)
    m = mean.shape[0]
    if cov.shape != (m, m) or decompositions.known_hull_ev_per_atom.shape != (m,):
        raise StabilityError(
            f"mean has {m} candidates but cov has shape {cov.shape} and the "
            f"decompositions {decompositions.known_hull_ev_per_atom.shape[0]}; "
            "build all three for the same candidates"
        )
    w, q = jnp.linalg.eigh(0.5 * (cov + cov.T))
    root = q * jnp.sqrt(jnp.maximum(w, 0.0))  # cov = root rootᵀ

    def stable(k):
        e = mean + root @ jax.random.normal(k, (m,), mean.dtype)
        return (e - decompositions.hull(e) < delta).astype(mean.dtype)

    keys = jax.random.split(key, n_samples)
    hits = jax.lax.map(stable, keys, batch_size=min(batch_size, n_samples))
    return jnp.mean(hits, axis=0)
