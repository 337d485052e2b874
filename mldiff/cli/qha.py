"""``mldiff qha STRUCTURE``: quasi-harmonic V(T), B(T) and thermal expansion.

Scales the cell isotropically (``--strains``), relaxes the ions at each volume,
computes phonon free energies on a mesh and fits an equation of state per
temperature. Prints a table; ``--out DIR`` writes ``qha.json``.
"""

import os

import numpy as np

from mldiff.cli import _common
from mldiff.cli.phonons import (
    add_phonon_arguments,
    potential_and_params,
    primitive_matrix,
    read_structure,
    temperatures,
)


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("qha", help="quasi-harmonic thermal expansion")
    p.add_argument(
        "structure", help="relaxed unit cell, any file ASE or pymatgen reads"
    )
    _common.add_potential_argument(p)
    add_phonon_arguments(p, mesh_default=(12, 12, 12))
    p.add_argument(
        "--strains",
        type=_common.finite_float,
        nargs="+",
        default=[-0.01, -0.005, 0.0, 0.005, 0.01, 0.015, 0.02],
        help="linear strains of the volume grid (at least 4)",
    )
    p.add_argument(
        "--eos", choices=("vinet", "birch_murnaghan", "murnaghan"), default="vinet"
    )
    p.add_argument(
        "--no-relax-ions",
        action="store_true",
        help="skip relaxing the ions at each volume (fcc, bcc, diamond need none)",
    )
    _common.add_output_argument(p, "--out", help="directory for qha.json")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run the quasi-harmonic workflow, print a table, optionally write JSON."""
    from mldiff import phonons
    from mldiff.io.files import write_json
    from mldiff.phonons import qha

    s = read_structure(args.structure)
    potential, params = potential_and_params(args.potential, s)
    phonons.check_supercell(s, args.supercell, potential.cutoff)
    result = qha.run(
        potential,
        params,
        s,
        args.supercell,
        eos=args.eos,
        linear_strains=args.strains,
        temperatures=temperatures(args),
        mesh=args.mesh,
        primitive_matrix=primitive_matrix(args.primitive, s),
        relax_ions=not args.no_relax_ions,
    )
    result["potential"] = str(args.potential)
    t = result["temperatures_k"]
    print(f"{'T (K)':>8s} {'V (Å^3)':>12s} {'B (GPa)':>10s} {'alpha (1/K)':>12s}")
    for k in np.unique(np.searchsorted(t, [0.0, 100.0, 300.0, 600.0, t[-1]])):
        if k < len(t):
            print(
                f"{t[k]:8.1f} {result['volume_a3'][k]:12.4f} "
                f"{result['bulk_modulus_gpa'][k]:10.2f} "
                f"{result['linear_expansion_per_k'][k]:12.3e}"
            )
    if args.out:
        write_json(os.path.join(args.out, "qha.json"), result)
    return 0
