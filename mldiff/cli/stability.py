"""``mldiff stability --train TRAIN.csv --candidates CAND.csv --out OUT.csv``.

Fits a GP of formation energy per atom on composition descriptors to TRAIN
(``formula,formation_energy_ev_per_atom`` and optionally
``uncertainty_ev_per_atom``), uses the training compounds as the competing
phases, and writes for every candidate (a ``formula`` column)
``formula,formation_energy_mean,formation_energy_std,e_hull_mean,p_stable``
with ``p_stable = P(E_hull < δ)`` (:func:`mldiff.stability.predict_stability`:
ARD GP, candidates sampled jointly and competing with each other, Platt
recalibration by cross-validation inside TRAIN).
"""

import os

from mldiff.cli import _common
from mldiff.errors import ConfigError

OUT_COLUMNS = (
    "formula",
    "formation_energy_mean",
    "formation_energy_std",
    "e_hull_mean",
    "p_stable",
)


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "stability", help="probability that candidates lie within δ of the hull"
    )
    p.add_argument(
        "--train",
        required=True,
        help="CSV: formula,formation_energy_ev_per_atom[,uncertainty_ev_per_atom]",
    )
    p.add_argument("--candidates", required=True, help="CSV with a formula column")
    p.add_argument(
        "--delta", type=float, default=0.05, help="tolerance above the hull, eV/atom"
    )
    _common.add_output_argument(
        p, "--out", kind="file", required=True, help="output CSV"
    )
    p.add_argument(
        "--kernel", choices=("matern", "rbf", "rational_quadratic"), default="matern"
    )
    p.add_argument(
        "--restarts",
        type=_common.nonnegative_int,
        default=1,
        help="GP optimiser restarts",
    )
    p.add_argument(
        "--no-ard", action="store_true", help="one length scale for all descriptors"
    )
    p.add_argument(
        "--samples",
        type=_common.positive_int,
        default=2048,
        help="joint Monte-Carlo samples of the candidates' energies",
    )
    p.add_argument(
        "--calibration-folds",
        type=_common.nonnegative_int,
        default=5,
        help="cross-validation folds inside TRAIN for the recalibration (0: off)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _read_csv(path: str, what: str):
    import pandas as pd

    if not os.path.exists(path):
        raise ConfigError(f"{what} file {path!r} does not exist; check the path")
    try:
        return pd.read_csv(path)
    except Exception as err:  # pandas raises several parser errors
        raise ConfigError(f"cannot read {what} CSV {path!r}: {err}") from None


def run(args) -> int:
    """Fit, predict, print a short table and write OUT."""
    from mldiff.io.files import atomic_write
    from mldiff.stability import StabilityConfig, predict_stability

    if not args.delta >= 0:
        raise ConfigError(f"--delta must be >= 0 eV/atom, got {args.delta}")
    train = _read_csv(args.train, "training")
    candidates = _read_csv(args.candidates, "candidate")
    print(
        f"fitting a GP on {len(train)} compounds; {len(candidates)} candidates, "
        f"delta = {args.delta} eV/atom"
    )
    config = StabilityConfig(
        kernel=args.kernel,
        ard=not args.no_ard,
        n_restarts=args.restarts,
        seed=args.seed,
        n_samples=args.samples,
        calibration_folds=args.calibration_folds,
    )
    result = predict_stability(
        train, candidates, args.delta, config=config, progress=None
    )
    out = result[list(OUT_COLUMNS)]
    atomic_write(args.out, out.to_csv(index=False, float_format="%.6g"))
    ranked = out.sort_values("p_stable", ascending=False)
    print(f"{'formula':14s} {'E_f (eV/at)':>12s} {'std':>7s} {'E_hull':>8s} {'P':>6s}")
    for _, r in ranked.head(10).iterrows():
        print(
            f"{r['formula']:14s} {r['formation_energy_mean']:12.3f} "
            f"{r['formation_energy_std']:7.3f} {r['e_hull_mean']:8.3f} "
            f"{r['p_stable']:6.3f}"
        )
    if len(ranked) > 10:
        print(f"... {len(ranked) - 10} more in {args.out}")
    else:
        print(f"wrote {args.out}")
    return 0
