"""Molecular dynamics: NVE (velocity Verlet) and Langevin NVT (BAOAB) in jitted blocks.

See :mod:`mldiff.md` for the design (shift, integrators, neighbor graphs).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import simulate

from mldiff import neighbors, quantities, units
from mldiff._typing import ArrayLike
from mldiff.errors import ConfigError, NeighborListOverflowError
from mldiff.md._common import (
    _check_inputs,
    _config,
    _progress_disable,
    _reallocate,
    _shift,
)
from mldiff.potentials import Potential
from mldiff.structure import Structure
from mldiff.units import masses_amu

_AUTO_JIT_LIMIT = 2_000_000  # n² · images below which "auto" updates inside jit
_MAX_REALLOCATIONS = 20


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
