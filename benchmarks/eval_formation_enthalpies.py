"""Formation enthalpies and stability: the two "done when" evaluations in one run.

(a) Regression, split by chemical system (seeded ~80/20, whole systems on one
    side): mldiff's GP on standardised composition descriptors vs
    scikit-learn's ``GaussianProcessRegressor`` on the same descriptors with a
    comparable kernel (``C · Matérn-5/2 + White``, ``normalize_y=True``, the
    experimental uncertainties as ``alpha``). Reported: test MAE, 95 %
    interval coverage, mean negative log predictive density (NLPD), fit time.

(b) Stability, split by compound (seeded 80/20, so competing phases exist).
    Truth: each test compound's energy above the hull of *all* experimental
    compounds (train and test) and the elements, from pymatgen's
    ``PhaseDiagram.get_e_above_hull``; stable means ``< δ = 0.05 eV/atom``.
    Prediction: ``P(E_hull < δ)`` from mldiff's GP trained on the training
    compounds, with only those as known phases, vs a baseline that uses the GP
    mean alone (probability 1 if ``μ - h < δ`` else 0). Reported: ROC-AUC,
    Brier score, reliability-diagram bins, number of unstable test compounds;
    a constant base rate (share of training compounds within δ of the training
    hull) is reported too, since most known compounds are stable.

Run by hand (2 CPU cores: a few minutes)::

    python benchmarks/eval_formation_enthalpies.py [--seed 0] [--out DIR]

``--out DIR`` writes ``results.json`` and ``reliability.png``.
"""

import argparse
import json
import os
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn import metrics  # noqa: E402

from mldiff import descriptors, stability  # noqa: E402
from mldiff.data import (  # noqa: E402
    experimental_formation_enthalpies,
    split,
    split_by_chemical_system,
)

DELTA = 0.05  # eV/atom


def regression_scores(y, mean, std):
    """MAE (eV/atom), 95 % coverage, mean NLPD (nats) of Gaussian predictions."""
    z = norm.ppf(0.975)
    return {
        "mae_ev_per_atom": float(np.mean(np.abs(y - mean))),
        "coverage_95": float(np.mean(np.abs(y - mean) <= z * std)),
        "nlpd": float(-np.mean(norm.logpdf(y, mean, std))),
    }


def sklearn_gp(x_train, y_train, noise, x_test, seed, n_restarts):
    """scikit-learn's GP with C·Matérn(5/2)+White on the same inputs."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    d = x_train.shape[1]
    kernel = ConstantKernel(1.0) * Matern(
        length_scale=np.sqrt(d), nu=2.5
    ) + WhiteKernel(0.05)
    model = GaussianProcessRegressor(
        kernel,
        alpha=noise / np.var(y_train) + 1e-10,  # alpha acts on standardised y
        normalize_y=True,
        n_restarts_optimizer=n_restarts,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_train, y_train)
    mean, std = model.predict(x_test, return_std=True)
    return mean, std, model


def evaluate_regression(table, seed, config):
    """Evaluation (a)."""
    train, test = split_by_chemical_system(table["chemical_system"], 0.2, seed=seed)
    f = table["formula"].to_numpy()
    y = table["enthalpy_ev_per_atom"].to_numpy()
    u = table["uncertainty_ev_per_atom"].to_numpy()
    t0 = time.perf_counter()
    predict = stability.fit_formation_energy(
        f[train], y[train], u[train], config=config
    )
    mean, std = predict(f[test])
    t_ours = time.perf_counter() - t0

    x = descriptors.composition_features(f)
    center, scale = x[train].mean(0), x[train].std(0)
    scale = np.where(scale > 0, scale, 1.0)
    xs = (x - center) / scale
    noise = np.where(np.isfinite(u[train]), u[train], 0.0) ** 2
    t0 = time.perf_counter()
    sk_mean, sk_std, sk_model = sklearn_gp(
        xs[train], y[train], noise, xs[test], seed, config.n_restarts
    )
    t_sk = time.perf_counter() - t0
    out = {
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_test_systems": int(table["chemical_system"].iloc[test].nunique()),
        "mldiff": {**regression_scores(y[test], mean, std), "fit_s": t_ours},
        "sklearn": {**regression_scores(y[test], sk_mean, sk_std), "fit_s": t_sk},
        "mldiff_kernel": str(predict.gp.kernel_),
        "sklearn_kernel": str(sk_model.kernel_),
    }
    return out, (y[test], mean, std)


def e_above_hull_all(formulas, energies, targets):
    """Pymatgen's e_above_hull of ``targets`` w.r.t. all compounds + elements."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comps = [Composition(s) for s in formulas]
    sets = [frozenset(e.symbol for e in c.elements) for c in comps]
    entries = [
        PDEntry(c, e * c.num_atoms) for c, e in zip(comps, energies, strict=True)
    ]
    out = np.empty(len(targets))
    by_system = {}
    for j, i in enumerate(targets):
        by_system.setdefault(sets[i], []).append((j, i))
    for system, members in by_system.items():
        pool = [PDEntry(Composition(el), 0.0) for el in system]
        pool += [entries[k] for k, s in enumerate(sets) if s <= system]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            diagram = PhaseDiagram(pool)
            for j, i in members:
                out[j] = diagram.get_e_above_hull(entries[i], allow_negative=True)
    return out


def reliability(labels, prob, n_bins=5):
    """Reliability-diagram bins: (lower, upper, count, mean prob, observed freq)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        rows.append(
            (
                float(edges[b]),
                float(edges[b + 1]),
                int(m.sum()),
                float(prob[m].mean()) if m.any() else float("nan"),
                float(labels[m].mean()) if m.any() else float("nan"),
            )
        )
    return rows


def evaluate_stability(table, seed, config):
    """Evaluation (b)."""
    f = table["formula"].to_numpy()
    y = table["enthalpy_ev_per_atom"].to_numpy()
    u = table["uncertainty_ev_per_atom"].to_numpy()
    train, test = split(len(f), (0.8, 0.2), seed=seed)
    e_true = e_above_hull_all(f, y, test)
    labels = (e_true < DELTA).astype(float)

    t0 = time.perf_counter()
    predict = stability.fit_formation_energy(
        f[train], y[train], u[train], config=config
    )
    mean, std = predict(f[test])
    h = stability.hull_energies(f[train], y[train], f[test])
    p_gp = np.asarray(stability.probability_stable(mean, std, h, DELTA))
    p_mean = np.asarray(stability.probability_stable(mean, 0.0, h, DELTA))
    # base rate: share of training compounds within δ of the training hull
    h_train = stability.hull_energies(f[train], y[train], f[train])
    p_base = np.full(test.size, np.mean(y[train] - h_train < DELTA))
    elapsed = time.perf_counter() - t0

    def scores(p):
        return {
            "roc_auc": float(metrics.roc_auc_score(labels, p)),
            "brier": float(metrics.brier_score_loss(labels, p)),
            "reliability": reliability(labels, p),
        }

    return {
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_test_unstable": int((labels == 0).sum()),
        "gp_probability": scores(p_gp),
        "mean_only": scores(p_mean),
        "base_rate": {k: v for k, v in scores(p_base).items() if k != "reliability"},
        "seconds": elapsed,
    }, (labels, p_gp, p_mean)


def main(argv=None):
    """Run both evaluations, print tables, optionally write results and a plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernel", default="matern")
    parser.add_argument("--ard", action="store_true")
    parser.add_argument("--restarts", type=int, default=0, help="optimiser restarts")
    parser.add_argument("--out", help="directory for results.json, reliability.png")
    args = parser.parse_args(argv)
    print(
        "# python "
        + " ".join(["benchmarks/eval_formation_enthalpies.py", *sys.argv[1:]])
    )
    print(f"# jax {jax.__version__}, device {jax.devices()[0].device_kind}")
    config = stability.StabilityConfig(
        kernel=args.kernel, ard=args.ard, n_restarts=args.restarts, seed=args.seed
    )
    table = experimental_formation_enthalpies()

    reg, _ = evaluate_regression(table, args.seed, config)
    print(
        f"\n(a) GP on composition descriptors, split by chemical system "
        f"(train {reg['n_train']}, test {reg['n_test']} in "
        f"{reg['n_test_systems']} unseen systems)"
    )
    print(
        f"{'model':10s} {'MAE eV/at':>10s} {'cover95':>8s} {'NLPD':>8s} {'fit s':>7s}"
    )
    for name in ("mldiff", "sklearn"):
        r = reg[name]
        print(
            f"{name:10s} {r['mae_ev_per_atom']:10.4f} {r['coverage_95']:8.3f} "
            f"{r['nlpd']:8.3f} {r['fit_s']:7.1f}"
        )
    print(f"mldiff kernel: {reg['mldiff_kernel']}")
    print(f"sklearn kernel: {reg['sklearn_kernel']}")

    stab, (labels, p_gp, p_mean) = evaluate_stability(table, args.seed, config)
    print(
        f"\n(b) P(E_hull < {DELTA} eV/atom), split by compound (train "
        f"{stab['n_train']}, test {stab['n_test']}, unstable test compounds "
        f"{stab['n_test_unstable']})"
    )
    print(f"{'predictor':14s} {'ROC-AUC':>8s} {'Brier':>8s}")
    for name in ("gp_probability", "mean_only", "base_rate"):
        r = stab[name]
        print(f"{name:14s} {r['roc_auc']:8.3f} {r['brier']:8.4f}")
    for name in ("gp_probability", "mean_only"):
        print(f"reliability bins, {name}: [lo, hi) n  mean-p  observed")
        for lo, hi, n, mp, ob in stab[name]["reliability"]:
            print(f"  [{lo:.1f}, {hi:.1f}) {n:5d} {mp:7.3f} {ob:9.3f}")

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as fh:
            json.dump({"regression": reg, "stability": stab}, fh, indent=1)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        for name, p in (("GP probability", p_gp), ("GP mean only", p_mean)):
            rows = [r for r in reliability(labels, p, 10) if r[2] > 0]
            ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label=name)
        ax.set_xlabel("predicted P(E_hull < 0.05 eV/atom)")
        ax.set_ylabel("observed fraction stable")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "reliability.png"), dpi=120)
        print(f"\nwrote {args.out}/results.json and reliability.png")


if __name__ == "__main__":
    main()
