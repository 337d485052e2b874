"""Committee predictions: mean and spread of stacked members, one ``vmap``.

References:
    B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and scalable
    predictive uncertainty estimation using deep ensembles", NeurIPS (2017).
    L. Zhang et al., "Active learning of uniformly accurate interatomic
    potentials for materials simulation" (DP-GEN), Phys. Rev. Mater. 3, 023804
    (2019): the per-atom force deviation ``max_i ‖σ_F,i‖`` used as a score.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from mldiff import calibration as calib
from mldiff import quantities, space

__all__ = ["mean_std", "committee"]


def mean_std(x, ddof: int = 0, axis: int = 0):
    """Mean and standard deviation over the member axis, safe to differentiate.

    Args:
        x: ``[K, ...]`` member values (any unit).
        ddof: delta degrees of freedom; 0 is the mixture's spread.
        axis: the member axis.

    Returns:
        ``(mean [...], std [...])`` in the unit of ``x``; the square root is
        guarded so that gradients stay finite where members agree exactly.

    Example:
        >>> import jax.numpy as jnp
        >>> [float(v) for v in mean_std(jnp.array([1.0, 3.0]))]
        [2.0, 1.0]
    """
    k = x.shape[axis]
    mean = jnp.mean(x, axis=axis)
    dev = x - jnp.expand_dims(mean, axis)
    var = jnp.sum(dev * dev, axis=axis) / max(k - int(ddof), 1)
    return mean, space.safe_sqrt(var)


def committee(
    energy_fn: Callable,
    *,
    atomic_energies_fn: Callable | None = None,
    with_stress: bool | None = None,
    ddof: int = 0,
    calibration: calib.Calibration | None = None,
    calibrated: bool = True,
):
    """Committee predictions and disagreement of stacked parameters.

    Energy, forces and stress of all members come from one ``vmap`` over the
    member axis of :func:`mldiff.quantities.energy_forces_stress`.

    Args:
        energy_fn: ``energy(params, structure, graph) -> eV`` of one member.
        atomic_energies_fn: optional ``(params, structure, graph) -> [n]`` eV
            per-atom energies summing to ``energy_fn`` (e.g.
            :func:`mldiff.potentials.nequip.nequip_atomic_energies`); adds the
            per-atom energy spread.
        with_stress: compute the stress (needs a cell with non-zero volume);
            ``None``: when any direction of the structure is periodic.
        ddof: delta degrees of freedom of the spread (0: mixture spread).
        calibration: scales on the spreads (:mod:`mldiff.calibration`, e.g.
            ``calibration.read(ensemble_dir)``): with it and ``calibrated``,
            every ``*_std_*`` value below is the calibrated spread and the raw
            one is kept as ``*_std_uncalibrated_*``.
        calibrated: apply ``calibration`` (``False``: raw spreads only).

    Returns:
        ``committee_fn(stacked_params, structure, graph) -> dict`` (jit- and
        vmap-compatible; vmap it over a padded batch with ``in_axes=(None, 0,
        0)``). Atoms with atomic number 0 (padding ghosts) are left out of the
        per-structure scores. Keys:

        * ``energy_members_ev`` ``[K]``; ``energy_mean_ev``, ``energy_std_ev``.
        * ``forces_mean_ev_per_angstrom``, ``forces_std_ev_per_angstrom``
          ``[n, 3]``, componentwise.
        * ``stress_mean_ev_per_angstrom3``, ``stress_std_ev_per_angstrom3``
          ``[3, 3]`` (when the stress is computed).
        * ``energy_std_ev_per_atom``: energy spread / number of atoms.
        * ``atom_force_std_ev_per_angstrom`` ``[n]``: ``‖σ_F,i‖ =
          √(Σ_a σ²_F,ia)``, the root-mean-square deviation of the members'
          force vectors on atom ``i`` from their mean (DP-GEN's deviation).
        * ``max_force_std_ev_per_angstrom``, ``mean_force_std_ev_per_angstrom``:
          maximum and mean of that over atoms.
        * with ``atomic_energies_fn``: ``atom_energy_mean_ev``,
          ``atom_energy_std_ev`` ``[n]`` and ``max_atom_energy_std_ev``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from mldiff import neighbors, potentials
        >>> from mldiff.ensemble import stack
        >>> from mldiff.structure import Structure
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> s = Structure.create([[0, 0, 0], [2.5, 0, 0]], jnp.eye(3) * 9.0,
        ...                      [29, 29])
        >>> g = neighbors.allocate(s, pot.cutoff)
        >>> p = stack([pot.init(None, s)] * 2)          # identical members
        >>> out = jax.jit(committee(pot.energy))(p, s, g)
        >>> float(out["max_force_std_ev_per_angstrom"])
        0.0
        >>> out["stress_std_ev_per_angstrom3"].shape
        (3, 3)
    """
    efs = quantities.energy_forces_stress(energy_fn)
    ef = quantities.energy_and_forces(energy_fn)

    def committee_fn(stacked_params, structure, graph) -> dict:
        stress_on = any(structure.pbc) if with_stress is None else bool(with_stress)
        members = jax.vmap(efs if stress_on else ef, in_axes=(0, None, None))
        out_members = members(stacked_params, structure, graph)
        e, f = out_members[0], out_members[1]  # [K] eV, [K, n, 3] eV/Å
        real = structure.numbers > 0  # [n]
        n_real = jnp.maximum(jnp.sum(real), 1).astype(e.dtype)
        e_mean, e_std = mean_std(e, ddof)
        f_mean, f_std = mean_std(f, ddof)
        atom_f = space.safe_sqrt(jnp.sum(f_std * f_std, axis=-1))  # [n]
        atom_f = jnp.where(real, atom_f, 0.0)
        out = {
            "energy_members_ev": e,
            "energy_mean_ev": e_mean,
            "energy_std_ev": e_std,
            "forces_mean_ev_per_angstrom": f_mean,
            "forces_std_ev_per_angstrom": f_std,
            "energy_std_ev_per_atom": e_std / n_real,
            "atom_force_std_ev_per_angstrom": atom_f,
            "max_force_std_ev_per_angstrom": jnp.max(atom_f),
            "mean_force_std_ev_per_angstrom": jnp.sum(atom_f) / n_real,
        }
        if stress_on:
            s_mean, s_std = mean_std(out_members[2], ddof)
            out["stress_mean_ev_per_angstrom3"] = s_mean
            out["stress_std_ev_per_angstrom3"] = s_std
        if atomic_energies_fn is not None:
            ea = jax.vmap(atomic_energies_fn, in_axes=(0, None, None))(
                stacked_params, structure, graph
            )  # [K, n] eV
            ea_mean, ea_std = mean_std(ea, ddof)
            ea_std = jnp.where(real, ea_std, 0.0)
            out["atom_energy_mean_ev"] = ea_mean
            out["atom_energy_std_ev"] = ea_std
            out["max_atom_energy_std_ev"] = jnp.max(ea_std)
        return calib.apply(calibration, out, calibrated=calibrated)

    return committee_fn
