"""Three-phonon interaction: atom triples, interaction strengths, linewidths.

phono3py's conventions and units, as JAX functions of the force constants.

**Triplets** of atoms ``(κ, j, k)`` with a non-zero block ``Φ(κ, j, k)`` of the
third-order force constants (``κ`` a primitive atom) are found once on the
host (:func:`triplets`); only they enter the transforms below.

**Interaction strength** of the q-point triplet ``q + q' + q'' = G``
(phono3py's ``Interaction``, Togo et al. 2015)::

    Φ(q,q',q'') = Σ_{l'l''} Φ(0κ, l'κ', l''κ'') e^{2πi q'·(r_l'κ' − r_0κ)}
                  e^{2πi q''·(r_l''κ'' − r_0κ)} e^{2πi G·r_κ}
    P_λλ'λ'' = |Σ Φ(q,q',q'')_{κακ'βκ''γ} e_λ(κα) e_λ'(κ'β) e_λ''(κ''γ)
                / √(m_κ m_κ' m_κ'')|² / (ν ν' ν'') · ħ³/(36·8) / ((2π)³ N)

with the phases averaged over equally short supercell images, as for the
dynamical matrix (:mod:`.dynamical_matrix`), in eV² (ν in THz).

**Linewidth** (imaginary part of the self-energy at ``ν_λ``) with Gaussian
smearing ``g_σ(x) = exp(−x²/2σ²)/(√(2π)σ)`` in THz, or with the delta functions
integrated by the linear tetrahedron method (:mod:`.tetrahedron`, phono3py's
default) in place of ``g_σ``::

    Γ_λ = 18π/ħ² Σ_{q'λ'λ''} P [(n' + n'' + 1) g_σ(ν − ν' − ν'')
                                + (n' − n'')(g_σ(ν + ν' − ν'') − g_σ(ν − ν' + ν''))]

in THz; ``n`` is the Bose–Einstein occupation. Partner modes at or below
``cutoff_thz`` (the acoustic modes at Γ) are left out. :func:`collisions`
gives the off-diagonal elements of the collision matrix from the same ``P``;
:func:`mesh_linewidths` sums both over a q-mesh (:mod:`.qmesh`) for each of
its irreducible points, Γ averaged over degenerate modes.

References:
    A. Togo, L. Chaput and I. Tanaka, "Distributions of phonon lifetimes in
    Brillouin zones", Phys. Rev. B 91, 094306 (2015); L. Chaput, "Direct
    solution to the linearized phonon Boltzmann equation", Phys. Rev. Lett.
    110, 265506 (2013); phono3py 4.10 ``phonon3/interaction.py``,
    ``real_to_reciprocal.py``, ``reciprocal_to_normal.py``,
    ``imag_self_energy.py``, ``phonon3/collision_matrix.py``, read for the
    conventions.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff import units
from mldiff.phonons import dynamical_matrix as _dm
from mldiff.phonons import qmesh, tetrahedron, velocities

__all__ = [
    "Triplets",
    "triplets",
    "interaction_strength",
    "linewidths",
    "collisions",
    "mesh_linewidths",
    "DEFAULT_CUTOFF_THZ",
]

# phonopy's constants (mldiff.units.PHONOPY_*), SI, as phono3py uses them
_EV_J = units.PHONOPY_EV_J
_AMU_KG = units.PHONOPY_AMU_KG
_HBAR_J_S = units.PHONOPY_HBAR_J_S
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

DEFAULT_CUTOFF_THZ = 1e-4  # phono3py's cutoff_frequency


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


def _bose(f, temperature):
    x = f * units.PHONOPY_THZ_TO_EV / (units.PHONOPY_KB_EV_K * temperature)
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
    strength,
    f0,
    f1,
    f2,
    temperatures,
    sigma_thz,
    *,
    cutoff_thz=DEFAULT_CUTOFF_THZ,
    deltas=None,
) -> Float[Array, "t m"]:
    """Linewidths Γ (imaginary self-energy) of the modes of one q-point.

    Args:
        strength: ``[k, m, m, m]`` interaction strengths of the ``k`` triplets
            ``(q, q'_s, q''_s)``, eV² (already divided by the mesh size).
        f0: ``[m]`` frequencies at q, THz.
        f1: ``[k, m]`` frequencies at ``q'``, THz.
        f2: ``[k, m]`` frequencies at ``q''``, THz.
        temperatures: ``[T]`` K (> 0).
        sigma_thz: Gaussian smearing width, THz (unused with ``deltas``).
        cutoff_thz: partner modes at or below it are left out.
        deltas: ``(δ(ν − ν' − ν''), δ(ν + ν' − ν''), δ(ν − ν' + ν''))``, each
            ``[k, m, m, m]`` 1/THz, used instead of the Gaussians (e.g.
            :func:`~mldiff.phonons.tetrahedron.triplet_weights`).

    Returns:
        ``[T, m]`` Γ, THz (not yet averaged over degenerate modes).
    """
    x0 = f0[None, :, None, None]
    x1 = f1[:, None, :, None]
    x2 = f2[:, None, None, :]
    if deltas is None:
        g1 = _gauss(x0 - x1 - x2, sigma_thz)
        g23 = _gauss(x0 + x1 - x2, sigma_thz) - _gauss(x0 - x1 + x2, sigma_thz)
    else:
        g1, g23 = deltas[0], deltas[1] - deltas[2]
    ok = (x1 > cutoff_thz) & (x2 > cutoff_thz)
    s1 = jnp.where(ok, x1, 1.0)
    s2 = jnp.where(ok, x2, 1.0)

    def at(t):
        n1, n2 = _bose(s1, t), _bose(s2, t)
        term = jnp.where(ok, (n1 + n2 + 1) * g1 + (n1 - n2) * g23, 0.0)
        return jnp.sum(strength * term, axis=(0, 2, 3)) * GAMMA_TO_THZ

    return jax.vmap(at)(jnp.asarray(temperatures, strength.dtype))


def collisions(
    strength,
    f0,
    f1,
    f2,
    temperatures,
    sigma_thz,
    *,
    cutoff_thz=DEFAULT_CUTOFF_THZ,
    deltas=None,
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
        sigma_thz: Gaussian smearing width, THz (unused with ``deltas``).
        cutoff_thz: ``q''`` modes at or below it are left out.
        deltas: the three delta functions instead of Gaussians, as for
            :func:`linewidths`.

    Returns:
        ``[T, m, k, m]`` ``Ω'(q j, q'_s j')``, THz (the diagonal ``Γ`` and the
        symmetrisation are added by
        :func:`~mldiff.phonons.conductivity.kappa_lbte`).
    """
    x0 = f0[None, :, None, None]
    x1 = f1[:, None, :, None]
    x2 = f2[:, None, None, :]
    g = (
        (
            _gauss(x0 - x1 - x2, sigma_thz)
            + _gauss(x0 + x1 - x2, sigma_thz)
            + _gauss(x0 - x1 + x2, sigma_thz)
        )
        if deltas is None
        else deltas[0] + deltas[1] + deltas[2]
    )
    ok = f2 > cutoff_thz
    s2 = jnp.where(ok, f2, 1.0)

    def at(t):
        y = s2 * units.PHONOPY_THZ_TO_EV / (2 * units.PHONOPY_KB_EV_K * t)
        inv_sinh = jnp.where(ok, 1.0 / jnp.sinh(y), 0.0)[:, None, None, :]
        row = jnp.sum(strength * g * inv_sinh, axis=3) * GAMMA_TO_THZ  # [k, m, m]
        return jnp.transpose(row, (1, 0, 2))

    return jax.vmap(at)(jnp.asarray(temperatures, strength.dtype))


def _degenerate_average(deltas, f1, f2, degeneracy_thz):
    """Average ``[k, m, m1, m2]`` weights over degenerate bands of ``q'`` and ``q''``.

    Tetrahedron weights differ between degenerate bands (their neighbours
    split them), so without the average Γ would depend on the choice of
    eigenvectors inside degenerate subspaces (phono3py's
    ``average_degenerate_weights``).
    """

    def share(f):  # [k, m, m]: column J averages the bands degenerate with J
        same = jax.vmap(lambda x: velocities.degenerate_mask(x, degeneracy_thz))(f)
        return same / same.sum(axis=1, keepdims=True)

    s1, s2 = share(f1), share(f2)
    return tuple(jnp.einsum("kijl,kjJ,klL->kiJL", g, s1, s2) for g in deltas)


def mesh_linewidths(
    fc3,
    masses,
    images: _dm.Images,
    primitive_positions,
    trip: Triplets,
    grid: qmesh.Mesh,
    modes,
    temperatures,
    *,
    sigma_thz: float | None,
    cutoff_thz: float = DEFAULT_CUTOFF_THZ,
    degeneracy_thz: float = velocities.DEFAULT_DEGENERACY_THZ,
    r0_average: bool = True,
    batch_size: int = 256,
    with_collisions: bool = False,
    tetrahedra: np.ndarray | None = None,
):
    """Linewidths at the irreducible points of a mesh, optionally collision rows.

    For each irreducible ``q`` the sum runs over every ``q'`` of the mesh with
    its partner ``q'' ≡ −q − q'`` (``grid.third``): :func:`interaction_strength`
    divided by the mesh size, then :func:`linewidths` (averaged over
    degenerate modes) and, with ``with_collisions``, :func:`collisions`.

    Args:
        fc3: ``[n, 3, n, 3, n, 3]`` or compact ``[p, 3, n, 3, n, 3]``
            third-order force constants, eV/Å³.
        masses: ``[n]`` supercell masses, amu.
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        primitive_positions: ``[p, 3]`` fractional positions of the primitive
            atoms.
        trip: from :func:`triplets`.
        grid: from :func:`~mldiff.phonons.qmesh.mesh`.
        modes: ``(frequencies [N, m] THz, eigenvectors [N, m, m])`` at every
            point of ``grid.qpoints``.
        temperatures: ``[T]`` K (> 0).
        sigma_thz: Gaussian smearing width, THz; ``None`` with ``tetrahedra``.
        cutoff_thz: modes at or below it give and take no scattering, THz.
        degeneracy_thz: frequency tolerance for degenerate modes, THz.
        r0_average: see :func:`interaction_strength`.
        batch_size: triplets evaluated together (memory knob).
        with_collisions: also return the collision rows.
        tetrahedra: ``[24, 4, 3]``
            :func:`~mldiff.phonons.tetrahedron.relative_addresses` of the
            mesh: integrate the delta functions by the tetrahedron method
            (:func:`~mldiff.phonons.tetrahedron.triplet_weights`, averaged
            over degenerate bands of ``q'`` and of ``q''``) instead.

    Returns:
        ``(gamma [T, g, m] THz, rows [g, T, m, N, m] THz or None)``: Γ at the
        irreducible points and their collision rows against every mesh point.
    """
    f_all, e_all = modes
    temps = temperatures
    qs = jnp.asarray(grid.qpoints, f_all.dtype)
    n_mesh = len(grid.qpoints)
    third = jnp.asarray(grid.third)
    chunk = min(batch_size, n_mesh)
    n_chunks = -(-n_mesh // chunk)
    pad = n_chunks * chunk - n_mesh
    if tetrahedra is not None:
        numbers = np.asarray(grid.numbers)
        address = jnp.asarray(tetrahedron.mesh_addresses(grid.qpoints, numbers))
        corners1 = tetrahedron.vertices(numbers, address, tetrahedra)  # [N, t, 4]
        corners2 = tetrahedron.vertices(numbers, address, -np.asarray(tetrahedra))

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
                    primitive_positions,
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
            deltas = None
            if tetrahedra is not None:
                deltas = tetrahedron.triplet_weights(
                    f0, f_all[corners1[a]], f_all[corners2[b]]
                )
                deltas = _degenerate_average(deltas, f_all[a], f_all[b], degeneracy_thz)
            gam = linewidths(*args, cutoff_thz=cutoff_thz, deltas=deltas)
            if not with_collisions:
                return gam, None
            return gam, collisions(*args, cutoff_thz=cutoff_thz, deltas=deltas)

        chunks = (x.reshape(n_chunks, chunk) for x in (i1p, i2p, wp))
        gam, rows = jax.lax.map(weighted, tuple(chunks))  # [c, T, m], [c, T, m, k, m]
        same = velocities.degenerate_mask(f0, degeneracy_thz)
        gam = (gam.sum(axis=0) @ same) / same.sum(axis=0)[None, :]
        if with_collisions:
            rows = jnp.moveaxis(rows, 0, 2)  # [T, m, c, k, m]
            rows = rows.reshape(*rows.shape[:2], n_chunks * chunk, -1)[:, :, :n_mesh]
        return gam, rows

    gamma, rows = jax.lax.map(
        at_point, (jnp.arange(len(grid.irreducible)), jnp.asarray(grid.irreducible))
    )  # [g, T, m], [g, T, m, N, m]
    return jnp.transpose(gamma, (1, 0, 2)), rows
