"""Mode Grüneisen parameters by differentiating the force constants in volume.

``γ_ν(q) = −(V / 2ω²) ⟨e_ν| ∂D/∂V |e_ν⟩ = −d ln ω / d ln V``. Under the
isotropic strain ``r → (1 + η) r`` the volume is ``V₀ (1 + η)³``, so
``∂D/∂V = (∂D/∂η) / 3V`` at ``η = 0`` and ``γ = −⟨e|∂D/∂η|e⟩ / (6 λ)`` with
``λ = ω²`` the eigenvalue of ``D`` (eV/(Å²·amu)).

``∂Φ/∂η`` is exact: a forward-mode derivative (``jax.jvp``) of the supercell
force constants — themselves a forward-over-reverse Hessian — with respect to
``η``, i.e. third derivatives of the energy, computed for the rows of the
symmetry-independent atoms only. ``D`` is linear in ``Φ``, so
``∂D/∂η = D[∂Φ/∂η]`` with the same supercell images (an isotropic strain does
not change them).

In a degenerate subspace the eigenvectors are rotated to diagonalise
``∂D/∂η`` first, as phonopy does (``lift_degeneracy``); modes at or below
``cutoff_thz`` (the acoustic modes at Γ) get ``γ = 0``.

References:
    phonopy 4.10 ``gruneisen/core.py`` (same formula, with ``∂D/∂V`` by central
    differences of three volumes); N. W. Ashcroft and N. D. Mermin, *Solid
    State Physics* (1976), ch. 25.

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import phonons, potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("sw")
    >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
    >>> ph = phonons.run(pot, None, si, [[-1, 1, 1], [1, -1, 1], [1, 1, -1]])
    >>> dfc = volume_derivative(ph, pot)
    >>> f, g = mode_gruneisen(ph, dfc, [[0.5, 0.0, 0.5]])
    >>> g.shape
    (1, 6)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff import neighbors
from mldiff import structure as _structure
from mldiff.errors import check_float64
from mldiff.phonons import dynamical_matrix as _dm
from mldiff.phonons import force_constants as _fc
from mldiff.phonons.velocities import degenerate_sets

__all__ = [
    "force_constants_volume_derivative",
    "volume_derivative",
    "mode_gruneisen",
]


def force_constants_volume_derivative(
    energy_fn, *, chunk_size: int = _fc.DEFAULT_CHUNK_SIZE, symmetry=None
):
    """Supercell force constants and their derivative in isotropic strain.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        chunk_size: Hessian-vector products evaluated at once.
        symmetry: optional :class:`~mldiff.phonons.force_constants.SiteSymmetry`
            of the supercell (unchanged by an isotropic strain).

    Returns:
        ``fn(params, supercell, graph) -> (Φ, ∂Φ/∂η)``, both ``[n, 3, n, 3]``:
        eV/Å² and eV/Å² per unit strain, with ``V = V₀ (1 + η)³``; both
        symmetrized (:func:`~mldiff.phonons.force_constants.symmetrize`).
        Jit-compatible.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0., 0, 0], [1.0, 0, 0]], None, [1, 1], False,
        ...                      dtype=jnp.float64)
        >>> def e(params, s, g):  # E = x⁴/2: Φ = 6x², ∂Φ/∂η = 12x² at x = 1
        ...     return 0.5 * (s.positions[1, 0] - s.positions[0, 0]) ** 4
        >>> fc, dfc = force_constants_volume_derivative(e)(None, s, None)
        >>> float(fc[0, 0, 0, 0]), float(dfc[0, 0, 0, 0])
        (6.0, 12.0)
    """
    fc_fn = _fc.force_constants(energy_fn, chunk_size=chunk_size, symmetry=symmetry)

    def fn(params, supercell, graph):
        def fc_of(eta):
            eps = eta * jnp.eye(3, dtype=supercell.cell.dtype)
            return _fc.symmetrize(
                fc_fn(params, _structure.apply_strain(supercell, eps), graph)
            )

        zero = jnp.zeros((), supercell.cell.dtype)
        return jax.jvp(fc_of, (zero,), (jnp.ones_like(zero),))

    return fn


@functools.partial(jax.jit, static_argnums=(0, 1))
def _volume_derivative(energy_fn, chunk_size, symmetry, params, supercell, graph):
    fn = force_constants_volume_derivative(
        energy_fn, chunk_size=chunk_size, symmetry=symmetry
    )
    return fn(params, supercell, graph)[1]


def volume_derivative(
    phonons,
    potential,
    params=None,
    *,
    chunk_size: int = _fc.DEFAULT_CHUNK_SIZE,
    use_symmetry: bool = True,
    symprec: float = 1e-5,
) -> Float[Array, "n 3 n 3"]:
    """``∂Φ/∂η`` of the supercell of :class:`~mldiff.phonons.Phonons`.

    Args:
        phonons: from :func:`mldiff.phonons.run` with the same potential.
        potential: the :class:`~mldiff.potentials.Potential`.
        params: its parameters; default ``potential.init(key(0), supercell)``.
        chunk_size: Hessian-vector products evaluated at once.
        use_symmetry: differentiate only the rows of independent atoms.
        symprec: spglib tolerance, Å.

    Returns:
        ``[n, 3, n, 3]`` derivative of the force constants with respect to
        isotropic strain ``η`` (``V = V₀ (1 + η)³``), eV/Å².
    """
    sc = phonons.supercell
    check_float64("Grüneisen parameters", structure=sc)
    if params is None:
        params = potential.init(jax.random.key(0), sc)
    graph = neighbors.check(neighbors.allocate(sc, potential.cutoff))
    symmetry = _fc.site_symmetry(sc, symprec=symprec) if use_symmetry else None
    if symmetry is not None and len(symmetry.independent) == len(sc):
        symmetry = None
    return _volume_derivative(potential.energy, chunk_size, symmetry, params, sc, graph)


@jax.jit
def _dynamical_pairs(fc, dfc, masses, images, qpoints):
    q = jnp.asarray(qpoints, fc.dtype).reshape(-1, 3)

    def one(x):
        return (
            _dm.dynamical_matrix(fc, masses, x, images),
            _dm.dynamical_matrix(dfc, masses, x, images),
        )

    return jax.vmap(one)(q)


def mode_gruneisen(
    phonons,
    dfc: Float[Array, "n 3 n 3"],
    qpoints,
    *,
    degeneracy_thz: float = 1e-4,
    cutoff_thz: float = 1e-2,
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and mode Grüneisen parameters at q-points.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons`.
        dfc: ``[n, 3, n, 3]`` ``∂Φ/∂η`` from :func:`volume_derivative`, eV/Å².
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        degeneracy_thz: frequencies closer than this are degenerate, THz.
        cutoff_thz: modes at or below this frequency get ``γ = 0``, THz.

    Returns:
        ``([k, 3p] frequencies, THz, ascending; [k, 3p] γ, dimensionless)``.
    """
    d, dd = _dynamical_pairs(
        phonons.force_constants,
        jnp.asarray(dfc),
        phonons.masses,
        phonons.images,
        np.asarray(qpoints, np.float64).reshape(-1, 3),
    )
    d, dd = np.asarray(d), np.asarray(dd)
    freqs = np.zeros(d.shape[:2])
    gammas = np.zeros(d.shape[:2])
    for k in range(len(d)):
        lam, vecs = np.linalg.eigh(d[k])
        f = np.asarray(_dm.to_thz(jnp.asarray(lam)))
        ede = np.zeros(len(lam))
        for deg in degenerate_sets(f, degeneracy_thz):
            e = vecs[:, deg]
            ede[deg] = np.linalg.eigvalsh(e.conj().T @ dd[k] @ e)
        ok = f > cutoff_thz
        gammas[k] = np.where(ok, -ede / (6 * np.where(ok, lam, 1.0)), 0.0)
        freqs[k] = f
    return freqs, gammas
