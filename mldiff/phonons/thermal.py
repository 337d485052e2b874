"""Harmonic thermal properties on a q-point mesh, with phonopy's formulas and units.

For modes of frequency ``ν > cutoff`` with energy ``ε = hν`` and ``x = ε / k_B T``,
averaged over the mesh (weights ``w_q``, sum ``W``), per primitive cell:

* Helmholtz free energy ``F = (1/W) Σ w_q [ε/2 + k_B T ln(1 − e^{−x})]``, kJ/mol;
* entropy ``S = (1/W) Σ w_q k_B [x e^{−x}/(1 − e^{−x}) − ln(1 − e^{−x})]``, J/K/mol;
* heat capacity ``C_V = (1/W) Σ w_q k_B x² e^{−x}/(1 − e^{−x})²``, J/K/mol
  (the mode heat capacities of :func:`mode_heat_capacity`, shared with the
  thermal conductivity).

These are phonopy's ``ThermalProperties`` (``mol`` = mole of primitive cells, as
phonopy reports "per unit cell"), with phonopy's constants. At ``T = 0``, ``F`` is
the zero-point energy and ``S = C_V = 0``.

The three acoustic modes at Γ are excluded (set to zero frequency, so below the
cutoff), as phonopy does with ``exclude_gamma_acoustic=True``: their computed
frequencies are rounding noise of either sign, and one that happens to be
positive would add ``k_B T ln(hν/k_B T) / N_q``, about 1 % of ``F`` at 300 K on
an 8×8×8 mesh. phonopy's default (``False``) includes them.

Everything is a JAX function of the frequencies, so it differentiates through
to the force constants and the potential's parameters.

References:
    phonopy 4.10 ``phonon/thermal_properties.py``; M. T. Dove, *Introduction to
    Lattice Dynamics* (CUP, 1993), ch. 5.

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> import jax.numpy as jnp
    >>> tp = thermal_properties(jnp.array([[5.0, 5.0, 5.0]]), jnp.array([300.0]))
    >>> round(float(tp["heat_capacity_j_k_mol"][0]), 3)  # 3 Einstein modes, 5 THz
    23.655
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from mldiff import units
from mldiff.phonons import dynamical_matrix, qmesh

__all__ = ["mode_heat_capacity", "thermal_properties", "mesh_thermal_properties"]


def mode_heat_capacity(frequencies_thz, temperatures_k):
    """Heat capacity of harmonic modes, ``C = k_B x² eˣ/(eˣ − 1)²``, eV/K.

    ``x = hν / k_B T``; the Einstein function, the derivative of a mode's
    mean energy with respect to ``T``. It tends to ``k_B`` for ``x → 0`` and
    vanishes exponentially for ``x ≫ 1``. Modes with ``ν ≤ 0`` and
    temperatures ``T ≤ 0`` give 0 (with finite derivatives).

    Args:
        frequencies_thz: frequencies, THz (any shape).
        temperatures_k: temperatures, K, broadcastable against
            ``frequencies_thz``.

    Returns:
        The broadcast shape, eV/K per mode.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff import units
        >>> c = mode_heat_capacity(jnp.array([1e-3, 5.0]), jnp.array(300.0))
        >>> [round(float(x / units.PHONOPY_KB_EV_K), 4) for x in c]
        [1.0, 0.9483]
    """
    f = jnp.asarray(frequencies_thz)
    t = jnp.asarray(temperatures_k, f.dtype)
    ok = (f > 0) & (t > 0)
    x = (
        jnp.where(ok, f, 1.0)
        * units.PHONOPY_THZ_TO_EV
        / (units.PHONOPY_KB_EV_K * jnp.where(ok, t, 1.0))
    )
    return jnp.where(
        ok, units.PHONOPY_KB_EV_K * x**2 * jnp.exp(-x) / jnp.expm1(-x) ** 2, 0.0
    )


def thermal_properties(
    frequencies_thz: Float[ArrayLike, "q m"],
    temperatures: Float[ArrayLike, " t"],
    *,
    weights=None,
    cutoff_thz: float = 0.0,
) -> dict:
    """Free energy, entropy and heat capacity from mesh frequencies.

    Args:
        frequencies_thz: ``[q, m]`` frequencies on a mesh, THz (modes at or below
            ``cutoff_thz``, including imaginary ones, are left out).
        temperatures: ``[t]`` temperatures, K.
        weights: ``[q]`` q-point weights; default all equal.
        cutoff_thz: frequencies at or below this are left out, THz.

    Returns:
        ``{"temperatures_k": [t], "free_energy_kj_mol": [t],
        "entropy_j_k_mol": [t], "heat_capacity_j_k_mol": [t]}`` per primitive cell.
    """
    f = jnp.asarray(frequencies_thz)
    temps = jnp.asarray(temperatures, f.dtype)
    w = (
        jnp.ones(f.shape[0], f.dtype)
        if weights is None
        else jnp.asarray(weights, f.dtype)
    )
    include = f > cutoff_thz  # [q, m]
    wm = jnp.where(include, w[:, None], 0.0)  # [q, m]
    e = jnp.where(include, f, 1.0) * units.PHONOPY_THZ_TO_EV  # eV, safe where excluded
    kb = units.PHONOPY_KB_EV_K
    hot = temps > 0
    kt = jnp.where(hot, temps, 1.0)[:, None, None] * kb  # [t, 1, 1]
    x = e[None] / kt  # [t, q, m]
    em = jnp.exp(-x)
    om = -jnp.expm1(-x)  # 1 − e^{−x}, accurate for small x
    zpe = jnp.sum(wm * e / 2)
    fe = zpe + jnp.sum(wm * kt * jnp.log(om), axis=(1, 2))
    entropy = jnp.sum(wm * kb * (x * em / om - jnp.log(om)), axis=(1, 2))
    c_mode = mode_heat_capacity(jnp.where(include, f, 1.0), temps[:, None, None])
    cv = jnp.sum(wm * c_mode, axis=(1, 2))
    fe = jnp.where(hot, fe, zpe)
    entropy = jnp.where(hot, entropy, 0.0)
    cv = jnp.where(hot, cv, 0.0)
    norm = units.PHONOPY_EV_TO_KJ_MOL / jnp.sum(w)
    return {
        "temperatures_k": temps,
        "free_energy_kj_mol": fe * norm,
        "entropy_j_k_mol": entropy * norm * 1000,
        "heat_capacity_j_k_mol": cv * norm * 1000,
    }


def mesh_thermal_properties(
    phonons, mesh, temperatures, *, gamma_center: bool = False
) -> dict:
    """Thermal properties of :class:`~mldiff.phonons.Phonons` on a regular mesh.

    The acoustic modes at Γ, when Γ is on the mesh, are excluded (see the module
    docstring).

    Args:
        phonons: from :func:`mldiff.phonons.run`.
        mesh: ``(N1, N2, N3)`` mesh of the primitive reciprocal lattice, sampled
            as phonopy's ``run_mesh``
            (:func:`~mldiff.phonons.qmesh.regular_mesh`).
        temperatures: ``[t]`` temperatures, K.
        gamma_center: Γ-centred instead of Monkhorst–Pack for even ``N_i``.

    Returns:
        The dictionary of :func:`thermal_properties`, plus ``"mesh"``.
    """
    q = qmesh.regular_mesh(mesh, gamma_center=gamma_center)
    f = dynamical_matrix.frequencies_at(
        phonons.force_constants, phonons.masses, phonons.images, q
    )
    if not np.any(q[0]):  # Γ is first when on the mesh; 3 lowest modes acoustic
        f = f.at[0, :3].set(0.0)
    out = thermal_properties(f, jnp.asarray(temperatures, f.dtype))
    out["mesh"] = [int(k) for k in np.asarray(mesh).reshape(-1)]
    return out
