"""``mldiff evaluate CHECKPOINT DATA.extxyz --out DIR``: metrics and a parity plot."""

import json
import os

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("evaluate", help="errors of a trained model on labelled data")
    p.add_argument("checkpoint", help="model.msgpack or a training output directory")
    p.add_argument("data", help="labelled structures (extxyz)")
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=_common.positive_int, default=8)
    p.set_defaults(run=run)


def run(args) -> int:
    """Predict, write ``metrics.json`` and ``parity.png``."""
    import numpy as np

    from mldiff.data import read_extxyz
    from mldiff.io.files import atomic_write
    from mldiff.plotting import parity_figure
    from mldiff.training import load
    from mldiff.training.evaluation import metrics, predict_items

    model = load(args.checkpoint)
    items = read_extxyz(args.data)
    with_stress = any(it.stress is not None for it in items)
    pred = predict_items(
        model.potential,
        model.params,
        items,
        batch_size=args.batch_size,
        with_stress=with_stress,
    )
    result = metrics(items, pred)
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
