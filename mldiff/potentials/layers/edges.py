"""Masked edge geometry for message passing, twice differentiable.

An edge i → j takes part in message passing only if it is a real edge of the
padded graph (``graph.mask``), is shorter than the model cutoff (graphs built
with a Verlet skin reach further), joins two real atoms (ghosts, Z = 0, are cut
off) and has non-zero length. Every other edge gets the unit vector x̂ and
length 1 Å through the double-``where`` pattern, so that no NaN or infinity
appears in the value, gradient or Hessian, and its radial weights are zeroed by
``valid``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mldiff import space

__all__ = ["EdgeGeometry", "edge_geometry"]


class EdgeGeometry(NamedTuple):
    """Geometry of the ``e`` edge slots of a graph.

    Attributes:
        unit: ``[e, 3]`` unit vectors r̂_ij from i (sender) to j (receiver);
            x̂ on invalid edges.
        length: ``[e]`` lengths |r_j − r_i + S·cell|, Å; 1 on invalid edges.
        valid: ``[e]`` bool, True for edges that carry messages.
    """

    unit: jax.Array
    length: jax.Array
    valid: jax.Array


def edge_geometry(structure, graph, cutoff: float, real: jax.Array) -> EdgeGeometry:
    """Unit vectors, lengths and validity of the edges of ``graph``.

    Args:
        structure: :class:`~mldiff.structure.Structure`; positions and cell set
            the dtype.
        graph: :class:`~mldiff.neighbors.Graph` (padded, possibly with skin).
        cutoff: model cutoff, Å; edges with length ≥ cutoff are invalid.
        real: ``[n]`` bool, False for ghost atoms (their edges are invalid).

    Returns:
        The :class:`EdgeGeometry`, in the dtype of ``structure.positions``.

    Example:
        >>> import jax.numpy as jnp
        >>> from mldiff import neighbors
        >>> from mldiff.structure import Structure
        >>> s = Structure.create([[0, 0, 0], [1.5, 0, 0]], None, [1, 1], pbc=False)
        >>> g = neighbors.allocate(s, 2.0, capacity=3)
        >>> geo = edge_geometry(s, g, 2.0, jnp.array([True, True]))
        >>> geo.valid.tolist(), float(geo.length[0])
        ([True, True, False], 1.5)
    """
    d = space.edge_vectors(structure, graph)  # [e, 3], Å; 0 on padded slots
    r = space.safe_norm(d)
    valid = (
        graph.mask
        & (r > 0)
        & (r < cutoff)
        & real[graph.senders]
        & real[graph.receivers]
    )
    dummy = jnp.zeros_like(d).at[:, 0].set(1.0)
    d = jnp.where(valid[:, None], d, dummy)
    r = space.safe_norm(d)  # true length on valid edges, 1 elsewhere
    return EdgeGeometry(d / r[:, None], r, valid)
