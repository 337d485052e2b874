"""FIRE relaxation of positions, or of positions and cell (ASE's ``UnitCellFilter``).

See :mod:`mldiff.md` for the design.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import minimize as jmd_minimize

from mldiff import neighbors
from mldiff.errors import ConfigError
from mldiff.md._common import (
    _check_inputs,
    _config,
    _progress_disable,
    _reallocate,
    _shift,
)
from mldiff.potentials import Potential
from mldiff.structure import Structure

_FIRE_ALPHA_START = 0.1  # jax-md's default FIRE mixing parameter


@dataclasses.dataclass(frozen=True, kw_only=True)
class RelaxConfig:
    """Settings of :func:`relax` (FIRE, Bitzek et al. 2006, as in jax-md).

    Attributes:
        fmax: converged when every atomic force is below this, eV/Å.
        smax: and (with ``relax_cell``) every stress component below this,
            eV/Å³ (1e-3 eV/Å³ ≈ 0.16 GPa).
        relax_cell: relax the cell too (all-periodic structures only).
        max_steps: give up after this many FIRE steps.
        skin: Verlet skin of the neighbor graph, Å.
        cell_factor: scale of the cell degrees of freedom; default the number
            of atoms (ASE's ``UnitCellFilter`` default).
        dt_start: initial FIRE time step, ASE time units with unit masses.
        dt_max: largest FIRE time step, same units.
        block: FIRE steps per jitted call between host checks.
    """

    fmax: float = 0.05
    smax: float = 1e-3
    relax_cell: bool = False
    max_steps: int = 2000
    skin: float = 0.5
    cell_factor: float | None = None
    dt_start: float = 0.1
    dt_max: float = 0.4
    block: int = 50


@dataclasses.dataclass(frozen=True, kw_only=True)
class RelaxResult:
    """What :func:`relax` returns.

    Attributes:
        structure: relaxed structure.
        energy_ev: its energy, eV.
        forces: ``[n, 3]`` its forces, eV/Å.
        stress: ``[3, 3]`` its stress, eV/Å³ (``None`` unless all-periodic).
        fmax: largest atomic force norm, eV/Å.
        smax: largest |stress component|, eV/Å³ (0 without ``relax_cell``).
        steps: FIRE steps taken.
        converged: whether both tolerances were met.
        graph: neighbor graph valid for ``structure``.
    """

    structure: Structure
    energy_ev: float
    forces: np.ndarray
    stress: np.ndarray | None
    fmax: float
    smax: float
    steps: int
    converged: bool
    graph: neighbors.Graph


def _graph_stale(structure: Structure, graph: neighbors.Graph, cell_at_build):
    """Whether a missing pair could now be within the cutoff; jit-compatible.

    With ``cell = cell_b G`` since the build and displacements δ measured in the
    build frame, a pair at least ``rc + skin`` apart at the build is now at least
    ``σ_min(G)(rc + skin − 2 max|δ|)`` apart. For ``G = 1`` this is the Verlet
    criterion of :func:`mldiff.neighbors.needs_update`.
    """
    g = jnp.linalg.solve(cell_at_build, structure.cell)  # cell = cell_b @ g
    r_b = jnp.linalg.solve(g.T, structure.positions.T).T  # r @ g⁻¹
    delta = jnp.max(jnp.linalg.norm(r_b - graph.reference_positions, axis=1))
    smin = jnp.min(jnp.linalg.svd(g, compute_uv=False))
    radius = graph.cutoff + graph.skin
    return graph.overflow | (smin * (radius - 2.0 * delta) < graph.cutoff)


def _from_x(x, s0: Structure, factor) -> Structure:
    """The structure at FIRE coordinates ``x = [u; factor·F]`` (``[n + 3, 3]``).

    As ASE's ``UnitCellFilter``: positions ``u F`` and cell ``cell₀ F`` (rows).
    """
    n = x.shape[0] - 3
    f = x[n:] / factor  # deformation gradient
    return s0.replace(positions=x[:n] @ f, cell=s0.cell @ f)


@functools.lru_cache(maxsize=16)
def _fire_functions(energy_fn, relax_cell: bool, dt_start: float, dt_max: float):
    """Jitted ``(energy_force_fn, run_block)`` for FIRE in unit-cell coordinates.

    Cached (like ``jax.jit`` itself) so repeated relaxations with the same
    potential and settings compile once; tolerances and ``factor`` are traced.
    """

    def mask_for(x):  # zero cell forces when only positions relax
        n = x.shape[0] - 3
        keep = np.ones((n + 3, 1))
        keep[n:] = 1.0 if relax_cell else 0.0
        return jnp.asarray(keep, x.dtype)

    def energy_x(x, *, params, s0, graph, factor, **unused):
        del unused
        return energy_fn(params, _from_x(x, s0, factor), graph)

    def force_x(x, **kwargs):
        return -jax.grad(energy_x)(x, **kwargs) * mask_for(x)

    _, apply_fn = jmd_minimize.fire_descent(
        force_x,
        _shift(),
        dt_start=dt_start,
        dt_max=dt_max,
        alpha_start=_FIRE_ALPHA_START,
    )

    def measures(x, gx, s0, factor):
        """True forces (eV/Å) and stress (eV/Å³) from FIRE's generalized forces."""
        n = x.shape[0] - 3
        f = x[n:] / factor
        forces = jnp.linalg.solve(f, gx[:n].T).T  # g_u = F_atoms fᵀ
        if not all(s0.pbc):
            return forces, jnp.zeros((3, 3), x.dtype)
        s = _from_x(x, s0, factor)
        de_df = -factor * gx[n:]
        sigma = f.T @ de_df / jnp.linalg.det(s.cell)  # σ = fᵀ ∂E/∂f / V
        return forces, 0.5 * (sigma + sigma.T)

    def maxima(forces, sigma):
        fmax = jnp.max(jnp.linalg.norm(forces, axis=1))
        smax = jnp.max(jnp.abs(sigma)) if relax_cell else jnp.zeros((), sigma.dtype)
        return fmax, smax

    @jax.jit
    def energy_force_fn(x, params, s0, graph, factor):
        """Energy, masked FIRE forces, true forces, stress and their maxima."""
        kw = dict(params=params, s0=s0, graph=graph, factor=factor)
        e, de_dx = jax.value_and_grad(energy_x)(x, **kw)
        forces, sigma = measures(x, -de_dx, s0, factor)
        return e, -de_dx * mask_for(x), forces, sigma, maxima(forces, sigma)

    @jax.jit
    def run_block(state, params, s0, graph, factor, cell_b, n_steps, fmax, smax):
        def cond(c):
            _, i, conv, stale = c
            return (i < n_steps) & ~conv & ~stale

        def body(c):
            state, i, _, _ = c
            kw = dict(params=params, s0=s0, graph=graph, factor=factor)
            with jax.numpy_dtype_promotion("standard"):  # jax-md mixes in float32
                state = apply_fn(state, **kw)
            s = _from_x(state.position, s0, factor)
            if relax_cell:
                stale = _graph_stale(s, graph, cell_b)
            else:  # fixed cell: the Verlet criterion
                stale = neighbors.needs_update(s, graph)
            f_now, s_now = maxima(*measures(state.position, state.force, s0, factor))
            conv = (f_now < fmax) & (s_now < smax) & ~stale
            return state, i + 1, conv, stale

        zero, false = jnp.zeros((), jnp.int32), jnp.asarray(False)
        return jax.lax.while_loop(cond, body, (state, zero, false, false))

    return energy_force_fn, run_block


def relax(
    potential: Potential,
    params: Any,
    structure: Structure,
    config: RelaxConfig | None = None,
    *,
    graph: neighbors.Graph | None = None,
    progress: bool | None = None,
    **overrides,
) -> RelaxResult:
    """Relax positions (and the cell) with jax-md's FIRE.

    FIRE runs in jitted blocks that stop when converged or when the graph may
    miss a pair (:func:`_graph_stale`, which accounts for cell changes); the
    graph is then rebuilt on the host and the forces recomputed before going on.
    Positions-only relaxation uses the same coordinates with the cell rows
    frozen, so one compiled energy serves both and gives the stress.

    Args:
        potential: any mldiff potential.
        params: its parameters.
        structure: starting structure.
        config: :class:`RelaxConfig`; keyword ``overrides`` replace its fields.
        graph: initial neighbor graph; default allocated here.
        progress: tqdm bar; ``None`` shows it only on a terminal.
        **overrides: :class:`RelaxConfig` fields, replacing those of ``config``.

    Returns:
        :class:`RelaxResult`; energy, forces and stress are recomputed on a
        fresh graph at the end.

    References:
        E. Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006) (FIRE);
        ASE's ``UnitCellFilter`` for the cell degrees of freedom.

    Example:
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> s = Structure.from_ase(bulk("Cu", a=3.7, cubic=True))
        >>> pot = potentials.get("emt")
        >>> r = relax(pot, pot.init(None, s), s, relax_cell=True, fmax=1e-3,
        ...           smax=1e-4, progress=False)
        >>> r.converged, round(float(r.structure.cell[0, 0]), 2)
        (True, 3.59)
    """
    from tqdm.auto import tqdm

    cfg = _config(RelaxConfig, config, overrides)
    _check_inputs(potential, structure)
    periodic = all(structure.pbc)
    if cfg.relax_cell and not periodic:
        raise ConfigError(
            "relax_cell needs a cell periodic in all directions, got "
            f"pbc={structure.pbc}; relax positions only"
        )
    n = len(structure)
    factor = float(n if cfg.cell_factor is None else cfg.cell_factor)
    cutoff, skin = potential.cutoff, float(cfg.skin)
    if skin <= 0:
        raise ConfigError(f"relax needs a Verlet skin > 0 Å, got {skin}")
    dtype = structure.positions.dtype
    x0 = jnp.concatenate([structure.positions, factor * jnp.eye(3, dtype=dtype)])
    energy_force_fn, run_block = _fire_functions(
        potential.energy, cfg.relax_cell, float(cfg.dt_start), float(cfg.dt_max)
    )

    def from_x(x):
        return _from_x(x, structure, factor)

    def converged_fn(fmax, smax):
        return (fmax < cfg.fmax) & (smax < cfg.smax)

    if graph is None:
        graph = neighbors.allocate(structure, cutoff, skin=skin)
    else:
        graph = _reallocate(structure, graph, cutoff, skin, 1.5, grow=False)
    cell_b = structure.cell
    _, gx, _, _, (fmax, smax) = energy_force_fn(x0, params, structure, graph, factor)
    state = jmd_minimize.FireDescentState(  # jax-md's init_fn, without a 2nd jit
        x0,
        jnp.zeros_like(x0),
        gx,
        1.0,
        jnp.float32(cfg.dt_start),  # jax-md keeps FIRE's dt and α in float32
        jnp.float32(_FIRE_ALPHA_START),
        jnp.zeros((), jnp.int32),
    )
    steps = 0
    conv = bool(converged_fn(fmax, smax))
    bar = tqdm(
        total=cfg.max_steps,
        desc="relax",
        unit="step",
        disable=_progress_disable(progress),
    )
    try:
        while not conv and steps < cfg.max_steps:
            n_steps = min(cfg.block, cfg.max_steps - steps)
            state, i, conv, stale = run_block(
                state,
                params,
                structure,
                graph,
                factor,
                cell_b,
                n_steps,
                cfg.fmax,
                cfg.smax,
            )
            i, conv, stale = int(i), bool(conv), bool(stale)
            steps += i
            bar.update(i)
            if stale:
                s = from_x(state.position)
                graph = _reallocate(s, graph, cutoff, skin, 1.5, grow=False)
                cell_b = s.cell
                _, gx, _, _, (fmax, smax) = energy_force_fn(
                    state.position, params, structure, graph, factor
                )
                state = state.set(force=gx)
                conv = bool(converged_fn(fmax, smax))
            bar.set_postfix_str(f"steps={steps}")
    finally:
        bar.close()

    x = state.position
    final = from_x(x)
    graph = _reallocate(final, graph, cutoff, skin, 1.5, grow=False)
    e, _, forces, sigma, (fmax, smax) = energy_force_fn(
        x, params, structure, graph, factor
    )
    return RelaxResult(
        structure=final,
        energy_ev=float(e),
        forces=np.asarray(forces),
        stress=np.asarray(sigma) if periodic else None,
        fmax=float(fmax),
        smax=float(smax),
        steps=steps,
        converged=bool(converged_fn(fmax, smax)),
        graph=graph,
    )
