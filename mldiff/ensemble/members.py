"""Stacked parameters: ``K`` members of one potential as one pytree.

Every leaf of stacked parameters has a leading member axis ``[K, ...]``;
:func:`init_ensemble` draws them, :func:`stack` and :func:`unstack` convert
from and to ``K`` single-model pytrees.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.errors import ConfigError
from mldiff.potentials import Potential
from mldiff.structure import Structure

__all__ = ["Ensemble", "init_ensemble", "stack", "unstack", "n_members"]


class Ensemble(NamedTuple):
    """A loaded ensemble: a potential and its stacked parameters.

    Attributes:
        potential: the shared :class:`~mldiff.potentials.Potential`.
        params: stacked parameters, every leaf ``[K, ...]``.
    """

    potential: Any
    params: Any


def init_ensemble(potential: Potential, key, structure: Structure, n_members: int):
    """Stacked parameters of ``n_members`` members from split keys.

    Member ``k`` gets ``potential.init(jax.random.split(key, n_members)[k],
    structure)``; the members are drawn in one ``vmap`` over the keys.

    Args:
        potential: any potential whose ``init`` uses its key.
        key: a PRNG key.
        structure: passed to ``init`` (sets dtype and checks species).
        n_members: ensemble size ``K`` (≥ 1).

    Returns:
        Stacked parameters, every leaf ``[K, ...]``.

    Example:
        >>> import jax
        >>> from mldiff.potentials.nequip import NequIPConfig, nequip
        >>> from mldiff.structure import Structure
        >>> cfg = NequIPConfig(num_layers=1, features=4, l_max=1, radial_mlp=(8,))
        >>> pot = nequip(cfg, species=(14,))
        >>> s = Structure.create([[0, 0, 0]], None, [14], pbc=False)
        >>> p = init_ensemble(pot, jax.random.key(0), s, 3)
        >>> n_members(p)
        3
    """
    if int(n_members) < 1:
        raise ConfigError(f"n_members must be at least 1, got {n_members!r}")
    keys = jax.random.split(key, int(n_members))
    return _init_from_keys(potential, keys, structure)


def _init_from_keys(potential, keys, structure):
    return jax.vmap(lambda k: potential.init(k, structure))(keys)


def stack(params_list: Sequence):
    """Stack per-member parameter pytrees along a new leading axis.

    Args:
        params_list: ``K`` pytrees of one structure and leaf shapes.

    Returns:
        One pytree with leaves ``[K, ...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> stack([{"a": jnp.zeros(2)}, {"a": jnp.ones(2)}])["a"].shape
        (2, 2)
    """
    params_list = list(params_list)
    if not params_list:
        raise ConfigError("stack needs at least one parameter pytree, got none")
    return jax.tree.map(lambda *x: jnp.stack(x), *params_list)


def unstack(stacked_params) -> list:
    """The ``K`` per-member pytrees of stacked parameters (inverse of :func:`stack`).

    Example:
        >>> import jax.numpy as jnp
        >>> [float(p["a"]) for p in unstack({"a": jnp.array([1.0, 2.0])})]
        [1.0, 2.0]
    """
    k = n_members(stacked_params)
    return [jax.tree.map(lambda x, i=i: x[i], stacked_params) for i in range(k)]


def n_members(stacked_params) -> int:
    """Ensemble size ``K``: the common leading axis of every leaf.

    Example:
        >>> import jax.numpy as jnp
        >>> n_members({"a": jnp.zeros((4, 2)), "b": jnp.zeros(4)})
        4
    """
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(stacked_params)}
    if len(sizes) != 1:
        raise ConfigError(
            f"stacked parameters must share one leading member axis; got sizes "
            f"{sorted(sizes)}. Build them with stack() or init_ensemble()"
        )
    return sizes.pop()
