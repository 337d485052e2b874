"""Phonon group velocities from the autodiff q-derivative of the dynamical matrix.

``v_ν = ∂f_ν/∂q = ⟨e_ν| ∂D/∂q |e_ν⟩ · c² / (2 f_ν)`` with ``c`` the THz
conversion factor, ``q`` Cartesian in 1/Å without 2π (so ``v`` is also
``∂ω/∂k``), in THz·Å (1 THz·Å = 100 m/s). ``∂D/∂q`` is exact (``jax.jacfwd``
of :func:`~mldiff.phonons.dynamical_matrix.dynamical_matrix`).

Degenerate modes (frequencies within ``degeneracy_thz``) have no unique
eigenvectors; as phonopy does, the degenerate subspace is first rotated to
diagonalise ``∂D/∂q`` along the direction ``(1, 2, 3)/√14`` (a generic
direction that lifts the degeneracy), and the velocities are then the diagonal
elements of ``∂D/∂q_α`` in that basis. Modes at or below ``cutoff_thz`` (the
acoustic modes at Γ) get zero velocity. phonopy additionally averages over the
little group of q; at generic q the two agree exactly.

References:
    phonopy 4.10 ``phonon/group_velocity.py`` (degenerate treatment, units).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import phonons, potentials
    >>> from mldiff.structure import Structure
    >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    >>> ph = phonons.run(cu, potentials.get("emt"), None, [3, 3, 3])
    >>> group_velocities(ph, [[0.1, 0.2, 0.3]]).shape
    (1, 3, 3)
"""

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.phonons import dynamical_matrix as _dm

__all__ = ["derivatives_at", "group_velocities", "degenerate_sets"]

PERTURBATION = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)  # phonopy's direction


@jax.jit
def derivatives_at(force_constants, masses, images, lattice, qpoints):
    """Eigensystems and Cartesian q-derivatives of ``D(q)`` at many q-points.

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell masses, amu.
        images: :class:`~mldiff.phonons.dynamical_matrix.Images`.
        lattice: ``[3, 3]`` primitive lattice (rows), Å.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``(frequencies [k, m] THz, eigenvectors [k, m, m], dD [k, 3, m, m])``,
        ``dD`` in eV/(Å²·amu)·Å (derivative along Cartesian q without 2π).
    """
    fc = jnp.asarray(force_constants)
    m = jnp.asarray(masses, fc.dtype)
    lat = jnp.asarray(lattice, fc.dtype)
    q_red = jnp.asarray(qpoints, fc.dtype).reshape(-1, 3)
    q_cart = jnp.linalg.solve(lat, q_red.T).T  # q_red = L q_cart

    def one(qc):
        def d_of(x):
            return _dm.dynamical_matrix(fc, m, lat @ x, images)

        dyn = d_of(qc)
        ddyn = jax.jacfwd(d_of)(qc)  # [m, m, 3]
        f, e = _dm.eigensystem(dyn)
        return f, e, jnp.moveaxis(ddyn, -1, 0)

    return jax.vmap(one)(q_cart)


def degenerate_sets(frequencies, tol: float = 1e-4) -> list[list[int]]:
    """Group sorted frequencies that lie within ``tol`` of each other, THz.

    Example:
        >>> degenerate_sets([1.5, 2.1, 2.1, 3.4])
        [[0], [1, 2], [3]]
    """
    groups: list[list[int]] = []
    for i, f in enumerate(np.asarray(frequencies)):
        if groups and abs(f - frequencies[groups[-1][0]]) < tol:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def group_velocities(
    phonons, qpoints, *, degeneracy_thz: float = 1e-4, cutoff_thz: float = 1e-4
) -> np.ndarray:
    """Group velocities ``∂f/∂q`` of every mode at q-points.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        degeneracy_thz: frequencies closer than this are treated as degenerate.
        cutoff_thz: modes at or below this frequency get zero velocity, THz.

    Returns:
        ``[k, 3p, 3]`` Cartesian group velocities, THz·Å (×100 for m/s).
    """
    freqs, vecs, dd = derivatives_at(
        phonons.force_constants,
        phonons.masses,
        phonons.images,
        phonons.primitive.cell,
        np.asarray(qpoints, np.float64).reshape(-1, 3),
    )
    freqs, vecs, dd = np.asarray(freqs), np.asarray(vecs), np.asarray(dd)
    c2 = _dm.THZ_PER_SQRT_EV_A2_AMU**2
    out = np.zeros(freqs.shape + (3,))
    for k in range(len(freqs)):
        d_dir = np.einsum("a,aij->ij", PERTURBATION, dd[k])
        for deg in degenerate_sets(freqs[k], degeneracy_thz):
            e = vecs[k][:, deg]
            _, rot = np.linalg.eigh(e.conj().T @ d_dir @ e)
            e = e @ rot
            out[k, deg] = np.einsum("im,aij,jm->ma", e.conj(), dd[k], e).real
        f = freqs[k]
        scale = np.where(f > cutoff_thz, c2 / (2 * np.where(f > cutoff_thz, f, 1)), 0)
        out[k] *= scale[:, None]
    return out
