"""Molecular dynamics and FIRE relaxation with any mldiff potential, through jax-md.

Units are ASE's: positions Å, energies eV, masses amu, so time is in
Å·sqrt(amu/eV) (one femtosecond is :data:`mldiff.units.fs` of it) and momenta are
amu·Å per that unit — the same numbers as ``atoms.get_momenta()``. Temperatures
are in K (``kT = kB·T`` in eV).

* :func:`run_md` — NVE (velocity Verlet) or Langevin NVT (BAOAB), in jitted
  blocks of ``log_interval`` steps.
* :func:`relax` — FIRE on positions, or on positions and cell together.

Design:

* **Shift function.** Positions are never wrapped back into the cell (jax-md's
  ``space.free()`` shift, ``R + dR``). Edge vectors are recomputed as
  ``r_j − r_i + S @ cell`` from the unwrapped positions, and
  :func:`mldiff.neighbors.update` derives ``S`` from unwrapped positions, so the
  graph stays exact; trajectories are continuous (good for diffusion).
* **Integrators.** The steps are jax-md's: its state types
  (``simulate.NVEState``, ``NVTLangevinState``) and its primitives
  (``momentum_step``, ``position_step``, ``stochastic_step``) in the order of
  ``simulate.nve`` (B A B) and ``simulate.nvt_langevin`` (B A O A B). They are
  composed here rather than called through ``nve``/``nvt_langevin`` so that the
  neighbor graph is refreshed *between* the drift and the force evaluation (the
  force then always sees a valid graph), and because jax-md's ``velocity_verlet``
  casts the time step to float32.
* **Neighbor graphs** (``neighbor_update``): with ``"jit"`` each step calls
  :func:`mldiff.neighbors.needs_update` and, when it is true,
  :func:`mldiff.neighbors.update` inside the jitted loop, by the graph's method
  (O(n²·images) all pairs or O(n) cell list). If that overflows the edge or bin
  capacity, the block stops; on the host the graph is re-allocated (same
  method) with ``capacity_multiplier`` head-room and the whole block is redone
  from its saved start state (same PRNG state, so the trajectory is the same as
  with ample capacity). Results from an overflowed graph are never kept. With
  ``"host"`` a step that would need a new graph is not taken; the block returns,
  the graph is rebuilt on the host by :func:`mldiff.neighbors.allocate` (k-d
  tree, O(n log n); same capacities when the edges fit, so nothing recompiles)
  and the block continues. ``"auto"`` picks ``"jit"`` for a cell-list graph and
  while the all-pairs search is small (n²·images ≤ 2·10⁶, a few hundred atoms),
  and ``"host"`` beyond. jax-md's cell lists (``partition.neighbor_list``) are
  not used: they give minimum-image pairs only (cells wider than twice cutoff +
  skin) and no integer shifts.
* **Cell relaxation** follows ASE's ``UnitCellFilter``: FIRE runs on ``n + 3``
  rows, the positions ``u`` in the undeformed frame and ``cell_factor · F`` for
  the deformation gradient ``F`` (``r = u F``, ``cell = cell₀ F``); their forces
  are the autodiff gradients of ``E(u F, cell₀ F)``, i.e. ``F_atoms Fᵀ`` and
  ``−V F⁻ᵀ σ / cell_factor``. Positions-only relaxation uses the same
  coordinates with the cell rows' forces zeroed. The graph is rebuilt on the
  host when a pair could have come within the cutoff, a Verlet criterion that
  also accounts for the cell's deformation since the build (:func:`_graph_stale`).
* **Compilation.** The MD block is one module-level ``jax.jit`` with the energy
  function static and ``dt``, ``kT``, γ and the block length traced, so repeated
  runs with the same potential and shapes compile once (FIRE's jitted functions
  are likewise cached per potential and settings). Nothing cached changes a
  result. Growing a graph's capacity changes shapes and compiles once more.
* **Limits.** ``"jit"`` with an all-pairs graph holds an ``[n, images, n]``
  distance array: keep it for small cells (allocate large ones with the cell
  list, the default from a few hundred atoms). Cells whose shape changes
  during MD (NPT) are not supported. Positions are not wrapped, so after very
  long runs the unwrapped coordinates grow (harmless in float64).

Example:
    >>> import jax
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> s = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))
    >>> pot = potentials.get("emt")
    >>> out = run_md(pot, pot.init(None, s), s, steps=4, timestep_fs=1.0,
    ...              initial_temperature_K=300.0, log_interval=2,
    ...              key=jax.random.key(0), progress=False)
    >>> out.total_energy_ev.shape
    (3,)
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import minimize as jmd_minimize
from jax_md import simulate
from jax_md import space as jmd_space

from mldiff import neighbors, quantities, units
from mldiff._typing import ArrayLike
from mldiff.errors import ConfigError, NeighborListOverflowError, StructureError
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure
from mldiff.units import masses_amu  # re-exported as mldiff.md.masses_amu

__all__ = [
    "MDConfig",
    "MDResult",
    "RelaxConfig",
    "RelaxResult",
    "masses_amu",
    "kinetic_energy",
    "temperature",
    "maxwell_boltzmann",
    "run_md",
    "relax",
]

_AUTO_JIT_LIMIT = 2_000_000  # n² · images below which "auto" updates inside jit
_MAX_REALLOCATIONS = 20
_FIRE_ALPHA_START = 0.1  # jax-md's default FIRE mixing parameter


# ---------------------------------------------------------------------------
# configuration and results


@dataclasses.dataclass(frozen=True, kw_only=True)
class MDConfig:
    """Settings of :func:`run_md`.

    Attributes:
        steps: number of time steps.
        timestep_fs: time step, fs.
        temperature_K: Langevin target temperature, K; ``None`` runs NVE.
        initial_temperature_K: Maxwell–Boltzmann temperature of the initial
            momenta, K, when no ``momenta`` are given; default ``temperature_K``
            (NVE without either starts at rest).
        friction_per_fs: Langevin friction γ, 1/fs (ASE's ``friction`` times
            ``units.fs``); 0.01 /fs relaxes the kinetic energy in ~50 fs.
        skin: Verlet skin of the neighbor graph, Å.
        log_interval: steps per jitted block; one record per block.
        neighbor_update: ``"jit"``, ``"host"`` or ``"auto"`` (see module doc).
        capacity_multiplier: head-room of a re-allocated graph.
        record_positions: keep ``[k, n, 3]`` positions at every record.
    """

    steps: int
    timestep_fs: float = 1.0
    temperature_K: float | None = None
    initial_temperature_K: float | None = None
    friction_per_fs: float = 0.01
    skin: float = 0.5
    log_interval: int = 10
    neighbor_update: str = "auto"
    capacity_multiplier: float = 1.5
    record_positions: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class MDResult:
    """What :func:`run_md` returns: records at steps 0, log_interval, …, steps.

    Attributes:
        step: ``[k]`` step numbers.
        time_fs: ``[k]`` simulated time, fs.
        potential_energy_ev: ``[k]`` potential energy, eV.
        kinetic_energy_ev: ``[k]`` kinetic energy, eV.
        total_energy_ev: ``[k]`` potential + kinetic energy, eV.
        temperature_k: ``[k]`` instantaneous temperature 2 K / (3 n kB), K.
        positions: ``[k, n, 3]`` unwrapped positions, Å, or ``None``.
        structure: final structure (unwrapped positions).
        momenta: ``[n, 3]`` final momenta, amu·Å/(ASE time), as ASE's.
        graph: final neighbor graph (valid for ``structure``).
        reallocations: how many times the graph was re-allocated on overflow
            (each one redid a block).
        host_rebuilds: graph rebuilds on the host (``"host"`` mode).
        neighbor_update: the mode used, ``"jit"`` or ``"host"``.
    """

    step: np.ndarray
    time_fs: np.ndarray
    potential_energy_ev: np.ndarray
    kinetic_energy_ev: np.ndarray
    total_energy_ev: np.ndarray
    temperature_k: np.ndarray
    positions: np.ndarray | None
    structure: Structure
    momenta: np.ndarray
    graph: neighbors.Graph
    reallocations: int
    host_rebuilds: int
    neighbor_update: str


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


def _config(cls, config, overrides):
    """``cls(**overrides)`` or ``config`` with them replaced; ints pass as floats."""
    floats = {f.name for f in dataclasses.fields(cls) if "float" in str(f.type)}
    overrides = {
        k: float(v) if k in floats and type(v) is int else v
        for k, v in overrides.items()
    }
    try:
        if config is None:
            return cls(**overrides)
        return dataclasses.replace(config, **overrides)
    except TypeError as err:
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{err}; {cls.__name__} fields are: {names}") from err


# ---------------------------------------------------------------------------
# kinetic quantities


def kinetic_energy(momenta: ArrayLike, masses: ArrayLike) -> jax.Array:
    """Kinetic energy Σ p²/2m.

    Args:
        momenta: ``[n, 3]`` momenta, amu·Å/(ASE time).
        masses: ``[n]`` masses, amu.

    Returns:
        ``[]`` kinetic energy, eV.

    Example:
        >>> float(kinetic_energy(jnp.ones((1, 3)), jnp.ones(1)))
        1.5
    """
    return 0.5 * jnp.sum(momenta**2 / jnp.reshape(masses, (-1, 1)))


def temperature(momenta: ArrayLike, masses: ArrayLike) -> jax.Array:
    """Instantaneous temperature 2 K / (3 n kB), as ``ase.Atoms.get_temperature``.

    Args:
        momenta: ``[n, 3]`` momenta, amu·Å/(ASE time).
        masses: ``[n]`` masses, amu.

    Returns:
        ``[]`` temperature, K.

    Example:
        >>> round(float(temperature(jnp.ones((1, 3)), jnp.ones(1))))
        11605
    """
    n = momenta.shape[0]
    return 2.0 * kinetic_energy(momenta, masses) / (3.0 * n * units.kB)


def maxwell_boltzmann(
    key: jax.Array, masses: ArrayLike, temperature_K: float | int
) -> jax.Array:
    """Momenta drawn from Maxwell–Boltzmann at ``temperature_K``, zero total.

    jax-md's ``simulate.initialize_momenta``: ``p = sqrt(m kT) ξ`` with the mean
    momentum removed (so the expected temperature is ``T (n − 1)/n``).

    Args:
        key: PRNG key.
        masses: ``[n]`` masses, amu.
        temperature_K: temperature, K.

    Returns:
        ``[n, 3]`` momenta, amu·Å/(ASE time).

    Example:
        >>> p = maxwell_boltzmann(jax.random.key(0), jnp.ones(4), 300.0)
        >>> p.shape
        (4, 3)
    """
    m = jnp.reshape(jnp.asarray(masses), (-1, 1))
    state = simulate.NVEState(jnp.zeros((m.shape[0], 3), m.dtype), None, None, m)
    state = simulate.initialize_momenta(state, key, units.kB * float(temperature_K))
    return state.momentum


# ---------------------------------------------------------------------------
# MD


def _shift():
    return jmd_space.free()[1]  # R + dR: positions stay unwrapped


def _drift(state, dt, kT, gamma, langevin: bool):
    """jax-md's step up to the force evaluation.

    Velocity Verlet: B(dt/2) A(dt); BAOAB Langevin: B(dt/2) A(dt/2) O(dt)
    A(dt/2) — the order of ``simulate.nve`` and ``simulate.nvt_langevin``.
    """
    shift = _shift()
    state = simulate.momentum_step(state, 0.5 * dt)
    if not langevin:
        return simulate.position_step(state, shift, dt)
    state = simulate.position_step(state, shift, 0.5 * dt)
    state = simulate.stochastic_step(state, dt, kT, gamma)
    return simulate.position_step(state, shift, 0.5 * dt)


@functools.partial(jax.jit, static_argnames=("energy_fn",))
def _energy_forces(params, structure, graph, *, energy_fn):
    """Jitted ``(E, F)``; compiled once per energy function and shapes."""
    return quantities.energy_and_forces(energy_fn)(params, structure, graph)


@functools.partial(jax.jit, static_argnames=("energy_fn", "langevin", "jit_update"))
def _md_block(
    params,
    structure,
    state,
    graph,
    energy,
    n_steps,
    dt,
    kT,
    gamma,
    *,
    energy_fn,
    langevin: bool,
    jit_update: bool,
):
    """Up to ``n_steps`` MD steps in one ``lax.while_loop``.

    ``dt`` (ASE time), ``kT`` (eV) and ``gamma`` (1/ASE time) are traced, so a
    new temperature or time step does not recompile; neither does ``n_steps``.

    Returns:
        ``(state, graph, energy, n_done, flag)``. ``flag`` means: the graph
        overflowed (``jit_update``; discard the block) or the next step needs a
        host rebuild (``state`` is the last valid one).
    """
    ef = quantities.energy_and_forces(energy_fn)

    def finish(state, s, graph):
        e, f = ef(params, s, graph)
        f = f.astype(state.position.dtype)  # float32 runs stay float32
        state = simulate.momentum_step(state.set(force=f), 0.5 * dt)
        return state, e

    def body(carry):
        state, graph, energy, i, _ = carry
        new = _drift(state, dt, kT, gamma, langevin)
        s = structure.replace(positions=new.position)
        if jit_update:
            graph = jax.lax.cond(
                neighbors.needs_update(s, graph),
                neighbors.update,
                lambda s, g: g,
                s,
                graph,
            )
            new, e = finish(new, s, graph)
            return new, graph, e, i + 1, graph.overflow
        stale = neighbors.needs_update(s, graph)
        new, e = jax.lax.cond(
            stale, lambda: (state, energy), lambda: finish(new, s, graph)
        )
        return new, graph, e, i + jnp.where(stale, 0, 1), stale

    def cond(carry):
        return (carry[3] < n_steps) & ~carry[4]

    zero, false = jnp.zeros((), jnp.int32), jnp.asarray(False)
    return jax.lax.while_loop(cond, body, (state, graph, energy, zero, false))


def _choose_mode(mode: str, structure: Structure, graph: neighbors.Graph) -> str:
    if mode not in ("auto", "jit", "host"):
        raise ConfigError(
            f"neighbor_update must be 'auto', 'jit' or 'host', got {mode!r}"
        )
    if mode != "auto":
        return mode
    if graph.method == "cell_list":
        return "jit"
    n = len(structure)
    return "jit" if n * n * graph.images.shape[0] <= _AUTO_JIT_LIMIT else "host"


def _reallocate(s, graph, cutoff, skin, multiplier, *, grow: bool) -> neighbors.Graph:
    """A fresh graph for ``s`` searched by ``graph.method``.

    Keeps the edge and bin capacities if they fit (nothing recompiles), unless
    ``grow``: then both grow by at least ``multiplier``, since either may have
    overflowed.
    """
    kw = dict(skin=skin, method=graph.method)
    cell_list = graph.method == "cell_list"
    if not grow:
        try:
            return neighbors.allocate(
                s,
                cutoff,
                capacity=graph.capacity,
                bin_capacity=graph.bin_capacity if cell_list else None,
                **kw,
            )
        except NeighborListOverflowError:
            pass
    fresh = neighbors.allocate(s, cutoff, capacity_multiplier=multiplier, **kw)
    if grow:
        capacity = max(fresh.capacity, math.ceil(graph.capacity * multiplier))
        bins = max(fresh.bin_capacity, math.ceil(graph.bin_capacity * multiplier))
        fresh = neighbors.allocate(
            s,
            cutoff,
            capacity=int(capacity),
            bin_capacity=int(bins) if cell_list else None,
            **kw,
        )
    return fresh


def _check_inputs(potential: Potential, structure: Structure) -> None:
    if not isinstance(potential, Potential):
        raise ConfigError(
            f"expected an mldiff Potential, got {type(potential).__name__}; "
            "use mldiff.potentials.get(name) or a loaded model"
        )
    if not isinstance(structure, Structure):
        raise StructureError(
            f"expected an mldiff Structure, got {type(structure).__name__}; "
            "convert with Structure.from_ase(atoms)"
        )
    check_species(potential, structure.numbers)
    if not np.all(np.isfinite(np.asarray(structure.positions))):
        raise StructureError("non-finite (NaN/inf) positions; check the input")


def run_md(
    potential: Potential,
    params: Any,
    structure: Structure,
    config: MDConfig | None = None,
    *,
    key: jax.Array | None = None,
    momenta=None,
    masses=None,
    graph: neighbors.Graph | None = None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool | None = None,
    **overrides,
) -> MDResult:
    """Run NVE (velocity Verlet) or Langevin NVT (BAOAB) molecular dynamics.

    Blocks of ``log_interval`` steps run in one jitted ``lax.while_loop``; after
    each block the host checks the graph (re-allocating it and redoing the block
    on overflow), records energies and temperature, calls ``callback`` and
    advances a tqdm bar.

    Args:
        potential: any mldiff potential.
        params: its parameters.
        structure: initial structure (float64 recommended for NVE).
        config: :class:`MDConfig`; keyword ``overrides`` replace its fields
            (``run_md(pot, p, s, steps=100, temperature_K=300.0, key=k)``).
        key: PRNG key, needed for Maxwell–Boltzmann momenta and Langevin noise.
        momenta: ``[n, 3]`` initial momenta, amu·Å/(ASE time) (ASE's
            ``atoms.get_momenta()``); default drawn at ``initial_temperature_K``.
        masses: ``[n]`` masses, amu; default :func:`mldiff.units.masses_amu`.
        graph: initial neighbor graph; rebuilt for ``structure`` on the host,
            keeping its capacity while the edges fit (a graph that is too small
            grows when it overflows); default allocated here.
        callback: ``callback(step, record)`` after each block, with the record's
            scalars (eV, K) and ``positions`` (Å).
        progress: tqdm bar; ``None`` shows it only on a terminal.
        **overrides: :class:`MDConfig` fields, replacing those of ``config``.

    Returns:
        :class:`MDResult` with records at step 0 and after every block.

    Example:
        >>> import jax
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> s = Structure.from_ase(bulk("Cu", cubic=True))
        >>> pot = potentials.get("emt")
        >>> params = pot.init(None, s)
        >>> r = run_md(pot, params, s, steps=2, log_interval=1, progress=False)
        >>> r.step.tolist(), bool(r.temperature_k.max() < 1e-6)  # NVE from rest
        ([0, 1, 2], True)
    """
    from tqdm.auto import tqdm

    cfg = _config(MDConfig, config, overrides)
    _check_inputs(potential, structure)
    if cfg.steps < 0 or cfg.log_interval < 1:
        raise ConfigError(
            f"steps must be >= 0 and log_interval >= 1, got steps={cfg.steps}, "
            f"log_interval={cfg.log_interval}"
        )
    if not cfg.timestep_fs > 0:
        raise ConfigError(f"timestep_fs must be positive, got {cfg.timestep_fs}")
    for name in ("temperature_K", "initial_temperature_K", "friction_per_fs"):
        value = getattr(cfg, name, None)
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ConfigError(
                f"{name} must be a finite number >= 0, got {value} (temperatures "
                "are in kelvin, the friction in 1/fs)"
            )
    dtype = structure.positions.dtype
    n = len(structure)
    dt = float(cfg.timestep_fs) * units.fs
    masses = masses_amu(structure.numbers) if masses is None else masses
    masses = jnp.asarray(np.asarray(masses, np.float64).reshape(n), dtype)

    t_init = cfg.initial_temperature_K
    t_init = cfg.temperature_K if t_init is None else t_init
    needs_key = cfg.temperature_K is not None or (momenta is None and t_init)
    if needs_key and key is None:
        raise ConfigError(
            "pass key=jax.random.key(seed): it draws the initial momenta and the "
            "Langevin noise"
        )
    if momenta is not None:
        p0 = jnp.asarray(np.asarray(momenta, np.float64).reshape(n, 3), dtype)
    elif t_init:
        key, sub = jax.random.split(key)
        p0 = maxwell_boltzmann(sub, masses, t_init).astype(dtype)
    else:
        p0 = jnp.zeros((n, 3), dtype)

    cutoff, skin = potential.cutoff, float(cfg.skin)
    if graph is None:
        graph = neighbors.allocate(structure, cutoff, skin=skin)
    else:  # rebuilt for the start; keeps its capacity if the edges fit
        graph = _reallocate(
            structure, graph, cutoff, skin, cfg.capacity_multiplier, grow=False
        )
    mode = _choose_mode(cfg.neighbor_update, structure, graph)
    if mode == "host" and skin <= 0:
        raise ConfigError(f"neighbor_update='host' needs skin > 0 Å, got {skin}")

    langevin = cfg.temperature_K is not None
    kT = units.kB * float(cfg.temperature_K) if langevin else 0.0
    gamma = float(cfg.friction_per_fs) / units.fs if langevin else 0.0
    statics = dict(energy_fn=potential.energy, langevin=langevin)

    def block(state, graph, energy, n_steps):
        return _md_block(
            params,
            structure,
            state,
            graph,
            energy,
            n_steps,
            dt,
            kT,
            gamma,
            jit_update=(mode == "jit"),
            **statics,
        )

    e0, f0 = _energy_forces(params, structure, graph, energy_fn=potential.energy)
    f0 = f0.astype(dtype)
    m = masses.reshape(n, 1)
    if cfg.temperature_K is None:
        state = simulate.NVEState(structure.positions, p0, f0, m)
    else:
        state = simulate.NVTLangevinState(structure.positions, p0, f0, m, key)

    records: dict[str, list] = {k: [] for k in ("step", "epot", "ekin", "pos")}

    def record(step, state, e):
        p = np.asarray(state.momentum)
        ekin = float(0.5 * np.sum(p**2 / np.asarray(masses)[:, None]))
        records["step"].append(step)
        records["epot"].append(float(e))
        records["ekin"].append(ekin)
        if cfg.record_positions:
            records["pos"].append(np.asarray(state.position))
        if callback is not None:
            callback(
                step,
                {
                    "potential_energy_ev": float(e),
                    "kinetic_energy_ev": ekin,
                    "total_energy_ev": float(e) + ekin,
                    "temperature_k": 2 * ekin / (3 * n * units.kB),
                    "positions": np.asarray(state.position),
                },
            )

    record(0, state, e0)
    energy = e0
    reallocations = rebuilds = 0
    done = 0
    bar = tqdm(
        total=cfg.steps, desc="md", unit="step", disable=_progress_disable(progress)
    )
    try:
        while done < cfg.steps:
            todo = min(cfg.log_interval, cfg.steps - done)
            start = (state, graph, energy)
            k = 0
            just_rebuilt = False
            while k < todo:
                new, g, e, m_done, flag = block(state, graph, energy, todo - k)
                m_done, flag = int(m_done), bool(flag)
                if flag and mode == "jit":  # overflow: grow, redo the block
                    reallocations += 1
                    if reallocations > _MAX_REALLOCATIONS:
                        raise NeighborListOverflowError(
                            f"graph overflowed {reallocations} times (capacity "
                            f"{graph.capacity}); the structure may be exploding — "
                            "check the time step and the potential"
                        )
                    state, graph, energy = start
                    s = structure.replace(positions=state.position)
                    graph = _reallocate(
                        s, g, cutoff, skin, cfg.capacity_multiplier, grow=True
                    )
                    k = 0
                    continue
                state, graph, energy = new, g, e
                k += m_done
                if flag:  # host mode: rebuild at the current positions
                    if just_rebuilt and m_done == 0:
                        raise ConfigError(
                            f"atoms move more than skin/2 = {skin / 2:.3f} Å in one "
                            f"step of {cfg.timestep_fs} fs; reduce the time step or "
                            "increase the skin"
                        )
                    s = structure.replace(positions=state.position)
                    graph = _reallocate(
                        s, graph, cutoff, skin, cfg.capacity_multiplier, grow=False
                    )
                    rebuilds += 1
                    just_rebuilt = True
                else:
                    just_rebuilt = False
            done += todo
            record(done, state, energy)
            bar.update(todo)
    finally:
        bar.close()

    step = np.asarray(records["step"], np.int64)
    epot = np.asarray(records["epot"])
    ekin = np.asarray(records["ekin"])
    return MDResult(
        step=step,
        time_fs=step * float(cfg.timestep_fs),
        potential_energy_ev=epot,
        kinetic_energy_ev=ekin,
        total_energy_ev=epot + ekin,
        temperature_k=2.0 * ekin / (3.0 * n * units.kB),
        positions=np.stack(records["pos"]) if cfg.record_positions else None,
        structure=structure.replace(positions=state.position),
        momenta=np.asarray(state.momentum),
        graph=graph,
        reallocations=reallocations,
        host_rebuilds=rebuilds,
        neighbor_update=mode,
    )


def _progress_disable(progress: bool | None) -> bool | None:
    """The ``disable`` of tqdm for ``progress`` (None: a bar only on a terminal)."""
    return None if progress is None else not progress


# ---------------------------------------------------------------------------
# FIRE relaxation


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
