"""Lattice thermal conductivity: relaxation-time approximation and direct LBTE.

Three-phonon scattering from third-order force constants, with phono3py's
conventions and units, as JAX functions of the force constants (so ``κ`` is
differentiable with respect to a potential's parameters).

**Mesh.** A Γ-centred ``N1×N2×N3`` q-mesh of the primitive cell; κ needs the
linewidths only at its symmetry-irreducible points (spglib, with time
reversal), each with the weight of its star.

**Interaction strength** of the triplet ``q + q' + q'' = G`` (phono3py's
``Interaction``, Togo et al. 2015)::

    Φ(q,q',q'') = Σ_{l'l''} Φ(0κ, l'κ', l''κ'') e^{2πi q'·(r_l'κ' − r_0κ)}
                  e^{2πi q''·(r_l''κ'' − r_0κ)} e^{2πi G·r_κ}
    P_λλ'λ'' = |Σ Φ(q,q',q'')_{κακ'βκ''γ} e_λ(κα) e_λ'(κ'β) e_λ''(κ''γ)
                / √(m_κ m_κ' m_κ'')|² / (ν ν' ν'') · ħ³/(36·8) / ((2π)³ N)

with the phases averaged over equally short supercell images, as for the
dynamical matrix (:mod:`.dynamical_matrix`), in eV² (ν in THz).

**Linewidth** (imaginary part of the self-energy at ``ν_λ``) with Gaussian
smearing ``g_σ(x) = exp(−x²/2σ²)/(√(2π)σ)`` in THz (the tetrahedron method is
not implemented)::

    Γ_λ = 18π/ħ² Σ_{q'λ'λ''} P [(n' + n'' + 1) g_σ(ν − ν' − ν'')
                                + (n' − n'')(g_σ(ν + ν' − ν'') − g_σ(ν − ν' + ν''))]

in THz, averaged over degenerate modes; ``n`` is the Bose–Einstein occupation.
Modes at or below ``cutoff_thz`` (the acoustic modes at Γ) are left out.

**Conductivity** ``κ_αβ = 1/(N V) Σ_λ C_λ v_λα v_λβ τ_λ`` with ``τ_λ = 1/(4π Γ_λ)``
(ps), the mode heat capacity ``C_λ = k_B x² eˣ/(eˣ − 1)²`` and group velocities
``v`` from the exact ``∂D/∂q`` (degenerate modes rotated as phonopy does); the
outer products are averaged over the point group, as phono3py's ``gv_by_gv``.
No isotope or boundary scattering.

**Direct solution** of the linearised Boltzmann equation (:func:`kappa_lbte`,
``run(..., method="lbte")``): phono3py's reducible collision matrix over the
whole mesh, from the same interaction strengths, solved by its pseudo-inverse;
it equals phono3py's ``is_LBTE=True, is_reducible_collision_matrix=True`` to
1e-13 and, unlike the RTA, does not treat normal processes as resistive.

Eigenvectors are differentiated with a degeneracy-safe rule (derivative
terms between modes closer than ``degeneracy_thz`` dropped), which gives the
exact derivative of quantities invariant under rotations within degenerate
subspaces — Γ (averaged) and heat capacities — and finite values elsewhere.

References:
    A. Togo, L. Chaput and I. Tanaka, "Distributions of phonon lifetimes in
    Brillouin zones", Phys. Rev. B 91, 094306 (2015); phono3py 4.10
    ``phonon3/interaction.py``, ``real_to_reciprocal.py``,
    ``reciprocal_to_normal.py``, ``imag_self_energy.py``,
    ``conductivity/kappa_solvers.py``, ``conductivity/utils.py`` (units),
    read for the conventions.

Example (the full workflow, as in ``notebooks/09_thermal_conductivity.ipynb``)::

    ph = phonons.run(si, pot, None, [2, 2, 2], primitive_matrix=fcc)
    fc3 = third_order.third_order(pot, pot.init(None, ph.supercell), ph.supercell)
    res = run(ph, fc3, [11, 11, 11], [300.0, 600.0], sigma_thz=0.1)
    res.kappa  # [T, 3, 3], W/(m K)
    lbte = run(ph, fc3, [11, 11, 11], [300.0], sigma_thz=0.1, method="lbte")
"""

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff.errors import ConfigError
from mldiff.phonons import _units
from mldiff.phonons import dynamical_matrix as _dm
from mldiff.phonons import force_constants as _fc

__all__ = [
    "Mesh",
    "Triplets",
    "Conductivity",
    "check_mesh",
    "mesh",
    "triplets",
    "safe_eigh",
    "interaction_strength",
    "linewidths",
    "kappa_rta",
    "collisions",
    "kappa_lbte",
    "pinv_solve",
    "run",
    "cumulative_kappa",
    "mean_free_paths",
]

# phonopy's default constants (see _units), SI
_EV_J = _units._EV_J
_AMU_KG = _units._AMU_KG
_HBAR_EV_S = _units._PLANCK_EV_S / (2 * math.pi)
_HBAR_J_S = _HBAR_EV_S * _EV_J
_THZ = 1e12
_ANGSTROM = 1e-10
# |Φ|²/(ν ν' ν'') in (eV/Å³)²/(amu³ THz³) -> eV², without the 1/N of the mesh
PP_TO_EV2 = (
    _HBAR_J_S**3
    / 36
    / 8
    * _EV_J**2
    / _ANGSTROM**6
    / (2 * math.pi * _THZ) ** 3
    / _AMU_KG**3
    / _EV_J**2
)
# Σ P g (eV²/THz) -> Γ in THz
GAMMA_TO_THZ = 18 * math.pi / _HBAR_J_S**2 / (2 * math.pi * _THZ) ** 2 * _EV_J**2
# C v v / Γ in (eV/K)(THz Å)²/THz per Å³ -> W/(m K); the 2π is τ = 1/(2·2πΓ)
KAPPA_TO_W_MK = (_THZ * _ANGSTROM) ** 2 / _ANGSTROM**3 * _EV_J / _THZ / (2 * math.pi)

DEFAULT_CUTOFF_THZ = 1e-4  # phono3py's cutoff_frequency
DEFAULT_DEGENERACY_THZ = 1e-4  # phonopy's degenerate_sets tolerance
DEFAULT_PINV_CUTOFF = 1e-8  # phono3py's pinv_cutoff (THz, on |eigenvalue|)
PERTURBATION = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)  # phonopy's direction


class Mesh(NamedTuple):
    """A Γ-centred q-mesh and its irreducible points (host-side NumPy).

    Attributes:
        numbers: ``[3]`` mesh numbers.
        qpoints: ``[N, 3]`` reduced coordinates (primitive reciprocal lattice)
            in ``(−1/2, 1/2]``, spglib's grid order.
        irreducible: ``[g]`` indices into ``qpoints`` of the irreducible points.
        weights: ``[g]`` number of mesh points in each star (sum ``N``).
        third: ``[g, N]`` for irreducible ``q`` and each ``q'``, the index of
            ``q'' ≡ −q − q'`` on the mesh.
        rotations: ``[r, 3, 3]`` Cartesian point-group rotations, with time
            reversal (``−R``) added when the group lacks inversion: the
            operations that map a q-point onto its star.
        rotation_map: ``[r, N]`` index of ``R q`` for each rotation and point;
            ``None`` when the mesh numbers break the crystal's symmetry (the
            LBTE then needs ``use_symmetry=False``).
        star: ``[N]`` index into ``irreducible`` of each point's star.
    """

    numbers: np.ndarray
    qpoints: np.ndarray
    irreducible: np.ndarray
    weights: np.ndarray
    third: np.ndarray
    rotations: np.ndarray
    rotation_map: np.ndarray | None
    star: np.ndarray


class Triplets(NamedTuple):
    """Supercell atom triples with non-zero third-order force constants.

    Attributes:
        first: ``[t]`` primitive atom (index into the primitive cell).
        second: ``[t]`` supercell atom.
        third: ``[t]`` supercell atom.
    """

    first: np.ndarray
    second: np.ndarray
    third: np.ndarray


class Conductivity(NamedTuple):
    """Thermal conductivity (RTA or LBTE) and its mode-resolved ingredients.

    Attributes:
        temperatures: ``[T]`` K.
        kappa: ``[T, 3, 3]`` thermal conductivity, W/(m·K).
        mode_kappa: ``[T, g, m, 3, 3]`` contribution of each irreducible mode
            (its star included), W/(m·K); sums to ``kappa``.
        gamma: ``[T, g, m]`` linewidths Γ (half width), THz.
        frequencies: ``[g, m]`` THz.
        velocities: ``[g, m, 3]`` group velocities, THz·Å (×100 for m/s).
        heat_capacities: ``[T, g, m]`` mode heat capacities, eV/K.
        qpoints: ``[g, 3]`` irreducible q-points (reduced).
        weights: ``[g]`` star sizes.
    """

    temperatures: jax.Array
    kappa: jax.Array
    mode_kappa: jax.Array
    gamma: jax.Array
    frequencies: jax.Array
    velocities: jax.Array
    heat_capacities: jax.Array
    qpoints: jax.Array
    weights: jax.Array


def mesh(primitive, numbers, *, use_symmetry: bool = True, symprec: float = 1e-5):
    """Γ-centred q-mesh with irreducible points and triplet partners (spglib).

    Args:
        primitive: the primitive :class:`~mldiff.structure.Structure`, Å.
        numbers: ``[3]`` mesh numbers.
        use_symmetry: reduce to irreducible points; ``False`` keeps all.
        symprec: spglib tolerance, Å.

    Returns:
        The :class:`Mesh`.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff.structure import Structure
        >>> m = mesh(Structure.from_ase(bulk("Si", "diamond", a=5.431)), [4, 4, 4])
        >>> len(m.qpoints), len(m.irreducible), int(m.weights.sum())
        (64, 8, 64)
    """
    import spglib

    nums = np.asarray(numbers, dtype=int).reshape(-1)
    if nums.shape != (3,) or np.any(nums < 1):
        raise ConfigError(f"mesh must be three positive integers, got {numbers!r}")
    lat = np.asarray(primitive.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(primitive.positions, np.float64).T).T
    cell = (lat, frac, np.asarray(primitive.numbers))
    mapping, address = spglib.get_ir_reciprocal_mesh(
        nums, cell, is_shift=[0, 0, 0], is_time_reversal=True, symprec=symprec
    )
    address = np.asarray(address)
    mapping = np.asarray(mapping) if use_symmetry else np.arange(len(address))
    ir, star, counts = np.unique(mapping, return_inverse=True, return_counts=True)
    q = address / nums
    q = q - (q > 0.5)
    a = np.mod(address, nums)
    idx = _grid_index(a, nums)
    if not np.array_equal(idx, np.arange(len(idx))):
        raise ConfigError("unexpected spglib grid order; check the spglib version")
    t = np.mod(-(a[ir][:, None, :] + a[None, :, :]), nums)  # [g, N, 3]
    third = _grid_index(t, nums)
    sym = spglib.get_symmetry((lat, frac, np.asarray(primitive.numbers)), symprec)
    rots = np.unique(np.asarray(sym["rotations"]), axis=0)
    if not np.any(np.all(rots == -np.eye(3, dtype=rots.dtype), axis=(1, 2))):
        rots = np.concatenate([rots, -rots])  # time reversal: q -> -q
    cart = np.einsum("ab,obc,cd->oad", lat.T, rots, np.linalg.inv(lat.T))
    rotation_map = _rotation_map(rots, a, nums)
    if rotation_map is not None and not np.array_equal(
        mapping[rotation_map], np.broadcast_to(mapping, rotation_map.shape)
    ):
        rotation_map = None  # spglib reduced the mesh by other operations
    return Mesh(
        nums,
        q,
        ir.astype(np.int64),
        counts.astype(np.int64),
        third,
        cart,
        rotation_map,
        star.astype(np.int64),
    )


def _grid_index(address, nums):
    """Index in spglib's grid order of integer addresses in ``[0, n)``."""
    return address[..., 0] + nums[0] * (address[..., 1] + nums[1] * address[..., 2])


def _rotation_map(rotations, address, nums):
    """``[r, N]`` grid index of ``R q`` (``q' = W⁻ᵀ q`` for a real-space ``W``).

    ``None`` when some ``R q`` falls off the mesh (mesh numbers that break
    the crystal's symmetry).
    """
    recip = np.linalg.inv(rotations).transpose(0, 2, 1)  # [r, 3, 3]
    image = np.einsum("oab,nb->ona", recip, address / nums) * nums  # [r, N, 3]
    rounded = np.rint(image)
    if np.abs(image - rounded).max() > 1e-8:
        return None  # the mesh breaks the symmetry
    return _grid_index(np.mod(rounded.astype(np.int64), nums), nums)


def _first_atom_index(fc3, images: _dm.Images):
    """``[p]`` index into fc3's first axis of each primitive atom's block.

    Full fc3 has ``n`` first atoms (the primitive atoms are
    ``images.representative``); compact fc3 (phono3py's) has those ``p``
    atoms only, in that order.
    """
    if fc3.shape[0] != fc3.shape[2]:  # compact
        return jnp.arange(fc3.shape[0])
    return jnp.asarray(images.representative)


def triplets(fc3, images: _dm.Images, *, threshold: float = 1e-10) -> Triplets:
    """Atom triples ``(κ, j, k)`` with a non-zero block ``Φ(rep κ, j, k)`` (host).

    Args:
        fc3: ``[n, 3, n, 3, n, 3]`` concrete third-order force constants, eV/Å³,
            or compact ``[p, 3, n, 3, n, 3]`` (first atoms
            ``images.representative``).
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        threshold: blocks whose largest element is at or below ``threshold``
            times the largest element of ``fc3`` are dropped (rounding noise,
            e.g. from enforcing translational invariance).

    Returns:
        The :class:`Triplets`.
    """
    first = np.asarray(_first_atom_index(fc3, images))
    mags = np.abs(np.asarray(fc3)[first]).max(axis=(1, 3, 5))  # [p, n, n]
    first, second, third = np.nonzero(mags > threshold * mags.max())
    return Triplets(first, second, third)


@jax.custom_jvp
def safe_eigh(matrix, tol):
    """``eigh`` whose derivative ignores pairs of eigenvalues closer than ``tol``.

    Args:
        matrix: ``[m, m]`` Hermitian.
        tol: eigenvalue gap below which two eigenvalues count as degenerate
            (same units as the eigenvalues; may be traced, not differentiated).

    Returns:
        ``(eigenvalues [m] ascending, eigenvectors [m, m] as columns)``.

    Example:
        >>> import jax.numpy as jnp
        >>> w, v = safe_eigh(jnp.eye(2), 1e-9)
        >>> w.tolist()
        [1.0, 1.0]
    """
    w, v = jnp.linalg.eigh(matrix)
    return w, v  # a plain tuple, as the JVP rule returns (not EighResult)


@safe_eigh.defjvp
def _safe_eigh_jvp(primals, tangents):
    # tol is an ordinary argument (it may be traced, e.g. scaled by a matrix
    # norm under vmap/jit); its tangent does not enter
    (a, tol), (da, _) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    vh_da_v = jnp.conj(v.T) @ da @ v
    gap = w[None, :] - w[:, None]
    f = jnp.where(jnp.abs(gap) > tol, 1.0 / jnp.where(jnp.abs(gap) > tol, gap, 1.0), 0)
    dw = jnp.real(jnp.diagonal(vh_da_v))
    dv = v @ (f.astype(vh_da_v.dtype) * vh_da_v)
    return (w, v), (dw.astype(w.dtype), dv)


def _eig_tol(degeneracy_thz):
    """Eigenvalue gap (eV/(Å² amu)) that matches a frequency gap near 1 THz."""
    return 2.0 * degeneracy_thz / _dm.THZ_PER_SQRT_EV_A2_AMU**2


def _modes(fc2, masses, images, qpoints, degeneracy_thz):
    """Frequencies (THz) and eigenvectors at ``[k, 3]`` q-points, safe to grad."""
    tol = _eig_tol(degeneracy_thz)

    def one(q):
        w2, e = safe_eigh(_dm.dynamical_matrix(fc2, masses, q, images), tol)
        return _dm.to_thz(w2), e

    return jax.vmap(one)(qpoints)


def _same_set(f, degeneracy_thz):
    """``[m, m]`` float: 1 where two frequencies are degenerate (no gradient)."""
    f = jax.lax.stop_gradient(f)
    return (jnp.abs(f[:, None] - f[None, :]) < degeneracy_thz).astype(f.dtype)


def _velocities(fc2, masses, images, lattice, qpoints, degeneracy_thz, cutoff_thz):
    """Group velocities ``[k, m, 3]`` (THz·Å), degenerate modes as phonopy."""
    tol = _eig_tol(degeneracy_thz)
    c2 = _dm.THZ_PER_SQRT_EV_A2_AMU**2
    lat = jnp.asarray(lattice, fc2.dtype)
    n_hat = jnp.asarray(PERTURBATION, fc2.dtype)

    def one(q_red):
        q_cart = jnp.linalg.solve(lat, q_red)

        def d_of(x):
            return _dm.dynamical_matrix(fc2, masses, lat @ x, images)

        dyn = d_of(q_cart)
        dd = jnp.moveaxis(jax.jacfwd(d_of, holomorphic=False)(q_cart), -1, 0)
        w2, e = safe_eigh(dyn, tol)
        f = _dm.to_thz(w2)
        same = _same_set(f, degeneracy_thz)
        m = jnp.conj(e.T) @ jnp.einsum("a,aij->ij", n_hat, dd) @ e
        m = m * same
        block = jnp.cumsum(
            jnp.concatenate([jnp.zeros(1), jnp.diff(jax.lax.stop_gradient(f))])
            >= degeneracy_thz
        )
        big = 1.0 + 4.0 * jax.lax.stop_gradient(jnp.abs(m).max())
        _, rot = safe_eigh(m + jnp.diag(block * big).astype(m.dtype), 1e-12 * big)
        e = e @ rot
        v = jnp.real(jnp.einsum("im,aij,jm->ma", jnp.conj(e), dd, e))
        ok = f > cutoff_thz
        scale = jnp.where(ok, c2 / (2 * jnp.where(ok, f, 1.0)), 0.0)
        return f, v * scale[:, None]

    return jax.vmap(one)(jnp.asarray(qpoints, fc2.dtype))


def _bose(f, temperature):
    x = f * _units.THZ_TO_EV / (_units.KB_EV_K * temperature)
    return 1.0 / jnp.expm1(x)


def _gauss(x, sigma):
    return jnp.exp(-0.5 * (x / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)


def interaction_strength(
    fc3,
    masses,
    images: _dm.Images,
    primitive_positions,
    trip: Triplets,
    q0,
    q1,
    q2,
    modes0,
    modes1,
    modes2,
    *,
    cutoff_thz: float = DEFAULT_CUTOFF_THZ,
    r0_average: bool = True,
) -> Float[Array, "k m m m"]:
    """Interaction strengths ``P`` of triplets ``q0 + q1 + q2 = G`` (no 1/N).

    Args:
        fc3: ``[n, 3, n, 3, n, 3]`` supercell third-order force constants, eV/Å³,
            or compact ``[p, 3, n, 3, n, 3]`` (first atoms
            ``images.representative``).
        masses: ``[n]`` supercell masses, amu.
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        primitive_positions: ``[p, 3]`` fractional positions of the primitive
            atoms.
        trip: non-zero atom triples, from :func:`triplets`.
        q0: ``[k, 3]`` reduced q-points of the first vertex.
        q1: ``[k, 3]`` second vertex.
        q2: ``[k, 3]`` third vertex; ``q0 + q1 + q2`` integer.
        modes0: ``(frequencies [k, m] THz, eigenvectors [k, m, m])`` at q0.
        modes1: the same at q1.
        modes2: the same at q2.
        cutoff_thz: modes at or below this frequency give zero.
        r0_average: average the transform over the choice of the atom placed
            in the home cell (phono3py's default ``make_r0_average``), which
            treats the three atoms alike where supercell images are ambiguous.

    Returns:
        ``[k, m, m, m]`` ``|Φ|²/(ν0 ν1 ν2)`` times ħ³/(36·8(2π)³), eV²·N (divide
        by the number of mesh points for phono3py's interaction strength).
    """
    p = images.representative.shape[0]
    rep = jnp.asarray(images.representative)
    s2p = jnp.asarray(images.primitive_of)
    i, j, k = (jnp.asarray(x) for x in trip)
    first = _first_atom_index(fc3, images)
    blocks = fc3[first[i], :, j, :, k, :]  # [t, 3, 3, 3], one gather
    vec = jnp.asarray(images.vectors, fc3.dtype)
    wts = jnp.asarray(images.weights, fc3.dtype)
    v1, w1 = vec[i, j], wts[i, j]  # [t, m, 3], [t, m]
    v2, w2 = vec[i, k], wts[i, k]
    m_prim = jnp.asarray(masses, fc3.dtype)[rep]
    inv_sqrt_m = jnp.repeat(1.0 / jnp.sqrt(m_prim), 3)  # [3p]
    r0 = jnp.asarray(primitive_positions, fc3.dtype)

    def phase(x):
        return jax.lax.complex(jnp.cos(2 * jnp.pi * x), jnp.sin(2 * jnp.pi * x))

    atom_of = (i, s2p[j], s2p[k])  # primitive atom of (anchor, second, third)
    legs = ((0, 1, 2), (1, 0, 2), (2, 1, 0)) if r0_average else ((0, 1, 2),)

    def leg(q, slots):
        """One choice of the anchor atom: its slot, then the others' slots."""
        e1 = jnp.sum(w1 * phase(v1 @ q[slots[1]]), axis=-1)  # [t]
        e2 = jnp.sum(w2 * phase(v2 @ q[slots[2]]), axis=-1)
        pre = phase(r0 @ (q[0] + q[1] + q[2]))  # [p]
        c = blocks.astype(e1.dtype) * (e1 * e2 * pre[i])[:, None, None, None]
        order = np.argsort(slots)  # block axis that lands in each slot
        c = jnp.transpose(c, (0, *(1 + order)))
        a0, a1, a2 = (atom_of[o] for o in order)
        fq = jax.ops.segment_sum(c, (a0 * p + a1) * p + a2, num_segments=p**3)
        return fq

    def one(qa, qb, qc, fa, ea, fb, eb, fc, ec):
        fq = sum(leg((qa, qb, qc), sl) for sl in legs) / len(legs)  # [p³, 3, 3, 3]
        fq = fq.reshape(p, p, p, 3, 3, 3).transpose(0, 3, 1, 4, 2, 5)
        fq = fq.reshape(3 * p, 3 * p, 3 * p)
        xa, xb, xc = (x * inv_sqrt_m[:, None] for x in (ea, eb, ec))
        amp = jnp.einsum("ijk,ia,jb,kc->abc", fq, xa, xb, xc)
        ok = (fa > cutoff_thz)[:, None, None] & (fb > cutoff_thz)[None, :, None]
        ok = ok & (fc > cutoff_thz)[None, None, :]
        fff = jnp.where(
            ok, fa[:, None, None] * fb[None, :, None] * fc[None, None, :], 1
        )
        return jnp.where(ok, jnp.abs(amp) ** 2 / fff, 0.0) * PP_TO_EV2

    return jax.vmap(one)(q0, q1, q2, *modes0, *modes1, *modes2)


def linewidths(
    strength, f0, f1, f2, temperatures, sigma_thz, *, cutoff_thz=DEFAULT_CUTOFF_THZ
) -> Float[Array, "t m"]:
    """Linewidths Γ (imaginary self-energy) of the modes of one q-point.

    Args:
        strength: ``[k, m, m, m]`` interaction strengths of the ``k`` triplets
            ``(q, q'_s, q''_s)``, eV² (already divided by the mesh size).
        f0: ``[m]`` frequencies at q, THz.
        f1: ``[k, m]`` frequencies at ``q'``, THz.
        f2: ``[k, m]`` frequencies at ``q''``, THz.
        temperatures: ``[T]`` K (> 0).
        sigma_thz: Gaussian smearing width, THz.
        cutoff_thz: partner modes at or below it are left out.

    Returns:
        ``[T, m]`` Γ, THz (not yet averaged over degenerate modes).
    """
    x0 = f0[None, :, None, None]
    x1 = f1[:, None, :, None]
    x2 = f2[:, None, None, :]
    g1 = _gauss(x0 - x1 - x2, sigma_thz)
    g23 = _gauss(x0 + x1 - x2, sigma_thz) - _gauss(x0 - x1 + x2, sigma_thz)
    ok = (x1 > cutoff_thz) & (x2 > cutoff_thz)
    s1 = jnp.where(ok, x1, 1.0)
    s2 = jnp.where(ok, x2, 1.0)

    def at(t):
        n1, n2 = _bose(s1, t), _bose(s2, t)
        term = jnp.where(ok, (n1 + n2 + 1) * g1 + (n1 - n2) * g23, 0.0)
        return jnp.sum(strength * term, axis=(0, 2, 3)) * GAMMA_TO_THZ

    return jax.vmap(at)(jnp.asarray(temperatures, strength.dtype))


def collisions(
    strength, f0, f1, f2, temperatures, sigma_thz, *, cutoff_thz=DEFAULT_CUTOFF_THZ
) -> Float[Array, "t m k m"]:
    """Collision-matrix elements between the modes of ``q`` and of each ``q'``.

    The second term of phono3py's reducible collision matrix, the one besides
    the diagonal ``Γ`` (Chaput 2013, halved as in phono3py)::

        Ω'_{λ,λ'} = 18π/ħ² Σ_{λ''} P_{λλ'λ''} / sinh(ħω''/2k_BT)
                    · [g_σ(ν − ν' − ν'') + g_σ(ν + ν' − ν'') + g_σ(ν − ν' + ν'')]

    Args:
        strength: ``[k, m, m, m]`` interaction strengths of the ``k`` triplets
            ``(q, q'_s, q''_s)``, eV² (already divided by the mesh size).
        f0: ``[m]`` frequencies at q, THz.
        f1: ``[k, m]`` frequencies at ``q'``, THz.
        f2: ``[k, m]`` frequencies at ``q''``, THz.
        temperatures: ``[T]`` K (> 0).
        sigma_thz: Gaussian smearing width, THz.
        cutoff_thz: ``q''`` modes at or below it are left out.

    Returns:
        ``[T, m, k, m]`` ``Ω'(q j, q'_s j')``, THz (the diagonal ``Γ`` and the
        symmetrisation are added by :func:`kappa_lbte`).
    """
    x0 = f0[None, :, None, None]
    x1 = f1[:, None, :, None]
    x2 = f2[:, None, None, :]
    g = (
        _gauss(x0 - x1 - x2, sigma_thz)
        + _gauss(x0 + x1 - x2, sigma_thz)
        + _gauss(x0 - x1 + x2, sigma_thz)
    )
    ok = f2 > cutoff_thz
    s2 = jnp.where(ok, f2, 1.0)

    def at(t):
        y = s2 * _units.THZ_TO_EV / (2 * _units.KB_EV_K * t)
        inv_sinh = jnp.where(ok, 1.0 / jnp.sinh(y), 0.0)[:, None, None, :]
        row = jnp.sum(strength * g * inv_sinh, axis=3) * GAMMA_TO_THZ  # [k, m, m]
        return jnp.transpose(row, (1, 0, 2))

    return jax.vmap(at)(jnp.asarray(temperatures, strength.dtype))


class _Ingredients(NamedTuple):
    """What both κ solvers need: harmonic phonons and three-phonon scattering."""

    temps: jax.Array  # [T] K
    volume: float  # primitive cell, Å³
    f_all: jax.Array  # [N, m] THz, every mesh point
    q_ir: jax.Array  # [g, 3] irreducible points (reduced)
    f_ir: jax.Array  # [g, m] THz
    v_ir: jax.Array  # [g, m, 3] THz·Å
    cv: jax.Array  # [T, g, m] eV/K
    gamma: jax.Array  # [T, g, m] THz, averaged over degenerate modes
    rows: jax.Array | None  # [g, T, m, N, m] THz (collisions()), or None


def _ingredients(
    fc2,
    fc3,
    masses,
    images,
    primitive,
    grid: Mesh,
    trip,
    temperatures,
    sigma_thz,
    cutoff_thz,
    degeneracy_thz,
    r0_average,
    batch_size,
    with_collisions,
) -> _Ingredients:
    """Phonons on the mesh, Γ at the irreducible points, optional collisions.

    The collision rows (:func:`collisions`) are those of the irreducible
    points against every mesh point.
    """
    _fc.check_float64(primitive, "thermal conductivity")
    temps = jnp.asarray(temperatures, jnp.float64).reshape(-1)
    lat = np.asarray(primitive.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(primitive.positions, np.float64).T).T
    qs = jnp.asarray(grid.qpoints, fc2.dtype)
    f_all, e_all = _modes(fc2, masses, images, qs, degeneracy_thz)
    q_ir = qs[jnp.asarray(grid.irreducible)]
    f_ir, v_ir = _velocities(fc2, masses, images, lat, q_ir, degeneracy_thz, cutoff_thz)
    ok = f_ir > cutoff_thz
    f_ok = jnp.where(ok, f_ir, 1.0)
    cv = jax.vmap(lambda t: jnp.where(ok, _mode_cv(f_ok, t), 0.0))(temps)
    n_mesh = len(grid.qpoints)
    third = jnp.asarray(grid.third)
    chunk = min(batch_size, n_mesh)
    n_chunks = -(-n_mesh // chunk)
    pad = n_chunks * chunk - n_mesh

    def at_point(args):
        g_idx, q_index = args
        q0 = qs[q_index]
        f0, e0 = f_all[q_index], e_all[q_index]
        i2 = third[g_idx]  # [N]
        # padded triplets repeat the last one with zero weight
        i1p = jnp.concatenate([jnp.arange(n_mesh), jnp.full(pad, n_mesh - 1)])
        i2p = jnp.concatenate([i2, jnp.full(pad, i2[-1])])
        wp = jnp.concatenate([jnp.ones(n_mesh), jnp.zeros(pad)])

        def weighted(idx):
            a, b, w = idx
            k = a.shape[0]
            pp = (
                interaction_strength(
                    fc3,
                    masses,
                    images,
                    frac,
                    trip,
                    jnp.broadcast_to(q0, (k, 3)),
                    qs[a],
                    qs[b],
                    (
                        jnp.broadcast_to(f0, (k, *f0.shape)),
                        jnp.broadcast_to(e0, (k, *e0.shape)),
                    ),
                    (f_all[a], e_all[a]),
                    (f_all[b], e_all[b]),
                    cutoff_thz=cutoff_thz,
                    r0_average=r0_average,
                )
                * (w / n_mesh)[:, None, None, None]
            )
            args = (pp, f0, f_all[a], f_all[b], temps, sigma_thz)
            gam = linewidths(*args, cutoff_thz=cutoff_thz)
            if not with_collisions:
                return gam, None
            return gam, collisions(*args, cutoff_thz=cutoff_thz)

        chunks = (x.reshape(n_chunks, chunk) for x in (i1p, i2p, wp))
        gam, rows = jax.lax.map(weighted, tuple(chunks))  # [c, T, m], [c, T, m, k, m]
        same = _same_set(f0, degeneracy_thz)
        gam = (gam.sum(axis=0) @ same) / same.sum(axis=0)[None, :]
        if with_collisions:
            rows = jnp.moveaxis(rows, 0, 2)  # [T, m, c, k, m]
            rows = rows.reshape(*rows.shape[:2], n_chunks * chunk, -1)[:, :, :n_mesh]
        return gam, rows

    gamma, rows = jax.lax.map(
        at_point, (jnp.arange(len(grid.irreducible)), jnp.asarray(grid.irreducible))
    )  # [g, T, m], [g, T, m, N, m]
    return _Ingredients(
        temps=temps,
        volume=float(abs(np.linalg.det(lat))),
        f_all=f_all,
        q_ir=q_ir,
        f_ir=f_ir,
        v_ir=v_ir,
        cv=cv,
        gamma=jnp.transpose(gamma, (1, 0, 2)),
        rows=rows,
    )


def _conductivity(ing: _Ingredients, grid: Mesh, mode_kappa) -> Conductivity:
    """The result: ingredients at the irreducible points and ``mode_kappa``."""
    return Conductivity(
        temperatures=ing.temps,
        kappa=mode_kappa.sum(axis=(1, 2)),
        mode_kappa=mode_kappa,
        gamma=ing.gamma,
        frequencies=ing.f_ir,
        velocities=ing.v_ir,
        heat_capacities=ing.cv,
        qpoints=ing.q_ir,
        weights=jnp.asarray(grid.weights),
    )


def _mode_cv(f, temperature):
    x = f * _units.THZ_TO_EV / (_units.KB_EV_K * temperature)
    return _units.KB_EV_K * x**2 * jnp.exp(-x) / jnp.expm1(-x) ** 2


def kappa_rta(
    fc2,
    fc3,
    masses,
    images: _dm.Images,
    primitive,
    grid: Mesh,
    trip: Triplets,
    temperatures,
    sigma_thz: float,
    *,
    cutoff_thz: float = DEFAULT_CUTOFF_THZ,
    degeneracy_thz: float = DEFAULT_DEGENERACY_THZ,
    r0_average: bool = True,
    batch_size: int = 256,
) -> Conductivity:
    """RTA thermal conductivity, a JAX function of ``fc2`` and ``fc3``.

    Args:
        fc2: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        fc3: ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³, or
            compact ``[p, 3, n, 3, n, 3]`` (first atoms ``images.representative``).
        masses: ``[n]`` supercell masses, amu.
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        primitive: the primitive :class:`~mldiff.structure.Structure` (concrete).
        grid: from :func:`mesh`.
        trip: from :func:`triplets`.
        temperatures: ``[T]`` K, all > 0.
        sigma_thz: Gaussian smearing width, THz.
        cutoff_thz: modes at or below it carry no heat and do not scatter.
        degeneracy_thz: frequency tolerance for degenerate modes, THz.
        r0_average: see :func:`interaction_strength` (phono3py's default).
        batch_size: triplets evaluated together (memory knob).

    Returns:
        The :class:`Conductivity`.
    """
    ing = _ingredients(
        fc2,
        fc3,
        masses,
        images,
        primitive,
        grid,
        trip,
        temperatures,
        sigma_thz,
        cutoff_thz,
        degeneracy_thz,
        r0_average,
        batch_size,
        with_collisions=False,
    )
    rot = jnp.asarray(grid.rotations, fc2.dtype)
    v = ing.v_ir
    vv = jnp.einsum("rab,gmb,rcd,gmd->gmac", rot, v, rot, v) / rot.shape[0]
    live = (ing.f_ir > cutoff_thz)[None] & (ing.gamma > 0)
    inv_2g = jnp.where(live, 1.0 / (2 * jnp.where(live, ing.gamma, 1.0)), 0.0)
    w = jnp.asarray(grid.weights, fc2.dtype)
    mode_kappa = (
        (ing.cv * inv_2g * w[None, :, None])[..., None, None]
        * vv[None]
        * (KAPPA_TO_W_MK / ing.volume / len(grid.qpoints))
    )
    return _conductivity(ing, grid, mode_kappa)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def pinv_solve(matrix, rhs, cutoff):
    """``A⁺ b`` for symmetric ``A``, dropping eigenvalues with ``|w| ≤ cutoff``.

    ``A`` is read as its symmetric part ``(A + Aᵀ)/2``, in the value and in
    the derivative alike.

    The derivative is that of the pseudo-inverse at fixed rank (Golub and
    Pereyra, SIAM J. Numer. Anal. 10, 413 (1973))::

        dA⁺ = −A⁺ dA A⁺ + A⁺² dA (1 − P) + (1 − P) dA A⁺²,   P = A A⁺

    so it stays finite when ``A`` has degenerate eigenvalues (where the
    derivative of ``eigh`` does not).

    Args:
        matrix: ``[n, n]``, symmetric.
        rhs: ``[n, k]``.
        cutoff: eigenvalue magnitude at or below which a direction is dropped.

    Returns:
        ``[n, k]`` the minimum-norm least-squares solution.

    Example:
        >>> import jax.numpy as jnp
        >>> y = pinv_solve(jnp.diag(jnp.array([2.0, 0.0])), jnp.ones((2, 1)), 1e-8)
        >>> y.ravel().tolist()
        [0.5, 0.0]
    """
    w, v = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    keep = jnp.abs(w) > cutoff
    inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
    return v @ (inv_w[:, None] * (v.T @ rhs))


@pinv_solve.defjvp
def _pinv_solve_jvp(cutoff, primals, tangents):
    a, b = primals
    da, db = tangents
    da = 0.5 * (da + da.T)
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    keep = jnp.abs(w) > cutoff
    inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)

    def pinv(z):
        return v @ (inv_w[:, None] * (v.T @ z))

    def off_range(z):  # (1 − P) z
        return z - v @ (keep[:, None] * (v.T @ z))

    y = pinv(b)
    dy = (
        -pinv(da @ y)
        + pinv(pinv(da @ off_range(b)))
        + off_range(da @ pinv(y))
        + pinv(db)
    )
    return y, dy


def kappa_lbte(
    fc2,
    fc3,
    masses,
    images: _dm.Images,
    primitive,
    grid: Mesh,
    trip: Triplets,
    temperatures,
    sigma_thz: float,
    *,
    cutoff_thz: float = DEFAULT_CUTOFF_THZ,
    degeneracy_thz: float = DEFAULT_DEGENERACY_THZ,
    r0_average: bool = True,
    batch_size: int = 256,
    pinv_cutoff: float = DEFAULT_PINV_CUTOFF,
) -> Conductivity:
    """Thermal conductivity from the direct solution of the linearised BTE.

    phono3py's reducible collision matrix (Chaput, PRL 110, 265506 (2013);
    ``is_LBTE=True, is_reducible_collision_matrix=True``), a JAX function of
    ``fc2`` and ``fc3``:

    1. rows ``Ω'(q λ, q' λ')`` (:func:`collisions`) at the irreducible ``q``
       against every mesh point, then copied to the whole mesh by the point
       group (``Ω'(Rq, Rq') = Ω'(q, q')``, averaged over ``q``'s stabiliser);
       velocities, heat capacities and Γ likewise;
    2. ``Ω = diag(Γ) + Ω'``, averaged over degenerate modes (rows and
       columns) and symmetrised ``(Ω + Ωᵀ)/2``;
    3. ``X_λ = v_λ ħω_λ / (4 k_B T² sinh(ħω_λ/2k_BT))`` and ``Y = Ω⁺X`` with
       the pseudo-inverse that drops eigenvalues ``|w| ≤ pinv_cutoff``
       (phono3py's default solver; :func:`pinv_solve`). The acoustic modes at
       Γ and modes at or below ``cutoff_thz`` are left out (zero rows);
    4. ``κ = 2 k_B T²/(N V) Σ_λ sym(X_λ Y_λᵀ)``, averaged over the point group.

    With only the diagonal kept this is exactly the RTA (:func:`kappa_rta`).

    Memory: ``Ω`` is dense, ``(N m)²`` float64 per temperature (N mesh points,
    m bands): 0.5 GB for Si on an 11³ mesh; the solve costs ``(N m)³``.

    Args:
        fc2: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        fc3: ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³, or
            compact ``[p, 3, n, 3, n, 3]`` (first atoms ``images.representative``).
        masses: ``[n]`` supercell masses, amu.
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        primitive: the primitive :class:`~mldiff.structure.Structure` (concrete).
        grid: from :func:`mesh`.
        trip: from :func:`triplets`.
        temperatures: ``[T]`` K, all > 0.
        sigma_thz: Gaussian smearing width, THz.
        cutoff_thz: modes at or below it carry no heat and do not scatter.
        degeneracy_thz: frequency tolerance for degenerate modes, THz.
        r0_average: see :func:`interaction_strength` (phono3py's default).
        batch_size: triplets evaluated together (memory knob).
        pinv_cutoff: eigenvalues of ``Ω`` at or below it (THz) are dropped.

    Returns:
        The :class:`Conductivity`: ``kappa`` and ``mode_kappa`` (summed over
        each star) from the LBTE solution; ``gamma`` are the linewidths Γ.
    """
    # point-group images of the irreducible points (identity only when every
    # point was computed, use_symmetry=False)
    n_mesh = len(grid.qpoints)
    if len(grid.irreducible) == n_mesh:
        rot_map, rot_cart = np.arange(n_mesh)[None], np.eye(3)[None]
    elif grid.rotation_map is None:
        raise ConfigError(
            f"the {grid.numbers.tolist()} mesh breaks the crystal's symmetry, so "
            "the collision matrix cannot be rotated from the irreducible points: "
            "use mesh numbers that respect it or use_symmetry=False"
        )
    else:
        rot_map, rot_cart = grid.rotation_map, grid.rotations
    ing = _ingredients(
        fc2,
        fc3,
        masses,
        images,
        primitive,
        grid,
        trip,
        temperatures,
        sigma_thz,
        cutoff_thz,
        degeneracy_thz,
        r0_average,
        batch_size,
        with_collisions=True,
    )
    f_all = ing.f_all
    n_band = f_all.shape[1]
    n_rot = len(rot_map)
    multi = jnp.asarray(n_rot / grid.weights, fc2.dtype)  # [g] stabiliser sizes
    rot_map = jnp.asarray(rot_map)
    rot_cart = jnp.asarray(rot_cart, fc2.dtype)
    to = rot_map[:, jnp.asarray(grid.irreducible)]  # [r, g]
    v_rot = jnp.einsum("rab,gmb->rgma", rot_cart, ing.v_ir) / multi[:, None, None]
    v_all = jnp.zeros((n_mesh, n_band, 3), fc2.dtype).at[to].add(v_rot)
    star = jnp.asarray(grid.star)

    is_gamma = jnp.arange(n_mesh)[:, None] == 0  # grid point 0 is Γ
    dead = (f_all <= cutoff_thz) | (is_gamma & (jnp.arange(n_band) < 3)[None, :])
    live = ~dead.reshape(-1)
    same = jax.vmap(lambda f: _same_set(f, degeneracy_thz))(f_all)  # [N, m, m]
    average = same / same.sum(axis=2, keepdims=True)
    f_safe = jnp.where(dead, 1.0, f_all)
    conv = KAPPA_TO_W_MK / ing.volume / n_mesh
    rot_k = jnp.asarray(grid.rotations, fc2.dtype)

    def at_temperature(args):
        t, gamma_t, rows_t = args  # [], [g, m], [g, m, N, m]
        vals = jnp.transpose(rows_t, (0, 2, 1, 3)) / multi[:, None, None, None]

        def add(r, om):
            return om.at[to[r][:, None], rot_map[r][None, :]].add(vals)

        om = jax.lax.fori_loop(
            0, n_rot, add, jnp.zeros((n_mesh, n_mesh, n_band, n_band), fc2.dtype)
        )
        size = n_mesh * n_band
        om = jnp.transpose(om, (0, 2, 1, 3)).reshape(size, size)
        om = om + jnp.diag(gamma_t[star].reshape(-1))
        om = om.reshape(n_mesh, n_band, n_mesh, n_band)  # [N, m, N, m]
        om = jnp.einsum("gij,gjhk->gihk", average, om)
        om = jnp.einsum("gihk,hlk->gihl", om, average)
        om = om.reshape(size, size)
        om = 0.5 * (om + om.T)
        om = jnp.where(live[:, None] & live[None, :], om, 0.0)
        y = f_safe * _units.THZ_TO_EV / (2 * _units.KB_EV_K * t)
        factor = jnp.where(dead, 0.0, 2 * y / (4 * t * jnp.sinh(y)))  # ħω/(4k_BT² sh)
        x = (v_all * factor[..., None]).reshape(-1, 3)
        sol = pinv_solve(om, x, pinv_cutoff)
        xy = jnp.einsum("na,nb->nab", x, sol).reshape(n_mesh, n_band, 3, 3)
        xy = jnp.einsum("rab,gmbc,rdc->gmad", rot_k, xy, rot_k) / rot_k.shape[0]
        mode = (xy + jnp.swapaxes(xy, -1, -2)) * (_units.KB_EV_K * t**2 * conv)
        return jax.ops.segment_sum(mode, star, num_segments=len(grid.irreducible))

    mode_kappa = jax.lax.map(
        at_temperature, (ing.temps, ing.gamma, jnp.moveaxis(ing.rows, 1, 0))
    )
    return _conductivity(ing, grid, mode_kappa)


def run(
    phonons,
    fc3,
    mesh_numbers,
    temperatures,
    *,
    sigma_thz: float = 0.1,
    use_symmetry: bool = True,
    cutoff_thz: float = DEFAULT_CUTOFF_THZ,
    r0_average: bool = True,
    batch_size: int = 256,
    method: str = "rta",
) -> Conductivity:
    """Thermal conductivity from harmonic phonons and third-order constants.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons` (supercell fc2 and images).
        fc3: ``[n, 3, n, 3, n, 3]`` third-order force constants of the same
            supercell (e.g. :func:`.third_order.third_order`), eV/Å³, or compact
            ``[p, 3, n, 3, n, 3]`` (``third_order(...,
            first_atoms=phonons.images.representative)``).
        mesh_numbers: ``[3]`` Γ-centred q-mesh.
        temperatures: ``[T]`` K, all > 0.
        sigma_thz: Gaussian smearing width, THz (phono3py's ``sigmas``).
        use_symmetry: compute linewidths at irreducible q-points only.
        cutoff_thz: modes at or below this frequency are left out, THz.
        r0_average: phono3py's ``make_r0_average`` (its default); see
            :func:`interaction_strength`.
        batch_size: triplets evaluated together (memory knob).
        method: ``"rta"`` (:func:`kappa_rta`) or ``"lbte"``, the direct
            solution of the linearised Boltzmann equation (:func:`kappa_lbte`;
            a dense ``(N m)²`` collision matrix, so for modest meshes).

    Returns:
        The :class:`Conductivity`.

    The whole calculation is one jitted program. It is compiled once per
    crystal, mesh, set of non-zero fc3 triples and settings: another call
    that changes only the values of fc2, fc3, the masses or the temperatures
    (same shapes) reuses it.
    """
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    temps = np.asarray(temperatures, np.float64).reshape(-1)
    if np.any(temps <= 0):
        raise ConfigError(f"temperatures must be > 0 K, got {temps.tolist()}")
    if not sigma_thz > 0:
        raise ConfigError(f"sigma_thz must be > 0 THz, got {sigma_thz}")
    n = phonons.force_constants.shape[0]
    p = len(phonons.images.representative)
    if tuple(np.shape(fc3)) not in ((n, 3, n, 3, n, 3), (p, 3, n, 3, n, 3)):
        raise ConfigError(
            f"fc3 must have shape {(n, 3, n, 3, n, 3)} (full) or "
            f"{(p, 3, n, 3, n, 3)} (compact) for this {n}-atom supercell, got "
            f"{tuple(np.shape(fc3))}; compute it on phonons.supercell"
        )
    check_mesh(mesh_numbers, p, method)
    grid = mesh(phonons.primitive, mesh_numbers, use_symmetry=use_symmetry)
    trip = triplets(fc3, phonons.images)
    return _kappa_compiled(
        phonons.force_constants,
        jnp.asarray(fc3),
        phonons.masses,
        phonons.images,
        jnp.asarray(temps),
        solver=_METHODS[method],
        primitive=_ByContent(phonons.primitive),
        grid=_ByContent(grid),
        trip=_ByContent(trip),
        settings=(
            float(sigma_thz),
            float(cutoff_thz),
            bool(r0_average),
            int(batch_size),
        ),
    )


class _ByContent:
    """Host-side inputs (mesh, triplets, primitive cell) as a static jit argument.

    Hashed and compared by the bytes, shapes and dtypes of their leaves, so a
    second :func:`run` on equal inputs (a new ``Mesh`` of the same crystal,
    another fc3 with the same non-zero triples) reuses the compiled program.
    """

    def __init__(self, value):
        leaves, treedef = jax.tree_util.tree_flatten(value)
        arrays = [np.asarray(v) for v in leaves]
        self.value = value
        self._key = (
            str(treedef),
            tuple((a.shape, a.dtype.str, a.tobytes()) for a in arrays),
        )
        self._hash = hash(self._key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, _ByContent) and self._key == other._key


@partial(jax.jit, static_argnames=("solver", "primitive", "grid", "trip", "settings"))
def _kappa_compiled(
    fc2, fc3, masses, images, temps, *, solver, primitive, grid, trip, settings
):
    sigma, cut, r0, bs = settings
    return solver(
        fc2,
        fc3,
        masses,
        images,
        primitive.value,
        grid.value,
        trip.value,
        temps,
        sigma,
        cutoff_thz=cut,
        r0_average=r0,
        batch_size=bs,
    )


_METHODS = {"rta": kappa_rta, "lbte": kappa_lbte}
LBTE_MAX_MODES = 24_000  # 4.3 GiB collision matrix


def check_mesh(mesh_numbers, n_primitive_atoms: int, method: str = "rta") -> None:
    """Refuse a q-mesh that is not three positive integers or too big to solve.

    The LBTE's dense collision matrix has ``(N_q · 3p)²`` entries; meshes
    beyond :data:`LBTE_MAX_MODES` modes are refused before any work.

    Raises:
        ConfigError: naming the size, its memory and what to do instead.
    """
    m = np.asarray(mesh_numbers)
    if m.shape != (3,) or not np.all(np.round(m) == m) or np.any(m < 1):
        raise ConfigError(f"mesh must be 3 positive integers, got {m.tolist()}")
    size = int(np.prod(m.astype(int))) * 3 * int(n_primitive_atoms)
    if method == "lbte" and size > LBTE_MAX_MODES:
        raise ConfigError(
            f"the LBTE collision matrix would be {size}×{size} "
            f"({8 * size**2 / 2**30:.1f} GiB per temperature); the limit is "
            f"{LBTE_MAX_MODES} modes: use a smaller mesh or method='rta'"
        )


def mean_free_paths(result: Conductivity) -> jax.Array:
    """Mean free paths ``|v| τ`` of the irreducible modes, ``[T, g, m]``, Å.

    ``τ = 1/(4πΓ)`` ps; modes without scattering get 0.
    """
    speed = jnp.linalg.norm(result.velocities, axis=-1)[None]  # THz·Å
    g = result.gamma
    tau = jnp.where(g > 0, 1.0 / (4 * jnp.pi * jnp.where(g > 0, g, 1.0)), 0.0)
    return speed * tau


def cumulative_kappa(result: Conductivity, lengths) -> np.ndarray:
    """Cumulative κ (trace/3) from modes with mean free path below each length.

    Args:
        result: from :func:`run`.
        lengths: ``[L]`` mean free paths, Å, ascending.

    Returns:
        ``[T, L]`` W/(m·K); the last value reaches κ (trace/3) once ``lengths``
        exceeds the longest mean free path.
    """
    mfp = np.asarray(mean_free_paths(result))  # [T, g, m]
    k = np.trace(np.asarray(result.mode_kappa), axis1=-2, axis2=-1) / 3  # [T, g, m]
    grid = np.asarray(lengths, np.float64)
    return np.stack(
        [[k[t][mfp[t] <= x].sum() for x in grid] for t in range(k.shape[0])]
    )
