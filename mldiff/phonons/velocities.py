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

:func:`group_velocities_at` is a JAX function of the force constants (jit,
vmap and grad pass through it): eigenvectors are differentiated with a
degeneracy-safe rule (:func:`~mldiff.phonons._linalg.safe_eigh`, derivative
terms between modes closer than ``degeneracy_thz`` dropped), which gives the
exact derivative of quantities invariant under rotations within degenerate
subspaces and finite values elsewhere. :func:`safe_modes_at` gives the
frequencies and eigenvectors under the same rule, for the three-phonon
interaction (:mod:`.conductivity`).

References:
    phonopy 4.10 ``phonon/group_velocity.py`` (degenerate treatment, units).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import phonons, potentials
    >>> from mldiff.structure import Structure
    >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    >>> ph = phonons.run(potentials.get("emt"), None, cu, [3, 3, 3])
    >>> group_velocities(ph, [[0.1, 0.2, 0.3]]).shape
    (1, 3, 3)
"""

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import units
from mldiff.phonons import _linalg
from mldiff.phonons import dynamical_matrix as _dm

__all__ = [
    "derivatives_at",
    "safe_modes_at",
    "group_velocities_at",
    "group_velocities",
    "degenerate_sets",
    "degenerate_mask",
]

PERTURBATION = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)  # phonopy's direction
DEFAULT_DEGENERACY_THZ = 1e-4  # phonopy's degenerate_sets tolerance


def _dynamical_matrix_and_derivative(fc, masses, images, lattice, q_cart):
    """``D(q)`` ``[m, m]`` and ``∂D/∂q`` ``[3, m, m]`` at Cartesian ``q`` (1/Å)."""

    def d_of(x):
        return _dm.dynamical_matrix(fc, masses, lattice @ x, images)

    return d_of(q_cart), jnp.moveaxis(jax.jacfwd(d_of)(q_cart), -1, 0)


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
        dyn, dd = _dynamical_matrix_and_derivative(fc, m, images, lat, qc)
        f, e = _dm.eigensystem(dyn)
        return f, e, dd

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


def degenerate_mask(frequencies_thz, degeneracy_thz: float = DEFAULT_DEGENERACY_THZ):
    """``[m, m]`` float: 1 where two frequencies lie within ``degeneracy_thz``.

    The JAX counterpart of :func:`degenerate_sets`, for averaging over
    degenerate modes inside jit (``x @ mask / mask.sum(0)``); no gradient
    flows through the frequencies.

    Args:
        frequencies_thz: ``[m]`` frequencies, THz.
        degeneracy_thz: tolerance, THz.

    Returns:
        ``[m, m]`` of zeros and ones, the frequencies' dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> degenerate_mask(jnp.array([1.5, 2.1, 2.1])).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    """
    f = jax.lax.stop_gradient(frequencies_thz)
    return (jnp.abs(f[:, None] - f[None, :]) < degeneracy_thz).astype(f.dtype)


def _eig_tol(degeneracy_thz):
    """Eigenvalue gap (eV/(Å² amu)) that matches a frequency gap near 1 THz."""
    return 2.0 * degeneracy_thz / units.PHONOPY_THZ_PER_SQRT_EV_A2_AMU**2


def safe_modes_at(
    force_constants,
    masses,
    images,
    qpoints,
    *,
    degeneracy_thz: float = DEFAULT_DEGENERACY_THZ,
):
    """Frequencies and eigenvectors at q-points, differentiable at degeneracies.

    The values of :func:`~mldiff.phonons.dynamical_matrix.modes_at`; the
    derivative drops the terms between modes closer than ``degeneracy_thz``
    (see the module docstring).

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell masses, amu.
        images: :class:`~mldiff.phonons.dynamical_matrix.Images`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        degeneracy_thz: frequency gap below which modes count as degenerate.

    Returns:
        ``(frequencies [k, m] THz, eigenvectors [k, m, m] as columns)``.
    """
    tol = _eig_tol(degeneracy_thz)

    def one(q):
        w2, e = _linalg.safe_eigh(
            _dm.dynamical_matrix(force_constants, masses, q, images), tol
        )
        return _dm.to_thz(w2), e

    return jax.vmap(one)(qpoints)


def group_velocities_at(
    force_constants,
    masses,
    images,
    lattice,
    qpoints,
    *,
    degeneracy_thz: float = DEFAULT_DEGENERACY_THZ,
    cutoff_thz: float = 1e-4,
):
    """Frequencies and group velocities at q-points, a JAX function of the fc.

    Args:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell masses, amu.
        images: :class:`~mldiff.phonons.dynamical_matrix.Images`.
        lattice: ``[3, 3]`` primitive lattice (rows), Å.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        degeneracy_thz: frequencies closer than this are treated as degenerate.
        cutoff_thz: modes at or below this frequency get zero velocity, THz.

    Returns:
        ``(frequencies [k, m] THz, velocities [k, m, 3] THz·Å)``, velocities
        Cartesian (×100 for m/s).
    """
    fc2 = force_constants
    tol = _eig_tol(degeneracy_thz)
    c2 = units.PHONOPY_THZ_PER_SQRT_EV_A2_AMU**2
    lat = jnp.asarray(lattice, fc2.dtype)
    n_hat = jnp.asarray(PERTURBATION, fc2.dtype)

    def one(q_red):
        q_cart = jnp.linalg.solve(lat, q_red)
        dyn, dd = _dynamical_matrix_and_derivative(fc2, masses, images, lat, q_cart)
        w2, e = _linalg.safe_eigh(dyn, tol)
        f = _dm.to_thz(w2)
        same = degenerate_mask(f, degeneracy_thz)
        m = jnp.conj(e.T) @ jnp.einsum("a,aij->ij", n_hat, dd) @ e
        m = m * same
        # rotate each degenerate block (consecutive frequencies) on its own:
        # the blocks' eigenvalues are pushed apart by multiples of `big`
        block = jnp.cumsum(
            jnp.concatenate([jnp.zeros(1), jnp.diff(jax.lax.stop_gradient(f))])
            >= degeneracy_thz
        )
        big = 1.0 + 4.0 * jax.lax.stop_gradient(jnp.abs(m).max())
        _, rot = _linalg.safe_eigh(
            m + jnp.diag(block * big).astype(m.dtype), 1e-12 * big
        )
        e = e @ rot
        v = jnp.real(jnp.einsum("im,aij,jm->ma", jnp.conj(e), dd, e))
        ok = f > cutoff_thz
        scale = jnp.where(ok, c2 / (2 * jnp.where(ok, f, 1.0)), 0.0)
        return f, v * scale[:, None]

    return jax.vmap(one)(jnp.asarray(qpoints, fc2.dtype))


_group_velocities_jit = jax.jit(
    group_velocities_at, static_argnames=("degeneracy_thz", "cutoff_thz")
)


def group_velocities(
    phonons,
    qpoints,
    *,
    degeneracy_thz: float = DEFAULT_DEGENERACY_THZ,
    cutoff_thz: float = 1e-4,
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
    _, v = _group_velocities_jit(
        phonons.force_constants,
        phonons.masses,
        phonons.images,
        phonons.primitive.cell,
        np.asarray(qpoints, np.float64).reshape(-1, 3),
        degeneracy_thz=float(degeneracy_thz),
        cutoff_thz=float(cutoff_thz),
    )
    return np.asarray(v)
