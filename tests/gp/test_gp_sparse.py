"""Sparse GP (Titsias SGPR) against the exact GP."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mldiff.errors import MldiffError
from mldiff.gp import (
    collapsed_bound,
    fit,
    fit_hyperparameters_sparse,
    fit_sparse,
    kernels,
    kmeans,
    predict,
    predict_sparse,
)


def test_inducing_points_at_data_reproduce_exact_gp(rng):
    # reference: the exact GP (Titsias' bound is tight when z = x)
    x = rng.uniform(-2.0, 2.0, (30, 2))
    y = np.sin(x[:, 0]) * np.cos(x[:, 1]) + 0.05 * rng.normal(size=30)
    xs = rng.uniform(-2.0, 2.0, (6, 2))
    noise = rng.uniform(0.01, 0.05, 30)
    k = kernels.rbf([0.9, 1.3], 1.2) + kernels.white(0.01)
    h = k.init()
    exact = fit(k, h, x, y, noise, normalize_y=True)
    sparse = fit_sparse(k, h, x, y, noise, x, normalize_y=True)
    assert float(sparse.jitter) == 0.0
    np.testing.assert_allclose(sparse.elbo, exact.log_marginal_likelihood, rtol=1e-9)
    for full_cov in (False, True):
        me, ve = predict(k, exact, xs, full_cov=full_cov)
        ms, vs = predict_sparse(k, sparse, xs, full_cov=full_cov)
        np.testing.assert_allclose(ms, me, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(vs, ve, rtol=1e-8, atol=1e-8)


def test_few_inducing_points_approach_exact_gp(rng, keys):
    # reference: exact GP on a smooth 1D function; bound <= exact likelihood
    n, m = 800, 25
    x = rng.uniform(0.0, 10.0, (n, 1))
    y = np.sin(x[:, 0]) + 0.3 * np.cos(3.0 * x[:, 0]) + 0.1 * rng.normal(size=n)
    xs = np.linspace(0.5, 9.5, 50)[:, None]
    k = kernels.rbf(0.8) + kernels.white(0.01)
    h = k.init()
    z = kmeans(x, m, key=next(keys))
    exact = fit(k, h, x, y, 0.0)
    sparse = fit_sparse(k, h, x, y, 0.0, z)
    me, ve = predict(k, exact, xs)
    ms, vs = predict_sparse(k, sparse, xs)
    assert float(sparse.elbo) <= float(exact.log_marginal_likelihood) + 1e-8
    # stated tolerance: 25 k-means inducing points on a length scale of 0.8
    np.testing.assert_allclose(ms, me, atol=5e-3)
    np.testing.assert_allclose(jnp.sqrt(vs), jnp.sqrt(ve), atol=5e-3)
    gap = float(exact.log_marginal_likelihood - sparse.elbo) / n
    assert gap < 1e-2, gap


@pytest.mark.slow  # ~3-25 s depending on load: compile + 10⁴-point L-BFGS fit
def test_ten_thousand_points_fit_in_seconds(rng, keys):
    # reference: the generating function (noise 0.05); wall time measured here
    n, m = 10_000, 40
    x = rng.uniform(-3.0, 3.0, (n, 2))
    f = np.sin(x[:, 0]) * np.cos(0.5 * x[:, 1])
    y = f + 0.05 * rng.normal(size=n)
    k = kernels.rbf([1.0, 1.0], 1.0) + kernels.white(0.1)
    t0 = time.perf_counter()
    z = kmeans(x, m, key=next(keys))
    hyper, z, elbo = fit_hyperparameters_sparse(
        k, k.init(), x, y, 0.0, z, key=next(keys), max_steps=50
    )
    state = fit_sparse(k, hyper, x, y, 0.0, z)
    xs = rng.uniform(-2.5, 2.5, (200, 2))
    mean, var = predict_sparse(k, state, xs)
    seconds = time.perf_counter() - t0  # includes compilation
    rmse = float(
        jnp.sqrt(jnp.mean((mean - np.sin(xs[:, 0]) * np.cos(0.5 * xs[:, 1])) ** 2))
    )
    noise_sd = float(jnp.sqrt(k.natural(hyper)[1]["variance"]))
    assert rmse < 0.02, rmse
    assert abs(noise_sd - 0.05) < 0.005, noise_sd
    assert seconds < 60.0, seconds  # a few seconds on an idle core


def test_gradients_jit_and_errors(rng, keys):
    # reference: finite differences for d(bound)/d(hyper) and d(mean)/d(x)
    x = rng.uniform(-1.0, 1.0, (40, 1))
    y = np.sin(3.0 * x[:, 0])
    z = kmeans(x, 8, key=next(keys))
    k = kernels.matern(2.5, 0.5)
    check_grads(
        lambda h: collapsed_bound(k, h, x, y, 1e-2, z),
        (k.init(),),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )
    state = fit_sparse(k, k.init(), x, y, 1e-2, z)
    check_grads(
        lambda t: jnp.sum(predict_sparse(k, state, t)[0]),
        (jnp.asarray(x[:5]),),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )
    jitted = jax.jit(lambda h: fit_sparse(k, h, x, y, 1e-2, z).elbo)(k.init())
    np.testing.assert_allclose(jitted, state.elbo, rtol=1e-12)
    with pytest.raises(MldiffError, match="positive noise"):
        fit_sparse(k, k.init(), x, y, 0.0, z)
    with pytest.raises(MldiffError, match="inducing inputs z"):
        fit_sparse(k, k.init(), x, y, 1e-2, z[:, 0])


def test_kmeans_finds_separated_clusters(keys):
    # reference: analytic — centroids of three well-separated blobs
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    offsets = np.array([[0.1, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1]])
    x = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    got = np.asarray(kmeans(x, 3, key=next(keys)))
    got = got[np.lexsort(got.T[::-1])]
    np.testing.assert_allclose(got, centres[np.lexsort(centres.T[::-1])], atol=1e-12)
