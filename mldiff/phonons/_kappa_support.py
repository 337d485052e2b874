"""Host-side helpers of the κ solvers: static jit arguments and mesh checks.

Kept apart from :mod:`.conductivity` (which re-exports :func:`check_mesh`)
so that the solvers' module holds the physics.
"""

import jax
import numpy as np

from mldiff.errors import ConfigError

__all__ = ["ByContent", "check_mesh", "LBTE_MAX_MODES"]

LBTE_MAX_MODES = 24_000  # 4.3 GiB collision matrix


class ByContent:
    """Host-side inputs (mesh, triplets, primitive cell) as a static jit argument.

    Hashed and compared by the bytes, shapes and dtypes of their leaves, so a
    second :func:`run` on equal inputs (a new ``Mesh`` of the same crystal,
    another fc3 with the same non-zero triples) reuses the compiled program.
    """

    def __init__(self, value):
        leaves, treedef = jax.tree_util.tree_flatten(value)
        arrays = [np.asarray(v) for v in leaves]
        self.value = value
        self._key = (
            str(treedef),
            tuple((a.shape, a.dtype.str, a.tobytes()) for a in arrays),
        )
        self._hash = hash(self._key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, ByContent) and self._key == other._key


def check_mesh(mesh_numbers, n_primitive_atoms: int, method: str = "rta") -> None:
    """Refuse a q-mesh that is not three positive integers or too big to solve.

    The LBTE's dense collision matrix has ``(N_q · 3p)²`` entries; meshes
    beyond :data:`LBTE_MAX_MODES` modes are refused before any work.

    Args:
        mesh_numbers: ``[3]`` q-mesh numbers.
        n_primitive_atoms: atoms in the primitive cell.
        method: ``"rta"`` or ``"lbte"``.

    Raises:
        ConfigError: naming the size, its memory and what to do instead.

    Example:
        >>> check_mesh([11, 11, 11], 2, "lbte")  # 7986 modes: accepted
    """
    m = np.asarray(mesh_numbers)
    if m.shape != (3,) or not np.all(np.round(m) == m) or np.any(m < 1):
        raise ConfigError(f"mesh must be 3 positive integers, got {m.tolist()}")
    size = int(np.prod(m.astype(int))) * 3 * int(n_primitive_atoms)
    if method == "lbte" and size > LBTE_MAX_MODES:
        raise ConfigError(
            f"the LBTE collision matrix would be {size}×{size} "
            f"({8 * size**2 / 2**30:.1f} GiB per temperature); the limit is "
            f"{LBTE_MAX_MODES} modes: use a smaller mesh or method='rta'"
        )
