"""Gaussian processes: mldiff (JAX, float64) against scikit-learn, and SGPR at scale.

Run by hand: ``python benchmarks/bench_gp.py [--n 2000] [--n-sparse 40000]``.

Data: the Friedman #1 regression function of 5 inputs on ``U(0, 1)^5`` with
Gaussian noise of standard deviation 0.5 (``sklearn.datasets.make_friedman1``),
so both libraries see identical numbers. Prints one JSON line per case:

1. ``exact``: ARD RBF + white kernel, hyperparameters fitted by maximising the
   marginal likelihood (one start each, L-BFGS in both libraries), ``normalize_y``.
   ``fit_s`` and ``predict_s`` are measured on a second data set of the same
   shape, after compilation (JAX compiles once per shape; scikit-learn has no
   compilation). ``compile_s`` is the first call, compilation included.
   ``speedup = sklearn_total_s / ours_total_s`` (the goal is ≥ 5×). Accuracy is
   the test MAE of each, plus the largest difference between the two predictive
   means. The log marginal likelihoods are in different units (ours of y,
   scikit-learn's of standardised y: they differ by n·log σ_y).
2. ``sparse``: SGPR (Titsias) with ``m`` k-means inducing inputs and fitted
   hyperparameters on ``--n-sparse`` points, against the exact GP fitted on a
   random subset of ``--n`` points (what fits in an exact GP); test RMSE of both
   and the sparse GP's 95 % interval coverage.
"""

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from sklearn.datasets import make_friedman1  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel  # noqa: E402

from mldiff.gp import GaussianProcess, kernels  # noqa: E402

NOISE_STD = 0.5


def friedman(n: int, seed: int):
    """``(X [n, 5], y [n])`` of Friedman #1 with noise σ = 0.5."""
    return make_friedman1(n_samples=n, n_features=5, noise=NOISE_STD, random_state=seed)


def mldiff_kernel(d: int):
    """ARD RBF plus learnable white noise, in standardised-y units."""
    return kernels.rbf(np.ones(d)) + kernels.white(0.1)


def sklearn_gp(d: int):
    """The same model in scikit-learn: one start of L-BFGS-B, ``normalize_y``."""
    k = ConstantKernel(1.0) * RBF(np.ones(d)) + WhiteKernel(0.1)
    return GaussianProcessRegressor(k, normalize_y=True, n_restarts_optimizer=0)


def timed(fn):
    """``(result, seconds)`` of ``fn()`` with JAX work finished."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def exact_case(n: int, n_test: int = 1000) -> dict:
    """Fit + predict time and accuracy, mldiff vs scikit-learn, on ``n`` points."""
    xw, yw = friedman(n, seed=1)  # warm-up data set of the same shape
    x, y = friedman(n, seed=2)
    xt, yt = friedman(n_test, seed=3)

    def ours(x, y):
        gp = GaussianProcess(mldiff_kernel(x.shape[1])).fit(x, y)
        return gp, gp.predict(xt)

    _, compile_s = timed(lambda: ours(xw, yw)[1])
    (gp, (mean, std)), _ = timed(lambda: ours(x, y))
    _, fit_s = timed(lambda: GaussianProcess(mldiff_kernel(5)).fit(x, y).state_.alpha)
    _, predict_s = timed(lambda: gp.predict(xt))

    sk = sklearn_gp(x.shape[1])
    _, sk_fit_s = timed(lambda: sk.fit(x, y))
    sk_mean, sk_predict_s = timed(lambda: sk.predict(xt))
    ours_total = fit_s + predict_s
    sk_total = sk_fit_s + sk_predict_s
    return {
        "case": "exact",
        "n_train": n,
        "n_test": n_test,
        "compile_s": round(compile_s, 2),
        "fit_s": round(fit_s, 3),
        "predict_s": round(predict_s, 4),
        "sklearn_fit_s": round(sk_fit_s, 3),
        "sklearn_predict_s": round(sk_predict_s, 4),
        "speedup": round(sk_total / ours_total, 1),
        "mae": round(float(np.mean(np.abs(mean - yt))), 4),
        "sklearn_mae": round(float(np.mean(np.abs(sk_mean - yt))), 4),
        "max_mean_diff": float(np.max(np.abs(mean - sk_mean))),
        "lml_y_units": round(gp.log_marginal_likelihood(), 3),
        "sklearn_lml_standardised_y": round(
            float(sk.log_marginal_likelihood_value_), 3
        ),
    }


def sparse_case(n: int, n_subset: int, m: int, n_test: int = 2000) -> dict:
    """SGPR on ``n`` points against the exact GP on a random ``n_subset``."""
    x, y = friedman(n, seed=4)
    xt, yt = friedman(n_test, seed=5)
    sparse = GaussianProcess(mldiff_kernel(5), inducing=m, max_steps=100)
    _, sparse_s = timed(lambda: sparse.fit(x, y).state_.c)
    mean_s, std_s = sparse.predict(xt)
    idx = np.random.default_rng(0).choice(n, n_subset, replace=False)
    exact = GaussianProcess(mldiff_kernel(5))
    _, exact_s = timed(lambda: exact.fit(x[idx], y[idx]).state_.alpha)
    mean_e, _ = exact.predict(xt)
    # 95 % interval of a new observation: latent variance plus the noise
    half = 1.96 * std_s
    return {
        "case": "sparse",
        "n_train": n,
        "inducing": m,
        "sparse_fit_s_incl_compile": round(sparse_s, 2),
        "sparse_rmse": round(float(np.sqrt(np.mean((mean_s - yt) ** 2))), 4),
        "sparse_coverage_95": round(float(np.mean(np.abs(mean_s - yt) <= half)), 3),
        "exact_subset": n_subset,
        "exact_fit_s_incl_compile": round(exact_s, 2),
        "exact_subset_rmse": round(float(np.sqrt(np.mean((mean_e - yt) ** 2))), 4),
        "noise_floor_rmse": NOISE_STD,
    }


def main() -> None:
    """Parse arguments, run both cases, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-sparse", type=int, default=40000)
    parser.add_argument("--inducing", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(exact_case(args.n)), flush=True)
    print(json.dumps(sparse_case(args.n_sparse, args.n, args.inducing)), flush=True)


if __name__ == "__main__":
    main()
