"""Morse pair potential, with ASE's smooth cutoff.

``V(r) = ε e^{ρ0(1 − r/r0)} (e^{ρ0(1 − r/r0)} − 2)``, multiplied by the quintic
C² switch of ``ase.calculators.morse.MorsePotential`` between ``rcut1·r0`` and
``rcut2·r0``.
"""

import jax.numpy as jnp

from mldiff import space
from mldiff.potentials._base import Potential

__all__ = ["morse"]


def _fcut(r, r0, r1):
    """Quintic smoothstep: 1 below r0, 0 above r1, C² (ASE's ``fcut``)."""
    s = jnp.clip(1.0 - (r - r0) / (r1 - r0), 0.0, 1.0)
    return 6.0 * s**5 - 15.0 * s**4 + 10.0 * s**3


def morse(
    epsilon: float = 1.0,
    rho0: float = 6.0,
    r0: float = 1.0,
    rcut1: float = 1.9,
    rcut2: float = 2.7,
) -> Potential:
    """Build a Morse potential acting between all atoms alike.

    Args:
        epsilon: well depth ε, eV (trainable).
        rho0: stiffness ρ0, dimensionless (trainable).
        r0: equilibrium distance, Å (trainable).
        rcut1: switch onset in units of the initial ``r0``.
        rcut2: cutoff in units of the initial ``r0``.

    Returns:
        A :class:`Potential` with params ``{"epsilon", "rho0", "r0"}``.

    Example:
        >>> morse(r0=2.5).cutoff
        6.75
    """
    r_in, r_out = rcut1 * r0, rcut2 * r0

    def init(key, structure):
        del key, structure
        return {
            "epsilon": jnp.asarray(epsilon),
            "rho0": jnp.asarray(rho0),
            "r0": jnp.asarray(r0),
        }

    def energy(params, structure, graph):
        r = space.edge_lengths(structure, graph)  # [e], Å
        inside = graph.mask & (r < r_out)
        r = jnp.where(inside, r, r_out)
        expf = jnp.exp(params["rho0"] * (1.0 - r / params["r0"]))
        pair = params["epsilon"] * expf * (expf - 2.0) * _fcut(r, r_in, r_out)
        return 0.5 * jnp.sum(jnp.where(inside, pair, 0.0))

    return Potential(init, energy, r_out, None, "morse")
