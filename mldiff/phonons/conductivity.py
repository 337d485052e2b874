"""Lattice thermal conductivity: relaxation-time approximation and direct LBTE.

Three-phonon scattering from third-order force constants, with phono3py's
conventions and units, as JAX functions of the force constants (so ``κ`` is
differentiable with respect to a potential's parameters). Beside it: the
q-mesh in :mod:`.qmesh`, interaction strengths and linewidths in
:mod:`.interaction` (delta functions by :mod:`.tetrahedron`, phono3py's
default, or Gaussians of width ``sigma_thz``), isotope scattering in
:mod:`.isotope`, mode-resolved quantities in :mod:`.kappa_modes`.

**RTA** ``κ_αβ = 1/(N V) Σ_λ C_λ v_λα v_λβ τ_λ`` with ``τ_λ = 1/(4π Γ_λ)``
(ps), the mode heat capacity ``C_λ = k_B x² eˣ/(eˣ − 1)²`` and group velocities
from the exact ``∂D/∂q``; the outer products are averaged over the point
group (phono3py's ``gv_by_gv``), and Γ (averaged over degenerate modes) is
needed only at the irreducible points, each weighted by its star. Isotope
(Tamura) and boundary (Casimir, ``Γ_b = |v|/(4πL)``) scattering add to Γ by
Matthiessen's rule, in the LBTE on the collision matrix's diagonal.

**Direct solution** of the linearised Boltzmann equation (:func:`kappa_lbte`):
phono3py's reducible collision matrix over the whole mesh, solved by its
pseudo-inverse; unlike the RTA it does not treat normal processes as resistive.

Eigenvectors are differentiated with a degeneracy-safe rule (terms between
modes closer than ``degeneracy_thz`` dropped): exact for quantities invariant
within degenerate subspaces (averaged Γ, heat capacities), finite elsewhere.

References:
    A. Togo, L. Chaput and I. Tanaka, Phys. Rev. B 91, 094306 (2015);
    L. Chaput, Phys. Rev. Lett. 110, 265506 (2013); phono3py 4.10
    ``conductivity/kappa_solvers.py`` and ``conductivity/utils.py`` (units).

Example (the full workflow, as in ``notebooks/09_thermal_conductivity.ipynb``)::

    ph = phonons.run(pot, None, si, [2, 2, 2], primitive_matrix=fcc)
    fc3 = third_order.third_order(pot, pot.init(None, ph.supercell), ph.supercell)
    res = run(ph, fc3, [11, 11, 11], [300.0, 600.0])  # tetrahedron method
    res.kappa  # [T, 3, 3], W/(m K)
    lbte = run(ph, fc3, [11, 11, 11], [300.0], sigma_thz=0.1, method="lbte")
"""

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import _config, units
from mldiff.errors import ConfigError, check_float64
from mldiff.phonons import (
    _kappa_support,
    _linalg,
    interaction,
    isotope,
    kappa_modes,
    qmesh,
    tetrahedron,
    thermal,
    velocities,
)
from mldiff.phonons import dynamical_matrix as _dm

__all__ = [
    "Conductivity",
    "ConductivitySettings",
    "check_mesh",
    "kappa_rta",
    "kappa_lbte",
    "run",
    "cumulative_kappa",
    "mean_free_paths",
    "KAPPA_TO_W_MK",
]

# mode-resolved quantities of a result live in .kappa_modes (re-exported here)
cumulative_kappa = kappa_modes.cumulative_kappa
mean_free_paths = kappa_modes.mean_free_paths
check_mesh = _kappa_support.check_mesh
LBTE_MAX_MODES = _kappa_support.LBTE_MAX_MODES

_THZ = 1e12
_ANGSTROM = 1e-10
# C v v / Γ in (eV/K)(THz Å)²/THz per Å³ -> W/(m K); the 2π is τ = 1/(2·2πΓ)
KAPPA_TO_W_MK = (
    (_THZ * _ANGSTROM) ** 2 / _ANGSTROM**3 * units.PHONOPY_EV_J / _THZ / (2 * math.pi)
)

DEFAULT_PINV_CUTOFF = 1e-8  # phono3py's pinv_cutoff (THz, on |eigenvalue|)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConductivitySettings:
    """Numerical settings of the κ solvers (:func:`kappa_rta`, :func:`kappa_lbte`).

    Hashable: :func:`run` compiles one program per crystal, mesh and settings.

    Attributes:
        sigma_thz: Gaussian smearing width of energy conservation, THz
            (phono3py's ``sigmas``); ``None`` (default, as phono3py's) for the
            linear tetrahedron method (:mod:`.tetrahedron`).
        cutoff_thz: modes at or below this frequency carry no heat and do
            not scatter, THz (phono3py's ``cutoff_frequency``).
        degeneracy_thz: frequencies closer than this are degenerate, THz.
        r0_average: phono3py's ``make_r0_average`` (its default); see
            :func:`~mldiff.phonons.interaction.interaction_strength`.
        batch_size: triplets evaluated together (a memory knob; the result
            does not depend on it).
        pinv_cutoff: eigenvalues of the collision matrix at or below it (THz)
            are dropped by the LBTE's pseudo-inverse (phono3py's
            ``pinv_cutoff``); unused by the RTA.
        isotopes: add isotope scattering (:mod:`.isotope`), natural
            abundances of the primitive cell's elements unless
            ``mass_variances`` is given (phono3py's ``is_isotope``).
        mass_variances: ``[p]`` mass variances ``g_κ`` of the primitive atoms
            (phono3py's ``mass_variances``); given, they switch isotope
            scattering on.
        boundary_mfp_um: boundary (Casimir) mean free path, µm, or None for
            none (phono3py's ``boundary_mfp``).

    Example:
        >>> ConductivitySettings(sigma_thz=0.2).batch_size
        256
    """

    sigma_thz: float | None = None
    cutoff_thz: float = interaction.DEFAULT_CUTOFF_THZ
    degeneracy_thz: float = velocities.DEFAULT_DEGENERACY_THZ
    r0_average: bool = True
    batch_size: int = 256
    pinv_cutoff: float = DEFAULT_PINV_CUTOFF
    isotopes: bool = False
    mass_variances: tuple[float, ...] | None = None
    boundary_mfp_um: float | None = None

    def __post_init__(self):
        """Check types and ranges; raise :class:`ConfigError` naming the field."""
        _config.check_types(self)
        if self.sigma_thz is not None and not self.sigma_thz > 0:
            raise ConfigError(f"sigma_thz must be > 0 THz, got {self.sigma_thz}")
        for name in ("cutoff_thz", "pinv_cutoff"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.degeneracy_thz > 0:
            raise ConfigError(
                f"degeneracy_thz must be > 0 THz, got {self.degeneracy_thz}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.mass_variances is not None and not all(
            g >= 0 and math.isfinite(g) for g in self.mass_variances
        ):
            raise ConfigError(
                f"mass_variances must be finite and >= 0, got {self.mass_variances}"
            )
        if self.boundary_mfp_um is not None and not (
            self.boundary_mfp_um > 0 and math.isfinite(self.boundary_mfp_um)
        ):
            raise ConfigError(
                f"boundary_mfp_um must be > 0 µm (or None), got {self.boundary_mfp_um}"
            )


class Conductivity(NamedTuple):
    """Thermal conductivity (RTA or LBTE) and its mode-resolved ingredients.

    Attributes:
        temperatures: ``[T]`` K.
        kappa: ``[T, 3, 3]`` thermal conductivity, W/(m·K).
        mode_kappa: ``[T, g, m, 3, 3]`` contribution of each irreducible mode
            (its star included), W/(m·K); sums to ``kappa``.
        gamma: ``[T, g, m]`` three-phonon linewidths Γ (half width), THz.
        frequencies: ``[g, m]`` THz.
        velocities: ``[g, m, 3]`` group velocities, THz·Å (×100 for m/s).
        heat_capacities: ``[T, g, m]`` mode heat capacities, eV/K.
        qpoints: ``[g, 3]`` irreducible q-points (reduced).
        weights: ``[g]`` star sizes.
        gamma_isotope: ``[g, m]`` isotope linewidths, THz (zero when off).
        gamma_boundary: ``[g, m]`` boundary linewidths ``|v|/(4πL)``, THz
            (zero when off). The lifetime is ``1/(4π(Γ + Γ_iso + Γ_b))``
            (:func:`~mldiff.phonons.kappa_modes.lifetimes`).
        velocity_products: ``[g, m, 3, 3]`` ``v ⊗ v`` averaged over the point
            group, (THz·Å)² (phono3py's ``gv_by_gv`` divided by the weight).
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
    gamma_isotope: jax.Array
    gamma_boundary: jax.Array
    velocity_products: jax.Array


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
    gamma_iso: jax.Array  # [g, m] THz (zeros without isotopes)
    gamma_b: jax.Array  # [g, m] THz (zeros without boundary scattering)
    vv: jax.Array  # [g, m, 3, 3] (THz·Å)², v ⊗ v averaged over the point group


def _ingredients(
    fc2,
    fc3,
    masses,
    images,
    primitive,
    grid: qmesh.Mesh,
    trip: interaction.Triplets,
    temperatures,
    settings: ConductivitySettings,
    *,
    with_collisions: bool,
) -> _Ingredients:
    """Phonons on the mesh, Γ at the irreducible points, optional collisions.

    Velocities and heat capacities at the irreducible points; linewidths and
    collision rows from :func:`~mldiff.phonons.interaction.mesh_linewidths`.
    """
    check_float64("thermal conductivity", structure=primitive)
    cutoff, degeneracy = settings.cutoff_thz, settings.degeneracy_thz
    temps = jnp.asarray(temperatures, jnp.float64).reshape(-1)
    lat = np.asarray(primitive.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(primitive.positions, np.float64).T).T
    qs = jnp.asarray(grid.qpoints, fc2.dtype)
    f_all, e_all = velocities.safe_modes_at(
        fc2, masses, images, qs, degeneracy_thz=degeneracy
    )
    q_ir = qs[jnp.asarray(grid.irreducible)]
    f_ir, v_ir = velocities.group_velocities_at(
        fc2, masses, images, lat, q_ir, degeneracy_thz=degeneracy, cutoff_thz=cutoff
    )
    ok = f_ir > cutoff
    f_ok = jnp.where(ok, f_ir, 1.0)
    cv = jax.vmap(lambda t: jnp.where(ok, thermal.mode_heat_capacity(f_ok, t), 0.0))(
        temps
    )
    tetra = (  # the delta functions by tetrahedra unless a Gaussian width is given
        None
        if settings.sigma_thz is not None
        else tetrahedron.relative_addresses(lat, grid.numbers)
    )
    gamma, rows = interaction.mesh_linewidths(
        fc3,
        masses,
        images,
        frac,
        trip,
        grid,
        (f_all, e_all),
        temps,
        sigma_thz=settings.sigma_thz,
        cutoff_thz=cutoff,
        degeneracy_thz=degeneracy,
        r0_average=settings.r0_average,
        batch_size=settings.batch_size,
        with_collisions=with_collisions,
        tetrahedra=tetra,
    )
    var = isotope.variances_for(
        primitive.numbers, settings.isotopes, settings.mass_variances
    )
    widths = (settings.sigma_thz, cutoff, degeneracy)
    gamma_iso = isotope.mesh_linewidths(grid, (f_all, e_all), var, *widths)  # or zeros
    gamma_b = kappa_modes.boundary_linewidths(v_ir, settings.boundary_mfp_um)
    rot = jnp.asarray(grid.rotations, fc2.dtype)
    vv = jnp.einsum("rab,gmb,rcd,gmd->gmac", rot, v_ir, rot, v_ir) / rot.shape[0]
    return _Ingredients(
        temps=temps,
        volume=float(abs(np.linalg.det(lat))),
        f_all=f_all,
        q_ir=q_ir,
        f_ir=f_ir,
        v_ir=v_ir,
        cv=cv,
        gamma=gamma,
        rows=rows,
        gamma_iso=gamma_iso,
        gamma_b=gamma_b,
        vv=vv,
    )


def _conductivity(ing: _Ingredients, grid: qmesh.Mesh, mode_kappa) -> Conductivity:
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
        gamma_isotope=ing.gamma_iso,
        gamma_boundary=ing.gamma_b,
        velocity_products=ing.vv,
    )


def kappa_rta(
    fc2,
    fc3,
    masses,
    images: _dm.Images,
    primitive,
    grid: qmesh.Mesh,
    trip: interaction.Triplets,
    temperatures,
    settings: ConductivitySettings | None = None,
) -> Conductivity:
    """RTA thermal conductivity, a JAX function of ``fc2`` and ``fc3``.

    Args:
        fc2: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        fc3: ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³, or
            compact ``[p, 3, n, 3, n, 3]`` (first atoms ``images.representative``).
        masses: ``[n]`` supercell masses, amu.
        images: the supercell's :class:`~.dynamical_matrix.Images`.
        primitive: the primitive :class:`~mldiff.structure.Structure` (concrete).
        grid: from :func:`~mldiff.phonons.qmesh.mesh`.
        trip: from :func:`~mldiff.phonons.interaction.triplets`.
        temperatures: ``[T]`` K, all > 0.
        settings: smearing, cutoffs and memory knobs; default
            ``ConductivitySettings()``.

    Returns:
        The :class:`Conductivity`.
    """
    settings = ConductivitySettings() if settings is None else settings
    inputs = (fc2, fc3, masses, images, primitive, grid, trip, temperatures)
    ing = _ingredients(*inputs, settings, with_collisions=False)
    gamma = ing.gamma + (ing.gamma_iso + ing.gamma_b)[None]  # Matthiessen
    live = (ing.f_ir > settings.cutoff_thz)[None] & (gamma > 0)
    inv_2g = jnp.where(live, 1.0 / (2 * jnp.where(live, gamma, 1.0)), 0.0)
    w = jnp.asarray(grid.weights, fc2.dtype)
    mode_kappa = (
        (ing.cv * inv_2g * w[None, :, None])[..., None, None]
        * ing.vv[None]
        * (KAPPA_TO_W_MK / ing.volume / len(grid.qpoints))
    )
    return _conductivity(ing, grid, mode_kappa)


def kappa_lbte(
    fc2,
    fc3,
    masses,
    images: _dm.Images,
    primitive,
    grid: qmesh.Mesh,
    trip: interaction.Triplets,
    temperatures,
    settings: ConductivitySettings | None = None,
) -> Conductivity:
    """Thermal conductivity from the direct solution of the linearised BTE.

    phono3py's reducible collision matrix (Chaput, PRL 110, 265506 (2013);
    ``is_LBTE=True, is_reducible_collision_matrix=True``), a JAX function of
    ``fc2`` and ``fc3``:

    1. rows ``Ω'(q λ, q' λ')``
       (:func:`~mldiff.phonons.interaction.collisions`) at the irreducible ``q``
       against every mesh point, then copied to the whole mesh by the point
       group (``Ω'(Rq, Rq') = Ω'(q, q')``, averaged over ``q``'s stabiliser);
       velocities, heat capacities and Γ likewise;
    2. ``Ω = diag(Γ + Γ_iso + Γ_b) + Ω'`` (isotope and boundary scattering
       on the diagonal, as phono3py; ``Γ_b`` from the velocities copied to
       the whole mesh), averaged over degenerate modes (rows and
       columns) and symmetrised ``(Ω + Ωᵀ)/2``;
    3. ``X_λ = v_λ ħω_λ / (4 k_B T² sinh(ħω_λ/2k_BT))`` and ``Y = Ω⁺X`` with
       the pseudo-inverse that drops eigenvalues ``|w| ≤ pinv_cutoff``
       (phono3py's default solver; :func:`~mldiff.phonons._linalg.pinv_solve`).
       The acoustic modes at Γ and modes at or below ``cutoff_thz`` are left
       out (zero rows);
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
        grid: from :func:`~mldiff.phonons.qmesh.mesh`.
        trip: from :func:`~mldiff.phonons.interaction.triplets`.
        temperatures: ``[T]`` K, all > 0.
        settings: smearing, cutoffs and memory knobs; default
            ``ConductivitySettings()``.

    Returns:
        The :class:`Conductivity`: ``kappa`` and ``mode_kappa`` (summed over
        each star) from the LBTE solution; ``gamma`` are the linewidths Γ.
    """
    settings = ConductivitySettings() if settings is None else settings
    rot_map, rot_cart = qmesh.star_operations(grid)
    inputs = (fc2, fc3, masses, images, primitive, grid, trip, temperatures)
    ing = _ingredients(*inputs, settings, with_collisions=True)
    f_all = ing.f_all
    n_mesh, n_band = f_all.shape
    n_rot = len(rot_map)
    multi = jnp.asarray(n_rot / grid.weights, fc2.dtype)  # [g] stabiliser sizes
    rot_map = jnp.asarray(rot_map)
    rot_cart = jnp.asarray(rot_cart, fc2.dtype)
    to = rot_map[:, jnp.asarray(grid.irreducible)]  # [r, g]
    v_rot = jnp.einsum("rab,gmb->rgma", rot_cart, ing.v_ir) / multi[:, None, None]
    v_all = jnp.zeros((n_mesh, n_band, 3), fc2.dtype).at[to].add(v_rot)
    star = jnp.asarray(grid.star)
    elastic = ing.gamma_iso[star] + kappa_modes.boundary_linewidths(
        v_all, settings.boundary_mfp_um
    )  # [N, m] isotope and boundary scattering

    is_gamma = jnp.arange(n_mesh)[:, None] == 0  # grid point 0 is Γ
    dead = (f_all <= settings.cutoff_thz) | (
        is_gamma & (jnp.arange(n_band) < 3)[None, :]
    )
    live = ~dead.reshape(-1)
    same = jax.vmap(lambda f: velocities.degenerate_mask(f, settings.degeneracy_thz))(
        f_all
    )  # [N, m, m]
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
        om = om + jnp.diag((gamma_t[star] + elastic).reshape(-1))
        om = om.reshape(n_mesh, n_band, n_mesh, n_band)  # [N, m, N, m]
        om = jnp.einsum("gij,gjhk->gihk", average, om)
        om = jnp.einsum("gihk,hlk->gihl", om, average)
        om = om.reshape(size, size)
        om = 0.5 * (om + om.T)
        om = jnp.where(live[:, None] & live[None, :], om, 0.0)
        y = f_safe * units.PHONOPY_THZ_TO_EV / (2 * units.PHONOPY_KB_EV_K * t)
        factor = jnp.where(dead, 0.0, 2 * y / (4 * t * jnp.sinh(y)))  # ħω/(4k_BT² sh)
        x = (v_all * factor[..., None]).reshape(-1, 3)
        sol = _linalg.pinv_solve(om, x, settings.pinv_cutoff)
        xy = jnp.einsum("na,nb->nab", x, sol).reshape(n_mesh, n_band, 3, 3)
        xy = jnp.einsum("rab,gmbc,rdc->gmad", rot_k, xy, rot_k) / rot_k.shape[0]
        mode = (xy + jnp.swapaxes(xy, -1, -2)) * (units.PHONOPY_KB_EV_K * t**2 * conv)
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
    sigma_thz: float | None = None,
    integration: str | None = None,
    use_symmetry: bool = True,
    cutoff_thz: float = interaction.DEFAULT_CUTOFF_THZ,
    r0_average: bool = True,
    batch_size: int = 256,
    method: str = "rta",
    isotopes: bool = False,
    mass_variances=None,
    boundary_mfp_um: float | None = None,
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
        sigma_thz: Gaussian smearing width, THz; ``None``: tetrahedra (phono3py's).
        integration: ``"tetrahedron"`` or ``"gaussian"``, must agree with it.
        use_symmetry: compute linewidths at irreducible q-points only.
        cutoff_thz: modes at or below this frequency are left out, THz.
        r0_average: phono3py's ``make_r0_average`` (its default); see
            :func:`~mldiff.phonons.interaction.interaction_strength`.
        batch_size: triplets evaluated together (memory knob).
        method: ``"rta"`` (:func:`kappa_rta`) or ``"lbte"``, the direct
            solution of the linearised Boltzmann equation (:func:`kappa_lbte`;
            a dense ``(N m)²`` collision matrix, so for modest meshes).
        isotopes: add isotope scattering with the natural abundances of the
            primitive cell's elements (:mod:`.isotope`).
        mass_variances: ``[p]`` mass variances of the primitive atoms instead
            (implies isotope scattering).
        boundary_mfp_um: boundary (Casimir) mean free path, µm.

    Returns:
        The :class:`Conductivity`.

    The whole calculation is one jitted program. It is compiled once per
    crystal, mesh, set of non-zero fc3 triples and settings: another call
    that changes only the values of fc2, fc3, the masses or the temperatures
    (same shapes) reuses it.
    """
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if integration not in (None, "tetrahedron" if sigma_thz is None else "gaussian"):
        msg = f"integration={integration!r} does not go with sigma_thz={sigma_thz}"
        raise ConfigError(msg + ": Gaussians need a width sigma_thz, tetrahedra none")
    if sigma_thz is None and (isotopes or mass_variances is not None):
        raise ConfigError(
            "isotope scattering is computed with Gaussian smearing only; pass "
            "sigma_thz (e.g. 0.1 THz; CLI --sigma 0.1) with isotopes"
        )
    temps = np.asarray(temperatures, np.float64).reshape(-1)
    if np.any(temps <= 0):
        raise ConfigError(f"temperatures must be > 0 K, got {temps.tolist()}")
    settings = ConductivitySettings(
        sigma_thz=None if sigma_thz is None else float(sigma_thz),
        cutoff_thz=float(cutoff_thz),
        r0_average=bool(r0_average),
        batch_size=int(batch_size),
        isotopes=bool(isotopes),
        mass_variances=None
        if mass_variances is None
        else tuple(np.ravel(mass_variances).tolist()),
        boundary_mfp_um=None if boundary_mfp_um is None else float(boundary_mfp_um),
    )
    n = phonons.force_constants.shape[0]
    p = len(phonons.images.representative)
    if tuple(np.shape(fc3)) not in ((n, 3, n, 3, n, 3), (p, 3, n, 3, n, 3)):
        raise ConfigError(
            f"fc3 must have shape {(n, 3, n, 3, n, 3)} (full) or "
            f"{(p, 3, n, 3, n, 3)} (compact) for this {n}-atom supercell, got "
            f"{tuple(np.shape(fc3))}; compute it on phonons.supercell"
        )
    check_mesh(mesh_numbers, p, method)
    grid = qmesh.mesh(phonons.primitive, mesh_numbers, use_symmetry=use_symmetry)
    trip = interaction.triplets(fc3, phonons.images)
    return _kappa_compiled(
        phonons.force_constants,
        jnp.asarray(fc3),
        phonons.masses,
        phonons.images,
        jnp.asarray(temps),
        solver=_METHODS[method],
        primitive=_kappa_support.ByContent(phonons.primitive),
        grid=_kappa_support.ByContent(grid),
        trip=_kappa_support.ByContent(trip),
        settings=settings,
    )


@partial(jax.jit, static_argnames=("solver", "primitive", "grid", "trip", "settings"))
def _kappa_compiled(
    fc2, fc3, masses, images, temps, *, solver, primitive, grid, trip, settings
):
    return solver(
        fc2,
        fc3,
        masses,
        images,
        primitive.value,
        grid.value,
        trip.value,
        temps,
        settings,
    )


_METHODS = {"rta": kappa_rta, "lbte": kappa_lbte}
