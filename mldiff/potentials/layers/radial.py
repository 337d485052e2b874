"""Radial basis of the learned potentials: Bessel functions times a C² envelope.

``B_n(r) = √(2/r_c) sin(nπ r / r_c) / r`` (n = 1..N) multiplied by the
polynomial cutoff ``u_p(r / r_c)``, which goes to zero at ``r_c`` with vanishing
first and second derivatives, so energies, forces and Hessians stay continuous
as atoms cross the cutoff.

References:
    J. Klicpera, J. Groß and S. Günnemann, "Directional message passing for
    molecular graphs", ICLR 2020, eqs. (7) and (8).
    S. Batzner et al., "E(3)-equivariant graph neural networks for data-efficient
    and accurate interatomic potentials", Nat. Commun. 13, 2453 (2022).
"""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp

__all__ = ["bessel_basis", "polynomial_envelope", "radial_embedding"]


def bessel_basis(r: jax.Array, num_basis: int, cutoff: float) -> jax.Array:
    """Bessel radial basis ``√(2/r_c) sin(nπ r/r_c) / r``.

    Args:
        r: ``[e]`` distances, Å (finite at 0: the limit nπ/r_c·√(2/r_c)).
        num_basis: number of functions N.
        cutoff: r_c, Å.

    Returns:
        ``[e, N]`` basis values, 1/Å^(3/2), in the dtype of ``r``.

    Example:
        >>> import jax.numpy as jnp
        >>> bessel_basis(jnp.array([1.0, 2.0]), 4, 5.0).shape
        (2, 4)
    """
    return e3nn.bessel(r, num_basis, x_max=cutoff).astype(r.dtype)


def polynomial_envelope(r: jax.Array, cutoff: float, p: int = 6) -> jax.Array:
    """Smooth cutoff ``u_p(r/r_c)``: 1 at 0, 0 with two zero derivatives at r_c.

    ``u_p(x) = 1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺²`` for x < 1 and
    exactly 0 beyond (e3nn's ``poly_envelope(p − 1, 2)``).

    Args:
        r: ``[e]`` distances, Å.
        cutoff: r_c, Å.
        p: polynomial order (NequIP's default 6).

    Returns:
        ``[e]`` dimensionless envelope in the dtype of ``r``.

    Example:
        >>> import jax.numpy as jnp
        >>> u = polynomial_envelope(jnp.array([0.0, 5.0, 6.0]), 5.0)
        >>> [round(float(x), 12) for x in u]
        [1.0, 0.0, 0.0]
    """
    x = r / cutoff
    inside = x < 1.0
    u = e3nn.poly_envelope(p - 1, 2)(jnp.where(inside, x, 0.0))
    return jnp.where(inside, u, 0.0).astype(r.dtype)


def radial_embedding(
    r: jax.Array, valid: jax.Array, num_basis: int, cutoff: float, p: int = 6
) -> jax.Array:
    """Enveloped Bessel features of edges, zero on invalid edges.

    Args:
        r: ``[e]`` edge lengths, Å (finite everywhere, e.g. from
            :func:`~mldiff.potentials.layers.edge_geometry`).
        valid: ``[e]`` bool mask of edges that carry messages.
        num_basis: number of Bessel functions N.
        cutoff: r_c, Å.
        p: envelope order.

    Returns:
        ``[e, N]`` features ``B_n(r) u_p(r/r_c)``, 1/Å^(3/2).
    """
    emb = (
        bessel_basis(r, num_basis, cutoff) * polynomial_envelope(r, cutoff, p)[:, None]
    )
    return jnp.where(valid[:, None], emb, 0.0)
