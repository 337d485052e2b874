"""Quasi-harmonic thermal expansion: F(V, T) on a volume grid → V(T), α(T), B(T).

``F(V, T) = E₀(V) + F_vib(V, T)``: the static energy of the cell (ions relaxed
at each volume) plus the harmonic phonon free energy at that volume
(:mod:`mldiff.phonons.thermal`). At each temperature an equation of state is
fitted to ``F(V)`` by least squares (parameters ``E₀``, ``B₀``, ``B₀'``,
``V₀``, as phonopy), giving the equilibrium volume ``V(T) = V₀(T)``, the
isothermal bulk modulus ``B(T) = B₀(T)`` and the Gibbs energy
``G(T) = E₀(T)`` at zero pressure. The volumetric thermal expansion
``β = (1/V) dV/dT`` is taken by central differences on the temperature grid
(phonopy's ``thermal_expansion``; one-sided at the ends), and the linear
coefficient of a cubic crystal is ``α = β/3``.

Equations of state (phonopy's forms): Vinet (default), third-order
Birch–Murnaghan, Murnaghan.

Units: volumes Å³ and energies eV per input unit cell; the phonon free energy
is converted from phonopy's kJ/mol of primitive cells.

References:
    phonopy 4.10 ``qha/core.py``, ``qha/eos.py`` (same EOS forms and initial
    guess); P. Vinet et al., J. Phys. C 19, L467 (1986); F. Birch,
    Phys. Rev. 71, 809 (1947); A. Togo et al., Phys. Rev. B 81, 174301 (2010).

Example:
    >>> import numpy as np
    >>> v = np.linspace(10.0, 14.0, 9)
    >>> e = np.asarray(eos_energy("vinet")(v, np.array([-3.0, 0.8, 4.5, 12.0])))
    >>> np.round(fit_eos(v, e), 6).tolist()
    [-3.0, 0.8, 4.5, 12.0]
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import units
from mldiff.errors import ConfigError

__all__ = [
    "EOS_NAMES",
    "eos_energy",
    "fit_eos",
    "quasi_harmonic",
    "free_energy_grid",
    "run",
]

EOS_NAMES = ("vinet", "birch_murnaghan", "murnaghan")


def _vinet(v, p):
    x = jnp.cbrt(v / p[3])
    xi = 1.5 * (p[2] - 1)
    return p[0] + 9 * p[1] * p[3] / xi**2 * (
        1 + (xi * (1 - x) - 1) * jnp.exp(xi * (1 - x))
    )


def _birch_murnaghan(v, p):
    y = (p[3] / v) ** (2.0 / 3) - 1
    return p[0] + 9.0 / 16 * p[3] * p[1] * (y**3 * p[2] + y**2 * (6 - 4 * (y + 1)))


def _murnaghan(v, p):
    return (
        p[0]
        + p[1] * v / p[2] * ((p[3] / v) ** p[2] / (p[2] - 1) + 1)
        - p[1] * p[3] / (p[2] - 1)
    )


def eos_energy(name: str = "vinet"):
    """An equation of state ``E(V; p)``.

    Args:
        name: ``"vinet"``, ``"birch_murnaghan"`` or ``"murnaghan"``.

    Returns:
        ``energy_fn(volumes [m] Å³, p [4]) -> [m] eV`` with
        ``p = (E₀ eV, B₀ eV/Å³, B₀', V₀ Å³)``; a JAX function.

    Example:
        >>> import numpy as np
        >>> p = np.array([-3.0, 0.8, 4.5, 12.0])
        >>> float(eos_energy("birch_murnaghan")(np.array(12.0), p))
        -3.0
    """
    table = {
        "vinet": _vinet,
        "birch_murnaghan": _birch_murnaghan,
        "murnaghan": _murnaghan,
    }
    if name not in table:
        raise ConfigError(
            f"unknown equation of state {name!r}; choose one of {', '.join(table)}"
        )
    return table[name]


@functools.cache
def _compiled(eos: str):
    """Jitted ``E(V; p)`` and its Jacobian in ``p`` (compiled once per shape)."""
    fn = eos_energy(eos)
    return jax.jit(fn), jax.jit(jax.jacfwd(fn, argnums=1))


def fit_eos(volumes, energies, eos: str = "vinet", initial=None) -> np.ndarray:
    """Least-squares fit of an equation of state to ``E(V)``.

    Args:
        volumes: ``[m]`` volumes, Å³ (at least 4).
        energies: ``[m]`` energies, eV.
        eos: equation of state name (see :func:`eos_energy`).
        initial: ``[4]`` starting ``(E₀, B₀, B₀', V₀)``; default phonopy's,
            ``(E[m//2], 1 eV/Å³, 4, V[m//2])``.

    Returns:
        ``[4]`` ``(E₀ eV, B₀ eV/Å³, B₀', V₀ Å³)``.

    Raises:
        ConfigError: too few points, or a fit that did not converge.
    """
    from scipy.optimize import least_squares

    v = np.asarray(volumes, np.float64)
    e = np.asarray(energies, np.float64)
    if v.shape != e.shape or v.ndim != 1 or len(v) < 4:
        raise ConfigError(
            "fit_eos needs matching 1-D volumes and energies with at least 4 "
            f"points, got shapes {v.shape} and {e.shape}"
        )
    fn = eos_energy(eos)
    p0 = (
        np.array([e[len(e) // 2], 1.0, 4.0, v[len(v) // 2]])
        if initial is None
        else np.asarray(initial, np.float64)
    )
    del fn
    value_fn, jac_fn = _compiled(eos)
    sol = least_squares(
        lambda p: np.asarray(value_fn(v, p)) - e,
        p0,
        jac=lambda p: np.asarray(jac_fn(v, p)),
        method="lm",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
        max_nfev=10000,
    )
    if not sol.success or not np.all(np.isfinite(sol.x)):
        raise ConfigError(
            f"the {eos} fit did not converge ({sol.message}); check that the "
            "volume grid brackets the minimum of F(V)"
        )
    return sol.x


def _volumetric_expansion(temperatures, volumes):
    t, v = np.asarray(temperatures, np.float64), np.asarray(volumes, np.float64)
    if len(t) < 2:
        return np.zeros_like(v)
    dv = np.empty_like(v)
    dv[1:-1] = (v[2:] - v[:-2]) / (t[2:] - t[:-2])  # phonopy's central differences
    dv[0] = (v[1] - v[0]) / (t[1] - t[0])
    dv[-1] = (v[-1] - v[-2]) / (t[-1] - t[-2])
    return dv / v


def quasi_harmonic(
    volumes, energies_ev, temperatures, free_energy_kj_mol, *, eos: str = "vinet"
) -> dict:
    """Equilibrium volume, bulk modulus and expansion from ``F(V, T)``.

    Args:
        volumes: ``[m]`` cell volumes, Å³.
        energies_ev: ``[m]`` static energies ``E₀(V)`` of the cell, eV.
        temperatures: ``[t]`` temperatures, K, ascending.
        free_energy_kj_mol: ``[t, m]`` phonon free energies of the same cell,
            kJ/mol (phonopy's unit).
        eos: equation of state (:func:`eos_energy`).

    Returns:
        ``{"temperatures_k": [t], "volume_a3": [t], "bulk_modulus_gpa": [t],
        "gibbs_energy_ev": [t], "volumetric_expansion_per_k": [t],
        "linear_expansion_per_k": [t] (β/3), "eos_parameters": [t, 4],
        "eos": name}``.

    Example:
        >>> v = np.linspace(10.0, 14.0, 7)
        >>> e = 0.05 * (v - 12.0) ** 2
        >>> f = np.stack([np.zeros(7), 0.1 * (v - 12.0) * 96.485]) # kJ/mol
        >>> r = quasi_harmonic(v, e, [0.0, 300.0], f, eos="birch_murnaghan")
        >>> bool(r["volume_a3"][1] < r["volume_a3"][0])
        True
    """
    v = np.asarray(volumes, np.float64)
    t = np.asarray(temperatures, np.float64)
    fvib = np.asarray(free_energy_kj_mol, np.float64) / units.PHONOPY_EV_TO_KJ_MOL
    if fvib.shape != (len(t), len(v)):
        raise ConfigError(
            f"free_energy_kj_mol must have shape (temperatures, volumes) = "
            f"({len(t)}, {len(v)}), got {fvib.shape}"
        )
    if np.any(np.diff(t) <= 0):
        raise ConfigError(f"temperatures must be ascending, got {t.tolist()}")
    e0 = np.asarray(energies_ev, np.float64)
    params = np.array([fit_eos(v, e0 + fvib[k], eos) for k in range(len(t))])
    beta = _volumetric_expansion(t, params[:, 3])
    return {
        "temperatures_k": t,
        "volume_a3": params[:, 3],
        "bulk_modulus_gpa": params[:, 1] * units.PHONOPY_EV_PER_A3_TO_GPA,
        "gibbs_energy_ev": params[:, 0],
        "volumetric_expansion_per_k": beta,
        "linear_expansion_per_k": beta / 3,
        "eos_parameters": params,
        "eos": eos,
    }


@functools.partial(jax.jit, static_argnums=0)
def _energy(energy_fn, params, structure, graph):
    return energy_fn(params, structure, graph)


def free_energy_grid(
    potential,
    params,
    structure,
    supercell_matrix=(2, 2, 2),
    *,
    linear_strains=(-0.01, -0.005, 0.0, 0.005, 0.01, 0.015, 0.02),
    temperatures=None,
    mesh=(12, 12, 12),
    primitive_matrix=None,
    relax_ions: bool = True,
    fmax: float = 1e-4,
    progress: bool | None = None,
) -> dict:
    """``E₀(V)`` and thermal properties on a grid of isotropically scaled cells.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters; ``None`` for ``potential.init(key(0), structure)``.
        structure: the reference cell (float64), Å; scaled by ``1 + s`` for each
            linear strain ``s``.
        supercell_matrix: phonon supercell (phonopy's convention).
        linear_strains: ``[m]`` linear scale factors minus one.
        temperatures: ``[t]`` temperatures, K; default 0, 10, …, 1000 K.
        mesh: q-point mesh for the thermal properties (phonopy's ``run_mesh``).
        primitive_matrix: phonopy's convention, or ``None``.
        relax_ions: relax positions at each volume (:func:`mldiff.md.relax`,
            fixed cell) before the phonons; skip it for crystals without
            internal degrees of freedom (fcc, bcc, diamond).
        fmax: force tolerance of that relaxation, eV/Å.
        progress: tqdm bar over volumes (``None``: only on a terminal).

    Returns:
        ``{"linear_strains": [m], "volumes_a3": [m], "energies_ev": [m],
        "temperatures_k": [t], "free_energy_kj_mol": [t, m],
        "entropy_j_k_mol": [t, m], "heat_capacity_j_k_mol": [t, m]}``, all per
        input cell (thermal properties scaled from the primitive cell).
    """
    from tqdm.auto import tqdm

    from mldiff import neighbors
    from mldiff import phonons as _ph
    from mldiff.phonons import thermal
    from mldiff.potentials import check_potential

    check_potential(potential, "qha.free_energy_grid")
    if params is None:
        params = potential.init(jax.random.key(0), structure)
    if temperatures is None:
        temperatures = np.arange(0.0, 1001.0, 10.0)
    strains = np.asarray(linear_strains, np.float64)
    temps = np.asarray(temperatures, np.float64)
    rows = {
        "free_energy_kj_mol": [],
        "entropy_j_k_mol": [],
        "heat_capacity_j_k_mol": [],
    }
    volumes, energies = [], []
    for s in tqdm(
        strains, desc="qha volumes", disable=True if progress is False else None
    ):
        cell = structure.replace(
            positions=structure.positions * (1 + s), cell=structure.cell * (1 + s)
        )
        if relax_ions:
            from mldiff import md  # jax-md: imported only when used

            result = md.relax(
                potential, params, cell, fmax=fmax, max_steps=2000, progress=False
            )
            cell, energy = result.structure, result.energy_ev
        else:
            graph = neighbors.check(neighbors.allocate(cell, potential.cutoff))
            energy = float(_energy(potential.energy, params, cell, graph))
        ph = _ph.run(
            potential,
            params,
            cell,
            supercell_matrix,
            primitive_matrix=primitive_matrix,
        )
        tp = thermal.mesh_thermal_properties(ph, mesh, temps)
        per_cell = len(cell) / len(ph.primitive)
        for key in rows:
            rows[key].append(np.asarray(tp[key]) * per_cell)
        volumes.append(abs(float(np.linalg.det(np.asarray(cell.cell)))))
        energies.append(energy)
    return {
        "linear_strains": strains,
        "volumes_a3": np.array(volumes),
        "energies_ev": np.array(energies),
        "temperatures_k": temps,
        **{k: np.stack(v, axis=1) for k, v in rows.items()},
    }


def run(
    potential,
    params,
    structure,
    supercell_matrix=(2, 2, 2),
    *,
    eos: str = "vinet",
    **grid_options,
) -> dict:
    """Quasi-harmonic V(T), B(T), α(T) of a crystal.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters; ``None`` for ``potential.init(key(0), structure)``.
        structure: the reference cell (float64, relaxed), Å.
        supercell_matrix: phonon supercell (phonopy's convention).
        eos: equation of state (:func:`eos_energy`).
        **grid_options: passed to :func:`free_energy_grid` (``linear_strains``,
            ``temperatures``, ``mesh``, ``primitive_matrix``, ...).

    Returns:
        :func:`free_energy_grid`'s dictionary updated with
        :func:`quasi_harmonic`'s.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> from mldiff.structure import Structure
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.59))
        >>> r = run(potentials.get("emt"), None, cu, [3, 3, 3], mesh=[8, 8, 8],
        ...         temperatures=[0.0, 150.0, 300.0], progress=False)
        >>> 5e-6 < float(r["linear_expansion_per_k"][2]) < 5e-5
        True
    """
    grid = free_energy_grid(
        potential, params, structure, supercell_matrix, **grid_options
    )
    out = quasi_harmonic(
        grid["volumes_a3"],
        grid["energies_ev"],
        grid["temperatures_k"],
        grid["free_energy_kj_mol"],
        eos=eos,
    )
    return {**grid, **out}
