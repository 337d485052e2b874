"""Elastic constants from the strain Hessian, with the internal-relaxation correction.

With the homogeneous deformation ``r → r (1 + ε) + u`` (rows; ``ε`` symmetric,
Voigt vector ``η = (ε_xx, ε_yy, ε_zz, 2ε_yz, 2ε_xz, 2ε_xy)``, engineering shear)
and atomic displacements ``u`` on top of it, the energy to second order is

``E(η, u) = E₀ + ½ ηᵀ A η + uᵀ Λ η + ½ uᵀ Φ u``

with ``A = ∂²E/∂η²`` (eV), the internal-strain tensor ``Λ = ∂²E/∂u∂η`` (eV/Å,
minus the force that a strain puts on each atom) and the Γ-point force constants
``Φ = ∂²E/∂u²`` (eV/Å²) of the cell, all exact by forward-over-reverse
autodiff. Then

* clamped-ion constants ``C⁰ = A / V``;
* relaxed-ion constants ``C = (A − Λᵀ Φ⁺ Λ) / V``, minimising over ``u``; ``Φ⁺``
  is the inverse of ``Φ`` on the subspace orthogonal to the three rigid
  translations (which ``Λ`` never excites).

Both are returned as 6×6 Voigt matrices in GPa. They equal the stress–strain
coefficients ``∂σ/∂η`` only at zero stress: relax the cell first (the returned
residual stress says how far off it is).

Derived here too: bulk and shear moduli (Voigt, Reuss, Hill), the density, and
sound velocities two ways — from the Christoffel equation
``det(C_ijkl n_j n_l − ρ v² δ_ik) = 0`` and from the slope of the acoustic
phonon branches near Γ (:func:`acoustic_velocities`).

Float64 is required (:class:`~mldiff.errors.PrecisionError` otherwise).

References:
    M. Born and K. Huang, *Dynamical Theory of Crystal Lattices* (OUP, 1954),
    ch. 23 (internal strain); X. Wu, D. Vanderbilt and D. R. Hamann,
    Phys. Rev. B 72, 035105 (2005) (relaxed-ion tensor ``C⁰ − Λᵀ Φ⁻¹ Λ / V``);
    R. Hill, Proc. Phys. Soc. A 65, 349 (1952) (Voigt–Reuss–Hill averages);
    E. B. Christoffel (1877), in B. A. Auld, *Acoustic Fields and Waves in
    Solids* (Wiley, 1973).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
    >>> ec = run(potentials.get("sw"), None, si)
    >>> [round(float(ec.relaxed_ion_gpa[i, j]), 1) for i, j in [(0, 0), (0, 1), (3, 3)]]
    [151.4, 76.4, 56.4]
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from mldiff import neighbors, units
from mldiff import structure as _structure
from mldiff.errors import ConfigError, StructureError, check_float64
from mldiff.phonons import dynamical_matrix as _dm
from mldiff.phonons.force_constants import DEFAULT_CHUNK_SIZE
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure

__all__ = [
    "ElasticConstants",
    "strain_derivatives",
    "relaxed_ion",
    "run",
    "moduli",
    "density",
    "christoffel",
    "acoustic_velocities",
    "voigt_to_tensor",
]

_VOIGT = np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])  # (i, j) -> Voigt index


class ElasticConstants(NamedTuple):
    """Elastic constants of a crystal (a pytree).

    Attributes:
        clamped_ion_gpa: ``[6, 6]`` Voigt clamped-ion constants ``C⁰``, GPa.
        relaxed_ion_gpa: ``[6, 6]`` Voigt relaxed-ion constants ``C``, GPa.
        internal_strain: ``[n, 3, 6]`` ``Λ = ∂²E/∂u∂η``, eV/Å (force on each atom
            per unit strain, with a minus sign).
        stress_gpa: ``[6]`` residual Voigt stress (xx, yy, zz, yz, xz, xy) of
            the input structure, GPa, ASE's sign; ``C`` is the stress–strain
            tensor only where this is ~0.
        max_force: largest residual atomic force, eV/Å; the relaxed-ion
            correction assumes ions at equilibrium.
    """

    clamped_ion_gpa: jax.Array
    relaxed_ion_gpa: jax.Array
    internal_strain: jax.Array
    stress_gpa: jax.Array
    max_force: jax.Array


def strain_derivatives(energy_fn, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Second derivatives of the energy in strain and atomic displacements.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV``.
        chunk_size: Hessian-vector products evaluated at once (memory knob).

    Returns:
        ``fn(params, structure, graph) -> (A, Λ, Φ, g_η, g_u)`` with
        ``A = ∂²E/∂η²`` ``[6, 6]`` eV, ``Λ = ∂²E/∂u∂η`` ``[n, 3, 6]`` eV/Å,
        ``Φ = ∂²E/∂u²`` ``[n, 3, n, 3]`` eV/Å², and the gradients
        ``∂E/∂η`` ``[6]`` eV and ``∂E/∂u`` ``[n, 3]`` eV/Å. ``η`` is the Voigt
        strain with engineering shear (:func:`mldiff.structure.apply_strain`).
        Jit-compatible; raises :class:`PrecisionError` on float32.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0.0, 0, 0]], jnp.eye(3) * 2.0, [1],
        ...                      dtype=jnp.float64)
        >>> def e(params, s, g):  # E = ½ k (V − 8)²
        ...     return 0.5 * (jnp.linalg.det(s.cell) - 8.0) ** 2
        >>> a = strain_derivatives(e)(None, s, None)[0]
        >>> float(a[0, 1])  # k V²
        64.0
    """

    def fn(params, structure, graph):
        check_float64("elastic constants", structure=structure)
        n = structure.positions.shape[0]
        dtype = structure.positions.dtype

        def e_of_x(x):
            strained = _structure.apply_strain(structure, x[:6])
            u = x[6:].reshape(n, 3)
            return energy_fn(
                params, strained.replace(positions=strained.positions + u), graph
            )

        x0 = jnp.zeros(6 + 3 * n, dtype)
        grad, hvp = jax.linearize(jax.grad(e_of_x), x0)
        basis = jnp.eye(6 + 3 * n, dtype=dtype)
        h = jax.lax.map(hvp, basis, batch_size=min(chunk_size, 6 + 3 * n))
        h = 0.5 * (h + h.T)
        a = h[:6, :6]
        lam = h[6:, :6].reshape(n, 3, 6)
        phi = h[6:, 6:].reshape(n, 3, n, 3)
        return a, lam, phi, grad[:6], grad[6:].reshape(n, 3)

    return fn


def _translation_complement(n: int) -> np.ndarray:
    """``[3n, 3n − 3]`` orthonormal basis orthogonal to rigid translations."""
    t = np.tile(np.eye(3), (n, 1)) / np.sqrt(n)  # [3n, 3]
    u, _, _ = np.linalg.svd(np.eye(3 * n) - t @ t.T)
    return u[:, : 3 * n - 3]


def relaxed_ion(
    clamped: Float[Array, "6 6"],
    internal_strain: Float[Array, "n 3 6"],
    force_constants: Float[Array, "n 3 n 3"],
    *,
    rcond: float = 1e-10,
) -> tuple[Float[Array, "6 6"], Float[Array, ""]]:
    """Relaxed-ion correction ``C = C⁰ − Λᵀ Φ⁺ Λ`` (any consistent units).

    ``Φ⁺`` inverts ``Φ`` on the complement of the three rigid translations;
    eigenvalues below ``rcond`` times the largest are dropped (as a
    pseudo-inverse does).

    Args:
        clamped: ``[6, 6]`` clamped-ion ``A`` (e.g. eV, or eV/Å³ after ``/V``).
        internal_strain: ``[n, 3, 6]`` ``Λ``, eV/Å (same volume scaling as A).
        force_constants: ``[n, 3, n, 3]`` Γ-point force constants ``Φ``, eV/Å².
        rcond: relative cut-off for small eigenvalues of ``Φ``.

    Returns:
        ``([6, 6] relaxed constants, smallest eigenvalue of Φ off the
        translations, eV/Å²)``; a negative eigenvalue means the ions are not at
        a minimum (the correction is then meaningless). Jit-compatible.

    Example:
        >>> import jax.numpy as jnp
        >>> lam = jnp.zeros((2, 3, 6)).at[1, 0, 0].set(1.0).at[0, 0, 0].set(-1.0)
        >>> phi = jnp.zeros((2, 3, 2, 3))
        >>> for a in range(3):  # a spring of 1 eV/Å² between two atoms
        ...     phi = phi.at[0, a, 0, a].set(1.).at[1, a, 1, a].set(1.)
        ...     phi = phi.at[0, a, 1, a].set(-1.).at[1, a, 0, a].set(-1.)
        >>> c, _ = relaxed_ion(jnp.eye(6) * 3.0, lam, phi)
        >>> float(c[0, 0])  # E = ½x² + ηx with x = u₁ − u₀: minimum −½η²
        2.0
    """
    n = internal_strain.shape[0]
    if n == 1:  # a single atom has no internal degrees of freedom
        return clamped, jnp.asarray(jnp.inf, clamped.dtype)
    q = jnp.asarray(_translation_complement(n), clamped.dtype)  # [3n, 3n-3]
    phi = force_constants.reshape(3 * n, 3 * n)
    lam = internal_strain.reshape(3 * n, 6)
    w, v = jnp.linalg.eigh(q.T @ phi @ q)
    keep = jnp.abs(w) > rcond * jnp.max(jnp.abs(w))
    inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
    proj = v.T @ (q.T @ lam)  # [3n-3, 6]
    corr = proj.T @ (inv_w[:, None] * proj)
    return clamped - 0.5 * (corr + corr.T), w[0]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _elastic(energy_fn, chunk_size, params, structure, graph):
    a, lam, phi, g_eta, g_u = strain_derivatives(energy_fn, chunk_size=chunk_size)(
        params, structure, graph
    )
    vol = jnp.abs(jnp.linalg.det(structure.cell))
    c0 = a / vol * units.eV_per_A3_to_GPa
    c, w_min = relaxed_ion(a, lam, phi)
    c = c / vol * units.eV_per_A3_to_GPa
    # ∂E/∂η with engineering shear is V σ_Voigt: the stress in Voigt order
    stress = g_eta / vol * units.eV_per_A3_to_GPa
    max_force = jnp.max(jnp.linalg.norm(g_u, axis=-1))
    return ElasticConstants(c0, c, lam, stress, max_force), w_min


def run(
    potential: Potential,
    params,
    structure: Structure,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_force: float = 1e-2,
) -> ElasticConstants:
    """Clamped- and relaxed-ion elastic constants of a (relaxed) crystal.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters; ``None`` for ``potential.init(key(0), structure)``.
        structure: periodic cell in float64, Å; ions should be at equilibrium
            and, for the stress–strain meaning, the stress should be ~0.
        chunk_size: Hessian-vector products evaluated at once.
        max_force: largest residual force accepted, eV/Å.

    Returns:
        The :class:`ElasticConstants` (GPa).

    Raises:
        StructureError: ions not at equilibrium (forces above ``max_force`` or
            an unstable internal mode), or a non-periodic structure.
    """
    if not all(structure.pbc):
        raise StructureError(
            f"elastic constants need a cell periodic in 3 directions, got "
            f"pbc={structure.pbc}"
        )
    check_float64("elastic constants", structure=structure)
    check_species(potential, np.asarray(structure.numbers))
    if params is None:
        params = potential.init(jax.random.key(0), structure)
    graph = neighbors.check(neighbors.allocate(structure, potential.cutoff))
    out, w_min = _elastic(potential.energy, chunk_size, params, structure, graph)
    if float(out.max_force) > max_force:
        raise StructureError(
            f"the largest force is {float(out.max_force):.3g} eV/Å (limit "
            f"{max_force} eV/Å); relax the atomic positions first, e.g. with "
            "mldiff.md.relax"
        )
    if float(w_min) < -1e-6:
        raise StructureError(
            f"the force constants have a negative eigenvalue ({float(w_min):.3g} "
            "eV/Å²): the ions sit at a saddle point, so the relaxed-ion "
            "correction is undefined; relax from a slightly perturbed structure"
        )
    return out


def moduli(c_gpa: Float[ArrayLike, "6 6"]) -> dict:
    """Bulk and shear moduli: Voigt, Reuss and Hill averages.

    Args:
        c_gpa: ``[6, 6]`` Voigt elastic constants, GPa.

    Returns:
        ``{"bulk_voigt_gpa", "bulk_reuss_gpa", "bulk_hill_gpa",
        "shear_voigt_gpa", "shear_reuss_gpa", "shear_hill_gpa"}`` (floats, GPa).

    References:
        R. Hill, Proc. Phys. Soc. A 65, 349 (1952).

    Example:
        >>> c = np.zeros((6, 6)); c[:3, :3] = 50.0
        >>> c[[0, 1, 2], [0, 1, 2]] = 150.0; c[[3, 4, 5], [3, 4, 5]] = 60.0
        >>> round(moduli(c)["bulk_hill_gpa"], 6), round(moduli(c)["shear_voigt_gpa"], 6)
        (83.333333, 56.0)
    """
    c = np.asarray(c_gpa, np.float64)
    if c.shape != (6, 6):
        raise ConfigError(f"elastic constants must be 6×6 Voigt, got {c.shape}")
    s = np.linalg.inv(c)
    d, o, g = np.arange(3), [(0, 1), (0, 2), (1, 2)], np.arange(3, 6)
    cd, co, cg = c[d, d].sum(), sum(c[i, j] for i, j in o), c[g, g].sum()
    sd, so, sg = s[d, d].sum(), sum(s[i, j] for i, j in o), s[g, g].sum()
    kv, gv = (cd + 2 * co) / 9, (cd - co + 3 * cg) / 15
    kr, gr = 1 / (sd + 2 * so), 15 / (4 * sd - 4 * so + 3 * sg)
    return {
        "bulk_voigt_gpa": float(kv),
        "bulk_reuss_gpa": float(kr),
        "bulk_hill_gpa": float((kv + kr) / 2),
        "shear_voigt_gpa": float(gv),
        "shear_reuss_gpa": float(gr),
        "shear_hill_gpa": float((gv + gr) / 2),
    }


def density(structure: Structure, masses=None) -> float:
    """Mass density of a periodic cell, kg/m³.

    Args:
        structure: periodic cell, Å.
        masses: ``[n]`` masses, amu; default ASE's (as the phonons use).

    Example:
        >>> from ase.build import bulk
        >>> round(density(Structure.from_ase(bulk("Cu", "fcc", a=3.615))))
        8935
    """
    if masses is None:
        masses = units.masses_amu(structure.numbers)
    vol = abs(np.linalg.det(np.asarray(structure.cell, np.float64)))
    return float(np.sum(masses) * units.amu_kg / (vol * 1e-30))


def voigt_to_tensor(c_voigt: Float[ArrayLike, "6 6"]) -> np.ndarray:
    """``[6, 6]`` Voigt constants to the ``[3, 3, 3, 3]`` tensor ``C_ijkl``.

    Example:
        >>> c = np.arange(36.0).reshape(6, 6)
        >>> float(voigt_to_tensor(c)[1, 2, 0, 1])  # C_44-row, C_66-column: c[3, 5]
        23.0
    """
    c = np.asarray(c_voigt, np.float64)
    return c[_VOIGT[:, :, None, None], _VOIGT[None, None, :, :]]


def christoffel(
    c_gpa: Float[ArrayLike, "6 6"], density_kg_m3: float, directions
) -> tuple[np.ndarray, np.ndarray]:
    """Sound velocities and polarisations from the Christoffel equation.

    ``Γ_ik = C_ijkl n_j n_l``; ``ρ v²`` are the eigenvalues of ``Γ``.

    Args:
        c_gpa: ``[6, 6]`` Voigt elastic constants, GPa.
        density_kg_m3: mass density, kg/m³.
        directions: ``[k, 3]`` propagation directions (Cartesian; normalised
            here).

    Returns:
        ``([k, 3] velocities, m/s, ascending; [k, 3, 3] polarisations, column
        per velocity)``.

    Example:
        >>> c = np.diag([100.0, 100, 100, 40, 40, 40])
        >>> v, _ = christoffel(c, 5000.0, [[1, 0, 0]])
        >>> np.round(v, 1).tolist()  # √(C44/ρ), √(C44/ρ), √(C11/ρ)
        [[2828.4, 2828.4, 4472.1]]
    """
    n = np.asarray(directions, np.float64).reshape(-1, 3)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    c = voigt_to_tensor(c_gpa) * 1e9  # Pa
    gamma = np.einsum("ijkl,nj,nl->nik", c, n, n)
    w, v = np.linalg.eigh(gamma)
    if np.any(w < 0):
        raise ConfigError(
            "the elastic constants are not positive definite along "
            f"{n[np.any(w < 0, axis=1)][:3].tolist()}: no real sound velocity"
        )
    return np.sqrt(w / density_kg_m3), v


def acoustic_velocities(phonons, directions, *, dq: float = 5e-3) -> np.ndarray:
    """Sound velocities from the slope of the three acoustic branches at Γ.

    ``v = f(q)/|q|`` for ``q = dq·n`` (Cartesian, 1/Å without 2π), with one
    Richardson step, ``(4 v(dq) − v(2dq)) / 3``, removing the ``O(q²)``
    dispersion. The supercell must hold the full range of the force constants
    for the slope to be the elastic limit.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons` (at zero stress).
        directions: ``[k, 3]`` Cartesian propagation directions (normalised
            here).
        dq: step, 1/Å (without 2π).

    Returns:
        ``[k, 3]`` velocities of the three lowest branches, m/s, ascending.
    """
    n = np.asarray(directions, np.float64).reshape(-1, 3)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    lat = np.asarray(phonons.primitive.cell, np.float64)
    q_red = np.concatenate([n * dq, n * 2 * dq]) @ lat.T  # reduced = L q_cart
    f = np.asarray(
        _dm.frequencies_at(
            phonons.force_constants, phonons.masses, phonons.images, q_red
        )
    )[:, :3]
    v1, v2 = f[: len(n)] / dq, f[len(n) :] / (2 * dq)  # THz·Å
    return (4 * v1 - v2) / 3 * 100.0  # 1 THz·Å = 100 m/s
