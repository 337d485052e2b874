"""Lennard-Jones pair potential, with ASE's conventions.

``V(r) = 4ε[(σ/r)¹² − (σ/r)⁶]`` for ``r < rc``. As in
``ase.calculators.lj.LennardJones``: by default the pair energy is shifted to
zero at ``rc`` (``smooth=False``); with ``smooth=True`` it is multiplied by the
C¹ switch of jax-md/ASE between ``ro`` and ``rc`` instead.
"""

import jax.numpy as jnp

from mldiff import space
from mldiff.potentials._base import Potential

__all__ = ["lennard_jones"]


def _switch(r2, rc2, ro2):
    """ASE/jax-md cutoff in squared distances: 1 below ro, 0 above rc."""
    inner = (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
    return jnp.where(r2 < ro2, 1.0, jnp.where(r2 < rc2, inner, 0.0))


def lennard_jones(
    sigma: float = 1.0,
    epsilon: float = 1.0,
    rc: float | None = None,
    ro: float | None = None,
    smooth: bool = False,
) -> Potential:
    """Build a Lennard-Jones potential acting between all atoms alike.

    Args:
        sigma: σ, Å (trainable: stored in params).
        epsilon: ε, eV (trainable).
        rc: cutoff, Å; default ``3 σ``.
        ro: switch onset for ``smooth=True``, Å; default ``0.66 rc``.
        smooth: switch smoothly to zero instead of shifting the energy.

    Returns:
        A :class:`Potential` with params ``{"sigma", "epsilon"}``.

    Example:
        >>> pot = lennard_jones(sigma=2.0, epsilon=0.01)
        >>> pot.cutoff
        6.0
    """
    rc = 3.0 * sigma if rc is None else float(rc)
    ro = 0.66 * rc if ro is None else float(ro)

    def init(key, structure):
        del key, structure
        return {"sigma": jnp.asarray(sigma), "epsilon": jnp.asarray(epsilon)}

    def energy(params, structure, graph):
        s, e = params["sigma"], params["epsilon"]
        r2 = jnp.sum(space.edge_vectors(structure, graph) ** 2, axis=-1)  # [e], Å²
        inside = graph.mask & (r2 < rc**2)
        r2 = jnp.where(inside, r2, rc**2)  # padded/outer edges: finite, masked
        c6 = (s**2 / r2) ** 3
        pair = 4.0 * e * (c6 * c6 - c6)
        if smooth:
            pair = pair * _switch(r2, rc**2, ro**2)
        else:
            c6c = (s / rc) ** 6
            pair = pair - 4.0 * e * (c6c * c6c - c6c)
        return 0.5 * jnp.sum(jnp.where(inside, pair, 0.0))

    return Potential(init, energy, rc, None, "lj")
