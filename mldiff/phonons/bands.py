"""Phonon band structures along seekpath's standard path through the Brillouin zone.

seekpath (Hinuma et al.) gives the high-symmetry points and segments for the
standardised primitive cell of a crystal. Its coordinates refer to that
standardised (possibly rotated, possibly differently chosen) cell, so they are
converted here to reduced coordinates of *our* primitive cell through Cartesian
space, undoing seekpath's rotation. For a cell that already is seekpath's
standard primitive cell the q-points are identical to phonopy's
``get_band_qpoints_by_seekpath``.

Sampling follows phonopy's defaults: ``npoints`` q-points per segment, end
points included; path distances are cumulative Cartesian lengths of
``Δq`` in 1/Å without 2π (phonopy's band.yaml ``distance``), continuing across
jumps between disconnected segments.

References:
    Y. Hinuma, G. Pizzi, Y. Kumagai, F. Oba and I. Tanaka, "Band structure
    diagram paths based on crystallography", Comput. Mater. Sci. 128, 140 (2017).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff.structure import Structure
    >>> path = band_path(Structure.from_ase(bulk("Cu", "fcc", a=3.6)), npoints=11)
    >>> path.segments[0], path.qpoints.shape
    (('GAMMA', 'X'), (66, 3))
"""

from typing import NamedTuple

import numpy as np

from mldiff.errors import ConfigError
from mldiff.phonons import dynamical_matrix
from mldiff.structure import Structure

__all__ = ["BandPath", "band_path", "band_structure"]


class BandPath(NamedTuple):
    """q-points along the standard path of a crystal.

    Attributes:
        qpoints: ``[s · npoints, 3]`` q-points, reduced coordinates of the
            primitive reciprocal lattice of the cell given to :func:`band_path`.
        distances: ``[s · npoints]`` cumulative path length, 1/Å (no 2π).
        segments: ``s`` pairs of labels (start, end), seekpath's names
            (``"GAMMA"``, ``"X"``, ...).
        points: label → ``[3]`` reduced coordinates (our primitive cell) of every
            point that starts or ends a segment.
        npoints: q-points per segment, end points included.
    """

    qpoints: np.ndarray
    distances: np.ndarray
    segments: tuple[tuple[str, str], ...]
    points: dict[str, np.ndarray]
    npoints: int


def _seekpath(primitive: Structure, symprec: float) -> dict:
    try:
        import seekpath
    except ImportError as err:  # not a hard dependency of mldiff
        raise ConfigError(
            "band paths need seekpath; install it with `pip install seekpath`"
        ) from err
    lattice = np.asarray(primitive.cell, np.float64)
    frac = np.linalg.solve(lattice.T, np.asarray(primitive.positions, np.float64).T).T
    cell = (lattice, frac, np.asarray(primitive.numbers))
    return seekpath.get_path(cell, with_time_reversal=True, symprec=symprec)


def band_path(
    primitive: Structure, *, npoints: int = 51, symprec: float = 1e-5
) -> BandPath:
    """The standard path (seekpath) in reduced coordinates of ``primitive``.

    Args:
        primitive: the primitive cell whose reciprocal lattice the q-points refer
            to (``Phonons.primitive``), Å.
        npoints: q-points per segment, end points included (phonopy's default 51).
        symprec: symmetry tolerance passed to seekpath/spglib, Å.

    Returns:
        The :class:`BandPath`.
    """
    if npoints < 2:
        raise ConfigError(
            f"npoints must be at least 2 (both end points), got {npoints}"
        )
    res = _seekpath(primitive, symprec)
    rec_std = np.asarray(res["reciprocal_primitive_lattice"])  # rows, 2π included
    rotation = np.asarray(res["rotation_matrix"])  # v_std = R v (Cartesian)
    lattice = np.asarray(primitive.cell, np.float64)

    def ours(label):
        q_std = np.asarray(res["point_coords"][label]) @ rec_std  # Cartesian, std
        q = q_std @ rotation  # Rᵀ q_std as a row vector: back to our frame
        reduced = lattice @ q / (2 * np.pi)
        reduced[np.abs(reduced) < 1e-12] = 0.0
        return reduced

    segments = tuple((str(a), str(b)) for a, b in res["path"])
    points = {lab: ours(lab) for seg in segments for lab in seg}
    t = np.linspace(0.0, 1.0, npoints)[:, None]
    qpoints = np.concatenate(
        [points[a] + t * (points[b] - points[a]) for a, b in segments]
    )
    reciprocal = np.linalg.inv(lattice).T  # rows b_i, a_i · b_j = δ_ij (no 2π)
    steps = np.linalg.norm(np.diff(qpoints, axis=0) @ reciprocal, axis=1)
    steps[npoints - 1 :: npoints] = 0.0  # a new segment starts where the last ended
    distances = np.concatenate([[0.0], np.cumsum(steps)])
    return BandPath(qpoints, distances, segments, points, npoints)


def band_structure(phonons, path: BandPath) -> dict:
    """Frequencies along a band path, and at its labelled points.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons`.
        path: from :func:`band_path` on ``phonons.primitive``.

    Returns:
        ``{"path_labels": [[start, end], ...], "qpoints": [k, 3] reduced,
        "distances": [k] 1/Å, "frequencies_thz": [k, 3p] THz,
        "high_symmetry_frequencies_thz": {label: [3p] THz}}`` (NumPy arrays).
    """
    freq_fn = dynamical_matrix.phonon_frequencies(
        phonons.force_constants, phonons.masses, phonons.images
    )
    labels = list(path.points)
    at_points = np.asarray(freq_fn(np.array([path.points[k] for k in labels])))
    return {
        "path_labels": [list(seg) for seg in path.segments],
        "qpoints": path.qpoints,
        "distances": path.distances,
        "frequencies_thz": np.asarray(freq_fn(path.qpoints)),
        "high_symmetry_frequencies_thz": dict(zip(labels, at_points, strict=True)),
    }
