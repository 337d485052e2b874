"""Force constants: mldiff's exact Hessian against phonopy + an ASE calculator.

Run by hand: ``python benchmarks/bench_force_constants.py [--repeat 5]
[--peer-repeat 2] [--skip-large]``. Prints one JSON line per case:

* ``Cu256-EMT``: fcc Cu, 4×4×4 conventional supercell (256 atoms), JAX EMT;
* ``Si64-SW-rattled``: diamond Si 2×2×2 conventional (64 atoms) rattled by
  0.02 Å, Stillinger–Weber: no symmetry, so phonopy needs 384 displaced force
  calls (± displacements of 64 × 3 directions);
* ``Cu1728-EMT``: fcc Cu 12×12×12 primitive (1,728 atoms), ours only, run in a
  child process so that its peak resident memory is its own.

Fields:

* ``ours_s``: seconds for the force constants by the default path of
  ``phonons.run`` — spglib site symmetry (host) + jitted Hessian rows of the
  symmetry-independent atoms + rebuilding the rest + sum-rule projection —
  after compilation (the compiled function is reused, as in a parameter scan);
* ``ours_full_s``: the same with all 3n Hessian rows (no symmetry);
* ``ours_run_s``: the whole ``phonons.run`` from the unit cell (supercell,
  neighbor graph, site symmetry, force constants, images), compiled;
* ``compile_s``: the first call of the symmetry-reduced path, compilation
  included (a one-shot user pays this once);
* ``phonopy_s``: phonopy's ``generate_displacements(distance=0.01)`` + one
  ``get_forces`` per displaced supercell through ``mldiff.ase.Calculator`` on
  the same JAX potential (compiled before timing) + ``produce_force_constants``;
* ``speedup = phonopy_s / ours_s``, ``speedup_full = phonopy_s / ours_full_s``
  and ``speedup_run = phonopy_s / ours_run_s``;
* ``max_abs_fc_diff_ev_a2``: largest |Φ_ours − Φ_phonopy| (finite differences of
  0.01 Å carry O(h²) errors of ~1e-3 eV/Å²);
* ``peak_rss_mb`` (1,728-atom case): the child process's peak resident memory,
  everything included (Python, JAX, the 215 MB result).
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from mldiff import neighbors, phonons, potentials  # noqa: E402
from mldiff.phonons import force_constants as fcm  # noqa: E402
from mldiff.structure import Structure  # noqa: E402

FCC_PRIMITIVE = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def seconds(fn, *args, repeat=5):
    """Mean wall time of ``fn(*args)`` after one warm-up call, s."""
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeat):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / repeat


def _ours(pot, params, s, *, symmetric: bool):
    """A callable computing force constants of ``s`` the way ``phonons.run`` does."""
    g = neighbors.allocate(s, pot.cutoff)
    full_fn = jax.jit(
        lambda p, s_, g_: fcm.symmetrize(fcm.force_constants(pot.energy)(p, s_, g_))
    )
    rows_fn = jax.jit(fcm.force_constant_rows(pot.energy))
    rebuild = jax.jit(lambda rows, sym: fcm.symmetrize(fcm.distribute(rows, sym)))

    def full():
        return full_fn(params, s, g)

    def reduced():  # site symmetry (host, spglib) is part of the cost
        sym = fcm.site_symmetry(s)
        return rebuild(rows_fn(params, s, g, jnp.asarray(sym.independent)), sym)

    return reduced if symmetric else full


def _phonopy(atoms, supercell_matrix, primitive_matrix, name):
    """Callable running phonopy's finite displacements; returns its fc."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from mldiff.ase import Calculator

    calc = Calculator(name)
    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell),
        scaled_positions=atoms.get_scaled_positions(),
    )
    calls = []

    def run():
        ph = Phonopy(
            unit,
            supercell_matrix=supercell_matrix,
            primitive_matrix=primitive_matrix,
            log_level=0,
        )
        ph.generate_displacements(distance=0.01)
        forces = []
        for sc in ph.supercells_with_displacements:
            a = Atoms(
                sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True
            )
            a.calc = calc
            forces.append(a.get_forces())
        ph.forces = forces
        ph.produce_force_constants()
        calls.append(len(forces))
        return ph

    ph = run()  # compiles the calculator for this supercell shape (not timed)
    return run, ph, calls


def compare(case, atoms, supercell_matrix, primitive_matrix, name, repeat, peer_repeat):
    """Time ours vs phonopy on the same supercell and print one JSON line."""
    pot = potentials.get(name)
    run_peer, ph, calls = _phonopy(atoms, supercell_matrix, primitive_matrix, name)
    s = Structure.create(
        ph.supercell.positions, ph.supercell.cell, ph.supercell.numbers
    )
    params = pot.init(None, s)
    reduced = _ours(pot, params, s, symmetric=True)
    t0 = time.perf_counter()
    fc = jax.block_until_ready(reduced())
    compile_s = time.perf_counter() - t0
    ours = seconds(reduced, repeat=repeat)
    ours_full = seconds(_ours(pot, params, s, symmetric=False), repeat=repeat)
    unit = Structure.from_ase(atoms)

    def end_to_end():
        return phonons.run(
            pot, params, unit, supercell_matrix, primitive_matrix=primitive_matrix
        ).force_constants

    run_s = seconds(end_to_end, repeat=repeat)
    t0 = time.perf_counter()
    for _ in range(peer_repeat):
        run_peer()
    peer = (time.perf_counter() - t0) / peer_repeat
    diff = np.abs(np.transpose(np.asarray(fc), (0, 2, 1, 3)) - ph.force_constants)
    print(
        json.dumps(
            {
                "case": case,
                "device": jax.devices()[0].device_kind,
                "jax": jax.__version__,
                "n_atoms": len(s),
                "independent_atoms": len(fcm.site_symmetry(s).independent),
                "phonopy_force_calls": calls[-1],
                "ours_s": ours,
                "ours_full_s": ours_full,
                "ours_run_s": run_s,
                "compile_s": compile_s,
                "phonopy_s": peer,
                "speedup": peer / ours,
                "speedup_full": peer / ours_full,
                "speedup_run": peer / run_s,
                "max_abs_fc_diff_ev_a2": float(diff.max()),
            }
        ),
        flush=True,
    )


def large_case(repeat_full: int = 1):
    """Cu 12×12×12 primitive (1,728 atoms): time and peak memory, ours only."""
    pot = potentials.get("emt")
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6).repeat(12))
    params = pot.init(None, s)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reduced = _ours(pot, params, s, symmetric=True)
    t0 = time.perf_counter()
    jax.block_until_ready(reduced())
    compile_s = time.perf_counter() - t0
    ours = seconds(reduced, repeat=3)
    rss_reduced = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours_full = seconds(_ours(pot, params, s, symmetric=False), repeat=repeat_full)
    rss_full = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "case": "Cu1728-EMT",
                "device": jax.devices()[0].device_kind,
                "jax": jax.__version__,
                "n_atoms": len(s),
                "ours_s": ours,
                "compile_s": compile_s,
                "ours_full_s": ours_full,
                "chunk_size": fcm.DEFAULT_CHUNK_SIZE,
                "rss_before_mb": rss0,
                "peak_rss_reduced_mb": rss_reduced,
                "peak_rss_mb": rss_full,
            }
        ),
        flush=True,
    )


def main():
    """Parse arguments and run every case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peer-repeat", type=int, default=2)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_only:
        large_case()
        return
    compare(
        "Cu256-EMT",
        bulk("Cu", "fcc", a=3.6, cubic=True),
        np.diag([4, 4, 4]),
        FCC_PRIMITIVE,
        "emt",
        args.repeat,
        args.peer_repeat,
    )
    si = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    si.rattle(0.02, seed=1)
    compare(
        "Si64-SW-rattled",
        si,
        np.eye(3, dtype=int),
        None,
        "sw",
        args.repeat,
        args.peer_repeat,
    )
    if not args.skip_large:  # own process: its peak memory is its own
        subprocess.run([sys.executable, __file__, "--large-only"], check=True)


if __name__ == "__main__":
    main()
