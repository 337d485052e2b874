"""``mldiff relax FILE``: relax positions (and optionally the cell) with BFGS."""

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("relax", help="relax a structure with an mldiff potential")
    p.add_argument("structure", help="structure file readable by ASE")
    _common.add_potential_argument(p)
    p.add_argument(
        "--fmax",
        type=_common.positive_float,
        default=1e-3,
        help="force tolerance, eV/Å",
    )
    p.add_argument(
        "--steps",
        type=_common.positive_int,
        default=500,
        help="maximum optimiser steps",
    )
    p.add_argument("--cell", action="store_true", help="also relax the cell")
    _common.add_output_argument(
        p,
        "--output",
        kind="file",
        help="write the relaxed structure here (extxyz, …)",
    )
    p.set_defaults(run=run)


def relax_atoms(atoms, fmax: float, steps: int, cell: bool, progress: bool = True):
    """Relax ``atoms`` in place with BFGS (FrechetCellFilter if ``cell``).

    Returns:
        ``(converged, n_steps)``.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from tqdm.auto import tqdm

    target = FrechetCellFilter(atoms) if cell else atoms
    opt = BFGS(target, logfile=None)
    bar = tqdm(
        total=steps,
        desc="relax",
        unit="step",
        disable=None if progress else True,  # None: only on a terminal
        leave=False,
    )

    def report():
        bar.update(1)
        bar.set_postfix(fmax=f"{(target.get_forces() ** 2).sum(1).max() ** 0.5:.2e}")

    opt.attach(report)
    converged = opt.run(fmax=fmax, steps=steps)
    bar.close()
    return bool(converged), opt.get_number_of_steps()


def run(args) -> int:
    """Relax, print a summary, and optionally write the result."""
    from mldiff.ase import Calculator

    atoms = _common.read_atoms(args.structure)
    atoms.calc = Calculator(args.potential)
    converged, n = relax_atoms(atoms, args.fmax, args.steps, args.cell)
    print(f"{'converged' if converged else 'NOT converged'} after {n} BFGS steps")
    print("\n".join(_common.summary_lines(atoms)))
    if args.output:
        from ase.io import write

        write(args.output, atoms)
    return 0 if converged else 1
