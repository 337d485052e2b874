"""Kernels: analytic values, safe gradients at zero distance, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mldiff.errors import ConfigError
from mldiff.gp import kernels


def test_parameterisation_round_trip_and_natural_units():
    # reference: analytic — natural = exp(raw)
    k = kernels.rbf([0.5, 2.0], 3.0) * kernels.constant(0.5) + kernels.white(0.1)
    h = k.init()
    np.testing.assert_allclose(h[0][0]["log_length_scale"], np.log([0.5, 2.0]))
    nat = k.natural(h)
    np.testing.assert_allclose(nat[0][0]["length_scale"], [0.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(nat[1]["variance"], 0.1, rtol=1e-15)
    assert "ARD" in k.name


@pytest.mark.parametrize(
    "k",
    [
        kernels.matern(0.5),
        kernels.matern(1.5),
        kernels.matern(2.5),
        kernels.rbf(),
        kernels.rational_quadratic(),
    ],
    ids=["m12", "m32", "m52", "rbf", "rq"],
)
def test_gradients_finite_at_zero_distance(k):
    # reference: analytic — the double-where guard keeps d k / d x finite at r = 0
    x0 = jnp.array([[0.3, -0.2]])

    def k_of(x):
        return k(k.init(), x[None], x0)[0, 0] + jnp.sum(k(k.init(), x[None]))

    g, hess = jax.jit(lambda x: (jax.grad(k_of)(x), jax.hessian(k_of)(x)))(x0[0])
    assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.all(jnp.isfinite(hess)))


def test_matrices_are_symmetric_psd_and_diag_consistent(rng):
    # reference: analytic — symmetric positive semi-definite Gram matrices
    x = jnp.asarray(rng.normal(size=(12, 3)))
    k = (kernels.matern(1.5, [1.0, 0.5, 2.0]) + kernels.linear([0.1, 0.2, 0.3])) * (
        kernels.rational_quadratic(1.5, 0.7)
    ) + kernels.white(0.2)
    h = k.init()
    K = k(h, x)
    np.testing.assert_allclose(K, K.T, atol=1e-14)
    assert float(jnp.linalg.eigvalsh(K).min()) > 0.19  # white 0.2 lower bound
    np.testing.assert_allclose(k.diag(h, x), jnp.diag(K), rtol=1e-13)
    # two input sets: the white term vanishes (sklearn WhiteKernel convention)
    np.testing.assert_allclose(k(h, x, x + 0.0), K - 0.2 * jnp.eye(12), atol=1e-12)


def test_bad_kernel_arguments():
    with pytest.raises(ConfigError, match="nu must be"):
        kernels.matern(2.0)
    with pytest.raises(ConfigError, match="positive"):
        kernels.rbf(length_scale=-1.0)
