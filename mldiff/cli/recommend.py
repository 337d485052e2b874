"""``mldiff recommend``: rank materials for a target property window.

Fits :class:`mldiff.recommender.MatrixFactorization` on a materials ×
properties matrix (``--data transport`` for matminer's transport database with
experimental formation enthalpies, or a CSV file with one row per material,
numeric property columns and optionally a formula column), then ranks either
the materials with an unmeasured target property or new formulas
(``--candidates``) by the probability of lying inside every ``--target``
window. Prints the table; ``--out`` writes it as CSV, ``--save`` the model.

Example::

    mldiff recommend --data transport --target "S_p>=200" --target "kappa_p<=1e5"
    mldiff recommend --data my.csv --candidates new.txt --target "gap>=1" --top 5
"""

import re

from mldiff.cli import _common

_TARGET = re.compile(r"^\s*([^<>=\s]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "recommend", help="matrix-factorisation recommender for missing properties"
    )
    p.add_argument(
        "--data",
        default="transport",
        help="'transport' (shipped database) or a CSV file, one row per material",
    )
    p.add_argument(
        "--formula-column",
        default="formula",
        help="CSV column with the formulas (enables --candidates); default formula",
    )
    p.add_argument(
        "--target",
        action="append",
        required=True,
        help="window on a property, e.g. 'S_p>=200' or 'kappa_p<=1e5'; repeatable",
    )
    p.add_argument(
        "--candidates",
        help="file of new formulas (one per line, or a CSV with a formula column)",
    )
    p.add_argument(
        "--top",
        type=_common.positive_int,
        default=10,
        help="rows to show (default 10)",
    )
    p.add_argument(
        "--rank",
        type=_common.positive_int,
        nargs="+",
        default=[8],
        help="rank, or candidates",
    )
    p.add_argument(
        "--members", type=_common.positive_int, default=4, help="ensemble members"
    )
    p.add_argument(
        "--hidden",
        type=_common.positive_int,
        nargs="+",
        default=[256, 256, 256],
        help="MLP widths of the cold-start descriptor map",
    )
    p.add_argument(
        "--iterations",
        type=_common.positive_int,
        default=30,
        help="outer iterations of the joint cold-start fit",
    )
    p.add_argument(
        "--cold-members",
        type=_common.positive_int,
        default=2,
        help="joint cold-start fits averaged (each adds about as much time)",
    )
    p.add_argument(
        "--autoencoder-steps",
        type=_common.nonnegative_int,
        default=6000,
        help="Adam steps of the warm-start denoising imputer (0: the "
        "factorisation's values)",
    )
    p.add_argument("--seed", type=int, default=0)
    _common.add_output_argument(
        p, "--out", kind="file", help="write the ranking to this CSV file"
    )
    _common.add_output_argument(
        p, "--save", kind="file", help="write the fitted model to this .npz file"
    )
    p.set_defaults(run=run)


def parse_targets(items: list[str]) -> dict:
    """``["S_p>=200", "S_p<=800"]`` → ``{"S_p": (200.0, 800.0)}``."""
    from mldiff.recommender import RecommenderError

    windows: dict[str, list] = {}
    for item in items:
        m = _TARGET.match(item)
        if m is None:
            raise RecommenderError(
                f"cannot read target {item!r}; write it as 'column>=value' or "
                "'column<=value'"
            )
        name, op, value = m.group(1), m.group(2), float(m.group(3))
        window = windows.setdefault(name, [None, None])
        window[0 if op.startswith(">") else 1] = value
    return {k: tuple(v) for k, v in windows.items()}


def _read_data(args):
    import os

    import pandas as pd

    from mldiff.recommender import RecommenderError, transport_matrix

    if args.data == "transport":
        matrix, info = transport_matrix()
        return matrix, list(info["formula"])
    if not os.path.exists(args.data):
        raise RecommenderError(
            f"data file {args.data!r} does not exist; pass 'transport' or a CSV path"
        )
    try:
        table = pd.read_csv(args.data)
    except Exception as err:  # pandas raises several parser errors
        raise RecommenderError(f"cannot read CSV {args.data!r}: {err}") from None
    formulas = None
    if args.formula_column in table.columns:
        formulas = list(table.pop(args.formula_column).astype(str))
        table.index = formulas
    return table, formulas


def _read_candidates(path):
    import os

    import pandas as pd

    from mldiff.recommender import RecommenderError

    if not os.path.exists(path):
        raise RecommenderError(f"candidates file {path!r} does not exist")
    if path.endswith(".csv"):
        table = pd.read_csv(path)
        if "formula" not in table.columns:
            raise RecommenderError(
                f"{path!r} has no 'formula' column (columns: {list(table.columns)})"
            )
        return list(table["formula"].astype(str))
    with open(path) as fh:
        return [line.strip() for line in fh if line.strip()]


def run(args) -> int:
    """Fit, rank, print, optionally write the ranking and the model."""
    import pandas as pd

    from mldiff.io.files import atomic_write
    from mldiff.recommender import MatrixFactorization, RecommenderError

    windows = parse_targets(args.target)
    matrix, formulas = _read_data(args)
    candidates = _read_candidates(args.candidates) if args.candidates else None
    if candidates is not None and formulas is None:
        raise RecommenderError(
            f"--candidates needs formulas for the data rows: add a "
            f"{args.formula_column!r} column to {args.data!r}"
        )
    columns = [str(c) for c in matrix.columns]
    unknown = sorted(set(windows) - set(columns))
    if unknown:
        raise RecommenderError(
            f"--target names column(s) {unknown} that {args.data!r} does not have; "
            f"columns: {columns}"
        )
    rank = args.rank[0] if len(args.rank) == 1 else args.rank
    model = MatrixFactorization(
        rank=rank,
        n_members=args.members,
        hidden=tuple(args.hidden),
        iterations=args.iterations,
        cold_members=args.cold_members,
        autoencoder_steps=args.autoencoder_steps,
        seed=args.seed,
    )
    model.fit(matrix, formulas)
    table = model.recommend(windows, candidates=candidates, top=args.top)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(f"rank {model.rank_}; windows {windows}")
        print(table.to_string())
    if args.out:
        atomic_write(args.out, table.to_csv())
    if args.save:
        model.save(args.save)
    return 0
