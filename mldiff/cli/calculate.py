"""``mldiff calculate FILE``: energy, forces and stress of each structure in FILE.

A multi-frame file (extxyz trajectory, …) is computed frame by frame;
``FILE@INDEX`` or ``FILE@START:STOP`` picks frames as in ASE.
"""

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "calculate", help="energy, max force and stress of each structure in a file"
    )
    p.add_argument("structure", help="structure file readable by ASE")
    _common.add_potential_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Compute and print."""
    from mldiff.ase import Calculator

    frames = _common.read_frames(args.structure)
    calc = Calculator(args.potential)
    for k, atoms in enumerate(frames):
        atoms.calc = calc
        if len(frames) > 1:
            print(f"{'' if k == 0 else chr(10)}frame {k}")
        print("\n".join(_common.summary_lines(atoms)))
    return 0
