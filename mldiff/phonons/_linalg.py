"""Linear algebra with custom derivatives for the phonon solvers (private).

Two decompositions whose plain JAX derivatives fail where the physics needs
them:

* :func:`safe_eigh` — ``eigh`` whose derivative drops the terms between
  eigenvalues closer than a tolerance. ``eigh``'s own derivative divides by
  eigenvalue gaps and is infinite at degeneracies, which every crystal with
  symmetry has; the safe rule gives the exact derivative of quantities
  invariant under rotations within a degenerate subspace (sums over it,
  averaged linewidths, heat capacities) and finite values elsewhere.
* :func:`pinv_solve` — the pseudo-inverse solve ``A⁺ b`` of a symmetric
  matrix with its fixed-rank derivative (Golub and Pereyra), finite when ``A``
  has degenerate eigenvalues, as the LBTE's collision matrix does.

References:
    G. H. Golub and V. Pereyra, "The differentiation of pseudo-inverses and
    nonlinear least squares problems whose variables separate", SIAM J.
    Numer. Anal. 10, 413 (1973).
"""

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["safe_eigh", "pinv_solve"]


@jax.custom_jvp
def safe_eigh(matrix, tol):
    """``eigh`` whose derivative ignores pairs of eigenvalues closer than ``tol``.

    Args:
        matrix: ``[m, m]`` Hermitian.
        tol: eigenvalue gap below which two eigenvalues count as degenerate
            (same units as the eigenvalues; may be traced, not differentiated).

    Returns:
        ``(eigenvalues [m] ascending, eigenvectors [m, m] as columns)``.

    Example:
        >>> import jax.numpy as jnp
        >>> w, v = safe_eigh(jnp.eye(2), 1e-9)
        >>> w.tolist()
        [1.0, 1.0]
    """
    w, v = jnp.linalg.eigh(matrix)
    return w, v  # a plain tuple, as the JVP rule returns (not EighResult)


@safe_eigh.defjvp
def _safe_eigh_jvp(primals, tangents):
    # tol is an ordinary argument (it may be traced, e.g. scaled by a matrix
    # norm under vmap/jit); its tangent does not enter
    (a, tol), (da, _) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    vh_da_v = jnp.conj(v.T) @ da @ v
    gap = w[None, :] - w[:, None]
    f = jnp.where(jnp.abs(gap) > tol, 1.0 / jnp.where(jnp.abs(gap) > tol, gap, 1.0), 0)
    dw = jnp.real(jnp.diagonal(vh_da_v))
    dv = v @ (f.astype(vh_da_v.dtype) * vh_da_v)
    return (w, v), (dw.astype(w.dtype), dv)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def pinv_solve(matrix, rhs, cutoff):
    """``A⁺ b`` for symmetric ``A``, dropping eigenvalues with ``|w| ≤ cutoff``.

    ``A`` is read as its symmetric part ``(A + Aᵀ)/2``, in the value and in
    the derivative alike.

    The derivative is that of the pseudo-inverse at fixed rank (Golub and
    Pereyra, SIAM J. Numer. Anal. 10, 413 (1973))::

        dA⁺ = −A⁺ dA A⁺ + A⁺² dA (1 − P) + (1 − P) dA A⁺²,   P = A A⁺

    so it stays finite when ``A`` has degenerate eigenvalues (where the
    derivative of ``eigh`` does not).

    Args:
        matrix: ``[n, n]``, symmetric.
        rhs: ``[n, k]``.
        cutoff: eigenvalue magnitude at or below which a direction is dropped.

    Returns:
        ``[n, k]`` the minimum-norm least-squares solution.

    Example:
        >>> import jax.numpy as jnp
        >>> y = pinv_solve(jnp.diag(jnp.array([2.0, 0.0])), jnp.ones((2, 1)), 1e-8)
        >>> y.ravel().tolist()
        [0.5, 0.0]
    """
    w, v = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    keep = jnp.abs(w) > cutoff
    inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
    return v @ (inv_w[:, None] * (v.T @ rhs))


@pinv_solve.defjvp
def _pinv_solve_jvp(cutoff, primals, tangents):
    a, b = primals
    da, db = tangents
    da = 0.5 * (da + da.T)
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    keep = jnp.abs(w) > cutoff
    inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)

    def pinv(z):
        return v @ (inv_w[:, None] * (v.T @ z))

    def off_range(z):  # (1 − P) z
        return z - v @ (keep[:, None] * (v.T @ z))

    y = pinv(b)
    dy = (
        -pinv(da @ y)
        + pinv(pinv(da @ off_range(b)))
        + off_range(da @ pinv(y))
        + pinv(db)
    )
    return y, dy
