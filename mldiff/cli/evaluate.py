"""``mldiff evaluate CHECKPOINT DATA.extxyz --out DIR``: metrics and a parity plot.

On a committee (an ensemble directory or ``ensemble.msgpack``) the errors are
those of the committee mean, and ``metrics.json`` also scores the force
uncertainty: coverage of the central 68 % and 95 % Gaussian intervals,
Gaussian NLL and miscalibration area, with the spreads scaled by the ensemble's
``calibration.json`` (:mod:`mldiff.calibration`) and, suffixed
``_uncalibrated``, raw; ``reliability.png`` draws both calibration curves.
"""

import json
import os

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("evaluate", help="errors of a trained model on labelled data")
    p.add_argument(
        "checkpoint",
        help="model.msgpack, ensemble.msgpack or their output directory",
    )
    p.add_argument("data", help="labelled structures (extxyz)")
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=_common.positive_int, default=8)
    p.set_defaults(run=run)


def _is_ensemble(path: str) -> bool:
    from mldiff.ensemble import MODEL
    from mldiff.training import checkpoint

    if os.path.isdir(path):
        return os.path.exists(os.path.join(path, MODEL))
    return os.path.exists(path) and "ensemble" in checkpoint.read(path)[0]


def _uncertainty(args, items, pred, result: dict) -> None:
    """Add the force-uncertainty scores and draw ``reliability.png``."""
    import numpy as np

    from mldiff import calibration as calib
    from mldiff.plotting import reliability_figure

    res = calib.residuals(items, pred)
    err, std = res["forces_error_ev_per_angstrom"], res["forces_std_ev_per_angstrom"]
    if not np.any(std > 0):
        print("the committee's force spreads are all zero: no uncertainty scores")
        return
    cal = calib.read(args.checkpoint) or calib.Calibration()
    scale = cal.forces_scale
    result.update(calib.uncertainty_metrics(err, scale * std, "forces"))
    result.update(calib.uncertainty_metrics(err, std, "forces", "_uncalibrated"))
    result["forces_calibration_scale"] = scale
    area = result["forces_miscalibration_area"]
    raw_area = result["forces_miscalibration_area_uncalibrated"]
    curves = {
        f"calibrated (σ × {scale:.2f}), area {area:.3f}": calib.calibration_curve(
            err, scale * std
        ),
        f"uncalibrated, area {raw_area:.3f}": calib.calibration_curve(err, std),
    }
    fig = reliability_figure(curves, title="force components")
    fig.savefig(os.path.join(args.out, "reliability.png"), dpi=120)


def run(args) -> int:
    """Predict, write ``metrics.json``, ``parity.png`` (and ``reliability.png``)."""
    import numpy as np

    from mldiff.data import read_extxyz
    from mldiff.io.files import atomic_write
    from mldiff.plotting import parity_figure
    from mldiff.training import load
    from mldiff.training.evaluation import metrics, predict_items

    items = read_extxyz(args.data)
    with_stress = any(it.stress is not None for it in items)
    committee = _is_ensemble(args.checkpoint)
    if committee:
        from mldiff.ensemble import load_ensemble
        from mldiff.training.evaluation import committee_predict_items

        potential, params = load_ensemble(args.checkpoint)
        predict = committee_predict_items
    else:
        model = load(args.checkpoint)
        potential, params = model.potential, model.params
        predict = predict_items
    pred = predict(
        potential, params, items, batch_size=args.batch_size, with_stress=with_stress
    )
    result = metrics(items, pred)
    os.makedirs(args.out, exist_ok=True)
    if committee:
        _uncertainty(args, items, pred, result)
    atomic_write(
        os.path.join(args.out, "metrics.json"), json.dumps(result, indent=2).encode()
    )
    e_ref = [it.energy / len(it.structure) for it in items if it.energy is not None]
    e_pred = [
        p / len(it.structure)
        for it, p in zip(items, pred["energy"], strict=True)
        if it.energy is not None
    ]
    f_ref = np.concatenate(
        [np.ravel(it.forces) for it in items if it.forces is not None] or [np.zeros(0)]
    )
    f_pred = np.concatenate(
        [
            np.ravel(p)
            for it, p in zip(items, pred["forces"], strict=True)
            if it.forces is not None
        ]
        or [np.zeros(0)]
    )
    fig = parity_figure(e_ref, e_pred, f_ref, f_pred, result)
    fig.savefig(os.path.join(args.out, "parity.png"), dpi=120)
    for k, v in result.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0
