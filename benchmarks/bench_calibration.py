"""Calibrated committee uncertainty on held-out data and phonons (issue #37).

For fcc Cu labelled by EMT and diamond Si labelled by Stillinger-Weber: train a
``--members`` committee of small NequIP models (one vmapped program), which fits
the global spread scale on its validation structures (mldiff.calibration,
Gaussian maximum likelihood, stored in calibration.json); then score, on
held-out test structures, the force-component intervals of the calibrated and
the raw spread (coverage of the central 68 % / 95 % Gaussian intervals, NLL,
miscalibration area), Musil et al.'s finite-committee scale beside them
(fitted on the same validation set), and the phonon frequencies along
seekpath's band path against the exact potential's (coverage of the 95 %
intervals with the force scale, and raw). One JSON line per system, then a
Markdown table.

Run by hand (CPU-cheap default: 4 members, 1-layer NequIP, 30 epochs, 32-atom
Cu and 64-atom Si cells)::

    python benchmarks/bench_calibration.py --out /tmp/bench_calibration
"""

import argparse
import json
import os
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from mldiff import calibration as calib  # noqa: E402
from mldiff import ensemble, phonons, potentials  # noqa: E402
from mldiff.data import generate, split_items  # noqa: E402
from mldiff.phonons import bands  # noqa: E402
from mldiff.training import TrainConfig  # noqa: E402
from mldiff.training.evaluation import committee_predict_items  # noqa: E402

MODEL = dict(
    num_layers=1, features=8, l_max=1, radial_mlp=[16], cutoff=4.0, num_basis=6
)


def _cell(name):
    """Relaxed unit cell (mldiff Structure), ASE base supercell and its calculator."""
    from ase.build import bulk

    from mldiff import md
    from mldiff.ase import Calculator
    from mldiff.structure import Structure

    if name == "Cu-EMT":
        s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        pot, rep, calc = potentials.get("emt"), (2, 2, 2), None
    else:
        s = Structure.from_ase(bulk("Si", "diamond", a=5.43))
        pot, rep, calc = potentials.get("sw"), (2, 2, 2), Calculator("sw")
    params = pot.init(None, s)
    s = md.relax(pot, params, s, relax_cell=True, fmax=1e-6, smax=1e-8).structure
    a0 = float(np.linalg.norm(np.asarray(s.cell)[0]) * np.sqrt(2.0))
    symbol, lattice = ("Cu", "fcc") if name == "Cu-EMT" else ("Si", "diamond")
    base = bulk(symbol, lattice, a=a0, cubic=True).repeat(rep)
    if calc is None:
        from ase.calculators.emt import EMT

        calc = EMT()
    return s, pot, params, base, calc


def run_system(name, args):
    """Train, calibrate and score one system; print and return its JSON row."""
    t0 = time.perf_counter()
    unit, exact, exact_params, base, calc = _cell(name)
    md_kw = (
        dict(md_temperatures_K=(300.0, 600.0, 900.0), n_per_temperature=args.n_md // 3)
        if name == "Cu-EMT"
        else {}
    )
    items = generate(
        base,
        calc,
        n_rattled=args.n_rattled,
        rattle_stdev=0.08,
        n_strained=args.n_strained,
        max_strain=0.03,
        strain_rattle_stdev=0.05,
        seed=args.seed,
        progress=False,
        path=os.path.join(args.out, f"{name}.extxyz"),
        **md_kw,
    )
    train, val, test = split_items(items, (0.6, 0.15, 0.25), seed=args.seed)
    config = TrainConfig(
        model="nequip",
        model_config=MODEL,
        epochs=args.epochs,
        batch_size=4,
        learning_rate=1e-2,
        warmup_epochs=1,
        patience=0,
        n_buckets=1,
        seed=args.seed,
        dtype="float64",
    )
    result = ensemble.train_ensemble(
        config, args.members, train, val, os.path.join(args.out, name)
    )
    t_train = time.perf_counter() - t0
    pot, params = result.ensemble
    cal = calib.read(os.path.join(args.out, name))
    assert cal == result.calibration
    res_val = calib.residuals(val, committee_predict_items(pot, params, val))
    e_val, s_val = (
        res_val["forces_error_ev_per_angstrom"],
        res_val["forces_std_ev_per_angstrom"],
    )
    try:
        musil = calib.fit_scale(e_val, s_val, method="musil", n_members=args.members)
    except Exception as err:  # noqa: BLE001  (K <= 3 or a non-positive alpha^2)
        print(f"musil scale not available: {err}")
        musil = float("nan")
    res = calib.residuals(test, committee_predict_items(pot, params, test))
    err, std = res["forces_error_ev_per_angstrom"], res["forces_std_ev_per_angstrom"]
    row = {
        "system": name,
        "members": args.members,
        "epochs": args.epochs,
        "structures": [len(train), len(val), len(test)],
        "test_force_components": int(err.size),
        "test_forces_rmse_mev_per_angstrom": 1e3 * float(np.sqrt(np.mean(err**2))),
        "forces_scale": cal.forces_scale,
        "forces_scale_musil": musil,
        **calib.uncertainty_metrics(err, cal.forces_scale * std, "forces"),
        **calib.uncertainty_metrics(err, std, "forces", "_uncalibrated"),
    }
    if np.isfinite(musil):
        row.update(calib.uncertainty_metrics(err, musil * std, "forces", "_musil"))
    # phonons along the band path: committee against the exact potential
    sc = (3, 3, 3) if name == "Cu-EMT" else (2, 2, 2)
    ph_exact = phonons.run(exact, exact_params, unit, sc)
    path = bands.band_path(ph_exact.primitive, npoints=args.band_points)
    f_exact = np.asarray(phonons.frequencies(ph_exact, path.qpoints))  # [k, 3p]
    params64 = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    out = ensemble.phonon_frequencies_with_uncertainty(
        pot, params64, unit, sc, path.qpoints, calibration=cal
    )
    mean = np.asarray(out["frequencies_mean_thz"])
    keep = np.abs(f_exact) > 0.2  # leave out the acoustic zeros at Γ
    dev = (mean - f_exact)[keep]
    z95 = float(calib.normal_quantile(0.95))
    for key, tag in (
        ("frequencies_std_thz", ""),
        ("frequencies_std_uncalibrated_thz", "_uncalibrated"),
    ):
        sig = np.asarray(out[key])[keep]
        row[f"phonon_coverage_95{tag}"] = float(np.mean(np.abs(dev) <= z95 * sig))
        row[f"phonon_coverage_68{tag}"] = float(
            np.mean(np.abs(dev) <= float(calib.normal_quantile(0.68)) * sig)
        )
    row["phonon_points"] = int(keep.sum())
    row["phonon_mae_thz"] = float(np.mean(np.abs(dev)))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["train_seconds"] = round(t_train, 1)
    row["device"] = jax.devices()[0].device_kind
    print(json.dumps(row), flush=True)
    return row


def table(rows):
    """The Markdown table of the rows (coverages in %)."""
    lines = [
        "| system | α (ML) | α (Musil) | forces 95 % cal / raw | forces 68 % cal / raw "
        "| area cal / raw | NLL cal / raw | phonons 95 % cal / raw |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['forces_scale']:.2f} | "
            f"{r['forces_scale_musil']:.2f} | "
            f"{100 * r['forces_coverage_95']:.1f} / "
            f"{100 * r['forces_coverage_95_uncalibrated']:.1f} | "
            f"{100 * r['forces_coverage_68']:.1f} / "
            f"{100 * r['forces_coverage_68_uncalibrated']:.1f} | "
            f"{r['forces_miscalibration_area']:.3f} / "
            f"{r['forces_miscalibration_area_uncalibrated']:.3f} | "
            f"{r['forces_nll']:.2f} / {r['forces_nll_uncalibrated']:.2f} | "
            f"{100 * r['phonon_coverage_95']:.1f} / "
            f"{100 * r['phonon_coverage_95_uncalibrated']:.1f} |"
        )
    return "\n".join(lines)


def main():
    """Parse the settings and run every system."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bench_calibration")
    ap.add_argument("--systems", nargs="+", default=["Cu-EMT", "Si-SW"])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--n-rattled", type=int, default=40)
    ap.add_argument("--n-strained", type=int, default=30)
    ap.add_argument("--n-md", type=int, default=30)
    ap.add_argument("--band-points", type=int, default=21)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = [run_system(name, args) for name in args.systems]
    print(table(rows))


if __name__ == "__main__":
    main()
