"""GaussianProcess shell: stores what the pure functions return."""

import numpy as np
import pytest

from mldiff.errors import MldiffError
from mldiff.gp import GaussianProcess, fit, kernels, predict

sk_gp = pytest.importorskip("sklearn.gaussian_process")
skk = pytest.importorskip("sklearn.gaussian_process.kernels")


def test_shell_matches_pure_functions_and_sklearn(rng):
    # reference: sklearn with fixed kernel (optimizer=None), normalize_y=True
    x = rng.uniform(-2.0, 2.0, (30, 2))
    y = 5.0 + 2.0 * np.sin(x[:, 0]) + 0.1 * rng.normal(size=30)
    xs = rng.uniform(-2.0, 2.0, (5, 2))
    k = kernels.rbf([0.8, 1.5], 1.2) + kernels.white(0.05)
    gp = GaussianProcess(k, optimizer=None, normalize_y=True).fit(x, y)
    ref = sk_gp.GaussianProcessRegressor(
        skk.ConstantKernel(1.2) * skk.RBF([0.8, 1.5]) + skk.WhiteKernel(0.05),
        optimizer=None,
        normalize_y=True,
        alpha=1e-300,
    ).fit(x, y)
    mean, std = gp.predict(xs)
    m_ref, s_ref = ref.predict(xs, return_std=True)
    np.testing.assert_allclose(mean, m_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(std, s_ref, rtol=1e-8, atol=1e-8)
    _, cov = gp.predict(xs, return_cov=True)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std, rtol=1e-10)
    assert gp.predict(xs, return_std=False).shape == (5,)
    lml_ref = ref.log_marginal_likelihood_value_ - 30 * np.log(np.std(y))
    np.testing.assert_allclose(gp.log_marginal_likelihood(), lml_ref, rtol=1e-8)
    np.testing.assert_allclose(gp.kernel_[0]["length_scale"], [0.8, 1.5])
    state = fit(k, k.init(), x, y, normalize_y=True)
    np.testing.assert_allclose(predict(k, state, xs)[0], mean, rtol=1e-12)


def test_shell_fits_noise_with_per_point_uncertainties(rng):
    # reference: the generating function; learnt white noise ~ true extra noise
    n = 60
    x = rng.uniform(0.0, 6.0, (n, 1))
    sd = rng.uniform(0.05, 0.2, n)  # known per-point uncertainties
    y = np.sin(x[:, 0]) + sd * rng.normal(size=n)
    gp = GaussianProcess(kernels.rbf(1.0) + kernels.white(1e-2), n_restarts=1)
    gp.fit(x, y, noise=sd**2)
    xs = np.linspace(0.5, 5.5, 20)[:, None]
    mean, std = gp.predict(xs)
    assert np.max(np.abs(mean - np.sin(xs[:, 0]))) < 0.15
    assert np.all(std > 0) and gp.kernel_[0]["length_scale"] > 0.3
    assert gp.log_marginal_likelihood() == pytest.approx(
        gp.log_marginal_likelihood(gp.hyper_), rel=1e-12
    )


def test_shell_sparse_and_errors(rng):
    # reference: exact GP with the same hyperparameters (m = 40 of n = 400)
    x = rng.uniform(0.0, 6.0, (400, 1))
    y = np.sin(x[:, 0]) + 0.05 * rng.normal(size=400)
    k = kernels.rbf(1.0) + kernels.white(0.0025)
    sparse = GaussianProcess(k, inducing=40, optimizer=None).fit(x, y)
    exact = GaussianProcess(k, optimizer=None).fit(x, y)
    xs = np.linspace(0.5, 5.5, 10)[:, None]
    np.testing.assert_allclose(sparse.predict(xs)[0], exact.predict(xs)[0], atol=1e-3)
    assert sparse.inducing_.shape == (40, 1)
    with pytest.raises(MldiffError, match="not fitted"):
        GaussianProcess().predict(xs)
