"""Linear algebra with custom derivatives (mldiff.phonons._linalg)."""

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.phonons import _linalg


def test_safe_eigh_differentiates_under_jit_and_vmap_with_a_traced_tolerance():
    # reference: Hellmann–Feynman, d w_k / dt = v_kᵀ A₁ v_k (analytic). The
    # tolerance is traced (scaled by the matrix, as in the group velocities),
    # and the function is vmapped and jitted inside the gradient, as when a
    # jitted κ is differentiated.
    rng = np.random.default_rng(3)
    a0 = rng.normal(size=(4, 4))
    a0 = a0 + a0.T
    a1 = rng.normal(size=(4, 4))
    a1 = a1 + a1.T

    def lowest(t, scale):
        a = jnp.asarray(a0) * scale + t * jnp.asarray(a1)
        w, _ = _linalg.safe_eigh(a, 1e-9 * jnp.abs(a).max())
        return w[0]

    def batch(t):  # two copies of the matrix: the tolerance is a BatchTracer
        return jnp.mean(jax.vmap(lowest, (None, 0))(t, jnp.ones(2)))

    grad = jax.grad(jax.jit(batch))(0.0)
    w, v = np.linalg.eigh(a0)
    np.testing.assert_allclose(grad, v[:, 0] @ a1 @ v[:, 0], rtol=1e-10)


def test_pinv_solve_value_and_derivative_with_degenerate_eigenvalues():
    # reference: NumPy's pseudo-inverse; finite differences of the function
    # (check_grads) at fixed rank. Eigenvalues 2, 2, 2, 1, 0, 0: eigh's own
    # derivative is undefined here.
    from jax.test_util import check_grads

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a = q @ np.diag([2.0, 2.0, 2.0, 1.0, 0.0, 0.0]) @ q.T
    b = rng.normal(size=(6, 3))
    y = _linalg.pinv_solve(jnp.asarray(a), jnp.asarray(b), 1e-3)
    np.testing.assert_allclose(y, np.linalg.pinv(a, rcond=1e-6) @ b, atol=1e-12)
    # the null directions stay dropped for perturbations below the cutoff
    check_grads(
        lambda m, r: _linalg.pinv_solve(m, r, 1e-3),
        (jnp.asarray(a), jnp.asarray(b)),
        order=1,
        modes=("fwd", "rev"),
        eps=1e-6,
    )
