"""``mldiff active CONFIG``: query-by-committee active learning of a potential.

Config file layout (YAML shown; TOML has the same keys)::

    oracle: emt                  # ASE's EMT; "mldiff:sw" / "mldiff:emt" (an
                                 # mldiff reference potential through
                                 # mldiff.ase.Calculator), or
                                 # "package.module:Class" of any ASE calculator
    oracle_kwargs: {}            # keyword arguments of that class
    data:
      initial: initial.extxyz    # labeled structures, or instead:
      generate:                  # rattled bulk cells labeled by the oracle
        element: Cu
        crystal: fcc
        a: 3.61
        cubic: true
        repeat: [2, 2, 2]
        n: 8
        rattle: 0.05
      validation: val.extxyz     # optional; or validation_generate: {...}
      pool: pool.extxyz          # optional extra candidates (labels ignored)
    output: runs/active          # run folder (relative to this file)
    active:                      # mldiff.active.ActiveConfig fields
      n_members: 4
      labels_per_round: 8
      max_rounds: 10
      budget: 100
      temperatures_k: [300, 900]
      train: {model: nequip, epochs: 30, model_config: {features: 8}}

A run folder that exists is resumed (same settings), so a killed run is
continued by repeating the command, and a run that stopped on its rounds or
budget is extended by repeating it with a larger ``--rounds`` or
``--budget``. Flags override the file: ``--output``,
``--rounds``, ``--budget``, ``--selection``, ``--seed``.
"""

import importlib
import os

from mldiff.cli import _common
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "active", help="query-by-committee active learning with an ASE oracle"
    )
    p.add_argument("config", help="YAML or TOML config file")
    p.add_argument("--output", help="run folder (overrides the config)")
    p.add_argument("--rounds", type=_common.nonnegative_int, help="max_rounds")
    p.add_argument(
        "--budget", type=_common.nonnegative_int, help="oracle calls at most"
    )
    p.add_argument("--selection", choices=("committee", "random"))
    p.add_argument("--seed", type=int)
    p.set_defaults(run=run)


SECTIONS = {
    "oracle": str,
    "oracle_kwargs": dict,
    "data": dict,
    "output": str,
    "active": dict,
}
DATA_KEYS = {
    "initial": str,
    "generate": dict,
    "validation": str,
    "validation_generate": dict,
    "pool": str,
}


def _is_calculator_class(obj) -> bool:
    """An ASE calculator class: ASE's base class, or its interface by duck typing.

    Checked on the class, before anything is called: a function or any other
    class (``subprocess:run``, ``os:system``, ``subprocess:Popen``) is not an
    oracle and never runs.
    """
    import inspect

    from ase.calculators.calculator import BaseCalculator

    if not inspect.isclass(obj):
        return False
    if issubclass(obj, BaseCalculator):
        return True
    needed = ("get_potential_energy", "get_forces", "calculate")
    return all(callable(getattr(obj, name, None)) for name in needed)


def make_oracle_calculator(name: str, kwargs: dict | None = None):
    """An ASE calculator from a config name (see the module docstring).

    Only ASE calculators are accepted: ``package.module:Class`` must name a
    class with the calculator interface (checked before it is called). A
    calculator whose construction fails stops the run before any label.

    Raises:
        ConfigError: an unknown name, a class that cannot be imported, an
            object that is not an ASE calculator class, keyword arguments that
            are not a mapping, or a failing constructor.
    """
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigError(
            f"oracle_kwargs must be a mapping of keyword arguments, got "
            f"{type(kwargs).__name__} {kwargs!r}"
        )
    kwargs = dict(kwargs or {})
    if name == "emt":
        from ase.calculators.emt import EMT as cls
    elif name.startswith("mldiff:"):
        from mldiff.ase import Calculator

        potential = name.split(":", 1)[1]
        try:
            return Calculator(potential, **kwargs)
        except TypeError as err:
            raise ConfigError(f"oracle {name!r}: bad oracle_kwargs ({err})") from None
    elif ":" in name:
        module, attr = name.split(":", 1)
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"oracle {name!r}: cannot import {attr} from {module} ({err}); "
                "install the package or fix the name"
            ) from err
        if not _is_calculator_class(cls):
            raise ConfigError(
                f"oracle {name!r} is not an ASE calculator class; the oracle must "
                "be 'emt', 'mldiff:<potential>' or 'package.module:CalculatorClass'"
            )
    else:
        raise ConfigError(
            f"unknown oracle {name!r}; use 'emt', 'mldiff:<potential>' or "
            "'package.module:CalculatorClass'"
        )
    try:
        return cls(**kwargs)
    except Exception as err:  # noqa: BLE001 - any failure of the user's setup
        raise ConfigError(
            f"oracle {name!r} could not be set up: {type(err).__name__}: {err}; "
            "fix oracle_kwargs or the calculator's installation"
        ) from None


def generated(spec: dict, oracle, seed: int) -> list:
    """Rattled bulk cells from a ``generate`` section, labeled by ``oracle``."""
    from ase.build import bulk

    from mldiff.active import label_all
    from mldiff.data import rattled
    from mldiff.structure import Structure

    known = {"element", "crystal", "a", "cubic", "repeat", "n", "rattle"}
    unknown = sorted(set(spec) - known)
    if unknown or "element" not in spec:
        raise ConfigError(
            f"generate section: unknown keys {unknown} or no 'element'; keys are "
            f"{sorted(known)}"
        )
    atoms = bulk(
        spec["element"],
        spec.get("crystal"),
        a=spec.get("a"),
        cubic=bool(spec.get("cubic", True)),
    ).repeat(tuple(spec.get("repeat", (1, 1, 1))))
    n, stdev = int(spec.get("n", 8)), float(spec.get("rattle", 0.05))
    frames = rattled(atoms, n, stdev, seed=seed)
    items, failures = label_all(oracle, [Structure.from_ase(a) for a in frames])
    if failures:
        raise ConfigError(
            f"the oracle failed on {len(failures)} generated structures: "
            f"{failures[0]['error']}"
        )
    return items


def run(args) -> int:
    """Read the config, run or resume the loop, print one line per round."""
    from mldiff.active import ActiveConfig, ase_oracle, run_active_learning
    from mldiff.data import read_extxyz, write_extxyz

    cfg = _common.read_config(args.config, SECTIONS)
    _common.check_keys(cfg.get("data") or {}, DATA_KEYS, f"{args.config}: data")
    base = os.path.dirname(os.path.abspath(args.config))

    def path(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    opts = dict(cfg.get("active") or {})
    for flag, key in (
        ("rounds", "max_rounds"),
        ("budget", "budget"),
        ("selection", "selection"),
        ("seed", "seed"),
    ):
        if getattr(args, flag) is not None:
            opts[key] = getattr(args, flag)
    config = ActiveConfig.from_dict(opts)
    oracle = ase_oracle(
        make_oracle_calculator(str(cfg.get("oracle", "emt")), cfg.get("oracle_kwargs"))
    )
    data = cfg.get("data") or {}
    output = (
        os.path.abspath(args.output)
        if args.output
        else path(cfg.get("output") or "mldiff-active")
    )
    flag = "--output" if args.output else f"{args.config}: output"
    output = _common.output_folder(output, flag)
    resuming = os.path.exists(os.path.join(output, "state.json"))
    if resuming:
        initial = []  # the run folder holds the labeled set
    elif data.get("initial"):
        initial = read_extxyz(path(data["initial"]))
    elif data.get("generate"):
        initial = generated(data["generate"], oracle, config.seed)
    else:
        raise ConfigError(
            f"{args.config}: the 'data' section needs 'initial' (an extxyz file) or "
            "'generate'"
        )
    validation = []
    saved_validation = os.path.join(output, "validation.extxyz")
    if data.get("validation"):
        validation = read_extxyz(path(data["validation"]))
    elif resuming and os.path.exists(saved_validation):
        validation = read_extxyz(saved_validation)  # labeled once, not again
    elif data.get("validation_generate"):
        validation = generated(data["validation_generate"], oracle, config.seed + 1)
        os.makedirs(output, exist_ok=True)
        write_extxyz(saved_validation, validation)
    pool = read_extxyz(path(data["pool"]), required=()) if data.get("pool") else []
    print(
        f"active learning ({config.selection}) -> {output}"
        + (" [resuming]" if resuming else f": {len(initial)} initial structures")
    )
    result = run_active_learning(
        config, initial, oracle, output, validation=validation, pool=pool
    )
    final_dir = os.path.join(output, f"round_{result.log[-1]['round']:03d}")
    print(
        f"stopped ({result.stop_reason}) after {len(result.log) - 1} rounds: "
        f"{len(result.labeled)} labeled structures, "
        f"{len(result.failures)} oracle failures; final model in "
        f"{os.path.join(final_dir, 'ensemble')}"
    )
    return 0
