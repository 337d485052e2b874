"""Turn a message-passing flax module into pure ``(init, energy)`` functions.

Both learned models share the same plumbing: species lookup, masked edge
geometry, the radial embedding, a flax ``apply`` giving one raw number per
atom, and the per-atom ``scale·e_i + shift + E0(Z_i)`` sum. The flax module
never leaves the builder; only the pure functions do.
"""

import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mldiff.potentials._base import Potential
from mldiff.potentials.layers.edges import edge_geometry
from mldiff.potentials.layers.radial import radial_embedding
from mldiff.potentials.layers.scaling import total_atomic_energies
from mldiff.potentials.layers.species import SpeciesTable, check_init_species

__all__ = ["graph_potential"]


@functools.partial(jax.jit, static_argnames=("shapes", "dtype"))
def _standard_normal(key, shapes: tuple[tuple[int, ...], ...], dtype) -> list:
    """Independent N(0, 1) arrays of the given shapes from one random draw."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.normal(key, (sum(sizes),), dtype)
    starts = np.cumsum([0] + sizes[:-1])
    return [
        flat[start : start + size].reshape(shape)
        for start, size, shape in zip(starts, sizes, shapes, strict=True)
    ]


def graph_potential(
    net: nn.Module,
    *,
    table: SpeciesTable,
    cutoff: float,
    num_basis: int,
    envelope_p: int,
    e0: np.ndarray,
    scale: float,
    shift: float,
    name: str,
) -> tuple[Potential, Callable]:
    """Wrap ``net`` as a :class:`Potential` and a per-atom energy function.

    ``net.apply(params, one_hot, rows, unit, radial, valid, senders, receivers)``
    must return ``[n]`` raw per-atom outputs, where ``one_hot`` is ``[n, k]``,
    ``rows`` ``[n]`` int, ``unit`` ``[e, 3]``, ``radial`` ``[e, num_basis]``,
    ``valid`` ``[e]`` bool and ``senders``/``receivers`` ``[e]`` int; messages
    flow from receivers j to senders i along ``r̂_ij``.

    Args:
        net: the flax module.
        table: species lookup.
        cutoff: model cutoff, Å.
        num_basis: Bessel functions in the radial embedding.
        envelope_p: polynomial-envelope order.
        e0: ``[k]`` reference energies per species, eV.
        scale: per-atom energy scale, eV.
        shift: per-atom energy shift, eV.
        name: potential name.

    All weights of ``net`` must be initialised N(0, 1), i.e. normalised in the
    forward pass (e3nn's ``gradient_normalization="path"``): ``init`` draws them
    so without running the network, which would cost a compilation.

    Returns:
        ``(potential, atomic_energies)`` with
        ``atomic_energies(params, structure, graph) -> [n]`` eV (0 for ghosts)
        summing to ``potential.energy``.
    """

    def _inputs(structure, graph):
        dtype = structure.positions.dtype
        rows, real, unknown = table.lookup(structure.numbers)
        geo = edge_geometry(structure, graph, cutoff, real)
        radial = radial_embedding(geo.length, geo.valid, num_basis, cutoff, envelope_p)
        one_hot = table.one_hot(structure.numbers, dtype)
        args = (one_hot, rows, geo.unit, radial, geo.valid)
        return args + (graph.senders, graph.receivers), (rows, real, unknown)

    def init(key, structure):
        check_init_species(potential, structure)
        dtype = (
            jnp.result_type(float) if structure is None else structure.positions.dtype
        )
        k = table.num_species
        # parameter shapes do not depend on the graph: one atom, one masked edge;
        # traced abstractly (no compilation), then every weight is drawn N(0, 1)
        spec = jax.ShapeDtypeStruct
        shapes = jax.eval_shape(
            net.init,
            key,
            spec((1, k), dtype),  # one_hot
            spec((1,), jnp.int32),  # rows
            spec((1, 3), dtype),  # unit
            spec((1, num_basis), dtype),  # radial
            spec((1,), jnp.bool_),  # valid
            spec((1,), jnp.int32),  # senders
            spec((1,), jnp.int32),  # receivers
        )
        leaves, treedef = jax.tree.flatten(shapes)
        leaves = _standard_normal(key, tuple(x.shape for x in leaves), dtype)
        return jax.tree.unflatten(treedef, leaves)

    def atomic_energies(params, structure, graph):
        dtype = structure.positions.dtype
        params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
        args, (rows, real, unknown) = _inputs(structure, graph)
        e = net.apply(params, *args)
        return total_atomic_energies(e, rows, real, unknown, e0, scale, shift)

    def energy(params, structure, graph):
        return jnp.sum(atomic_energies(params, structure, graph))

    potential = Potential(init, energy, float(cutoff), table.species, name)
    return potential, atomic_energies
