"""SevenNet-0 in mldiff's JAX against sevenn's torch model, on the same CPU threads.

Run by hand: ``python benchmarks/bench_universal.py [--parts ef,fc216,fc_low]
[--repeat 5]``. Prints one JSON line per case:

* ``ef-Si{64,216,512}``: energy and forces of rattled diamond Si (2×2×2, 3×3×3,
  4×4×4 conventional cells), float32 on both sides. ``ours_s``: the jitted
  ``energy_and_forces`` after compilation, median of ``--repeat`` calls;
  ``sevenn_s``: ``SevenNetCalculator.calculate`` on the same atoms (its
  neighbor list included, as a user calls it); ``compile_s``: our first call;
  ``ours_peak_rss_mb``: this process's peak resident memory after our calls
  (JAX and torch both loaded, so an upper bound);
* ``fc-Si216``: second-order force constants of 3×3×3 conventional Si (216
  atoms, a = 5.47 Å), ours by the default ``phonons.run`` path (float64
  Hessian rows of the symmetry-independent atom, compiled) against phonopy
  (one displacement of 0.01 Å, then ``produce_force_constants``) driving
  ``SevenNetCalculator``;
* ``fc-GaN192-rattled (estimate)``: a rattled 192-atom GaN cell (wurtzite
  4×4×3, 9,022 edges, no symmetry: phonopy needs ± displacements of 192 × 3
  directions, 1,152 force calls; ours all 576 Hessian rows): 12 rows and 6
  force calls are timed and scaled linearly (the full runs take about 25 and
  40 minutes here).

``speedup = peer / ours``. The two programs run in this one process with the
same thread settings (torch's intra-op threads = the CPU count XLA uses).
"""

import argparse
import json
import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk

jax.config.update("jax_enable_x64", True)

from mldiff import neighbors, phonons, potentials, quantities  # noqa: E402
from mldiff.io.phonopy import phonopy_order  # noqa: E402
from mldiff.phonons.force_constants import force_constant_rows  # noqa: E402
from mldiff.structure import Structure  # noqa: E402


def _sevenn():
    import torch
    from sevenn.calculator import SevenNetCalculator

    torch.set_num_threads(os.cpu_count())
    return SevenNetCalculator(model="7net-0", device="cpu")


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def energy_forces(repeat):
    """Energy + forces of 64-, 216- and 512-atom Si against sevenn."""
    calc = _sevenn()
    pot = potentials.get("sevennet-0")
    ef = jax.jit(quantities.energy_and_forces(pot.energy))
    for reps in (2, 3, 4):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(reps)
        atoms.rattle(0.03, seed=0)
        s = Structure.from_ase(atoms, dtype=np.float32)
        g = neighbors.allocate(s, pot.cutoff)
        params = pot.init(None, s)
        t0 = time.perf_counter()
        jax.block_until_ready(ef(params, s, g))
        compile_s = time.perf_counter() - t0
        args = (params, s, g)
        ours = _median_time(lambda a=args: jax.block_until_ready(ef(*a)), repeat)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        e, f = ef(params, s, g)

        def peer(a=atoms):
            calc.calculate(a.copy(), ["energy", "forces"], ["positions"])

        peer()
        sevenn_s = _median_time(peer, repeat)
        e7, f7 = calc.results["energy"], calc.results["forces"]
        print(
            json.dumps(
                {
                    "case": f"ef-Si{len(atoms)}",
                    "device": jax.devices()[0].device_kind,
                    "threads": os.cpu_count(),
                    "ours_s": ours,
                    "sevenn_s": sevenn_s,
                    "speedup": sevenn_s / ours,
                    "compile_s": compile_s,
                    "ours_peak_rss_mb": round(rss),
                    "max_abs_force_diff": float(np.abs(np.asarray(f) - f7).max()),
                    "energy_diff_per_atom": abs(float(e) - e7) / len(atoms),
                }
            ),
            flush=True,
        )


def _phonopy_fc(atoms, supercell, calc, symmetry):
    from ase import Atoms
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    ph = Phonopy(unit, supercell_matrix=np.diag(supercell), is_symmetry=symmetry)
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions)
        a.pbc = True
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    return ph.force_constants, len(forces)


def force_constants_si216(repeat):
    """Force constants of 216-atom Si: ours (autodiff, compiled) vs phonopy + sevenn."""
    calc = _sevenn()
    pot = potentials.get("sevennet-0")
    # 5.47 Å (PBE's): no neighbour shell within the 0.01 Å displacement of
    # the 4.5 Å start of the XPLOR switch, where the energy is only C¹
    atoms = bulk("Si", "diamond", a=5.47, cubic=True)
    supercell = (3, 3, 3)
    s = Structure.from_ase(atoms)

    def ours():
        ph = phonons.run(pot, None, s, supercell_matrix=supercell)
        jax.block_until_ready(ph.force_constants)
        return ph

    t0 = time.perf_counter()
    ph = ours()
    compile_s = time.perf_counter() - t0
    ours_s = _median_time(ours, repeat)
    t0 = time.perf_counter()
    fc_ref, calls = _phonopy_fc(atoms, supercell, calc, True)
    phonopy_s = time.perf_counter() - t0
    perm = phonopy_order(ph.supercell, s, supercell)  # our atom order -> phonopy's
    fc = np.asarray(ph.force_constants)[perm][:, :, perm].transpose(0, 2, 1, 3)
    print(
        json.dumps(
            {
                "case": "fc-Si216",
                "atoms": fc_ref.shape[0],
                "phonopy_force_calls": calls,
                "ours_s": ours_s,
                "compile_s": compile_s,
                "phonopy_s": phonopy_s,
                "speedup": phonopy_s / ours_s,
                "max_abs_fc_diff_ev_a2": float(np.abs(fc - fc_ref).max()),
            }
        ),
        flush=True,
    )


def force_constants_low_symmetry():
    """192-atom rattled GaN: both sides timed on a sample and scaled (an estimate).

    The full calculations take about 25 and 40 minutes on 2 cores, so this
    times 12 of our 576 Hessian rows (4 at a time; one row of this 9,022-edge
    cell holds about 3.2 GB of float64 intermediates) and 6 of phonopy's
    1,152 displaced force calls, and scales both linearly.
    """
    calc = _sevenn()
    pot = potentials.get("sevennet-0")
    atoms = bulk("GaN", "wurtzite", a=3.19, c=5.19).repeat((4, 4, 3))
    atoms.rattle(0.02, seed=1)
    s = Structure.from_ase(atoms)
    g = neighbors.allocate(s, pot.cutoff)
    params = pot.init(None, s)
    rows = jax.jit(force_constant_rows(pot.energy, chunk_size=4))
    first = jnp.arange(4)
    jax.block_until_ready(rows(params, s, g, first))
    t0 = time.perf_counter()
    jax.block_until_ready(rows(params, s, g, first))
    rows_s = time.perf_counter() - t0
    a = atoms.copy()
    a.calc = calc
    a.get_forces()
    t0 = time.perf_counter()
    for k in range(6):
        b = atoms.copy()
        b.positions[k // 3, k % 3] += 0.01
        b.calc = calc
        b.get_forces()
    call_s = (time.perf_counter() - t0) / 6
    n = len(atoms)
    ours_est, phonopy_est = rows_s * n / 4, call_s * 6 * n
    print(
        json.dumps(
            {
                "case": "fc-GaN192-rattled (estimate)",
                "edges": int(np.asarray(g.mask).sum()),
                "ours_12_rows_s": rows_s,
                "ours_est_s": ours_est,
                "sevenn_force_call_s": call_s,
                "phonopy_force_calls": 6 * n,
                "phonopy_est_s": phonopy_est,
                "speedup_est": phonopy_est / ours_est,
            }
        ),
        flush=True,
    )


def main():
    """Parse the arguments and run the chosen parts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="ef,fc216,fc_low")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    parts = args.parts.split(",")
    if "ef" in parts:
        energy_forces(args.repeat)
    if "fc216" in parts:
        force_constants_si216(max(1, args.repeat // 2))
    if "fc_low" in parts:
        force_constants_low_symmetry()


if __name__ == "__main__":
    main()
