"""LAPACK (CPU) and XLA Cholesky / inverse against NumPy and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mldiff.gp import _common, _linalg

BRANCHES = {
    "lapack": (_linalg._cholesky_lapack, _linalg._cholesky_inverse_lower_lapack),
    "xla": (_linalg._cholesky_xla, _linalg._cholesky_inverse_lower_xla),
}


def _spd(rng, n):
    a = rng.normal(size=(n, n))
    return a @ a.T / n + np.eye(n)


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_factor_and_inverse_match_numpy_and_read_the_lower_triangle(branch, rng):
    chol_fn, inv_fn = BRANCHES[branch]
    k = _spd(rng, 37)
    upper_garbage = k + np.triu(rng.normal(size=k.shape), 1)  # only tril is read
    chol = np.asarray(jax.jit(chol_fn)(upper_garbage))
    np.testing.assert_allclose(chol, np.linalg.cholesky(k), rtol=0, atol=1e-13)
    lower = np.asarray(jax.jit(inv_fn)(chol))
    np.testing.assert_allclose(lower, np.tril(np.linalg.inv(k)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_not_positive_definite_gives_nan(branch):
    chol_fn, inv_fn = BRANCHES[branch]
    k = np.diag([1.0, -1.0, 2.0])
    with jax.debug_nans(False):
        assert np.isnan(np.asarray(chol_fn(k))).any()
        lower = np.asarray(inv_fn(np.diag([1.0, 0.0, 2.0])))
        assert np.isnan(lower[np.tril_indices(3)]).all()


def test_the_cpu_dispatch_runs_under_jit_and_vmap(rng):
    ks = np.stack([_spd(rng, 9) for _ in range(3)])
    chols = jax.jit(jax.vmap(_linalg.cholesky))(ks)
    lowers = jax.jit(jax.vmap(_linalg.cholesky_inverse_lower))(chols)
    for k, c, lo in zip(ks, chols, lowers, strict=True):
        np.testing.assert_allclose(c, np.linalg.cholesky(k), atol=1e-13)
        np.testing.assert_allclose(lo, np.tril(np.linalg.inv(k)), atol=1e-12)


def test_inverse_differentiates_like_finite_differences(rng):
    chol = jnp.asarray(np.linalg.cholesky(_spd(rng, 6)))

    def inverse_of_perturbed(e):  # keep the argument a valid lower factor
        return _linalg.cholesky_inverse_lower(chol + jnp.tril(e))

    e = jnp.zeros_like(chol)
    check_grads(inverse_of_perturbed, (e,), order=2, modes=["fwd", "rev"])


def test_log_density_derivative_is_that_of_the_lower_triangle(rng):
    # reference: finite differences of the value, which reads only tril(K), in
    # random directions that are not symmetric
    k = jnp.asarray(_spd(rng, 8))
    y = jnp.asarray(rng.normal(size=8))

    def log_density(k, y):
        return _common.gaussian_log_density(jnp.asarray(k), jnp.asarray(y))

    check_grads(log_density, (k, y), order=1, modes=["fwd", "rev"])
    direction = jnp.asarray(np.triu(rng.normal(size=(8, 8)), 1))  # above: no effect
    _, dvalue = jax.jvp(_common.gaussian_log_density, (k, y), (direction, 0 * y))
    assert abs(float(dvalue)) < 1e-14
