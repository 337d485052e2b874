"""The potential contract shared by every mldiff model."""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from mldiff.errors import ConfigError, SpeciesError

__all__ = ["Potential", "check_potential", "check_species"]


class Potential(NamedTuple):
    """A potential-energy surface as a pair of pure functions.

    Attributes:
        init: ``init(key, structure) -> params`` — the trainable numbers (a pytree).
        energy: ``energy(params, structure, graph) -> eV`` — total energy, a
            scalar; pure, jit-compatible, differentiable in positions and cell.
        cutoff: neighbor-graph cutoff the energy needs, Å.
        species: atomic numbers the potential has parameters for, or ``None``
            if it accepts any element.
        name: short name, for messages and checkpoints.
    """

    init: Callable[[Any, Any], Any]
    energy: Callable[[Any, Any, Any], Any]
    cutoff: float
    species: tuple[int, ...] | None = None
    name: str = "potential"


def check_potential(potential, what: str) -> None:
    """Raise :class:`ConfigError` unless ``potential`` is a :class:`Potential`.

    Catches the structure-first order of mldiff before 0.2 (``run(structure,
    potential, params)``) with a message that names the fix.

    Args:
        potential: what the caller passed as the potential.
        what: the function, for the message.
    """
    if not isinstance(potential, Potential):
        raise ConfigError(
            f"{what} takes (potential, params, structure, ...); got a "
            f"{type(potential).__name__} as the potential. Pass the potential "
            f"first and the structure third"
        )


def check_species(
    potential: Potential, numbers: Sequence[int] | np.ndarray | jax.Array
) -> None:
    """Raise :class:`SpeciesError` if ``numbers`` holds an unsupported element.

    Args:
        potential: the potential.
        numbers: atomic numbers of a structure (concrete, host side).
    """
    check_potential(potential, "this function")
    if potential.species is None:
        return
    present = set(int(z) for z in np.unique(np.asarray(numbers)))
    missing = sorted(present - set(potential.species))
    if missing:
        from ase.data import chemical_symbols

        have = ", ".join(chemical_symbols[z] for z in sorted(potential.species))
        bad = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in missing)
        raise SpeciesError(
            f"potential '{potential.name}' has no parameters for {bad}; it "
            f"supports {have}. Choose a potential for these elements or remove them"
        )
