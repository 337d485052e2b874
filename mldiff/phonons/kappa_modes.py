"""Mode-resolved thermal conductivity: scattering rates, lifetimes, cumulative κ.

Functions of a :class:`~mldiff.phonons.conductivity.Conductivity` result (its
fields at the irreducible q-points of the mesh, each star's weight included in
``mode_kappa``) and the boundary (Casimir) scattering that the solvers add.

**Matthiessen's rule**: independent scattering rates add, so the linewidths
(half widths, THz) of the three-phonon, isotope and boundary processes add to
``Γ = Γ_anh + Γ_iso + Γ_b`` and the lifetime is ``τ = 1/(4πΓ)`` (ps).

**Boundary scattering** (Casimir) of a grain or sample of size ``L``:
``1/τ_b = |v|/L``, i.e. ``Γ_b = |v| / (4π L)`` (phono3py's ``boundary_mfp``,
``L`` in µm).

**Cumulative κ**: the trace/3 of the mode contributions summed over the modes
below a mean free path ``|v| τ`` or below a frequency; it reaches κ once the
bound exceeds every mode's value.

References:
    H. B. G. Casimir, Physica 5, 495 (1938); phono3py 4.10
    ``conductivity/scattering_solvers.py`` (``compute_bulk_boundary_scattering``)
    and ``file_IO.py`` (``write_kappa_to_hdf5``, dataset names and layouts).
"""

import math

import jax.numpy as jnp
import numpy as np

from mldiff._version import __version__

__all__ = [
    "boundary_linewidths",
    "total_linewidths",
    "lifetimes",
    "mean_free_paths",
    "cumulative_kappa",
    "cumulative_kappa_frequency",
    "phono3py_datasets",
    "VOIGT",
]

_UM_TO_ANGSTROM = 1e4
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # phono3py's 6-vectors


def boundary_linewidths(velocities, boundary_mfp_um: float | None):
    """Casimir boundary scattering ``Γ_b = |v| / (4π L)``, THz.

    Args:
        velocities: ``[..., 3]`` group velocities, THz·Å.
        boundary_mfp_um: boundary mean free path ``L``, µm (> 0), or None
            for no boundary scattering (zeros).

    Returns:
        ``[...]`` Γ_b (half width), THz; ``1/τ_b = 4πΓ_b = |v|/L``.

    Example:
        >>> import jax.numpy as jnp
        >>> # 1 km/s = 10 THz·Å against L = 1 µm: 1/τ = 1e-3 THz
        >>> g = boundary_linewidths(jnp.array([[0.0, 10.0, 0.0]]), 1.0)
        >>> round(float(4 * jnp.pi * g[0]), 12)
        0.001
    """
    v = jnp.asarray(velocities)
    if boundary_mfp_um is None:
        return jnp.zeros(v.shape[:-1], v.dtype)
    sq = jnp.sum(v * v, axis=-1)
    speed = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
    return speed / (4 * math.pi * boundary_mfp_um * _UM_TO_ANGSTROM)


def total_linewidths(result):
    """``[T, g, m]`` Γ_anh + Γ_iso + Γ_b (Matthiessen's rule), THz."""
    return result.gamma + result.gamma_isotope[None] + result.gamma_boundary[None]


def lifetimes(result):
    """Phonon lifetimes ``τ = 1/(4πΓ)`` of the irreducible modes, ``[T, g, m]`` ps.

    ``Γ`` is :func:`total_linewidths`; modes without scattering get 0.
    """
    g = total_linewidths(result)
    return jnp.where(g > 0, 1.0 / (4 * jnp.pi * jnp.where(g > 0, g, 1.0)), 0.0)


def mean_free_paths(result):
    """Mean free paths ``|v| τ`` of the irreducible modes, ``[T, g, m]``, Å.

    ``τ`` from :func:`lifetimes` (all scattering included); modes without
    scattering get 0.
    """
    speed = jnp.linalg.norm(result.velocities, axis=-1)[None]  # THz·Å
    return speed * lifetimes(result)


def _cumulative(values, mode_kappa, bounds) -> np.ndarray:
    """``[T, L]`` trace/3 of ``mode_kappa`` over modes with ``values <= bound``."""
    k = np.trace(np.asarray(mode_kappa), axis1=-2, axis2=-1) / 3  # [T, g, m]
    v = np.broadcast_to(np.asarray(values), k.shape)
    grid = np.asarray(bounds, np.float64).reshape(-1)
    below = v[:, None] <= grid[None, :, None, None]  # [T, L, g, m]
    return np.sum(np.where(below, k[:, None], 0.0), axis=(2, 3))


def cumulative_kappa(result, lengths) -> np.ndarray:
    """Cumulative κ (trace/3) from modes with mean free path below each length.

    Args:
        result: a :class:`~mldiff.phonons.conductivity.Conductivity`.
        lengths: ``[L]`` mean free paths, Å, ascending.

    Returns:
        ``[T, L]`` W/(m·K); the last value reaches κ (trace/3) once ``lengths``
        exceeds the longest mean free path (:func:`mean_free_paths`).
    """
    return _cumulative(mean_free_paths(result), result.mode_kappa, lengths)


def cumulative_kappa_frequency(result, frequencies_thz) -> np.ndarray:
    """Cumulative κ (trace/3) from modes with frequency below each value.

    Args:
        result: a :class:`~mldiff.phonons.conductivity.Conductivity`.
        frequencies_thz: ``[F]`` frequencies, THz, ascending.

    Returns:
        ``[T, F]`` W/(m·K); reaches κ (trace/3) above the highest frequency.
    """
    return _cumulative(result.frequencies, result.mode_kappa, frequencies_thz)


def _voigt(tensors) -> np.ndarray:
    """``[..., 3, 3]`` → phono3py's ``[..., 6]`` (xx, yy, zz, yz, xz, xy)."""
    t = np.asarray(tensors)
    return np.stack([t[..., a, b] for a, b in VOIGT], axis=-1)


def phono3py_datasets(
    result,
    mesh_numbers,
    *,
    sigma_thz: float,
    kappa_unit_conversion: float,
    isotopes: bool = False,
    boundary_mfp_um: float | None = None,
) -> dict:
    """The datasets of phono3py's ``kappa-m*.hdf5``, from a result.

    phono3py's names, layouts and units: per irreducible point ``frequency``
    ``[g, m]`` THz, ``gamma`` ``[T, g, m]`` (three-phonon) and
    ``gamma_isotope`` ``[g, m]`` THz (only with isotope scattering),
    ``group_velocity`` ``[g, m, 3]`` THz·Å, ``gv_by_gv`` ``[g, m, 6]``
    (THz·Å)² summed over the star, ``heat_capacity`` ``[T, g, m]`` eV/K,
    ``mode_kappa`` ``[T, g, m, 6]`` W/(m·K) summed over the star and times the
    mesh size ``N`` (so that ``kappa = mode_kappa.sum((1, 2)) / N``),
    ``kappa`` ``[T, 6]`` W/(m·K), ``qpoint`` ``[g, 3]``, ``weight`` ``[g]``,
    ``grid_point`` ``[g]`` (index on the Γ-centred mesh, address ``a`` at
    ``a0 + n0 a1 + n0 n1 a2``; phono3py writes the index on its
    Brillouin-zone grid, which maps to this one by ``bz_grid.bzg2grg``),
    ``mesh``, ``temperature``, ``sigma`` THz,
    ``kappa_unit_conversion`` (W/(m·K) per (eV/K)(THz·Å)²/THz over the
    primitive volume) and ``boundary_mfp`` µm (only when set). Six-vectors are
    ``xx, yy, zz, yz, xz, xy``.

    Args:
        result: a :class:`~mldiff.phonons.conductivity.Conductivity`.
        mesh_numbers: ``[3]`` the q-mesh of the run.
        sigma_thz: Gaussian smearing width of the run, THz.
        kappa_unit_conversion: ``KAPPA_TO_W_MK / volume`` of the primitive
            cell (:data:`mldiff.phonons.conductivity.KAPPA_TO_W_MK`).
        isotopes: the run had isotope scattering (writes ``gamma_isotope``).
        boundary_mfp_um: the run's boundary mean free path, µm, or None.

    Returns:
        ``{name: numpy array}`` for :func:`mldiff.io.phono3py.write_kappa`.
    """
    mesh = np.asarray(mesh_numbers, np.int64).reshape(3)
    weights = np.asarray(result.weights, np.int64)
    n_mesh = int(weights.sum())
    q = np.asarray(result.qpoints, np.float64)
    address = np.mod(np.rint(q * mesh), mesh).astype(np.int64)
    vv = np.asarray(result.velocity_products) * weights[:, None, None, None]
    out = {
        "version": np.bytes_(__version__),
        "temperature": np.asarray(result.temperatures, np.float64),
        "mesh": mesh,
        "frequency": np.asarray(result.frequencies, np.float64),
        "group_velocity": np.asarray(result.velocities, np.float64),
        "gv_by_gv": _voigt(vv),
        "heat_capacity": np.asarray(result.heat_capacities, np.float64),
        "kappa": _voigt(result.kappa),
        "mode_kappa": _voigt(np.asarray(result.mode_kappa) * n_mesh),
        "gamma": np.asarray(result.gamma, np.float64),
        "qpoint": q,
        "weight": weights,
        "grid_point": address[:, 0]
        + mesh[0] * (address[:, 1] + mesh[1] * address[:, 2]),
        "sigma": np.float64(sigma_thz),
        "kappa_unit_conversion": np.float64(kappa_unit_conversion),
    }
    if isotopes:
        out["gamma_isotope"] = np.asarray(result.gamma_isotope, np.float64)
    if boundary_mfp_um is not None:
        out["boundary_mfp"] = np.float64(boundary_mfp_um)
    return out
