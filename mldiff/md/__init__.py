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

from mldiff.md.dynamics import (
    MDConfig,
    MDResult,
    kinetic_energy,
    maxwell_boltzmann,
    run_md,
    temperature,
)
from mldiff.md.relaxation import RelaxConfig, RelaxResult, relax
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
