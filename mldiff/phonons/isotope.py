"""Isotope (mass-disorder) scattering of phonons, Tamura's formula.

Random isotopes on the sites of a crystal scatter phonons elastically. To
second order in the mass differences (Tamura 1983), the linewidth (half width,
phono3py's ``gamma_isotope``) of mode ``λ = (q, j)`` with frequency ``ν`` is::

    Γ_iso(λ) = π ν² / (4N) Σ_{q'j'} g_σ(ν − ν_{q'j'})
               Σ_κ g_κ |Σ_α e*_λ(κα) e_{q'j'}(κα)|²

in THz (ν in THz), summed over all ``N`` points of the q-mesh and their
bands; partner modes at or below ``cutoff_thz`` are left out and modes at or
below it get 0. ``g_σ`` is the normalised Gaussian of width ``σ`` (THz; the
integration weights of another method, e.g. tetrahedra, would take its
place), ``e`` are the eigenvectors of the dynamical matrix (the per-atom
modulus makes their phase convention irrelevant),
and ``g_κ = Σ_i f_i (1 − m_i/m̄_κ)²`` is the mass variance of the element on
site ``κ``: isotopes ``i`` of abundance ``f_i`` and mass ``m_i``, mean mass
``m̄_κ = Σ_i f_i m_i``. :data:`MASS_VARIANCES` holds ``g`` for natural
abundances. This is phono3py's ``Isotope`` with Gaussian smearing (its
``π ν²/(2N)`` sum, halved to a half width), except that Γ_iso is
averaged over degenerate modes here, which makes it independent of the
eigenvector basis inside a degenerate subspace (phono3py averages only with
the tetrahedron method's ``average_degenerate_weights``); for crystals whose
sites all have cubic symmetry the two agree mode by mode.

References:
    S. Tamura, "Isotope scattering of dispersive phonons in Ge", Phys. Rev. B
    27, 858 (1983); phono3py 4.10 ``other/isotope.py`` (conventions: σ,
    cutoff, the 1/2 of a half width); isotopic compositions of J. R. de
    Laeter et al., "Atomic weights of the elements. Review 2000 (IUPAC
    Technical Report)", Pure Appl. Chem. 75, 683 (2003), as tabulated in
    phonopy 4.10 ``structure/atomic_data.py`` (``isotope_data``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.errors import ConfigError
from mldiff.phonons import qmesh, velocities

__all__ = [
    "MASS_VARIANCES",
    "mass_variances",
    "variances_for",
    "linewidths",
    "mesh_linewidths",
]

# element  g = Σ_i f_i (1 − m_i/m̄)², natural abundances (de Laeter et al. 2003,
# phonopy 4.10's isotope_data; phono3py's get_mass_variances of each element)
_TABLE = """
H  0.0001146074254  He 8.141017632e-08  Li 0.001458823455   Be 0
B  0.001353915262   C  7.387230498e-05  N  1.837666053e-05  O  3.35880494e-05
F  0                Ne 0.0008278315315  Na 0                Mg 0.0007398825793
Al 0                Si 0.0002007004595  P  0                S  0.0001651281721
Cl 0.0005827012609  Ar 3.509922611e-05  K  0.0001640013344  Ca 0.0002975638789
Sc 0                Ti 0.0002864559696  V  9.5483141e-07    Cr 0.0001328702359
Mn 0                Fe 8.244408581e-05  Co 0                Ni 0.0004307090724
Cu 0.0002109333424  Zn 0.0005981825571  Ga 0.000197126731   Ge 0.0005867307289
As 0                Se 0.0004627901219  Br 0.0001562773203  Kr 0.0002488074367
Rb 0.0001096966675  Sr 6.09969854e-05   Y  0                Zr 0.0003426288591
Nb 0                Mo 0.0005976523043  Ru 0.0004066654506  Rh 0
Pd 0.0003094767825  Ag 8.579841529e-05  Cd 0.0002716030244  In 1.245588265e-05
Sn 0.0003340847882  Sb 6.607504203e-05  Te 0.0002839334623  I  0
Xe 0.0002675570048  Cs 0                Ba 6.237012006e-05  La 4.653217894e-08
Ce 2.249555043e-05  Pr 0                Nd 0.0002315993949  Sm 0.0003346860092
Eu 4.327948221e-05  Gd 0.0001276749261  Tb 0                Dy 5.198070393e-05
Ho 0                Er 7.232483457e-05  Tm 0                Yb 8.545577679e-05
Lu 8.272823168e-07  Hf 5.253845809e-05  Ta 3.668448097e-09  W  6.966793321e-05
Re 2.708497999e-05  Os 7.452358492e-05  Ir 2.537869215e-05  Pt 3.392052117e-05
Au 0                Hg 6.525191246e-05  Tl 1.996435013e-05  Pb 1.943778722e-05
Bi 0                Th 0                Pa 0                U  1.156461579e-06
"""
MASS_VARIANCES: dict[str, float] = {
    s: float(g) for s, g in zip(*[iter(_TABLE.split())] * 2, strict=True)
}


def mass_variances(numbers) -> np.ndarray:
    """Natural-abundance mass variances ``g_κ`` of atoms by atomic number.

    Args:
        numbers: ``[p]`` atomic numbers (e.g. of the primitive cell).

    Returns:
        ``[p]`` dimensionless ``Σ_i f_i (1 − m_i/m̄)²``, float64.

    Raises:
        ConfigError: an element without a stable isotopic composition (Tc, Pm,
            Po–Ac, Z > 92); give ``mass_variances`` explicitly instead.

    Example:
        >>> mass_variances([14, 14]).round(7).tolist()
        [0.0002007, 0.0002007]
    """
    from ase.data import chemical_symbols

    out = []
    for z in np.asarray(numbers, dtype=int).reshape(-1).tolist():
        symbol = chemical_symbols[z] if 0 < z < len(chemical_symbols) else str(z)
        if symbol not in MASS_VARIANCES:
            raise ConfigError(
                f"no natural isotopic composition for element {symbol} (Z={z}); "
                "pass mass_variances (one per primitive atom) explicitly"
            )
        out.append(MASS_VARIANCES[symbol])
    return np.asarray(out, np.float64)


def variances_for(numbers, isotopes: bool, given=None) -> np.ndarray | None:
    """Mass variances a κ run uses: ``given``, natural ones, or None (no isotopes).

    Args:
        numbers: ``[p]`` atomic numbers of the primitive cell.
        isotopes: use natural abundances when ``given`` is None.
        given: ``[p]`` mass variances, or None; given, they win.

    Returns:
        ``[p]`` float64, or None when isotope scattering is off.

    Raises:
        ConfigError: ``given`` without one value per atom.

    Example:
        >>> variances_for([14, 14], False) is None
        True
    """
    p = len(np.asarray(numbers).reshape(-1))
    if given is not None:
        g = np.asarray(given, np.float64).reshape(-1)
        if g.shape != (p,):
            raise ConfigError(
                f"mass_variances needs one value per primitive atom ({p}), got "
                f"{g.tolist()}"
            )
        return g
    return mass_variances(numbers) if isotopes else None


def _gauss(x, sigma):
    return jnp.exp(-0.5 * (x / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)


def linewidths(
    f0,
    e0,
    f_all,
    e_all,
    variances,
    *,
    sigma_thz: float,
    cutoff_thz: float,
    degeneracy_thz: float = velocities.DEFAULT_DEGENERACY_THZ,
):
    """Isotope linewidths of the modes of one q-point (Tamura, Gaussian smearing).

    Args:
        f0: ``[m]`` frequencies at q, THz.
        e0: ``[m, m]`` eigenvectors at q (columns), components ordered
            ``(atom, Cartesian)``.
        f_all: ``[N, m]`` frequencies at every point of the q-mesh, THz.
        e_all: ``[N, m, m]`` eigenvectors there (columns).
        variances: ``[p]`` mass variances ``g_κ`` of the primitive atoms.
        sigma_thz: Gaussian smearing width, THz.
        cutoff_thz: partner modes at or below it are left out, and modes of
            ``f0`` at or below it get 0, THz.
        degeneracy_thz: Γ_iso is averaged over modes of ``f0`` closer than
            this, THz.

    Returns:
        ``[m]`` Γ_iso (half width), THz.

    Example:
        >>> import jax.numpy as jnp
        >>> f, e = jnp.array([1.0, 2.0, 3.0]), jnp.eye(3)
        >>> g = linewidths(f, e, f[None], e[None], jnp.array([1e-3]),
        ...                sigma_thz=0.1, cutoff_thz=1e-4)
        >>> bool(jnp.allclose(g, jnp.pi * f**2 / 4 * 1e-3 / (jnp.sqrt(2 * jnp.pi)
        ...                     * 0.1)))
        True
    """
    p = variances.shape[0]
    n_mesh, m = f_all.shape[0], f0.shape[0]
    a = e0.reshape(p, 3, m)
    b = e_all.reshape(n_mesh, p, 3, m)
    overlap = jnp.einsum("kaj,nkal->nkjl", jnp.conj(a), b)  # [N, p, m, m]
    squared = overlap.real**2 + overlap.imag**2  # |·|², smooth at 0 (unlike abs)
    strength = jnp.einsum("k,nkjl->njl", variances, squared)
    ok = (f_all > cutoff_thz)[:, None, :]
    weight = jnp.where(ok, _gauss(f0[None, :, None] - f_all[:, None, :], sigma_thz), 0)
    gamma = jnp.pi * f0**2 / (4 * n_mesh) * jnp.sum(strength * weight, axis=(0, 2))
    gamma = jnp.where(f0 > cutoff_thz, gamma, 0.0)  # no heat carried, no scattering
    same = velocities.degenerate_mask(f0, degeneracy_thz)
    return (gamma @ same) / same.sum(axis=0)


def mesh_linewidths(
    grid: qmesh.Mesh,
    modes,
    variances,
    sigma_thz: float | None,
    cutoff_thz: float,
    degeneracy_thz: float = velocities.DEFAULT_DEGENERACY_THZ,
):
    """Isotope linewidths at the irreducible points of a q-mesh.

    Args:
        grid: from :func:`~mldiff.phonons.qmesh.mesh`.
        modes: ``(frequencies [N, m] THz, eigenvectors [N, m, m])`` at every
            point of ``grid.qpoints``.
        variances: ``[p]`` mass variances ``g_κ`` of the primitive atoms
            (:func:`mass_variances` for natural abundances), or None for no
            isotope scattering (zeros).
        sigma_thz: Gaussian smearing width, THz (None only without isotopes:
            :func:`~mldiff.phonons.conductivity.run` refuses the tetrahedron
            method with isotopes).
        cutoff_thz: partner modes at or below it are left out, THz.
        degeneracy_thz: frequency tolerance for degenerate modes, THz.

    Returns:
        ``[g, m]`` Γ_iso at ``grid.irreducible``, THz.
    """
    f_all, e_all = modes
    if variances is None:
        return jnp.zeros((len(grid.irreducible), f_all.shape[1]), f_all.dtype)
    variances = jnp.asarray(variances, f_all.dtype)

    def at_point(q_index):
        return linewidths(
            f_all[q_index],
            e_all[q_index],
            f_all,
            e_all,
            variances,
            sigma_thz=sigma_thz,
            cutoff_thz=cutoff_thz,
            degeneracy_thz=degeneracy_thz,
        )

    return jax.lax.map(at_point, jnp.asarray(grid.irreducible))
