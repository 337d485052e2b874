"""Pool-based active learning on experimental formation enthalpies (GP, 5 seeds).

Run by hand (issue 7, "Done when")::

    python benchmarks/bench_pool_active.py [--seeds 5] [--rounds 12] [--out DIR]

Data: pymatgen's experimental formation enthalpies
(:func:`mldiff.data.experimental_formation_enthalpies`, eV/atom) with
composition descriptors (:func:`mldiff.descriptors.composition_features`,
standardised on the pool). The test set is a seeded 20 % split by chemical
system (:func:`mldiff.data.split_by_chemical_system`), so test systems are
unseen; the rest is the pool. For each seed every acquisition starts from the
same random initial labels and refits a GP (ARD Matérn 5/2 + white noise,
hyperparameters by marginal likelihood, per-point experimental noise) after
each batch (:func:`mldiff.active.run_pool`).

Prints one JSON line per acquisition (mean ± std over seeds of test MAE and
95 % coverage at each label count) and writes ``DIR/pool_learning_curves.png``.
"""

import argparse
import json
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from mldiff.active import run_pool  # noqa: E402
from mldiff.data import experimental_formation_enthalpies, split_by_chemical_system  # noqa: E402
from mldiff.descriptors import composition_features  # noqa: E402
from mldiff.gp import GaussianProcess, kernels  # noqa: E402


def load(seed: int):
    """``(x_pool, y_pool, noise_pool, x_test, y_test)`` for one split."""
    table = experimental_formation_enthalpies()
    x = composition_features(list(table["formula"]))
    y = table["enthalpy_ev_per_atom"].to_numpy(np.float64)
    u = table["uncertainty_ev_per_atom"].fillna(0.0).to_numpy(np.float64)
    train, test = split_by_chemical_system(table["chemical_system"], 0.2, seed=seed)
    mu, sd = x[train].mean(0), x[train].std(0)
    keep = sd > 0
    x = (x[:, keep] - mu[keep]) / sd[keep]
    return x[train], y[train], u[train] ** 2, x[test], y[test]


def make_gp(d: int):
    """GP factory: ARD Matérn 5/2 plus a learnable white-noise floor."""
    return lambda: GaussianProcess(
        kernels.matern(2.5, np.full(d, 3.0)) + kernels.white(0.05), max_steps=100
    )


def main(argv=None) -> list:
    """Run every acquisition for every seed and report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--initial", type=int, default=20)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--acquisitions", nargs="+", default=["max_variance", "random"])
    p.add_argument("--out", default="bench-pool-active")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    curves = {a: [] for a in args.acquisitions}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        xp, yp, noise, xt, yt = load(seed)
        for a in args.acquisitions:
            curves[a].append(
                run_pool(
                    make_gp(xp.shape[1]), xp, yp, x_test=xt, y_test=yt,
                    n_initial=args.initial, batch_size=args.batch,
                    n_rounds=args.rounds, acquisition=a, seed=seed, noise_pool=noise,
                )
            )
    out = []
    for a, runs in curves.items():
        mae = np.array([r["mae"] for r in runs])
        cov = np.array([r["coverage_95"] for r in runs])
        rec = {
            "acquisition": a,
            "seeds": args.seeds,
            "n_labels": runs[0]["n_labels"],
            "mae_mean_ev_per_atom": np.round(mae.mean(0), 4).tolist(),
            "mae_std_ev_per_atom": np.round(mae.std(0), 4).tolist(),
            "coverage_95_mean": np.round(cov.mean(0), 3).tolist(),
            "wall_s_all": round(time.perf_counter() - t0, 1),
        }
        out.append(rec)
        print(json.dumps(rec), flush=True)
    _figure(out, os.path.join(args.out, "pool_learning_curves.png"))
    return out


def _figure(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for r in records:
        ax.errorbar(r["n_labels"], r["mae_mean_ev_per_atom"],
                    yerr=r["mae_std_ev_per_atom"], capsize=3, label=r["acquisition"])
    ax.set_xlabel("labeled compounds")
    ax.set_ylabel("test MAE (eV/atom)")
    ax.set_title("GP on experimental ΔHf: pool-based AL")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)


if __name__ == "__main__":
    main()
