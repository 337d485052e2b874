"""``mldiff quickstart``: the main job on an embedded default.

Today: build rattled fcc Cu, relax positions and cell with the JAX EMT potential
through the ASE calculator, and print energy, max force and stress before and
after, checked against ASE's own EMT. The quickstart grows as mldiff does.
"""

import time

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("quickstart", help="relax rattled fcc Cu with JAX EMT (demo)")
    p.add_argument(
        "--repeat", type=int, default=3, help="cubic fcc repeats (4 atoms each)"
    )
    p.add_argument("--rattle", type=float, default=0.1, help="rattle amplitude, Å")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fmax", type=float, default=1e-3, help="force tolerance, eV/Å")
    p.set_defaults(run=run)


def run(args) -> int:
    """Relax and report."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mldiff.ase import Calculator
    from mldiff.cli.relax import relax_atoms

    t0 = time.perf_counter()
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(args.repeat)
    atoms.rattle(stdev=args.rattle, seed=args.seed)
    atoms.calc = Calculator("emt")
    print(f"fcc Cu, {len(atoms)} atoms, rattled by {args.rattle} Å, a = 3.7 Å")
    print("-- before relaxation (JAX EMT)")
    print("\n".join(_common.summary_lines(atoms)))
    converged, n = relax_atoms(atoms, args.fmax, 1000, cell=True)
    print(
        f"-- after {n} BFGS steps with cell relaxation "
        f"({'converged' if converged else 'NOT converged'}, fmax {args.fmax} eV/Å)"
    )
    print("\n".join(_common.summary_lines(atoms)))
    a = (atoms.get_volume() / len(atoms) * 4) ** (1 / 3)
    print(f"lattice constant  {a: .4f} Å")
    check = atoms.copy()
    check.calc = EMT()
    de = abs(check.get_potential_energy() - atoms.get_potential_energy()) / len(atoms)
    df = np.abs(check.get_forces() - atoms.get_forces()).max()
    print(f"check vs ASE EMT  |ΔE| = {de:.1e} eV/atom, max |ΔF| = {df:.1e} eV/Å")
    print(f"wall time         {time.perf_counter() - t0:.1f} s")
    return 0 if converged else 1
