"""NVE MD with JAX EMT: mldiff's ``md.run_md`` against ASE's VelocityVerlet + EMT.

Run by hand: ``python benchmarks/bench_md.py [--steps 200] [--ase-steps 20]
[--sizes 3 6 10]``. Prints one JSON line per case (fcc Cu, cubic cell repeated
``k`` times each way, 4k³ atoms, 600 K Maxwell–Boltzmann start, 1 fs steps):

* ``ours_ms_per_step``: wall time per step of ``run_md`` after a warm-up run of
  the same length (so compilation is excluded), with ``log_interval=50``;
* ``compile_s``: the warm-up run minus the timed run (mostly compilation);
* ``ase_ms_per_step``: ``ase.md.verlet.VelocityVerlet`` on
  ``ase.calculators.emt.EMT``, same start, ``--ase-steps`` steps;
* ``speedup = ase / ours``; ``neighbor_update`` ("jit" or "host", chosen by
  ``"auto"``), ``host_rebuilds``, ``reallocations``;
* ``drift_ev_per_atom``: max |E_tot − E_tot(0)| / n over our run;
* ``max_position_diff_a``: largest difference from ASE after ``--ase-steps``
  steps (both integrate the same equations from the same start).
"""

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from mldiff import md, potentials, units  # noqa: E402
from mldiff.structure import Structure  # noqa: E402


def _start(repeat: int, seed: int = 0):
    """Cubic fcc Cu (a = 3.61 Å) repeated, with 600 K momenta (zero total)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    m = atoms.get_masses()[:, None]
    rng = np.random.default_rng(seed)
    p = np.sqrt(m * units.kB * 600.0) * rng.standard_normal((len(atoms), 3))
    atoms.set_momenta(p - p.mean(axis=0))
    return atoms


def run_case(repeat: int, steps: int, ase_steps: int) -> dict:
    """Time one cell; return the JSON-able result dictionary."""
    atoms = _start(repeat)
    s = Structure.from_ase(atoms)
    pot = potentials.get("emt")
    params = pot.init(None, s)
    kw = dict(
        timestep_fs=1.0, momenta=atoms.get_momenta(), log_interval=50, progress=False
    )
    t0 = time.perf_counter()
    md.run_md(pot, params, s, steps=steps, **kw)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = md.run_md(pot, params, s, steps=steps, **kw)
    ours = time.perf_counter() - t0
    short = md.run_md(pot, params, s, steps=ase_steps, **kw)

    atoms.calc = EMT()
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    t0 = time.perf_counter()
    dyn.run(ase_steps)
    peer = (time.perf_counter() - t0) / ase_steps
    e = out.total_energy_ev
    return {
        "case": f"Cu{len(s)}-EMT-NVE",
        "n_atoms": len(s),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "steps": steps,
        "neighbor_update": out.neighbor_update,
        "host_rebuilds": out.host_rebuilds,
        "reallocations": out.reallocations,
        "ours_ms_per_step": 1e3 * ours / steps,
        "compile_s": warm - ours,
        "ase_ms_per_step": 1e3 * peer,
        "speedup": peer / (ours / steps),
        "drift_ev_per_atom": float(np.abs(e - e[0]).max() / len(s)),
        "max_position_diff_a": float(
            np.abs(np.asarray(short.structure.positions) - atoms.get_positions()).max()
        ),
    }


def main():
    """Parse options, time each size, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="our MD steps")
    parser.add_argument("--ase-steps", type=int, default=20, help="ASE MD steps")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[3, 6, 10], help="cubic repeats"
    )
    args = parser.parse_args()
    for repeat in args.sizes:  # 108, 864 and 4,000 atoms by default
        print(json.dumps(run_case(repeat, args.steps, args.ase_steps)), flush=True)


if __name__ == "__main__":
    main()
