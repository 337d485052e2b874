"""``mldiff conductivity STRUCTURE``: lattice thermal conductivity κ(T).

Second- and third-order force constants by automatic differentiation of the
potential on a supercell, three-phonon linewidths on a Γ-centred q-mesh (the
linear tetrahedron method, or Gaussian smearing with ``--sigma``), κ in the
relaxation-time approximation or (``--method lbte``) from the direct solution
of the linearised Boltzmann equation (phono3py's conventions). ``--isotopes``
adds isotope scattering (natural abundances, or ``--mass-variances``) and
``--boundary-mfp-um L`` boundary scattering, as phono3py's ``--isotope`` and
``--boundary-mfp``. The cumulative κ sorts modes by their RTA mean free paths
in both cases. Prints a table; writes ``DIR/conductivity.json``
(``temperatures_k``, ``kappa_w_mk`` as 3×3 per temperature,
``kappa_scalar_w_mk`` = trace/3, cumulative κ against mean free path and
frequency), the mode-resolved results in phono3py's
``DIR/kappa-m{N}{N}{N}.hdf5`` (``-s{σ}`` added with Gaussian smearing; its
dataset names and layouts), ``DIR/conductivity.png`` (κ(T), cumulative κ,
lifetimes against frequency) and phono3py's ``DIR/fc3.hdf5`` (phonopy's
supercell atom order).
"""

import os

import numpy as np

from mldiff.cli import _common
from mldiff.cli.phonons import potential_and_params, primitive_matrix, read_structure
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "conductivity",
        help="lattice thermal conductivity (RTA or LBTE, fc3 by autodiff)",
    )
    p.add_argument("structure", help="unit cell, any file ASE or pymatgen reads")
    _common.add_potential_argument(p)
    p.add_argument(
        "--supercell",
        type=_common.positive_int,
        nargs=3,
        default=[2, 2, 2],
        metavar="N",
        help="supercell repeats of the unit cell",
    )
    p.add_argument(
        "--mesh",
        type=_common.positive_int,
        nargs=3,
        default=[11, 11, 11],
        metavar="N",
        help="Γ-centred q-mesh of the primitive cell",
    )
    p.add_argument(
        "--primitive",
        nargs="+",
        default=["auto"],
        help="primitive matrix: 'auto' (phonopy's), 'none' or 9 numbers",
    )
    p.add_argument(
        "--temperatures",
        type=_common.positive_float,
        nargs="+",
        default=[300.0],
        metavar="T",
        help="temperatures, K (> 0)",
    )
    p.add_argument(
        "--integration",
        choices=["tetrahedron", "gaussian"],
        default=None,
        help="delta functions of energy conservation: the linear tetrahedron "
        "method (default, as phono3py) or Gaussians of width --sigma-thz",
    )
    p.add_argument(
        "--sigma-thz",
        "--sigma",
        dest="sigma",
        type=_common.positive_float,
        default=None,
        help="Gaussian smearing width, THz (implies --integration gaussian)",
    )
    p.add_argument(
        "--method",
        choices=["rta", "lbte"],
        default="rta",
        help="relaxation-time approximation, or the direct solution of the "
        "linearised Boltzmann equation (dense collision matrix: modest meshes)",
    )
    p.add_argument(
        "--isotopes",
        action="store_true",
        help="add isotope scattering (natural abundances; Tamura 1983)",
    )
    p.add_argument(
        "--mass-variances",
        type=float,
        nargs="+",
        default=None,
        metavar="G",
        help="isotope mass variances, one per primitive atom (implies --isotopes)",
    )
    p.add_argument(
        "--boundary-mfp-um",
        type=_common.positive_float,
        default=None,
        metavar="L",
        help="boundary (Casimir) mean free path, µm",
    )
    p.add_argument(
        "--fc3-cutoff",
        type=_common.positive_float,
        default=None,
        help="pair cutoff for third-order force constants, Å (default: none)",
    )
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.set_defaults(run=run)


def run(args) -> int:
    """Compute κ(T), print a table, write JSON, kappa and fc3 HDF5, a figure."""
    from mldiff import phonons
    from mldiff.io import phono3py as phono3py_io
    from mldiff.io import phonopy as phonopy_io
    from mldiff.io.files import write_json
    from mldiff.phonons import conductivity, isotope, kappa_modes, third_order
    from mldiff.plotting import conductivity_figure

    temps = np.asarray(args.temperatures, np.float64)
    if np.any(temps <= 0):
        raise ConfigError(f"--temperatures must all be > 0 K, got {temps.tolist()}")
    if args.integration == "gaussian" and args.sigma is None:
        raise ConfigError("--integration gaussian needs a width: add --sigma-thz 0.1")
    if args.integration == "tetrahedron" and args.sigma is not None:
        raise ConfigError(
            "--sigma-thz is the Gaussian width: drop it for --integration tetrahedron"
        )
    s = read_structure(args.structure)
    isotopes = args.isotopes or args.mass_variances is not None
    if isotopes and args.sigma is None:
        raise ConfigError(
            "isotope scattering is computed with Gaussian smearing only: add "
            "--sigma-thz 0.1 to --isotopes / --mass-variances"
        )
    potential, params = potential_and_params(args.potential, s)
    phonons.check_supercell(s, args.supercell, potential.cutoff)
    pm = primitive_matrix(args.primitive, s)
    n_primitive = len(s) if pm is None else round(len(s) * abs(np.linalg.det(pm)))
    conductivity.check_mesh(args.mesh, n_primitive, args.method)
    ph = phonons.run(potential, params, s, args.supercell, primitive_matrix=pm)
    numbers = np.asarray(ph.primitive.numbers)  # before fc3: refuse bad input early
    isotope.variances_for(numbers, isotopes, args.mass_variances)
    fc3 = third_order.third_order(
        potential, params, ph.supercell, cutoff=args.fc3_cutoff
    )
    res = conductivity.run(
        ph,
        fc3,
        args.mesh,
        temps,
        sigma_thz=args.sigma,
        method=args.method,
        isotopes=isotopes,
        mass_variances=args.mass_variances,
        boundary_mfp_um=args.boundary_mfp_um,
    )
    smearing = "tetrahedron method" if args.sigma is None else "Gaussian smearing"
    kappa = np.asarray(res.kappa)
    scalar = np.trace(kappa, axis1=1, axis2=2) / 3
    mfp = np.asarray(conductivity.mean_free_paths(res))
    positive = mfp[mfp > 0]
    lengths = (
        np.logspace(
            np.log10(max(positive.min(), 1e-3)), np.log10(positive.max() * 1.01), 60
        )
        if positive.size
        else np.array([1.0])
    )
    cumulative = conductivity.cumulative_kappa(res, lengths)
    f = np.asarray(res.frequencies)
    f_grid = np.linspace(0.0, f.max() * 1.001, 100)
    result = {
        "potential": str(args.potential),
        "supercell": list(args.supercell),
        "mesh": list(args.mesh),
        "sigma_thz": args.sigma,
        "method": f"{args.method.upper()}, {smearing}, phono3py conventions",
        "isotopes": bool(isotopes),
        "boundary_mfp_um": args.boundary_mfp_um,
        "temperatures_k": temps,
        "kappa_w_mk": kappa,
        "kappa_scalar_w_mk": scalar,
        "mean_free_path_a": lengths,
        "cumulative_kappa_w_mk": cumulative,
        "frequency_thz": f_grid,
        "cumulative_kappa_frequency_w_mk": kappa_modes.cumulative_kappa_frequency(
            res, f_grid
        ),
    }
    print(f"{'T (K)':>8s} {'kxx':>10s} {'kyy':>10s} {'kzz':>10s} {'k (W/mK)':>10s}")
    for t, k, ks in zip(temps, kappa, scalar, strict=True):
        print(f"{t:8.1f} {k[0, 0]:10.3f} {k[1, 1]:10.3f} {k[2, 2]:10.3f} {ks:10.3f}")
    write_json(os.path.join(args.out, "conductivity.json"), result)
    try:
        perm = phonopy_io.phonopy_order(ph.supercell, s, args.supercell)
        phono3py_io.write_fc3(
            os.path.join(args.out, "fc3.hdf5"), np.asarray(fc3), order=perm
        )
    except ConfigError:
        phono3py_io.write_fc3(os.path.join(args.out, "fc3.hdf5"), np.asarray(fc3))
    volume = float(abs(np.linalg.det(np.asarray(ph.primitive.cell))))
    datasets = kappa_modes.phono3py_datasets(
        res,
        args.mesh,
        sigma_thz=args.sigma,
        kappa_unit_conversion=conductivity.KAPPA_TO_W_MK / volume,
        isotopes=isotopes,
        boundary_mfp_um=args.boundary_mfp_um,
    )
    name = phono3py_io.kappa_filename(args.mesh, args.sigma)
    phono3py_io.write_kappa(os.path.join(args.out, name), datasets)
    modes = {
        "frequencies_thz": f,
        "lifetimes_ps": np.asarray(kappa_modes.lifetimes(res)),
    }
    fig = conductivity_figure({**result, **modes})
    fig.savefig(os.path.join(args.out, "conductivity.png"), dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return 0
