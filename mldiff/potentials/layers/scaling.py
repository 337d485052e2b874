"""Per-atom energy scale, shift and reference energies; normalisation constants.

A learned model outputs a dimensionless per-atom number ``e_i``; the energy is
``E = Σ_i [scale·e_i + shift + E0(Z_i)]`` over real atoms (ghosts contribute
exactly 0), with ``E0`` per-element reference energies (e.g. fitted by least
squares to training totals), ``shift`` in eV/atom and ``scale`` in eV.
"""

import math
from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import space
from mldiff.errors import ConfigError, SpeciesError

__all__ = [
    "ACTIVATIONS",
    "activation",
    "atomic_energy_table",
    "total_atomic_energies",
    "default_num_neighbors",
    "average_num_neighbors",
    "TYPICAL_NUMBER_DENSITY",
]

TYPICAL_NUMBER_DENSITY = 0.06  # atoms/Å³, between diamond Si (0.050) and Cu (0.085)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called ``name`` (see :data:`ACTIVATIONS`).

    Raises:
        ConfigError: for an unknown name.

    Example:
        >>> float(activation("tanh")(0.0))
        0.0
    """
    try:
        return ACTIVATIONS[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        ) from None


def atomic_energy_table(
    species: tuple[int, ...], atomic_energies: Mapping[int, float] | None
) -> np.ndarray:
    """``[k]`` float64 reference energies E0 in the order of ``species``, eV.

    Elements missing from ``atomic_energies`` get 0.

    Raises:
        SpeciesError: if ``atomic_energies`` names an element not in ``species``.

    Example:
        >>> atomic_energy_table((14, 29), {29: -3.5}).tolist()
        [0.0, -3.5]
    """
    atomic_energies = dict(atomic_energies or {})
    extra = sorted(set(int(z) for z in atomic_energies) - set(species))
    if extra:
        raise SpeciesError(
            f"atomic_energies given for elements {extra} that are not in "
            f"species={species}; add them to species or drop them"
        )
    return np.array([float(atomic_energies.get(z, 0.0)) for z in species], np.float64)


def total_atomic_energies(
    e: jax.Array,
    rows: jax.Array,
    real: jax.Array,
    unknown: jax.Array,
    e0: np.ndarray,
    scale: float,
    shift: float,
) -> jax.Array:
    """Per-atom energies ``scale·e_i + shift + E0(Z_i)``; 0 for ghosts.

    Args:
        e: ``[n]`` raw model outputs (dimensionless).
        rows: ``[n]`` species rows clipped to ``0..k-1``.
        real: ``[n]`` bool, atoms of a supported species.
        unknown: ``[n]`` bool, atoms of an unsupported element: their energy is
            NaN, so results cannot be silently wrong.
        e0: ``[k]`` reference energies, eV.
        scale: eV.
        shift: eV/atom.

    Returns:
        ``[n]`` energies, eV, in the dtype of ``e``.
    """
    dtype = e.dtype
    ref = jnp.asarray(e0, dtype)[rows]
    out = jnp.where(real, scale * e + shift + ref, 0.0).astype(dtype)
    # log(−1) = NaN for unknown elements, log(1) = 0 elsewhere; built from the
    # mask alone so that NaN never appears when all elements are known
    poison = jnp.log(jnp.where(unknown, -1.0, 1.0)).astype(dtype)
    return out + poison


def default_num_neighbors(cutoff: float) -> float:
    """Neighbors within ``cutoff`` at a typical solid density, ``(4π/3) r_c³ n₀``.

    The fallback for ``avg_num_neighbors=None``; n₀ is
    :data:`TYPICAL_NUMBER_DENSITY`. Prefer :func:`average_num_neighbors` on the
    training data.

    Example:
        >>> round(default_num_neighbors(5.0), 2)
        31.42
    """
    return 4.0 * math.pi / 3.0 * cutoff**3 * TYPICAL_NUMBER_DENSITY


def average_num_neighbors(pairs: Iterable, cutoff: float) -> float:
    """Mean number of neighbors within ``cutoff`` per real atom, from data.

    Args:
        pairs: iterable of ``(structure, graph)``; ghosts (Z = 0) are not
            counted, and graph edges beyond ``cutoff`` (skin) are ignored.
        cutoff: model cutoff, Å.

    Returns:
        Edges per real atom (host float).

    Raises:
        ConfigError: if the data hold no real atom.
    """
    edges = atoms = 0
    for s, g in pairs:
        numbers = np.asarray(s.numbers)
        r = np.asarray(space.edge_lengths(s, g))
        ok = np.asarray(g.mask) & (r < cutoff)
        ok &= (numbers[np.asarray(g.senders)] > 0) & (
            numbers[np.asarray(g.receivers)] > 0
        )
        edges += int(ok.sum())
        atoms += int((numbers > 0).sum())
    if atoms == 0:
        raise ConfigError("average_num_neighbors got no real atoms; pass training data")
    return edges / atoms
