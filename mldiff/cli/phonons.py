"""``mldiff phonons STRUCTURE``: bands, DOS, thermal properties and phonopy files.

Writes to ``--out DIR``: ``phonons.json`` (band path and frequencies, DOS,
thermal properties per primitive cell in phonopy's units, frequencies at the
high-symmetry points), ``phonons.png`` (bands + DOS), and phonopy's
``FORCE_CONSTANTS`` and ``phonopy_params.yaml`` (``phonopy.load`` reads it).
"""

import os

import numpy as np

from mldiff.cli import _common
from mldiff.cli._common import potential_and_params
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "phonons", help="phonon bands, DOS and thermal properties (exact Hessian)"
    )
    p.add_argument("structure", help="unit cell, any file ASE or pymatgen reads")
    _common.add_potential_argument(p)
    add_phonon_arguments(p)
    p.add_argument(
        "--npoints", type=_common.positive_int, default=51, help="q-points per segment"
    )
    p.add_argument(
        "--sigma", type=_common.positive_float, default=0.1, help="DOS smearing, THz"
    )
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.set_defaults(run=run)


def add_phonon_arguments(p, supercell_default=(2, 2, 2), mesh_default=(20, 20, 20)):
    """``--supercell``, ``--mesh``, ``--primitive`` and the temperature grid."""
    p.add_argument(
        "--supercell",
        type=_common.positive_int,
        nargs=3,
        default=list(supercell_default),
        metavar="N",
        help="supercell repeats of the unit cell",
    )
    p.add_argument(
        "--mesh",
        type=_common.positive_int,
        nargs=3,
        default=list(mesh_default),
        metavar="N",
    )
    p.add_argument(
        "--primitive",
        nargs="+",
        default=["auto"],
        help="primitive matrix: 'auto' (phonopy's), 'none' (the unit cell) or "
        "9 numbers, row-major (fractions like 1/2 allowed)",
    )
    p.add_argument(
        "--tmax", type=_common.nonnegative_float, default=1000.0, help="highest T, K"
    )
    p.add_argument(
        "--tstep", type=_common.positive_float, default=10.0, help="T step, K"
    )


def read_structure(path: str):
    """A float64 :class:`~mldiff.structure.Structure` from ASE or pymatgen."""
    from mldiff.structure import Structure

    if not os.path.exists(path):
        raise ConfigError(f"structure file {path!r} does not exist")
    try:
        return Structure.from_ase(_common.read_atoms(path))
    except ConfigError as ase_error:
        try:
            from pymatgen.core import Structure as PmgStructure

            return Structure.from_pymatgen(PmgStructure.from_file(path))
        except Exception as err:  # pymatgen raises many types too
            raise ConfigError(
                f"neither ASE nor pymatgen could read {path!r}: {ase_error}; {err}"
            ) from err


def primitive_matrix(tokens, structure):
    """``--primitive`` tokens → ``[3, 3]`` matrix or ``None``."""
    from fractions import Fraction

    from mldiff.phonons import output

    if len(tokens) == 1 and tokens[0].lower() == "auto":
        return output.auto_primitive_matrix(structure)
    if len(tokens) == 1 and tokens[0].lower() == "none":
        return None
    try:
        values = [float(Fraction(t)) for t in tokens]
    except ValueError as err:
        raise ConfigError(f"--primitive: {err}") from err
    if len(values) != 9:
        raise ConfigError(
            f"--primitive takes 'auto', 'none' or 9 numbers, got {len(values)} values"
        )
    return np.array(values).reshape(3, 3)


RESIDUAL_FORCE_TOLERANCE = 1e-3  # eV/Å, phonopy's practice for relaxed cells


def residual_force(potential, params, structure) -> float:
    """Largest force on an atom of the unit cell, eV/Å (zero at a minimum)."""
    from mldiff import neighbors, quantities

    graph = neighbors.check(neighbors.allocate(structure, potential.cutoff))
    forces = quantities.forces(potential.energy)(params, structure, graph)
    return float(np.linalg.norm(np.asarray(forces), axis=1).max())


def warn_residual_force(residual: float, frequencies_thz=None) -> None:
    """A warning on stderr when the cell is not at a minimum of the potential.

    Harmonic phonons expand about a minimum; residual forces shift the
    frequencies and often show up as imaginary (negative) modes.
    """
    import sys

    if residual <= RESIDUAL_FORCE_TOLERANCE:
        return
    imaginary = ""
    if frequencies_thz is not None:
        lowest = min(float(np.min(f)) for f in frequencies_thz.values())
        if lowest < -0.05:
            imaginary = f" (imaginary modes down to {lowest:.2f} THz may come from it)"
    print(
        f"warning: the structure is not relaxed: residual forces up to "
        f"{residual:.3g} eV/Å{imaginary}; relax it first (mldiff relax) for "
        "harmonic phonons about a minimum",
        file=sys.stderr,
    )


def temperatures(args) -> np.ndarray:
    """``0, tstep, …, tmax`` in K."""
    if args.tstep <= 0 or args.tmax < 0:
        raise ConfigError(
            f"need --tstep > 0 and --tmax >= 0, got {args.tstep} and {args.tmax}"
        )
    return np.arange(0.0, args.tmax + 0.5 * args.tstep, args.tstep)


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def run(args) -> int:
    """Compute phonons, print a short table, write JSON, figure and phonopy files."""
    from mldiff import phonons
    from mldiff.io import phonopy as phonopy_io
    from mldiff.io.files import write_json
    from mldiff.phonons import output
    from mldiff.plotting import phonon_figure

    s = read_structure(args.structure)
    potential, params = potential_and_params(args.potential, s)
    phonons.check_supercell(s, args.supercell, potential.cutoff)
    pm = primitive_matrix(args.primitive, s)
    residual = residual_force(potential, params, s)
    ph = phonons.run(potential, params, s, args.supercell, primitive_matrix=pm)
    result = output.summary(
        ph,
        mesh=args.mesh,
        temperatures=temperatures(args),
        sigma_thz=args.sigma,
        npoints=args.npoints,
    )
    result.update(
        {
            "potential": str(args.potential),
            "supercell_matrix": np.diag(args.supercell).tolist(),
            "primitive_matrix": None if pm is None else np.asarray(pm).tolist(),
            "n_atoms_supercell": len(ph.supercell),
            "max_residual_force_ev_per_angstrom": residual,
        }
    )
    write_json(os.path.join(args.out, "phonons.json"), result)
    fig = phonon_figure(result, result["dos"])
    fig.savefig(os.path.join(args.out, "phonons.png"), dpi=120)
    _close(fig)
    perm = phonopy_io.phonopy_order(ph.supercell, s, args.supercell)
    fc = np.asarray(ph.force_constants)[perm][:, :, perm]
    phonopy_io.write_force_constants(os.path.join(args.out, "FORCE_CONSTANTS"), fc)
    phonopy_io.write_phonopy_params(
        os.path.join(args.out, "phonopy_params.yaml"),
        s,
        ph.supercell,
        args.supercell,
        ph.force_constants,
        primitive_matrix=pm,
    )
    print(f"{'point':8s} frequencies (THz)")
    for label, f in result["high_symmetry_frequencies_thz"].items():
        print(f"{label:8s} " + " ".join(f"{x:7.3f}" for x in np.asarray(f)))
    tp = result["thermal"]
    print(
        f"{'T (K)':>8s} {'F (kJ/mol)':>12s} {'S (J/K/mol)':>12s} {'Cv (J/K/mol)':>13s}"
    )
    t = np.asarray(tp["temperatures_k"])
    for k in np.unique(np.searchsorted(t, [0.0, 100.0, 300.0, 600.0, t[-1]])):
        if k < len(t):
            print(
                f"{t[k]:8.1f} {tp['free_energy_kj_mol'][k]:12.4f} "
                f"{tp['entropy_j_k_mol'][k]:12.4f} "
                f"{tp['heat_capacity_j_k_mol'][k]:13.4f}"
            )
    warn_residual_force(residual, result["high_symmetry_frequencies_thz"])
    print(
        f"wrote {args.out}/phonons.json, phonons.png, FORCE_CONSTANTS, "
        "phonopy_params.yaml"
    )
    return 0
