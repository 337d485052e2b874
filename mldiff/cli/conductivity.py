"""``mldiff conductivity STRUCTURE``: lattice thermal conductivity κ(T).

Second- and third-order force constants by automatic differentiation of the
potential on a supercell, three-phonon linewidths on a Γ-centred q-mesh (the
linear tetrahedron method, or Gaussian smearing with ``--sigma``), κ in the
relaxation-time approximation or (``--method lbte``) from the direct solution
of the linearised Boltzmann equation (phono3py's conventions). The cumulative
κ sorts modes by their RTA mean free paths in both cases. Prints a table;
writes ``DIR/conductivity.json`` (``temperatures_k``, ``kappa_w_mk`` as 3×3
per temperature, ``kappa_scalar_w_mk`` = trace/3), ``DIR/conductivity.png``
(κ(T) and cumulative κ versus mean free path) and phono3py's
``DIR/fc3.hdf5`` (phonopy's supercell atom order).
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
        "--sigma",
        type=_common.positive_float,
        default=None,
        help="Gaussian smearing, THz (default: the linear tetrahedron method)",
    )
    p.add_argument(
        "--method",
        choices=["rta", "lbte"],
        default="rta",
        help="relaxation-time approximation, or the direct solution of the "
        "linearised Boltzmann equation (dense collision matrix: modest meshes)",
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
    """Compute κ(T), print a table, write JSON, a figure and fc3.hdf5."""
    from mldiff import phonons
    from mldiff.io import phono3py as phono3py_io
    from mldiff.io import phonopy as phonopy_io
    from mldiff.io.files import write_json
    from mldiff.phonons import conductivity, third_order

    temps = np.asarray(args.temperatures, np.float64)
    if np.any(temps <= 0):
        raise ConfigError(f"--temperatures must all be > 0 K, got {temps.tolist()}")
    s = read_structure(args.structure)
    potential, params = potential_and_params(args.potential, s)
    phonons.check_supercell(s, args.supercell, potential.cutoff)
    pm = primitive_matrix(args.primitive, s)
    n_primitive = len(s) if pm is None else round(len(s) * abs(np.linalg.det(pm)))
    conductivity.check_mesh(args.mesh, n_primitive, args.method)
    ph = phonons.run(s, potential, params, args.supercell, primitive_matrix=pm)
    fc3 = third_order.third_order(
        potential, params, ph.supercell, cutoff=args.fc3_cutoff
    )
    res = conductivity.run(
        ph, fc3, args.mesh, temps, sigma_thz=args.sigma, method=args.method
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
    result = {
        "potential": str(args.potential),
        "supercell": list(args.supercell),
        "mesh": list(args.mesh),
        "sigma_thz": args.sigma,
        "method": f"{args.method.upper()}, {smearing}, phono3py conventions",
        "temperatures_k": temps,
        "kappa_w_mk": kappa,
        "kappa_scalar_w_mk": scalar,
        "mean_free_path_a": lengths,
        "cumulative_kappa_w_mk": cumulative,
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
    _figure(result, os.path.join(args.out, "conductivity.png"))
    return 0


def _figure(result, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(result["temperatures_k"], result["kappa_scalar_w_mk"], "o-")
    a.set_xlabel("T (K)")
    a.set_ylabel("κ (W/m·K)")
    for t, c in zip(
        result["temperatures_k"], result["cumulative_kappa_w_mk"], strict=True
    ):
        b.semilogx(result["mean_free_path_a"] / 10, c, label=f"{t:g} K")
    b.set_xlabel("mean free path (nm)")
    b.set_ylabel("cumulative κ (W/m·K)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
