"""Derived quantities as functions of an energy function.

Each builder takes ``energy_fn(params, structure, graph) -> eV`` and returns a
new pure function with the same arguments, so results compose with ``jit``,
``vmap`` (e.g. over stacked ensemble parameters or a batch of structures) and
further ``grad``.

Conventions follow ASE: forces ``F = −∂E/∂R`` in eV/Å; stress
``σ = (1/V) ∂E/∂ε`` at ε = 0 in eV/Å³ (positive = the cell wants to shrink, i.e.
tensile), Voigt order ``(xx, yy, zz, yz, xz, xy)``.

Example:
    >>> import jax, numpy as np
    >>> from mldiff import potentials, neighbors
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("lj", sigma=2.0, epsilon=0.01)
    >>> s = Structure.create([[0, 0, 0], [2.3, 0, 0]], None, [18, 18], pbc=False)
    >>> g = neighbors.allocate(s, pot.cutoff)
    >>> f = forces(pot.energy)(pot.init(None, s), s, g)
    >>> f.shape
    (2, 3)
"""

import jax
import jax.numpy as jnp

from mldiff import space
from mldiff.structure import apply_strain

__all__ = [
    "forces",
    "stress",
    "energy_and_forces",
    "energy_forces_stress",
    "full_3x3_to_voigt",
    "voigt_to_full_3x3",
]


def forces(energy_fn):
    """``(params, structure, graph) -> [n, 3]`` forces −∂E/∂R, eV/Å."""

    def forces_fn(params, structure, graph):
        def e_of_r(r):
            return energy_fn(params, structure.replace(positions=r), graph)

        return -jax.grad(e_of_r)(structure.positions)

    return forces_fn


def stress(energy_fn):
    """``(params, structure, graph) -> [3, 3]`` stress (1/V)∂E/∂ε, eV/Å³.

    Requires a periodic cell with non-zero volume; V = |det(cell)|, so the sign
    is right for left-handed cells too (e.g. after an improper rotation).
    """

    def stress_fn(params, structure, graph):
        def e_of_eps(eps):
            return energy_fn(params, apply_strain(structure, eps), graph)

        zero = jnp.zeros((3, 3), structure.cell.dtype)
        return jax.grad(e_of_eps)(zero) / jnp.abs(space.volume(structure))

    return stress_fn


def energy_and_forces(energy_fn):
    """``(params, structure, graph) -> (eV, [n, 3] eV/Å)`` in one backward pass."""

    def energy_and_forces_fn(params, structure, graph):
        def e_of_r(r):
            return energy_fn(params, structure.replace(positions=r), graph)

        e, de_dr = jax.value_and_grad(e_of_r)(structure.positions)
        return e, -de_dr

    return energy_and_forces_fn


def energy_forces_stress(energy_fn):
    """``(params, structure, graph) -> (E, F, σ)`` in one backward pass.

    Returns:
        A function giving energy (eV), ``[n, 3]`` forces (eV/Å) and ``[3, 3]``
        stress (eV/Å³). Both derivatives come from a single ``value_and_grad``
        over positions and a strain at zero. A cell of zero volume (no
        periodic cell) has no stress: it is returned as zeros, and the
        division is guarded so that gradients of it stay finite.
    """

    def energy_forces_stress_fn(params, structure, graph):
        def e_of(r, eps):
            return energy_fn(
                params, apply_strain(structure.replace(positions=r), eps), graph
            )

        zero = jnp.zeros((3, 3), structure.cell.dtype)
        e, (de_dr, de_deps) = jax.value_and_grad(e_of, argnums=(0, 1))(
            structure.positions, zero
        )
        vol = jnp.abs(space.volume(structure))
        ok = vol > 1e-12
        return e, -de_dr, jnp.where(ok, de_deps / jnp.where(ok, vol, 1.0), 0.0)

    return energy_forces_stress_fn


def full_3x3_to_voigt(sigma: jax.Array) -> jax.Array:
    """``[..., 3, 3]`` symmetric tensor to ``[..., 6]`` Voigt.

    Voigt order is (xx, yy, zz, yz, xz, xy), as in ASE.
    """
    return jnp.stack(
        [
            sigma[..., 0, 0],
            sigma[..., 1, 1],
            sigma[..., 2, 2],
            0.5 * (sigma[..., 1, 2] + sigma[..., 2, 1]),
            0.5 * (sigma[..., 0, 2] + sigma[..., 2, 0]),
            0.5 * (sigma[..., 0, 1] + sigma[..., 1, 0]),
        ],
        axis=-1,
    )


def voigt_to_full_3x3(v: jax.Array) -> jax.Array:
    """``[..., 6]`` Voigt (xx, yy, zz, yz, xz, xy) to ``[..., 3, 3]`` tensor."""
    xx, yy, zz, yz, xz, xy = (v[..., k] for k in range(6))
    return jnp.stack(
        [
            jnp.stack([xx, xy, xz], -1),
            jnp.stack([xy, yy, yz], -1),
            jnp.stack([xz, yz, zz], -1),
        ],
        -2,
    )
