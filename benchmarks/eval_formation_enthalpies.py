"""Formation enthalpies and stability: the two "done when" evaluations in one run.

(a) Regression, split by chemical system (seeded ~80/20, whole systems on one
    side): mldiff's GP (:func:`mldiff.stability.fit_formation_energy`, ARD by
    default) vs scikit-learn's ARD GP on the same standardised descriptors
    (``ConstantKernel · RBF`` with one length scale per descriptor ``+
    WhiteKernel``, ``normalize_y=True``, the experimental uncertainties as
    ``alpha``). Reported: test MAE, 95 % interval coverage, mean negative log
    predictive density (NLPD), fit time (both on this machine, same run).

(b) Stability, split by compound (seeded 80/20, so competing phases exist).
    Truth: each test compound's energy above the hull of *all* experimental
    compounds (train and test) and the elements, from pymatgen's
    ``PhaseDiagram.get_e_above_hull``; stable means ``< δ = 0.05 eV/atom``.
    Predictors, all from the GP trained on the training compounds, with only
    those as known phases:

    - ``mldiff``: :func:`mldiff.stability.predict_stability`'s probability:
      test compounds sampled jointly (full covariance) and competing on the
      hull, then Platt-recalibrated by cross-validation inside the training
      set (the test set never enters the calibration);
    - ``joint_raw``: the same before recalibration;
    - ``independent``: ``Φ((h + δ - μ)/σ)`` against the training hull only;
    - ``mean_only``: 1 if ``μ - h < δ`` else 0;
    - ``base_rate``: the share of training compounds within δ of the
      training hull, for every test compound.

    Reported: ROC-AUC, Brier score, reliability bins, unstable test compounds.

Run by hand (2 CPU cores: minutes per seed, most of it scikit-learn's ARD)::

    python benchmarks/eval_formation_enthalpies.py [--seeds 0 1 2] [--out DIR]

``--out DIR`` writes ``results.json`` and ``reliability_seed<S>.png``.
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


def sklearn_ard_gp(x_train, y_train, noise, x_test, seed):
    """scikit-learn's ARD GP: C·RBF(one ℓ per descriptor) + White, normalize_y."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    d = x_train.shape[1]
    kernel = ConstantKernel(1.0) * RBF(length_scale=np.full(d, np.sqrt(d))) + (
        WhiteKernel(0.05)
    )
    model = GaussianProcessRegressor(
        kernel,
        alpha=noise / np.var(y_train) + 1e-10,  # alpha acts on standardised y
        normalize_y=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_train, y_train)
    mean, std = model.predict(x_test, return_std=True)
    return mean, std, model


def evaluate_regression(table, seed, config, with_sklearn=True):
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
    out = {
        "seed": seed,
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_test_systems": int(table["chemical_system"].iloc[test].nunique()),
        "mldiff": {**regression_scores(y[test], mean, std), "fit_s": t_ours},
        "mldiff_log_marginal_likelihood": predict.gp.log_marginal_likelihood(),
    }
    if with_sklearn:
        x = descriptors.composition_features(f)
        center, scale = x[train].mean(0), x[train].std(0)
        scale = np.where(scale > 0, scale, 1.0)
        xs = np.asarray((x - center) / scale)
        noise = np.where(np.isfinite(u[train]), u[train], 0.0) ** 2
        t0 = time.perf_counter()
        sk_mean, sk_std, sk_model = sklearn_ard_gp(
            xs[train], y[train], noise, xs[test], seed
        )
        t_sk = time.perf_counter() - t0
        out["sklearn_ard"] = {
            **regression_scores(y[test], sk_mean, sk_std),
            "fit_s": t_sk,
        }
        # sklearn's LML is that of the standardised targets; in y's unit:
        out["sklearn_log_marginal_likelihood"] = float(
            sk_model.log_marginal_likelihood_value_
            - train.size * np.log(y[train].std())
        )
    return out


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
    a, b = stability.calibrate(predict, f[train], y[train], DELTA, config=config)
    dec = stability.hull_decompositions(
        f[train], y[train], f[test], candidates_compete=config.candidates_compete
    )
    mean, cov = predict(f[test], full_cov=True)
    p_joint = np.asarray(
        stability.probability_stable_joint(
            mean,
            cov,
            dec,
            DELTA,
            key=jax.random.key(seed + 1),
            n_samples=config.n_samples,
        )
    )
    p_ours = stability.platt(p_joint, a, b)
    elapsed = time.perf_counter() - t0
    h = dec.known_hull_ev_per_atom
    std = np.sqrt(np.diag(cov))
    p_indep = np.asarray(stability.probability_stable(mean, std, h, DELTA))
    p_mean = np.asarray(stability.probability_stable(mean, 0.0, h, DELTA))
    # base rate: share of training compounds within δ of the training hull
    h_train = stability.hull_energies(f[train], y[train], f[train])
    p_base = np.full(test.size, np.mean(y[train] - h_train < DELTA))

    def scores(p):
        return {
            "roc_auc": float(metrics.roc_auc_score(labels, p)),
            "brier": float(metrics.brier_score_loss(labels, p)),
            "reliability": reliability(labels, p),
        }

    probs = {
        "mldiff": p_ours,
        "joint_raw": p_joint,
        "independent": p_indep,
        "mean_only": p_mean,
    }
    out = {
        "seed": seed,
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_test_unstable": int((labels == 0).sum()),
        "test_mae_ev_per_atom": float(np.mean(np.abs(mean - y[test]))),
        "platt_a_b": [a, b],
        **{name: scores(p) for name, p in probs.items()},
        "base_rate": {k: v for k, v in scores(p_base).items() if k != "reliability"},
        "seconds": elapsed,
    }
    return out, (labels, probs)


def main(argv=None):
    """Run both evaluations per seed, print tables, optionally write results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--kernel", default="rbf")
    parser.add_argument("--no-ard", action="store_true")
    parser.add_argument("--restarts", type=int, default=1, help="optimiser restarts")
    parser.add_argument("--folds", type=int, default=5, help="calibration folds")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument(
        "--only", choices=("regression", "stability"), help="run one evaluation"
    )
    parser.add_argument("--out", help="directory for results.json and plots")
    args = parser.parse_args(argv)
    print(
        "# python "
        + " ".join(["benchmarks/eval_formation_enthalpies.py", *sys.argv[1:]])
    )
    print(f"# jax {jax.__version__}, device {jax.devices()[0].device_kind}")
    table = experimental_formation_enthalpies()
    results = []
    for seed in args.seeds:
        config = stability.StabilityConfig(
            kernel=args.kernel,
            ard=not args.no_ard,
            n_restarts=args.restarts,
            seed=seed,
            calibration_folds=args.folds,
        )
        result = {"seed": seed}
        if args.only != "stability":
            reg = evaluate_regression(table, seed, config, not args.skip_sklearn)
            result["regression"] = reg
            print(
                f"\n(a) seed {seed}: split by chemical system (train "
                f"{reg['n_train']}, test {reg['n_test']} in "
                f"{reg['n_test_systems']} unseen systems)"
            )
            print(
                f"{'model':12s} {'MAE eV/at':>10s} {'cover95':>8s} {'NLPD':>8s} "
                f"{'fit s':>7s}"
            )
            for name in ("mldiff", "sklearn_ard"):
                if name in reg:
                    r = reg[name]
                    print(
                        f"{name:12s} {r['mae_ev_per_atom']:10.4f} "
                        f"{r['coverage_95']:8.3f} {r['nlpd']:8.3f} {r['fit_s']:7.1f}"
                    )
            print(json.dumps({"case": "regression", **reg}))
        if args.only != "regression":
            stab, (labels, probs) = evaluate_stability(table, seed, config)
            result["stability"] = stab
            print(
                f"\n(b) seed {seed}: P(E_hull < {DELTA} eV/atom), split by compound "
                f"(train {stab['n_train']}, test {stab['n_test']}, unstable test "
                f"compounds {stab['n_test_unstable']}; {stab['seconds']:.0f} s)"
            )
            print(f"{'predictor':12s} {'ROC-AUC':>8s} {'Brier':>8s}")
            for name in ("mldiff", "joint_raw", "independent", "mean_only"):
                r = stab[name]
                print(f"{name:12s} {r['roc_auc']:8.3f} {r['brier']:8.4f}")
            print(f"{'base_rate':12s} {'':8s} {stab['base_rate']['brier']:8.4f}")
            print("reliability bins, mldiff: [lo, hi) n  mean-p  observed")
            for lo, hi, n, mp, ob in stab["mldiff"]["reliability"]:
                print(f"  [{lo:.1f}, {hi:.1f}) {n:5d} {mp:7.3f} {ob:9.3f}")
            print(json.dumps({"case": "stability", **stab}))
            if args.out:
                _plot(args.out, seed, labels, probs)
        results.append(result)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=1)
        print(f"\nwrote {args.out}/results.json")


def _plot(out, seed, labels, probs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name in ("mldiff", "independent"):
        rows = [r for r in reliability(labels, probs[name], 10) if r[2] > 0]
        ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", label=name)
    ax.set_xlabel("predicted P(E_hull < 0.05 eV/atom)")
    ax.set_ylabel("observed fraction stable")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"reliability_seed{seed}.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
