"""F_{1/2} against adaptive quadrature (scipy) and its analytic limits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit, zeta

from mldiff.electrons import fermi_dirac_half, log_fermi_dirac_half


def _fermi_dirac(order: float, eta: float) -> float:
    """(1/Γ(order+1)) ∫ x^order / (1 + e^{x−η}) dx by scipy.integrate.quad."""
    edge = max(eta, 0.0)
    f = lambda x: x**order * expit(eta - x)  # noqa: E731
    pieces = [(0.0, edge), (edge, edge + 80.0)] if edge > 0 else [(0.0, 80.0)]
    total = sum(
        quad(f, a, b, epsabs=0.0, epsrel=1e-13, limit=400)[0] for a, b in pieces
    )
    return total / math.gamma(order + 1)


ETAS = np.concatenate([np.linspace(-10.0, 10.0, 41), [-40.0, 20.0, 29.9, 30.1, 45.0]])


def test_matches_scipy_quadrature():
    ours = np.asarray(jax.jit(fermi_dirac_half)(jnp.asarray(ETAS)))
    ref = np.array([_fermi_dirac(0.5, e) for e in ETAS])
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_derivative_is_order_minus_half():
    # reference: dF_{1/2}/dη = F_{-1/2}(η) (same normalisation), scipy quadrature
    etas = np.array([-10.0, -2.0, 0.0, 3.0, 10.0, 29.0, 31.0, 60.0])
    d = jax.jit(jax.vmap(jax.grad(fermi_dirac_half)))(jnp.asarray(etas))
    ref = [_fermi_dirac(-0.5, e) for e in etas]
    np.testing.assert_allclose(np.asarray(d), ref, rtol=1e-7)


def test_analytic_limits():
    # F_{1/2}(0) = (1 − 2^{−1/2}) ζ(3/2); Boltzmann tail F → e^η (1 − e^η/2^{3/2})
    assert float(fermi_dirac_half(0.0)) == pytest.approx(
        (1 - 2**-0.5) * zeta(1.5), rel=1e-12
    )
    for eta in (-5000.0, -300.0, -30.0):
        assert float(log_fermi_dirac_half(eta)) == pytest.approx(
            eta + math.log1p(-math.exp(eta) / 2**1.5), abs=1e-12
        )
    # degenerate limit: (4/(3√π)) η^{3/2} (1 + π²/(8η²)), relative error O(η⁻⁴)
    eta = 1e4
    leading = 4 / (3 * math.sqrt(math.pi)) * eta**1.5 * (1 + math.pi**2 / (8 * eta**2))
    assert float(fermi_dirac_half(eta)) == pytest.approx(leading, rel=1e-12)


def test_second_derivative_is_finite_and_smooth_across_the_switch():
    d2 = jax.jit(jax.vmap(jax.grad(jax.grad(log_fermi_dirac_half))))(
        jnp.array([29.999, 30.001, -6000.0, 12000.0])
    )
    assert np.all(np.isfinite(np.asarray(d2)))
    assert float(d2[0]) == pytest.approx(float(d2[1]), rel=1e-3)
