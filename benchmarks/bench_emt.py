"""EMT energy + forces + stress: mldiff (jitted JAX) against ASE's EMT calculator.

Run by hand: ``python benchmarks/bench_emt.py [--repeat 10] [--ase-repeat 3]``.
Prints one JSON line per case (rattled fcc Cu of 500 and 4,000 atoms):

* ``ours_s``: seconds per call of the jitted ``energy_forces_stress`` on a prebuilt
  neighbor graph, after compilation, synchronised with ``block_until_ready``;
* ``ase_s``: seconds per ``get_potential_energy(); get_forces(); get_stress()`` of
  ``ase.calculators.emt.EMT``, with the positions nudged by 1e-7 Å before each
  repeat so that ASE recomputes (its Verlet neighbor list is reused, as our graph
  is);
* ``speedup = ase_s / ours_s``;
* ``graph_s``: seconds per host-side ``neighbors.allocate`` (not in ``ours_s``),
  and ``compile_s``: the first call of the jitted function, compilation included;
* ``max_abs_force_diff_ev_a``: largest |F_ours − F_ASE| as a check that both
  compute the same thing.
"""

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402

from mldiff import neighbors, quantities  # noqa: E402
from mldiff.potentials import emt  # noqa: E402
from mldiff.structure import Structure  # noqa: E402


def _rattled_cu(repeat: int, seed: int = 0):
    """Cubic fcc Cu (a = 3.61 Å) repeated ``repeat`` times each way, rattled 0.05 Å."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(stdev=0.05, seed=seed)
    return atoms


def seconds(fn, *args, repeat=10):
    """Mean wall time of ``fn(*args)`` after one warm-up call, s."""
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeat):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / repeat


def ase_seconds(atoms, repeat=3):
    """Mean wall time of a fresh ASE EMT energy + forces + stress, s."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    atoms.get_potential_energy()  # build ASE's neighbor list once (not timed)
    total = 0.0
    for k in range(repeat):
        atoms.positions[0, 0] += 1e-7 * (-1) ** k  # forces a recalculation
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        total += time.perf_counter() - t0
    return total / repeat


def run_case(repeat_cells, pot, efs, repeat, ase_repeat):
    """Time one cell; return the JSON-able result dictionary."""
    atoms = _rattled_cu(repeat_cells)
    s = Structure.from_ase(atoms)
    t0 = time.perf_counter()
    g = neighbors.allocate(s, pot.cutoff)
    graph_s = time.perf_counter() - t0
    graph_s = min(graph_s, seconds(neighbors.allocate, s, pot.cutoff, repeat=2))
    params = pot.init(None, s)
    t0 = time.perf_counter()
    e, f, _ = jax.block_until_ready(efs(params, s, g))
    compile_s = time.perf_counter() - t0
    ours = seconds(efs, params, s, g, repeat=repeat)
    peer = ase_seconds(atoms, repeat=ase_repeat)
    ref = atoms.copy()
    ref.calc = EMT()
    return {
        "case": f"Cu{len(atoms)}-EMT-energy-forces-stress",
        "n_atoms": len(atoms),
        "n_edges": int(g.n_edges),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "dtype": str(s.positions.dtype),
        "ours_s": ours,
        "ase_s": peer,
        "speedup": peer / ours,
        "graph_s": graph_s,
        "compile_s": compile_s,
        "energy_diff_ev": abs(float(e) - ref.get_potential_energy()),
        "max_abs_force_diff_ev_a": float(
            np.abs(np.asarray(f) - ref.get_forces()).max()
        ),
    }


def main():
    """Parse options, time both cases, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="JAX repeats")
    parser.add_argument("--ase-repeat", type=int, default=3, help="ASE repeats")
    args = parser.parse_args()
    pot = emt(species=("Cu",))
    efs = jax.jit(quantities.energy_forces_stress(pot.energy))
    for repeat_cells in (5, 10):  # 500 and 4,000 atoms
        result = run_case(repeat_cells, pot, efs, args.repeat, args.ase_repeat)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
