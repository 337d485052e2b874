"""Geometry on structures and graphs: safe norms, edge vectors, volumes.

All functions are pure JAX and differentiable twice (see :func:`safe_sqrt`, the
one guarded square root of mldiff, which :func:`safe_norm` and every other
square root that can meet zero go through).
"""

import jax
import jax.numpy as jnp

__all__ = [
    "safe_sqrt",
    "safe_norm",
    "edge_vectors",
    "edge_lengths",
    "volume",
    "to_fractional",
    "to_cartesian",
]


def safe_sqrt(x: jax.Array) -> jax.Array:
    """Square root with finite derivatives of every order at zero.

    ``√x`` has an infinite slope at 0, and ``jnp.where(x > 0, jnp.sqrt(x), 0)``
    still differentiates the unused branch, so its gradient there is NaN (0 · ∞).
    The double ``where`` feeds the square root a safe 1 wherever ``x ≤ 0`` and
    returns exactly 0 there, with zero derivatives: the norm of a zero vector, the
    spread of members that agree exactly, a kernel distance of a point to itself.

    Args:
        x: ``[...]`` values (any unit); ``x ≤ 0`` gives 0.

    Returns:
        ``[...]`` ``√x`` where ``x > 0``, else 0, in the square root of the unit.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> float(safe_sqrt(jnp.array(4.0)))
        2.0
        >>> float(jax.grad(jax.grad(safe_sqrt))(jnp.array(0.0)))  # not NaN
        0.0
    """
    ok = x > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, x, 1.0)), 0.0)


def safe_norm(v: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm with finite gradient and Hessian at zero.

    Args:
        v: ``[..., 3]`` vectors (any unit).
        axis: axis to reduce.

    Returns:
        ``[...]`` norms; exactly 0 with zero derivatives for zero vectors.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> float(jax.grad(lambda x: safe_norm(x))(jnp.zeros(3)).sum())
        0.0
    """
    return safe_sqrt(jnp.sum(v * v, axis=axis))


def edge_vectors(structure, graph) -> jax.Array:
    """Vectors from each edge's sender i to its receiver j, Å.

    ``d_ij = r_j - r_i + S_ij @ cell`` — recomputed from positions, cell and the
    integer shifts, so derivatives with respect to positions and strain are
    exact. Padded edges give zero vectors (mask them with ``graph.mask``).

    Args:
        structure: :class:`mldiff.structure.Structure`.
        graph: :class:`mldiff.neighbors.Graph`.

    Returns:
        ``[e, 3]`` edge vectors, Å.
    """
    r = structure.positions
    d = r[graph.receivers] - r[graph.senders]
    d = d + graph.shifts.astype(r.dtype) @ structure.cell
    return jnp.where(graph.mask[:, None], d, 0.0)


def edge_lengths(structure, graph) -> jax.Array:
    """``[e]`` edge lengths, Å (0 for padded edges); see :func:`edge_vectors`."""
    return safe_norm(edge_vectors(structure, graph))


def volume(structure) -> jax.Array:
    """Cell volume ``det(cell)``, Å³ (positive for a right-handed cell)."""
    return jnp.linalg.det(structure.cell)


def to_fractional(positions: jax.Array, cell: jax.Array) -> jax.Array:
    """``[n, 3]`` Cartesian (Å) to fractional coordinates of ``cell`` rows."""
    return jnp.linalg.solve(cell.T, positions.T).T


def to_cartesian(fractional: jax.Array, cell: jax.Array) -> jax.Array:
    """``[n, 3]`` fractional coordinates to Cartesian, Å."""
    return fractional @ cell
