"""Building blocks shared by the learned potentials (NequIP, MACE).

Pure functions of arrays (plus two thin flax-module factories):

* :mod:`~mldiff.potentials.layers.assemble` — turns a message-passing flax
  module into ``(Potential, atomic_energies)``: only pure functions leave;
* :mod:`~mldiff.potentials.layers.edges` — masked edge geometry for message
  passing (unit vectors, lengths, validity), twice differentiable;
* :mod:`~mldiff.potentials.layers.irreps` — feature irreps, spherical
  harmonics (with or without parity), the per-edge weighted tensor product and
  e3nn linear / MLP factories with fixed normalisation;
* :mod:`~mldiff.potentials.layers.radial` — Bessel radial basis times a smooth
  polynomial cutoff envelope;
* :mod:`~mldiff.potentials.layers.species` — static atomic-number → row lookup,
  ghost (Z = 0) and unknown-element handling, the ``init``-time species check;
* :mod:`~mldiff.potentials.layers.scaling` — per-atom energy scale, shift and
  reference energies; neighbor-count normalisation; activation names.
"""

from mldiff.potentials.layers.assemble import graph_potential
from mldiff.potentials.layers.edges import EdgeGeometry, edge_geometry
from mldiff.potentials.layers.irreps import (
    linear,
    mlp,
    natural_irreps,
    num_path_weights,
    spherical_harmonics,
    weighted_tensor_product,
)
from mldiff.potentials.layers.radial import (
    bessel_basis,
    polynomial_envelope,
    radial_embedding,
)
from mldiff.potentials.layers.scaling import (
    ACTIVATIONS,
    activation,
    atomic_energy_table,
    average_num_neighbors,
    default_num_neighbors,
    total_atomic_energies,
)
from mldiff.potentials.layers.species import (
    SpeciesTable,
    check_init_species,
    species_table,
)

__all__ = [
    "graph_potential",
    "EdgeGeometry",
    "edge_geometry",
    "linear",
    "mlp",
    "natural_irreps",
    "num_path_weights",
    "weighted_tensor_product",
    "spherical_harmonics",
    "bessel_basis",
    "polynomial_envelope",
    "radial_embedding",
    "ACTIVATIONS",
    "activation",
    "atomic_energy_table",
    "average_num_neighbors",
    "default_num_neighbors",
    "total_atomic_energies",
    "SpeciesTable",
    "check_init_species",
    "species_table",
]
