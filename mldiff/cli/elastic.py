"""``mldiff elastic STRUCTURE``: clamped- and relaxed-ion elastic constants.

Prints the 6×6 Voigt matrices (GPa), the Voigt/Reuss/Hill moduli and the
Christoffel sound velocities along [100], [110] and [111]; ``--out DIR``
writes ``elastic.json``. Tensors and directions are in the Cartesian frame of
the structure file (a CIF is read back with ``a`` along x, which rotates a
primitive cell away from the cubic axes; use POSCAR or extxyz to keep them).
"""

import os

import numpy as np

from mldiff.cli import _common
from mldiff.cli.phonons import potential_and_params, read_structure

DIRECTIONS = {"100": [1, 0, 0], "110": [1, 1, 0], "111": [1, 1, 1]}


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "elastic", help="elastic constants (strain Hessian + internal relaxation)"
    )
    p.add_argument("structure", help="unit cell, any file ASE or pymatgen reads")
    _common.add_potential_argument(p)
    p.add_argument(
        "--relax",
        action="store_true",
        help="relax positions and cell to zero stress first (FIRE)",
    )
    _common.add_output_argument(p, "--out", help="directory for elastic.json")
    p.set_defaults(run=run)


def run(args) -> int:
    """Compute, print and optionally write the elastic constants."""
    from mldiff import md
    from mldiff.io.files import write_json
    from mldiff.phonons import elastic

    s = read_structure(args.structure)
    potential, params = potential_and_params(args.potential, s)
    if args.relax:
        s = md.relax(
            potential, params, s, relax_cell=True, fmax=1e-4, smax=1e-6, max_steps=5000
        ).structure
    ec = elastic.run(potential, params, s)
    rho = elastic.density(s)
    v, _ = elastic.christoffel(ec.relaxed_ion_gpa, rho, list(DIRECTIONS.values()))
    result = {
        "potential": str(args.potential),
        "relaxed_ion_gpa": np.asarray(ec.relaxed_ion_gpa),
        "clamped_ion_gpa": np.asarray(ec.clamped_ion_gpa),
        "stress_gpa": np.asarray(ec.stress_gpa),
        "max_force_ev_a": float(ec.max_force),
        "moduli_relaxed_ion": elastic.moduli(ec.relaxed_ion_gpa),
        "moduli_clamped_ion": elastic.moduli(ec.clamped_ion_gpa),
        "density_kg_m3": rho,
        "sound_velocities_m_s": {k: v[i] for i, k in enumerate(DIRECTIONS)},
        "volume_a3": abs(float(np.linalg.det(np.asarray(s.cell)))),
    }
    for name in ("relaxed_ion_gpa", "clamped_ion_gpa"):
        print(f"{name.replace('_gpa', '').replace('_', '-')} C (GPa, Voigt)")
        for row in result[name]:
            print("  " + " ".join(f"{x:9.2f}" for x in row))
    for key, val in result["moduli_relaxed_ion"].items():
        print(f"{key:18s} {val:9.2f}")
    for d, vel in result["sound_velocities_m_s"].items():
        print(f"v[{d}] (m/s)       " + " ".join(f"{x:8.1f}" for x in vel))
    if np.max(np.abs(result["stress_gpa"])) > 0.1:
        print(
            f"warning: residual stress {np.max(np.abs(result['stress_gpa'])):.2f} GPa;"
            " C is the strain Hessian, not the stress-strain tensor (use --relax)"
        )
    if args.out:
        write_json(os.path.join(args.out, "elastic.json"), result)
    return 0
