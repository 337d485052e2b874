"""Per-species reference energies and an energy scale from training data.

Raw DFT totals are dominated by per-element constants. Fitting them by least
squares on the composition and subtracting them leaves a small, well-scaled
target for the network; the force RMS gives the natural energy scale (the
approach of NequIP and MACE).
"""

from collections.abc import Sequence

import numpy as np

__all__ = ["fit_atomic_energies", "force_rms"]


def fit_atomic_energies(
    numbers_per_structure: Sequence[np.ndarray],
    energies: Sequence[float],
    species: Sequence[int],
) -> dict[int, float]:
    """Least-squares per-species energies ``E ≈ Σ_Z c_Z(structure) E0_Z``.

    Args:
        numbers_per_structure: atomic numbers of each structure.
        energies: total energies, eV.
        species: the elements of the model.

    Returns:
        ``{Z: E0_Z}`` in eV/atom.

    Example:
        >>> numbers = [np.array([29, 29]), np.array([29])]
        >>> fit_atomic_energies(numbers, [-2.0, -1.0], [29])
        {29: -1.0}
    """
    species = [int(z) for z in species]
    counts = np.array(
        [[np.sum(np.asarray(n) == z) for z in species] for n in numbers_per_structure],
        dtype=np.float64,
    )
    e = np.asarray(energies, dtype=np.float64)
    # minimum-norm least squares: well defined even when compositions are
    # rank-deficient (e.g. every structure has the same stoichiometry)
    e0, *_ = np.linalg.lstsq(counts, e, rcond=None)
    return {z: round(float(v), 12) for z, v in zip(species, e0, strict=True)}


def force_rms(forces: Sequence[np.ndarray]) -> float:
    """Root-mean-square force component over a data set, eV/Å (1.0 if zero)."""
    flat = np.concatenate([np.asarray(f).reshape(-1) for f in forces]) if forces else []
    rms = float(np.sqrt(np.mean(np.square(flat)))) if len(flat) else 0.0
    return rms if rms > 0 else 1.0
