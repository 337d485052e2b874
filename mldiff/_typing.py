"""Array aliases and protocols shared across mldiff.

Arrays may be NumPy or JAX at public boundaries; inside jit they are JAX.
"""

from typing import Any, Protocol

import jax
import numpy as np

__all__ = ["ArrayLike", "Params", "EnergyFn"]

ArrayLike = jax.Array | np.ndarray
Params = Any  # a pytree of arrays


class EnergyFn(Protocol):
    """``energy(params, structure, graph) -> eV`` (a scalar array)."""

    def __call__(self, params: Params, structure: Any, graph: Any) -> jax.Array:
        """Total energy in eV."""
        ...
