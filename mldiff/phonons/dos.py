"""Phonon density of states by Gaussian smearing on a q-point mesh.

Total DOS ``g(f) = (1/W) Σ_q w_q Σ_ν G(f_qν − f; σ)`` with the normal
distribution ``G(x; σ) = exp(−x²/2σ²) / (σ √(2π))``, in states/THz per
primitive cell, so that ``∫ g df = 3p``. The projected DOS of atom ``i``
weights each mode by ``Σ_a |e_{ia,ν}(q)|²`` (the atom's share of the
normalised eigenvector), so the projections sum to the total. This is
phonopy's ``TotalDos`` / ``ProjectedDos`` with ``use_tetrahedron_method=False``
and ``smearing_function="Normal"``; the tetrahedron method is not implemented.

Default frequency points follow phonopy's ``set_draw_area``: from
``min f − 10σ`` to ``max f + 10σ`` in 200 steps.

References:
    phonopy 4.10 ``phonon/dos.py`` (smearing formulas and default range).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> import numpy as np
    >>> f = np.array([[1.0, 2.0, 3.0]])
    >>> points = np.linspace(-5, 10, 3001)
    >>> g = total_dos(f, points, sigma_thz=0.1)
    >>> round(float(np.trapezoid(g, points)), 6)  # 3 modes
    3.0
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from mldiff.errors import ConfigError
from mldiff.phonons import dynamical_matrix
from mldiff.phonons.qmesh import regular_mesh

__all__ = ["frequency_points", "total_dos", "projected_dos", "mesh_dos"]


def frequency_points(frequencies_thz, sigma_thz: float, *, num: int = 201):
    """Phonopy's default DOS frequency points: ``[min − 10σ, max + 10σ]``.

    Args:
        frequencies_thz: ``[q, m]`` mesh frequencies, THz.
        sigma_thz: smearing width σ, THz.
        num: number of points (phonopy: 200 steps, 201 points).

    Returns:
        ``[num]`` frequency points, THz.
    """
    f = np.asarray(frequencies_thz)
    lo, hi = f.min() - 10 * sigma_thz, f.max() + 10 * sigma_thz
    step = (hi - lo) / (num - 1)
    return np.arange(lo, hi + step * 0.1, step)


def _gaussian(x, sigma):
    return jnp.exp(-(x**2) / (2 * sigma**2)) / (sigma * jnp.sqrt(2 * jnp.pi))


def total_dos(
    frequencies_thz: Float[ArrayLike, "q m"],
    points_thz: Float[ArrayLike, " f"],
    *,
    sigma_thz: float,
    weights=None,
):
    """Total phonon DOS by Gaussian smearing.

    Args:
        frequencies_thz: ``[q, m]`` mesh frequencies, THz.
        points_thz: ``[f]`` frequencies at which to evaluate, THz.
        sigma_thz: standard deviation σ of the Gaussian, THz.
        weights: ``[q]`` q-point weights; default equal.

    Returns:
        ``[f]`` DOS, states/THz per primitive cell (integrates to 3p).
    """
    if sigma_thz <= 0:
        raise ConfigError(f"sigma_thz must be positive, got {sigma_thz}")
    f = jnp.asarray(frequencies_thz)
    x = jnp.asarray(points_thz, f.dtype)
    w = jnp.ones(f.shape[0], f.dtype) if weights is None else jnp.asarray(weights)
    g = _gaussian(f[None, :, :] - x[:, None, None], sigma_thz)  # [f, q, m]
    return jnp.einsum("fqm,q->f", g, w) / jnp.sum(w)


def projected_dos(
    frequencies_thz, eigenvectors, points_thz, *, sigma_thz: float, weights=None
):
    """Atom-projected phonon DOS by Gaussian smearing.

    Args:
        frequencies_thz: ``[q, m]`` mesh frequencies, THz (m = 3p).
        eigenvectors: ``[q, m, m]`` eigenvectors, column = mode, phonopy layout.
        points_thz: ``[f]`` frequencies at which to evaluate, THz.
        sigma_thz: standard deviation σ of the Gaussian, THz.
        weights: ``[q]`` q-point weights; default equal.

    Returns:
        ``[p, f]`` DOS per primitive atom, states/THz; sums to :func:`total_dos`.
    """
    if sigma_thz <= 0:
        raise ConfigError(f"sigma_thz must be positive, got {sigma_thz}")
    f = jnp.asarray(frequencies_thz)
    e = jnp.asarray(eigenvectors)
    q, m = f.shape
    share = jnp.sum(jnp.abs(e.reshape(q, m // 3, 3, m)) ** 2, axis=2)  # [q, p, m]
    x = jnp.asarray(points_thz, f.dtype)
    w = jnp.ones(q, f.dtype) if weights is None else jnp.asarray(weights)
    g = _gaussian(f[None, :, :] - x[:, None, None], sigma_thz)  # [f, q, m]
    return jnp.einsum("fqm,qpm,q->pf", g, share, w) / jnp.sum(w)


def mesh_dos(
    phonons, mesh, *, sigma_thz: float, points_thz=None, gamma_center: bool = False
) -> dict:
    """Total and projected DOS of :class:`~mldiff.phonons.Phonons` on a mesh.

    Args:
        phonons: from :func:`mldiff.phonons.run`.
        mesh: ``(N1, N2, N3)``, sampled as phonopy's ``run_mesh``
            (:func:`~mldiff.phonons.qmesh.regular_mesh`).
        sigma_thz: Gaussian width σ, THz.
        points_thz: ``[f]`` frequency points, THz; default
            :func:`frequency_points`.
        gamma_center: Γ-centred instead of Monkhorst–Pack for even ``N_i``.

    Returns:
        ``{"frequencies_thz": [f], "states": [f], "projected": [p, f],
        "sigma_thz": σ, "mesh": [3]}``; ``states`` in states/THz per primitive
        cell.
    """
    q = regular_mesh(mesh, gamma_center=gamma_center)
    freqs, vecs = dynamical_matrix.modes_at(
        phonons.force_constants, phonons.masses, phonons.images, q
    )
    if points_thz is None:
        points_thz = frequency_points(freqs, sigma_thz)
    return {
        "frequencies_thz": np.asarray(points_thz),
        "states": np.asarray(total_dos(freqs, points_thz, sigma_thz=sigma_thz)),
        "projected": np.asarray(
            projected_dos(freqs, vecs, points_thz, sigma_thz=sigma_thz)
        ),
        "sigma_thz": float(sigma_thz),
        "mesh": [int(k) for k in np.asarray(mesh).reshape(-1)],
    }
