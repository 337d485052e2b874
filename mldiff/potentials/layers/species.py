"""Atomic numbers → embedding rows, with ghost atoms and unknown elements.

A potential for ``species = (Z_1, ..., Z_k)`` (sorted) gives element ``Z_a`` the
row ``a``. Atomic number 0 is a *ghost*: a padding atom that batches add to
reach a fixed shape; it gets row ``k`` (no embedding row, zero one-hot), carries
no energy and takes part in no edge. Any other element gets row ``k + 1``
(unknown): ``init`` rejects it on the host, and ``energy`` returns NaN for it
inside ``jit`` rather than a silently wrong number.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.errors import ConfigError
from mldiff.potentials._base import Potential, check_species

__all__ = ["SpeciesTable", "species_table", "check_init_species", "MAX_Z"]

MAX_Z = 118


class SpeciesTable(NamedTuple):
    """Static lookup from atomic number to embedding row.

    Attributes:
        species: sorted atomic numbers with parameters, length ``k``.
        rows: ``[MAX_Z + 1]`` int32 NumPy table, ``rows[Z]`` is the row of
            element ``Z``: ``0..k-1`` for ``species``, ``k`` for ghosts (Z = 0),
            ``k + 1`` for any other element.
    """

    species: tuple[int, ...]
    rows: np.ndarray

    @property
    def num_species(self) -> int:
        """Number of elements with parameters, ``k``."""
        return len(self.species)

    def lookup(self, numbers: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Rows of atoms inside ``jit``.

        Args:
            numbers: ``[n]`` atomic numbers (traced or concrete).

        Returns:
            ``(rows, real, unknown)``: ``[n]`` int32 rows clipped to ``0..k-1``
            (safe for indexing weights), ``[n]`` bool True for atoms of
            ``species`` and ``[n]`` bool True for unsupported elements.
        """
        k = self.num_species
        z = jnp.clip(numbers.astype(jnp.int32), 0, MAX_Z)
        rows = jnp.asarray(self.rows)[z]
        rows = jnp.where((numbers < 0) | (numbers > MAX_Z), k + 1, rows)
        return jnp.minimum(rows, k - 1), rows < k, rows == k + 1

    def one_hot(self, numbers: jax.Array, dtype) -> jax.Array:
        """``[n, k]`` one-hot rows; all zeros for ghosts and unknown elements."""
        k = self.num_species
        z = jnp.clip(numbers.astype(jnp.int32), 0, MAX_Z)
        return jax.nn.one_hot(jnp.asarray(self.rows)[z], k, dtype=dtype)


def species_table(species: Sequence[int]) -> SpeciesTable:
    """Build the static lookup for ``species``.

    Args:
        species: atomic numbers (1..118) the potential has parameters for.

    Returns:
        The :class:`SpeciesTable`, with ``species`` sorted and de-duplicated.

    Raises:
        ConfigError: if ``species`` is empty or holds a number outside 1..118.

    Example:
        >>> t = species_table((29, 14))
        >>> t.species, int(t.rows[14]), int(t.rows[0]), int(t.rows[1])
        ((14, 29), 0, 2, 3)
    """
    try:
        numbers = tuple(sorted({int(z) for z in species}))
    except TypeError as err:
        raise ConfigError(
            f"species must be a sequence of atomic numbers, got {species!r}"
        ) from err
    if not numbers:
        raise ConfigError("species=() gives the model no elements; pass e.g. (29,)")
    bad = [z for z in numbers if not 1 <= z <= MAX_Z]
    if bad:
        raise ConfigError(
            f"species must be atomic numbers 1..{MAX_Z}, got {bad}; atomic "
            "number 0 (ghost padding) is always accepted and needs no entry"
        )
    k = len(numbers)
    rows = np.full(MAX_Z + 1, k + 1, dtype=np.int32)
    rows[list(numbers)] = np.arange(k, dtype=np.int32)
    rows[0] = k
    return SpeciesTable(numbers, rows)


def check_init_species(potential: Potential, structure) -> None:
    """Raise :class:`~mldiff.errors.SpeciesError` for unsupported real atoms.

    Ghost atoms (Z = 0) are accepted. Skipped when ``structure`` is ``None`` or
    its numbers are traced (inside ``jit``/``vmap``).

    Args:
        potential: the potential (its ``species`` are checked against).
        structure: a :class:`~mldiff.structure.Structure` or ``None``.
    """
    if structure is None or isinstance(structure.numbers, jax.core.Tracer):
        return
    numbers = np.asarray(structure.numbers)
    check_species(potential, numbers[numbers != 0])
