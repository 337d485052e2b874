"""Committee predictions and disagreement over many structures, batched.

:func:`committee_predictions` evaluates :func:`mldiff.ensemble.committee` on a
list of structures in a few padded shape buckets (one compilation per bucket),
and :func:`disagreement` picks the score that query by committee ranks by.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import ensemble
from mldiff.errors import ConfigError
from mldiff.io.labeled import LabeledStructure
from mldiff.potentials import Potential
from mldiff.structure import Structure

__all__ = [
    "SCORES",
    "committee_errors",
    "committee_mean",
    "committee_predictions",
    "disagreement",
]

SCORES = {
    "max_force_std": "max_force_std_ev_per_angstrom",
    "mean_force_std": "mean_force_std_ev_per_angstrom",
    "energy_std_per_atom": "energy_std_ev_per_atom",
}


@functools.lru_cache(maxsize=8)
def committee_mean(potential: Potential) -> Potential:
    """The committee-mean energy of stacked parameters as a :class:`Potential`.

    ``energy(stacked_params, structure, graph) = mean_k E_k`` (eV); its forces
    are the mean of the members' forces. Used to drive exploration MD. Cached
    per potential, so MD driven by it compiles once across rounds.
    """

    def energy(stacked_params, structure, graph):
        members = jax.vmap(potential.energy, in_axes=(0, None, None))
        return jnp.mean(members(stacked_params, structure, graph))

    return Potential(
        init=potential.init,
        energy=energy,
        cutoff=potential.cutoff,
        species=potential.species,
        name=f"committee mean of {potential.name}",
    )


def _float_dtype(tree):
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return leaves[0].dtype if leaves else jnp.result_type(float)


def committee_predictions(
    potential: Potential,
    stacked_params,
    structures: Sequence[Structure | LabeledStructure],
    *,
    batch_size: int = 8,
) -> dict[str, list]:
    """Committee mean, spread and disagreement scores of every structure.

    Args:
        potential: the members' potential.
        stacked_params: ``[K, ...]`` stacked parameters.
        structures: structures (or labeled structures; labels are ignored).
        batch_size: structures per padded batch.

    Returns:
        Lists in the input order: ``energy_mean_ev``, ``energy_std_ev``,
        ``energy_std_ev_per_atom``, ``max_force_std_ev_per_angstrom``,
        ``mean_force_std_ev_per_angstrom`` (floats) and
        ``forces_mean_ev_per_angstrom`` ``[n_i, 3]``,
        ``atom_force_std_ev_per_angstrom`` ``[n_i]`` (arrays).
    """
    from mldiff.data import batching

    items = [
        s if isinstance(s, LabeledStructure) else LabeledStructure.create(s)
        for s in structures
    ]
    keys = (
        "energy_mean_ev",
        "energy_std_ev",
        "energy_std_ev_per_atom",
        "max_force_std_ev_per_angstrom",
        "mean_force_std_ev_per_angstrom",
        "forces_mean_ev_per_angstrom",
        "atom_force_std_ev_per_angstrom",
    )
    out: dict[str, list] = {k: [None] * len(items) for k in keys}
    if not items:
        return out
    ds = batching.Dataset.build(items, potential.cutoff)
    buckets = batching.make_buckets(ds, batch_size=batch_size)
    fn = _batched_committee(potential.energy)
    dtype = _float_dtype(stacked_params)
    for bucket, index in batching.batch_plan(ds, batch_size, buckets):
        batch = batching.make_batch(ds, index, bucket, batch_size, dtype)
        res = jax.tree.map(np.asarray, fn(stacked_params, batch))
        for slot, k in enumerate(index):
            n = int(batch.n_atoms[slot])
            for key in keys[:5]:
                out[key][k] = float(res[key][slot])
            out[keys[5]][k] = res[keys[5]][slot, :n]
            out[keys[6]][k] = res[keys[6]][slot, :n]
    return out


@functools.lru_cache(maxsize=8)
def _batched_committee(energy_fn):
    """One jitted program per energy function, so repeated rounds reuse it."""
    one = ensemble.committee(energy_fn, with_stress=False)

    def fn(params, batch):
        return jax.vmap(one, in_axes=(None, 0, 0))(
            params, batch.structure, batch.graph
        )

    return jax.jit(fn)


def disagreement(predictions: dict[str, list], score: str) -> np.ndarray:
    """``[n]`` disagreement scores from :func:`committee_predictions`.

    Args:
        predictions: the dict returned by :func:`committee_predictions`.
        score: ``"max_force_std"`` (DP-GEN's max per-atom force deviation,
            eV/Å), ``"mean_force_std"`` (eV/Å) or ``"energy_std_per_atom"``
            (eV/atom).

    Raises:
        ConfigError: unknown score name.
    """
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; choose one of {tuple(SCORES)}")
    return np.asarray(predictions[SCORES[score]], dtype=np.float64)


def committee_errors(
    potential: Potential,
    stacked_params,
    labeled: Sequence[LabeledStructure],
) -> dict[str, float]:
    """Errors of the committee mean on labeled structures, in quoted units.

    Returns:
        ``energy_mae_mev_per_atom``, ``forces_mae_mev_per_angstrom``,
        ``forces_rmse_mev_per_angstrom`` and ``mean_force_std_mev_per_angstrom``
        (the committee's own force spread, averaged over atoms and components);
        an empty dict when ``labeled`` is empty.
    """
    if not labeled:
        return {}
    pred = committee_predictions(potential, stacked_params, labeled)
    e_err = [
        (e - it.energy) / it.n_atoms
        for e, it in zip(pred["energy_mean_ev"], labeled, strict=True)
    ]
    f_err = np.concatenate(
        [
            (f - np.asarray(it.forces)).ravel()
            for f, it in zip(pred["forces_mean_ev_per_angstrom"], labeled, strict=True)
        ]
    )
    return {
        "energy_mae_mev_per_atom": 1e3 * float(np.mean(np.abs(e_err))),
        "forces_mae_mev_per_angstrom": 1e3 * float(np.mean(np.abs(f_err))),
        "forces_rmse_mev_per_angstrom": 1e3 * float(np.sqrt(np.mean(f_err**2))),
        "mean_force_std_mev_per_angstrom": 1e3
        * float(np.mean(pred["mean_force_std_ev_per_angstrom"])),
    }
