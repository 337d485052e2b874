"""``mldiff calculate FILE``: energy, forces and stress of a structure."""

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("calculate", help="energy, max force and stress of a structure")
    p.add_argument("structure", help="structure file readable by ASE")
    _common.add_potential_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Compute and print."""
    from mldiff.ase import Calculator

    atoms = _common.read_atoms(args.structure)
    atoms.calc = Calculator(args.potential)
    print("\n".join(_common.summary_lines(atoms)))
    return 0
