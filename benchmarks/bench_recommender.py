"""Recommender on matminer's transport matrix against imputation peers, same run.

Run by hand (minutes on 2 cores)::

    python benchmarks/bench_recommender.py            # all three parts
    python benchmarks/bench_recommender.py --warm-rows 0   # warm start on all rows

1. Warm start: 20 % of the observed entries hidden (seeded). RMSE per property
   and overall in standardised units (the per-column log10 + standardisation
   of :class:`mldiff.recommender.ColumnTransform`, fitted on the entries left
   in) for column means, scikit-learn's ``KNNImputer`` and
   ``IterativeImputer``, soft-impute (Mazumder, Hastie and Tibshirani 2010,
   NumPy SVD, λ chosen on a validation split) and ``MatrixFactorization``
   (rank chosen by validation among 4, 6, 8; warm values from its denoising
   autoencoder, ``autoencoder_steps``), and the model with the composition
   descriptors of the rows (joint cold-start model, default rank 8; the
   autoencoder also reads the descriptors; the peers see only the matrix).
   ``KNNImputer`` is
   quadratic in rows, so the warm comparison runs on a seeded subset of
   ``--warm-rows`` materials (every method on the same subset).
2. Cold start: 10 % of the materials held out entirely (seeded);
   ``MatrixFactorization.predict_new`` from formulas against a
   ``RandomForestRegressor`` on the same composition descriptors
   (``mldiff.recommender.cold_start.descriptors``), per property. Also split
   by whether a held-out material's formula is among the training rows
   (polymorphs of a known composition) or new. ``--cold-members N`` averages
   N joint fits instead of the default 2 (each adds about a minute here).
3. Fit time on the full transport matrix (ALS ensemble, then with the cold
   start map) against ``IterativeImputer``, and ALS against Adam.

Prints one JSON line per result.
"""

import argparse
import dataclasses
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mldiff.recommender import MatrixFactorization, fit_column_transform  # noqa: E402
from mldiff.recommender import factorization as mf  # noqa: E402
from mldiff.recommender.cold_start import descriptors  # noqa: E402
from mldiff.recommender.data import transport_matrix  # noqa: E402


def emit(**record):
    """Print one JSON line."""
    print(json.dumps(record), flush=True)


def soft_impute(z, observed, lam, iterations=100, tol=1e-5):
    """Soft-impute: iterate Z ← SVT_λ(P_Ω(Y) + P_Ω⊥(Z)) (numpy SVD)."""
    filled = np.where(observed, z, 0.0)
    estimate = np.zeros_like(filled)
    for _ in range(iterations):
        u, s, vt = np.linalg.svd(
            np.where(observed, filled, estimate), full_matrices=False
        )
        new = (u * np.maximum(s - lam, 0.0)) @ vt
        change = np.linalg.norm(new - estimate) / max(np.linalg.norm(estimate), 1e-12)
        estimate = new
        if change < tol:
            break
    return estimate


def soft_impute_cv(z, observed, rng):
    """Soft-impute with λ picked on 10 % of the training entries."""
    col_mean = np.nanmean(np.where(observed, z, np.nan), axis=0)
    centred = z - col_mean
    s_max = np.linalg.svd(np.where(observed, centred, 0.0), compute_uv=False)[0]
    hold = observed & (rng.random(z.shape) < 0.1)
    best = None
    for frac in (0.002, 0.005, 0.01, 0.02, 0.05, 0.1):
        est = soft_impute(centred, observed & ~hold, frac * s_max)
        err = np.sqrt(np.mean((est - centred)[hold] ** 2))
        if best is None or err < best[0]:
            best = (err, frac)
    return soft_impute(centred, observed, best[1] * s_max) + col_mean, best[1]


def rmse_table(pred, truth, mask, columns):
    """RMSE per column and overall over the entries in ``mask``."""
    per = {
        c: float(np.sqrt(np.mean((pred - truth)[:, j][mask[:, j]] ** 2)))
        for j, c in enumerate(columns)
        if mask[:, j].any()
    }
    per["overall"] = float(np.sqrt(np.mean((pred - truth)[mask] ** 2)))
    return per


def warm_start(matrix, formulas, args):
    """Part 1: hide 20 % of the observed entries, compare imputers."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    rng = np.random.default_rng(args.seed)
    values = matrix.to_numpy()
    if args.warm_rows:
        rows = np.sort(rng.choice(len(values), args.warm_rows, replace=False))
        values = values[rows]
        formulas = [formulas[i] for i in rows]
    observed = ~np.isnan(values)
    hide = observed & (rng.random(values.shape) < 0.2)
    train = observed & ~hide
    keep = train.any(axis=1)  # a row left with nothing is a cold-start row
    formulas = [f for f, k in zip(formulas, keep, strict=True) if k]
    values, observed, hide, train = (
        values[keep],
        observed[keep],
        hide[keep],
        train[keep],
    )
    transform = fit_column_transform(np.where(train, values, np.nan))
    z = transform.forward(values)
    z_train = np.where(train, z, np.nan)
    columns = list(matrix.columns)
    emit(
        part="warm",
        rows=int(len(values)),
        hidden_entries=int(hide.sum()),
        observed_entries=int(train.sum()),
    )
    results = {}
    t0 = time.perf_counter()
    means = np.nanmean(z_train, axis=0)
    results["column_mean"] = (np.broadcast_to(means, z.shape), time.perf_counter() - t0)
    t0 = time.perf_counter()
    knn = KNNImputer(n_neighbors=10, weights="distance").fit_transform(z_train)
    results["knn_imputer"] = (knn, time.perf_counter() - t0)
    t0 = time.perf_counter()
    it = IterativeImputer(max_iter=10, random_state=0).fit_transform(z_train)
    results["iterative_imputer"] = (it, time.perf_counter() - t0)
    t0 = time.perf_counter()
    soft, lam = soft_impute_cv(z, train, rng)
    results["soft_impute"] = (soft, time.perf_counter() - t0)
    t0 = time.perf_counter()
    model = MatrixFactorization(rank=(4, 6, 8), seed=args.seed).fit(
        np.where(train, values, np.nan)
    )
    ours = model.transform_.forward(model.predict())
    results["matrix_factorization"] = (ours, time.perf_counter() - t0)
    t0 = time.perf_counter()
    joint = MatrixFactorization(rank=args.rank, seed=args.seed).fit(
        np.where(train, values, np.nan), formulas
    )
    ours = joint.transform_.forward(joint.predict())
    results["matrix_factorization+descriptors"] = (ours, time.perf_counter() - t0)
    emit(
        part="warm",
        soft_impute_lambda_fraction=lam,
        chosen_rank=model.rank_,
        rank_validation_rmse=model.rank_scores_,
    )
    for name, (pred, seconds) in results.items():
        emit(
            part="warm",
            method=name,
            seconds=round(seconds, 2),
            rmse_standardised=rmse_table(pred, z, hide, columns),
        )


def cold_start(matrix, formulas, args):
    """Part 2: hold out 10 % of the materials, compare with a random forest."""
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(args.seed + 1)
    values = matrix.to_numpy()
    test = rng.random(len(values)) < 0.1
    columns = list(matrix.columns)
    t0 = time.perf_counter()
    extra = {} if args.cold_members is None else {"cold_members": args.cold_members}
    if args.bins is not None:
        extra["bins"] = args.bins
    if args.neighbor_space is not None:
        extra["neighbor_space"] = args.neighbor_space
    model = MatrixFactorization(rank=args.rank, seed=args.seed, **extra).fit(
        matrix[~test], [formulas[i] for i in np.flatnonzero(~test)]
    )
    fit_s = time.perf_counter() - t0
    test_formulas = [formulas[i] for i in np.flatnonzero(test)]
    t0 = time.perf_counter()
    pred = model.predict_new(test_formulas).to_numpy()
    predict_s = time.perf_counter() - t0
    z = model.transform_.forward(values)
    ours = model.transform_.forward(pred)
    mask = ~np.isnan(z[test])
    x = descriptors(formulas)
    rf = np.full_like(ours, np.nan)
    t0 = time.perf_counter()
    dense = [j for j in range(len(columns)) if (~np.isnan(z[:, j])).mean() > 0.5]
    groups = [dense] + [[j] for j in range(len(columns)) if j not in dense]
    for group in groups:
        rows = ~test & ~np.isnan(z[:, group]).any(axis=1)
        forest = RandomForestRegressor(
            n_estimators=args.trees, max_features=0.33, n_jobs=2, random_state=0
        )
        forest.fit(x[rows], z[rows][:, group])
        rf[:, group] = forest.predict(x[test]).reshape(test.sum(), len(group))
    rf_s = time.perf_counter() - t0
    ours_t = rmse_table(ours, z[test], mask, columns)
    rf_t = rmse_table(rf, z[test], mask, columns)
    wins = sum(ours_t[c] < rf_t[c] for c in columns)
    emit(
        part="cold",
        held_out_rows=int(test.sum()),
        cold_members=model.config.cold_members,
        bins=model.config.bins,
        neighbor_space=model.config.neighbor_space,
        ours_fit_s=round(fit_s, 1),
        ours_predict_s=round(predict_s, 1),
        random_forest_fit_s=round(rf_s, 1),
        ours_wins=f"{wins}/{len(columns)}",
    )
    # the same fit with its neighbours found in the other space (ablation)
    other = "descriptors" if model.config.neighbor_space == "hidden" else "hidden"
    model.config = dataclasses.replace(model.config, neighbor_space=other)
    alt_t = rmse_table(
        model.transform_.forward(model.predict_new(test_formulas).to_numpy()),
        z[test],
        mask,
        columns,
    )
    emit(
        part="cold",
        neighbor_space=other,
        ours_rmse=round(alt_t["overall"], 4),
        ours_wins=f"{sum(alt_t[c] < rf_t[c] for c in columns)}/{len(columns)}",
    )
    known = set(formulas[i] for i in np.flatnonzero(~test))
    seen = np.array([f in known for f in test_formulas])
    for name, rows in (("formula in training", seen), ("new formula", ~seen)):
        sub = mask & rows[:, None]
        o, r = (
            rmse_table(ours, z[test], sub, columns),
            rmse_table(rf, z[test], sub, columns),
        )
        emit(
            part="cold",
            rows=name,
            n=int(rows.sum()),
            ours_rmse=round(o["overall"], 4),
            random_forest_rmse=round(r["overall"], 4),
            ours_wins=f"{sum(o[c] < r[c] for c in columns if c in o)}/{len(o) - 1}",
        )
    for c in [*columns, "overall"]:
        emit(
            part="cold",
            property=c,
            ours_rmse=round(ours_t[c], 4),
            random_forest_rmse=round(rf_t[c], 4),
        )


def fit_time(matrix, formulas, args):
    """Part 3: fit time on the full matrix; ALS against Adam."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    values = matrix.to_numpy()
    model = MatrixFactorization(rank=args.rank, seed=args.seed)
    t0 = time.perf_counter()
    model.fit(matrix)  # first call: includes jit compilation
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(matrix)  # second call: compiled
    ours_warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    MatrixFactorization(rank=args.rank, seed=args.seed).fit(matrix, formulas)
    ours_cold_s = time.perf_counter() - t0
    z = model.transform_.forward(values)
    t0 = time.perf_counter()
    IterativeImputer(max_iter=10, random_state=0).fit_transform(z)
    peer_s = time.perf_counter() - t0
    emit(
        part="fit_time",
        device=jax.devices()[0].device_kind,
        jax=jax.__version__,
        shape=list(values.shape),
        ours_first_fit_s=round(ours_s, 2),
        ours_compiled_fit_s=round(ours_warm_s, 2),
        ours_with_cold_start_s=round(ours_cold_s, 2),
        iterative_imputer_s=round(peer_s, 2),
        ratio_ours_over_iterative=round(ours_s / peer_s, 3),
    )
    # ALS against Adam on the same objective (rank 8, λ = 1)
    observed = ~np.isnan(z)
    y, w = jnp.asarray(np.where(observed, z, 0.0)), jnp.asarray(observed, float)
    key = jax.random.key(0)
    for name, fn, kw in (
        ("als", mf.fit_als, {"sweeps": 60}),
        ("adam", mf.fit_gradient, {"steps": 2000}),
    ):
        jax.block_until_ready(fn(y, w, rank=8, reg=1.0, key=key, **kw))  # compile
        t0 = time.perf_counter()
        _, history = jax.block_until_ready(fn(y, w, rank=8, reg=1.0, key=key, **kw))
        emit(
            part="solver",
            solver=name,
            seconds=round(time.perf_counter() - t0, 2),
            final_objective=float(history[-1]),
            iterations=int(len(history) - 1),
        )


def main():
    """Run the parts named on the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["warm", "cold", "time"])
    p.add_argument("--warm-rows", type=int, default=10000)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cold-members",
        type=int,
        default=None,
        help="joint fits averaged for the cold start (default: the model's)",
    )
    p.add_argument(
        "--bins",
        type=int,
        default=None,
        help="quantile bins of the descriptor encoding (default: the model's)",
    )
    p.add_argument(
        "--neighbor-space",
        choices=("hidden", "descriptors"),
        default=None,
        help="where the cold start's neighbours are found (default: the model's)",
    )
    args = p.parse_args()
    matrix, info = transport_matrix()
    formulas = list(info["formula"])
    if "warm" in args.parts:
        warm_start(matrix, formulas, args)
    if "cold" in args.parts:
        cold_start(matrix, formulas, args)
    if "time" in args.parts:
        fit_time(matrix, formulas, args)


if __name__ == "__main__":
    main()
