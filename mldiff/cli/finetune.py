"""``mldiff finetune CHECKPOINT DATA``: fine-tune a pretrained model on new labels.

Two modes, chosen by the data file:

* a potential (``DATA.extxyz``): ``CHECKPOINT`` is a ``model.msgpack`` (or its
  directory) from ``mldiff train``, or a pretrained universal model
  (``sevennet-0``, ``sevennet-l3i5``, any SevenNet ``*.pth``); parameters
  whose path matches a ``--freeze`` regex stay fixed, the rest follow the
  training loop (AdamW, warm-up + cosine, EMA, early stopping); per-species
  reference energies are refitted to the new data first
  (``--no-refit-energies`` keeps them). Writes ``OUT/model.msgpack`` (loads
  with ``mldiff.load``) and ``OUT/finetune.json``.
* a composition model (``DATA.csv`` with ``--formula-column`` and one or more
  ``--target-column``): ``CHECKPOINT`` is a composition model written by
  :func:`mldiff.transfer.composition_model.save`; a new head for the target
  columns replaces the old one. Writes ``OUT/composition.msgpack`` and
  ``OUT/finetune.json``.

Parameter paths are the keys joined by ``/``; e.g. for NequIP ``/embedding/``
(species embedding), ``/layer_0/`` (first interaction block), ``/readout``;
for SevenNet ``/embedding/``, ``/layers/0/``, ``/readout``, ``/species_``.

Example::

    mldiff finetune runs/emt target.extxyz --freeze /embedding/ --out runs/ft
    mldiff finetune sevennet-0 target.extxyz --freeze '/layers/[0-3]/' --out ft7
"""

import json
import os

from mldiff.cli import _common
from mldiff.errors import ConfigError


def _fraction(text):
    import argparse

    value = _common.finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"must lie strictly between 0 and 1 (the best epoch is chosen on the "
            f"held-out share), got {text}"
        )
    return value


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "finetune", help="fine-tune a pretrained model with frozen layers"
    )
    p.add_argument(
        "checkpoint",
        help="pretrained model file or directory, or a universal model "
        "(sevennet-0, a SevenNet *.pth)",
    )
    p.add_argument("data", help="labelled structures (.extxyz) or a table (.csv)")
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="REGEX",
        help="freeze parameters whose path matches (repeatable)",
    )
    p.add_argument("--epochs", type=_common.positive_int, default=50)
    p.add_argument("--learning-rate", type=_common.positive_float, default=1e-3)
    p.add_argument("--batch-size", type=_common.positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.1,
        help="share of DATA held out for validation (potentials)",
    )
    p.add_argument(
        "--no-refit-energies",
        action="store_true",
        help="keep the checkpoint's per-species reference energies",
    )
    p.add_argument("--formula-column", default="formula", help="(composition mode)")
    p.add_argument(
        "--target-column",
        action="append",
        default=[],
        help="property column(s) to learn (composition mode, repeatable)",
    )
    p.set_defaults(run=run)


def _potential(args) -> dict:
    from mldiff.data import read_extxyz, split_items
    from mldiff.training import TrainConfig
    from mldiff.transfer.finetune import finetune

    items = read_extxyz(args.data)
    frac = args.validation_fraction
    if not 0.0 < frac < 1.0 or len(items) < 2:
        raise ConfigError(
            f"need ≥ 2 structures and a validation fraction in (0, 1); got "
            f"{len(items)} structures and {frac}"
        )
    train_items, val_items, _ = split_items(items, (1 - frac, frac, 0.0), args.seed)
    config = TrainConfig(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        seed=args.seed,
        warmup_epochs=0,
        dtype="float64",
    )
    result = finetune(
        args.checkpoint,
        config,
        train_items,
        val_items or train_items[-1:],
        args.out,
        freeze=args.freeze,
        refit_energies=not args.no_refit_energies,
    )
    best = result.history[result.best_epoch] if result.history else {}
    return {
        "model": os.path.join(args.out, "model.msgpack"),
        "best_epoch": result.best_epoch,
        **{k: v for k, v in best.items() if k.endswith(("per_atom", "angstrom"))},
    }


def _composition(args) -> dict:
    import pandas as pd

    from mldiff.io.files import write_json
    from mldiff.transfer import composition_model
    from mldiff.transfer.finetune import finetune_composition

    if not args.target_column:
        raise ConfigError("composition mode needs --target-column NAME (repeatable)")
    table = pd.read_csv(args.data)
    missing = [c for c in [args.formula_column, *args.target_column] if c not in table]
    if missing:
        raise ConfigError(
            f"{args.data} has no column(s) {missing}; columns are {list(table)}"
        )
    pretrained, _ = composition_model.load(args.checkpoint)
    trained, report = finetune_composition(
        pretrained,
        list(table[args.formula_column]),
        table[args.target_column].to_numpy(float),
        target_names=args.target_column,
        freeze=args.freeze,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, "composition.msgpack")
    header = {"source": os.path.abspath(args.checkpoint), "freeze": args.freeze}
    composition_model.save(out, trained, header)
    summary = {
        "model": out,
        "final_train_loss": report["history"][-1],
        "loaded": len(report["loaded"]),
        "reset": report["reset"],
        "frozen": len(report["frozen"]),
    }
    write_json(
        os.path.join(args.out, "finetune.json"),
        {**header, **summary, "history": report["history"]},
        indent=2,
    )
    return summary


def run(args) -> int:
    """Fine-tune and print a JSON summary."""
    if not os.path.exists(args.data):
        raise ConfigError(f"data file {args.data!r} does not exist")
    if args.data.endswith(".csv"):
        summary = _composition(args)
    else:
        summary = _potential(args)
    print(json.dumps(summary, indent=2))
    return 0
