"""Geometry on structures and graphs: safe norms, edge vectors, volumes.

All functions are pure JAX and differentiable twice (see :func:`safe_norm`).
"""

import jax
import jax.numpy as jnp

__all__ = [
    "safe_norm",
    "edge_vectors",
    "edge_lengths",
    "volume",
    "to_fractional",
    "to_cartesian",
]


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
    sq = jnp.sum(v * v, axis=axis)
    ok = sq > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)


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
