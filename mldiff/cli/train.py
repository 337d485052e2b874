"""``mldiff train CONFIG``: train a learned potential from a YAML/TOML config.

Config file layout (YAML shown; TOML has the same keys)::

    data:
      train: cu_train.extxyz          # labelled structures (extxyz)
      validation: cu_val.extxyz       # optional; else a seeded split of train
      validation_fraction: 0.1
    output: runs/cu                   # checkpoint directory (relative to this file)
    training:                         # mldiff.training.TrainConfig fields
      model: nequip
      model_config: {features: 16, num_layers: 2, l_max: 1, cutoff: 4.5}
      epochs: 50
      batch_size: 4

Flags override the file: ``--epochs``, ``--batch-size``, ``--learning-rate``,
``--seed``, ``--model``, ``--output``, and ``--set key=value`` for any training
field (values parsed as JSON where possible).

Data-parallel training: ``--devices N`` splits every batch over the first ``N``
devices (the batch size must be a multiple of ``N``); ``--mesh batch=N`` says
the same as a mesh spec. ``--distributed`` first calls
``jax.distributed.initialize`` (SLURM, TPU pod or ``MLDIFF_*`` variables; see
:mod:`mldiff.parallel`), after which the mesh spans the devices of all hosts.
"""

import json
import os

from mldiff.cli import _common
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("train", help="train a learned potential from a config file")
    p.add_argument("config", help="YAML or TOML config file")
    p.add_argument("--output", help="checkpoint directory (overrides the config)")
    p.add_argument("--epochs", type=_common.positive_int)
    p.add_argument("--batch-size", type=_common.positive_int)
    p.add_argument("--learning-rate", type=_common.positive_float)
    p.add_argument("--seed", type=int)
    p.add_argument("--model", choices=("nequip", "mace"))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any training option (repeatable)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore an existing checkpoint instead of resuming",
    )
    p.add_argument(
        "--devices",
        type=int,
        help="data-parallel over the first N devices (batch size a multiple of N)",
    )
    p.add_argument(
        "--mesh",
        metavar="batch=N",
        help="device mesh spec, e.g. 'batch=4' (-1: all devices)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize first (multi-host)",
    )
    p.set_defaults(run=run)


def device_mesh(args):
    """The mesh of ``--devices`` / ``--mesh``, or ``None`` for one device."""
    from mldiff import parallel

    if args.devices is None and args.mesh is None:
        return None
    if args.mesh is None:
        return parallel.make_mesh(args.devices)
    axes, shape = parallel.parse_mesh(args.mesh)
    if axes != (parallel.BATCH,):
        raise ConfigError(
            f"--mesh {args.mesh!r}: training a single model shards only the batch "
            "axis; write --mesh batch=N"
        )
    if args.devices is not None and shape[0] not in (-1, args.devices):
        raise ConfigError(
            f"--mesh {args.mesh!r} and --devices {args.devices} disagree; give one"
        )
    return parallel.make_mesh(args.devices, axes, shape)


SECTIONS = {"data": dict, "output": str, "training": dict}
DATA_KEYS = {"train": str, "validation": str, "validation_fraction": (int, float)}


def read_config(path: str) -> dict:
    """The config file, its sections and the ``data`` keys checked."""
    cfg = _common.read_config(path, SECTIONS)
    _common.check_keys(cfg.get("data") or {}, DATA_KEYS, f"{path}: data")
    return cfg


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def merged_training_options(cfg: dict, args) -> dict:
    """The ``training`` section with command-line overrides applied."""
    opts = dict(cfg.get("training", {}))
    for flag, key in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("learning_rate", "learning_rate"),
        ("seed", "seed"),
        ("model", "model"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            opts[key] = value
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if key.startswith("model_config."):
            opts.setdefault("model_config", {})[key.split(".", 1)[1]] = _parse_value(
                value
            )
        else:
            opts[key] = _parse_value(value)
    return opts


def run(args) -> int:
    """Read data, train, report."""
    from mldiff.data import read_extxyz, split_items
    from mldiff.training import from_dict, train

    if args.distributed:
        from mldiff import parallel

        parallel.initialize_distributed()
    cfg = read_config(args.config)
    base = os.path.dirname(os.path.abspath(args.config))
    data = cfg.get("data") or {}
    if "train" not in data:
        raise ConfigError(f"{args.config}: the 'data' section needs a 'train' file")

    def path(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    config = from_dict(merged_training_options(cfg, args))
    frac = data.get("validation_fraction", 0.1)
    if not data.get("validation") and not 0 < frac < 1:
        raise ConfigError(
            f"{args.config}: validation_fraction must lie strictly between 0 and 1 "
            f"(the best epoch is chosen on the held-out share), got {frac}; or "
            "give a 'validation' file"
        )
    # --output is relative to the working directory; the file's `output` to the file
    if args.output:
        output = os.path.abspath(args.output)
    else:
        output = path(cfg.get("output") or "mldiff-run")
    flag = "--output" if args.output else f"{args.config}: output"
    output = _common.output_folder(output, flag)
    items = read_extxyz(path(data["train"]))
    if data.get("validation"):
        train_items, val_items = items, read_extxyz(path(data["validation"]))
    else:
        train_items, val_items, _ = split_items(
            items, (1 - frac, frac, 0.0), seed=config.seed
        )
    mesh = device_mesh(args)
    where = "" if mesh is None else f" on {mesh.size} devices"
    print(
        f"training {config.model} on {len(train_items)} structures "
        f"(validation {len(val_items)}){where} -> {output}"
    )
    result = train(
        config, train_items, val_items, output, resume=not args.restart, mesh=mesh
    )
    best = result.history[result.best_epoch] if result.history else {}
    print(
        f"best epoch {result.best_epoch}: "
        + ", ".join(
            f"{k} {v:.3f}"
            for k, v in best.items()
            if k.endswith(("mev_per_atom", "mev_per_angstrom", "gpa"))
        )
    )
    print(f"model written to {os.path.join(output, 'model.msgpack')}")
    return 0
