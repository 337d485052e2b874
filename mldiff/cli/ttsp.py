"""``mldiff ttsp FILE.csv``: time–temperature superposition of viscoelastic data.

FILE has a header with units, e.g.
``temperature_k,frequency_rad_s,storage_modulus_pa,loss_modulus_pa``. Prints
the shift factors, WLF/Arrhenius fits and the TTSP verdict; ``--out DIR``
writes ``ttsp.json`` and the figures; ``--json`` prints the summary as JSON.
"""

import json
import os

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("ttsp", help="time-temperature superposition (master curves)")
    p.add_argument("file", help="CSV table with unit-carrying column names")
    p.add_argument(
        "--reference-temperature",
        type=_common.positive_float,
        required=True,
        help="reference temperature in K (inside the measured range)",
    )
    p.add_argument(
        "--vertical", action="store_true", help="also fit vertical shifts bT"
    )
    _common.add_output_argument(p, "--out", help="directory for ttsp.json and figures")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    """Read the table, superpose, diagnose, print and optionally write."""
    from mldiff import ttsp
    from mldiff.ttsp import figures

    table = ttsp.read_csv(args.file)
    summary = ttsp.analyse(table, args.reference_temperature, vertical=args.vertical)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'T (K)':>8s} {'log10 aT':>10s} {'std':>8s}")
        for t, v in summary["log10_aT"].items():
            print(f"{float(t):8.2f} {v:10.4f} {summary['log10_aT_std'][t]:8.4f}")
        w, a = summary["wlf"], summary["arrhenius"]
        print(
            f"WLF        C1 = {w['c1']:.3f} ± {w['c1_std']:.3f}, "
            f"C2 = {w['c2']:.2f} ± {w['c2_std']:.2f} K (Tref {w['t_ref_k']:g} K), "
            f"reduced chi2 {w['reduced_chi2']:.3g}, valid range {w['valid_range_k']}"
        )
        print(
            f"Arrhenius  Ea = {a['activation_energy_kj_mol']:.1f} ± "
            f"{a['activation_energy_std_kj_mol']:.1f} kJ/mol, reduced chi2 "
            f"{a['reduced_chi2']:.3g}, valid range {a['valid_range_k']}"
        )
        for name, test in summary["diagnostics"].items():
            if test["passed"] is None:
                print(f"{name:16s} undetermined")
                continue
            state = "pass" if test["passed"] else "FAIL"
            print(
                f"{name:16s} {state}  statistic {test['statistic']:.4g} "
                f"(threshold {test['threshold']:.4g})"
            )
        holds = summary["ttsp_holds"]
        print(
            {True: "TTSP holds", False: "TTSP FAILS:"}.get(holds, "TTSP undetermined:")
        )
        for reason in summary["reasons"]:
            print(f"  - {reason}")
    if args.out:
        import matplotlib

        from mldiff.io.files import atomic_write

        matplotlib.use("Agg")
        atomic_write(
            os.path.join(args.out, "ttsp.json"),
            json.dumps(summary, indent=2).encode(),
        )
        figs = {
            "master_curve.png": figures.master_curve_figure(table, summary),
            "shift_factors.png": figures.shift_factor_figure(summary),
        }
        if table.dynamic():
            figs["van_gurp_palmen.png"] = figures.van_gurp_palmen_figure(table)
        for name, fig in figs.items():
            fig.savefig(os.path.join(args.out, name), dpi=120)
    return 0
