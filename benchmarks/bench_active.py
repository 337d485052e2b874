"""Query by committee against random selection: learning curves on Cu and Si.

Run by hand (issue 7, "Done when")::

    python benchmarks/bench_active.py --system cu --out /tmp/bench-active-cu
    python benchmarks/bench_active.py --system si --out /tmp/bench-active-si
    python benchmarks/bench_active.py --system cu --quick      # minutes

For each seed (default 3) and each selection rule (``committee``, ``random``)
the same loop runs (:func:`mldiff.active.run_active_learning`): the same
initial labeled cells, the same model and training, the same exploration
(Langevin MD with the committee mean at several temperatures). Random
selection labels 4 frames a round up to its full budget (4 + 8 × 4 = 36
labels); query by committee gets half of that (18 labels) and labels 2 frames
a round (``--committee-labels-per-round``), so the question the benchmark asks
is exactly issue 7's: does the committee reach, with half the labels,
the error random selection reaches with all of them? Query by committee
with 4 labels a round needed 20 labels on Cu and 24 on Si (the earlier
protocol, both rules 8 × 4; tables kept in
``benchmarks/results/active_learning.md``). Query by committee takes the
largest spreads at or below ``--trust-high`` (DP-GEN's upper trust level),
then the smallest above it when too few are trusted: without the level, the
committee-mean MD of the first, poor models reaches near-collisions whose
enormous forces the committee picks first and which then swamp the training
set (a run without it went from 190 to 44,000 meV/Å on its labeled set
after one round); with the level as a hard bound, every frame of round 1 lay
above it and the run labeled nothing more. Exploration trajectories are cut
at their first frame above the level, and frames with two atoms closer than
``--min-distance-ratio`` × the labeled set's shortest distance count as
above it: the first committee (4 rattled cells) agreed to 0.2 eV/Å on frames with
atoms 0.5 Å apart. The oracle is ASE's ``EMT()`` for Cu and mldiff's
Stillinger–Weber (``mldiff.ase.Calculator("sw")``, equal to matscipy's to 1e-11)
for Si.

Every round trains each member for at least ``--min-steps`` optimizer steps
(default 400; :attr:`mldiff.active.ActiveConfig.min_train_steps`), as DP-GEN
trains a fixed number of steps per iteration. With 40 epochs alone the first
rounds made 40–120 steps, and their models, not the selection, set the pace:
retrained for 400 steps, round 1's committee (8 labels) went from 170 to
32 meV/Å on the test set. Because training is warm-started every round, a
committee that labels 2 frames a round has trained more often than a loop
with 4 by the time both hold the same labels (though less often than
random selection at its full budget: 5 rounds to 12 labels against 9 to 36).
``--retrain-steps`` (default 2000) therefore also retrains random's final
labeled sets and the committee's at its matching label count from scratch,
the same way, so that only the choice of structures differs
(``selection_only`` in the report). Results in
``benchmarks/results/active_learning.md``.

Errors are measured on a fixed held-out test set labeled by the oracle:
Langevin MD of the oracle itself at 300–1200 K (Cu) / 300–1800 K (Si),
frames 100 fs apart, never seen by either loop.

Reports (JSON line + ``DIR/learning_curves.png`` + ``DIR/table.md``):

* the mean force MAE (meV/Å) on the test set against the number of labels, per
  rule, averaged over seeds (and its spread);
* ``random_final_mae``: random selection's mean MAE at its full budget;
* ``committee_labels_to_match``: the fewest labels at which the committee's
  mean MAE is at or below that; the goal is at most half of random's labels.

Runs resume: repeating the command continues the unfinished loops. To use a
machine's cores (or one GPU) for several loops at once, run one process per
rule and seed into the same ``--out`` (``--rules committee --only-seed 1``, …;
create the test set first with one of them), then the plain command reports.
On one H100, 12 such processes (Cu and Si, 3 seeds, 2 rules) took about 2 min
per round each; the 6 Cu processes alone, 65 s.
"""

import argparse
import itertools
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from mldiff import ensemble, md  # noqa: E402
from mldiff.active import (  # noqa: E402
    ActiveConfig,
    ase_oracle,
    committee_predictions,
    label_all,
    read_log,
    run_active_learning,
)
from mldiff.data import rattled  # noqa: E402
from mldiff.io.extxyz import read_extxyz, write_extxyz  # noqa: E402
from mldiff.structure import Structure  # noqa: E402


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def system_setup(system: str, quick: bool):
    """``(base ase.Atoms, ASE calculator, reference mldiff potential name, temps)``."""
    if system == "cu":
        from ase.calculators.emt import EMT

        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms = atoms if quick else atoms.repeat((2, 2, 2))
        return atoms, EMT(), "emt", (300.0, 800.0, 1200.0)
    if system == "si":
        from mldiff.ase import Calculator

        atoms = bulk("Si", "diamond", a=5.431, cubic=True)
        return atoms, Calculator("sw"), "sw", (300.0, 1000.0, 1800.0)
    raise SystemExit(f"unknown system {system!r}; use cu or si")


def test_set(base, calculator, reference: str, temps, n_per_t: int, path: str):
    """Oracle-driven Langevin MD frames (cached in ``path``)."""
    if os.path.exists(path):
        return read_extxyz(path)
    from mldiff import potentials

    pot = potentials.get(reference)
    s0 = Structure.from_ase(base)
    params = pot.init(None, s0)
    frames = []
    for k, t in enumerate(temps):
        run = md.run_md(
            pot, params, s0, steps=100 * (n_per_t + 2), timestep_fs=1.0,
            temperature_K=t, log_interval=100, record_positions=True,
            key=jax.random.key(1000 + k), progress=False,
        )
        for pos in run.positions[3:]:  # skip 200 fs of equilibration
            a = base.copy()
            a.positions = pos
            a.wrap()
            frames.append(Structure.from_ase(a))
    items, fails = label_all(ase_oracle(calculator), frames)
    if fails:
        raise SystemExit(f"the oracle failed on the test set: {fails[0]['error']}")
    write_extxyz(path, items)
    return items


def active_config(args, selection: str, seed: int, temps) -> ActiveConfig:
    """The loop of one rule: random uses the full budget, the committee half.

    Random selection labels ``--labels-per-round`` frames in each of
    ``--rounds`` rounds. Query by committee gets half of random's final
    labeled-set size (initial cells included) and labels
    ``--committee-labels-per-round`` frames a round; everything else (model,
    training, exploration) is the same.
    """
    if selection == "committee":
        total = (args.initial + args.labels_per_round * args.rounds) // 2
        per_round = args.committee_labels_per_round
        rounds = -(-(total - args.initial) // per_round)
    else:
        per_round, rounds = args.labels_per_round, args.rounds
    model = (
        {"num_layers": 1, "features": 4, "l_max": 1, "radial_mlp": [8],
         "cutoff": 4.0, "num_basis": 6}
        if args.quick
        else {"num_layers": 2, "features": 8, "l_max": 1, "radial_mlp": [16, 16],
              "cutoff": 4.5 if args.system == "cu" else 4.0, "num_basis": 8}
    )
    return ActiveConfig(
        train=dict(
            model="nequip", model_config=model, epochs=args.epochs, batch_size=4,
            learning_rate=1e-2, warmup_epochs=1, patience=0, n_buckets=1,
        ),
        n_members=4,
        labels_per_round=per_round,
        max_rounds=rounds,
        budget=per_round * rounds,
        selection=selection,
        temperatures_k=temps,
        trajectories_per_temperature=2,
        md_steps=args.md_steps,
        md_timestep_fs=2.0,
        md_frame_interval=10,
        min_frame_gap=3,
        max_per_trajectory=args.max_per_trajectory
        if selection == "committee"
        else None,
        score=args.score,
        min_train_steps=args.min_steps or None,
        trust_high=args.trust_high if selection == "committee" else None,
        min_distance_ratio=(args.min_distance_ratio or None)
        if selection == "committee"
        else None,
        seed=seed,
    )


def force_mae_curve(run_dir: str, log: list, test_items) -> list:
    """Committee-mean force MAE (meV/Å) on the test set after every round.

    The rounds of one run share their model spec, so ``load_ensemble`` gives
    them one potential object (``training.models.build`` is cached per spec)
    and the prediction compiles once (a new object per round recompiled every
    round: 5 min instead of 1 for a Cu run's curve).
    """
    out = []
    for record in log:
        path = os.path.join(run_dir, f"round_{record['round']:03d}", "ensemble")
        pot, params = ensemble.load_ensemble(path)
        out.append((record["n_labels"], force_mae(pot, params, test_items)))
    return out


def force_mae(potential, stacked_params, test_items) -> float:
    """Committee-mean force MAE (meV/Å) on labeled test structures."""
    pred = committee_predictions(potential, stacked_params, test_items)
    err = np.concatenate(
        [
            (f - np.asarray(it.forces)).ravel()
            for f, it in zip(pred["forces_mean_ev_per_angstrom"], test_items,
                             strict=True)
        ]
    )
    return 1e3 * float(np.mean(np.abs(err)))


def main(argv=None) -> dict:
    """Run both rules for every seed and report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=("cu", "si"), default="cu")
    p.add_argument("--out", default="bench-active")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--only-seed",
        type=int,
        default=None,
        help="run only this seed (0 … seeds-1), e.g. one process per seed; "
        "rerun without it to report all seeds",
    )
    p.add_argument("--initial", type=int, default=4)
    p.add_argument("--labels-per-round", type=int, default=4)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument(
        "--committee-labels-per-round",
        type=int,
        default=2,
        help="labels per round of query by committee, whose budget is half of "
        "random's (default 2: 7 rounds to 18 labels against random's 36)",
    )
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--md-steps", type=int, default=300)
    p.add_argument(
        "--min-steps",
        type=int,
        default=400,
        help="optimizer steps per member and round at least (epochs are raised "
        "while the labeled set is small; 0: --epochs only)",
    )
    p.add_argument(
        "--rules",
        nargs="+",
        choices=("committee", "random"),
        default=["committee", "random"],
        help="run only these selection rules (e.g. one per process); the "
        "comparison is reported when both are run",
    )
    p.add_argument(
        "--trust-high",
        type=float,
        default=None,
        help="query by committee labels no frame with a larger max force spread "
        "(eV/Å; default 0.3 for Cu, 0.5 for Si)",
    )
    p.add_argument(
        "--min-distance-ratio",
        type=float,
        default=0.8,
        help="query by committee labels no frame with a pair closer than this "
        "fraction of the labeled set's shortest distance (0: no check)",
    )
    p.add_argument(
        "--score",
        choices=("max_force_std", "mean_force_std", "energy_std_per_atom"),
        default="max_force_std",
        help="committee disagreement that query by committee ranks by",
    )
    p.add_argument(
        "--max-per-trajectory",
        type=int,
        default=None,
        help="label at most this many frames of one exploration trajectory per "
        "round (default: no limit beyond the frame gap)",
    )
    p.add_argument(
        "--retrain-steps",
        type=int,
        default=2000,
        help="selection-only check: retrain random's final labeled sets and the "
        "committee's at its matching label count from scratch, this many steps "
        "each (0: skip)",
    )
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.trust_high is None:
        args.trust_high = 0.3 if args.system == "cu" else 0.5
    if args.quick:
        args.seeds, args.rounds, args.epochs, args.md_steps = 1, 3, 15, 100
        args.min_steps = min(args.min_steps, 30)
        args.retrain_steps = min(args.retrain_steps, 30)
    os.makedirs(args.out, exist_ok=True)
    base, calculator, reference, temps = system_setup(args.system, args.quick)
    t0 = time.perf_counter()
    test_items = test_set(
        base, calculator, reference, temps, 3 if args.quick else 8,
        os.path.join(args.out, "test.extxyz"),
    )
    _log(f"test set: {len(test_items)} structures of {len(base)} atoms")
    curves: dict[str, list] = {rule: [] for rule in args.rules}
    seeds = range(args.seeds) if args.only_seed is None else [args.only_seed]
    for seed in seeds:
        frames = rattled(base, args.initial, 0.03, seed=seed)
        initial, _ = label_all(
            ase_oracle(calculator), [Structure.from_ase(a) for a in frames]
        )
        for rule in curves:
            run_dir = os.path.join(args.out, f"{rule}-seed{seed}")
            _log(f"{rule}, seed {seed} -> {run_dir}")
            result = run_active_learning(
                active_config(args, rule, seed, temps), initial,
                ase_oracle(calculator), run_dir, progress=False,
                on_round_end=lambda r: _log(
                    f"  round {r['round']}: {r['n_labels']} labels, "
                    f"max σ {r.get('max_disagreement', float('nan')):.3f} eV/Å"
                ),
            )
            curves[rule].append(force_mae_curve(run_dir, result.log, test_items))
    if len(curves) < 2:
        (rule,) = curves
        record = {"system": args.system, "rule": rule, "seeds": list(seeds),
                  "curve": _rounded(*_mean_curve(curves[rule])[:2])}
        print(json.dumps(record), flush=True)
        return record
    summary = summarize(curves)
    summary.update(
        system=args.system, seeds=list(seeds), n_atoms=len(base),
        test_structures=len(test_items), wall_s=round(time.perf_counter() - t0, 1),
        quick=args.quick,
    )
    if args.retrain_steps and summary["committee_labels_to_match"] is not None:
        summary["selection_only"] = selection_only(
            args.out, seeds, summary["committee_labels_to_match"],
            args.retrain_steps, test_items,
        )
        _log(f"selection only: {summary['selection_only']}")
    figure(curves, os.path.join(args.out, "learning_curves.png"), args.system)
    with open(os.path.join(args.out, "table.md"), "w") as fh:
        fh.write(table(curves))
    print(json.dumps(summary), flush=True)
    return summary


def fresh_mae(run_dir: str, n_labels: int, steps: int, test_items) -> float:
    """Test force MAE (meV/Å) of a committee trained from scratch on a labeled set.

    The labeled set is the run's first ``labeled_*.extxyz`` of ``n_labels``
    structures; training is the loop's own (model, members, optimizer, seed)
    for ``steps`` optimizer steps, with no warm start, so two rules' sets
    compared this way differ only in which structures were chosen.
    """
    import dataclasses
    import tempfile

    from mldiff.training.config import from_dict

    with open(os.path.join(run_dir, "config.json")) as fh:
        config = json.load(fh)
    for k in itertools.count():
        path = os.path.join(run_dir, f"labeled_{k:03d}.extxyz")
        if not os.path.exists(path):
            raise SystemExit(f"{run_dir} has no labeled set of {n_labels} structures")
        items = read_extxyz(path)
        if len(items) == n_labels:
            break
    train = from_dict({**config["train"], "seed": config["seed"]})
    per_epoch = -(-len(items) // train.batch_size)
    train = dataclasses.replace(train, epochs=-(-steps // per_epoch))
    with tempfile.TemporaryDirectory() as tmp:
        pot, params = ensemble.train_ensemble(
            train, config["n_members"], items, items, tmp
        ).ensemble
    return force_mae(pot, params, test_items)


def selection_only(out: str, seeds, committee_labels: int, steps: int, test_items):
    """Mean fresh-training MAE: random's final sets against the committee's.

    The loops' models are warm-started every round, so a committee that labels
    fewer frames per round has also trained more often by the time it holds
    ``committee_labels`` structures. Retraining both labeled sets the same way
    from scratch takes that out of the comparison.
    """
    result = {}
    for rule in ("random", "committee"):
        maes = []
        for seed in seeds:
            run_dir = os.path.join(out, f"{rule}-seed{seed}")
            log = read_log(run_dir)
            n = log[-1]["n_labels"] if rule == "random" else committee_labels
            maes.append(fresh_mae(run_dir, n, steps, test_items))
        result[f"{rule}_labels"] = n
        result[f"{rule}_mae_mev_per_angstrom"] = [round(m, 2) for m in maes]
        result[f"{rule}_mean_mae_mev_per_angstrom"] = round(float(np.mean(maes)), 2)
    result["steps"] = steps
    return result


def _mean_curve(runs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.array([x for x, _ in runs[0]])
    maes = np.array([[y for _, y in run] for run in runs])
    return n, maes.mean(axis=0), maes.std(axis=0)


def summarize(curves: dict) -> dict:
    """Random's final mean MAE and the labels the committee needs to match it."""
    n_r, mae_r, _ = _mean_curve(curves["random"])
    n_c, mae_c, _ = _mean_curve(curves["committee"])
    target = float(mae_r[-1])
    reached = [int(n) for n, m in zip(n_c, mae_c, strict=True) if m <= target]
    need = reached[0] if reached else None
    return {
        "random_final_labels": int(n_r[-1]),
        "random_final_mae_mev_per_angstrom": round(target, 2),
        "committee_final_mae_mev_per_angstrom": round(float(mae_c[-1]), 2),
        "committee_labels_to_match": need,
        "goal_met": bool(need is not None and need <= n_r[-1] / 2),
        "committee_curve": _rounded(n_c, mae_c),
        "random_curve": _rounded(n_r, mae_r),
    }


def _rounded(n, mae) -> list:
    return [[int(a), round(float(b), 2)] for a, b in zip(n, mae, strict=True)]


def table(curves: dict) -> str:
    """Markdown table of mean ± std MAE per label count (blank: not run)."""
    cells = {}
    for rule in ("committee", "random"):
        n, m, sd = _mean_curve(curves[rule])
        cells[rule] = {
            int(k): f"{a:.1f} ± {b:.1f}" for k, a, b in zip(n, m, sd, strict=True)
        }
    rows = ["| labels | committee MAE (meV/Å) | random MAE (meV/Å) |", "|---|---|---|"]
    for k in sorted(set(cells["committee"]) | set(cells["random"])):
        rows.append(
            f"| {k} | {cells['committee'].get(k, '')} | {cells['random'].get(k, '')} |"
        )
    return "\n".join(rows) + "\n"


def figure(curves: dict, path: str, system: str) -> None:
    """Learning curves with seed spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for rule, style in (("committee", "o-"), ("random", "s--")):
        n, m, s = _mean_curve(curves[rule])
        ax.errorbar(n, m, yerr=s, fmt=style, capsize=3, label=rule)
    n, m, _ = _mean_curve(curves["random"])
    ax.axhline(m[-1], color="0.5", ls=":", lw=1, label="random, full budget")
    ax.axvline(n[-1] / 2, color="0.5", ls="-.", lw=1, label="half the labels")
    ax.set_xlabel("labeled structures")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_yscale("log")  # the curves span two decades
    ax.set_title(f"{system}: query by committee vs random")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)


if __name__ == "__main__":
    main()
