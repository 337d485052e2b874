"""Predictions and error metrics of a model on labelled structures."""

import functools
from collections.abc import Sequence

import jax
import numpy as np

from mldiff.training import losses

__all__ = ["predict_items", "committee_predict_items", "metrics"]


def predict_items(
    potential,
    params,
    items: Sequence,
    *,
    batch_size: int = 8,
    with_stress: bool = False,
    dtype=None,
) -> dict[str, list]:
    """Energies, forces (and stress) for each item, in the items' order.

    Structures are batched in a few padded shape buckets, so the prediction
    compiles at most a few times.

    Args:
        potential: the potential.
        params: its parameters.
        items: labelled structures (labels are not needed).
        batch_size: structures per batch.
        with_stress: also return stress (periodic cells only).
        dtype: float dtype of the batches (default JAX's default float).

    Returns:
        ``{"energy": [eV], "forces": [[n_i, 3] eV/Å], "stress": [[3, 3] eV/Å³]}``;
        the stress entries are ``None`` without ``with_stress``.
    """
    from mldiff.data import batching

    ds = batching.Dataset.build(list(items), potential.cutoff)
    buckets = batching.make_buckets(ds, batch_size=batch_size)
    dtype = dtype or jax.numpy.result_type(float)
    predict_fn = jax.jit(losses.predict(potential.energy, with_stress))
    out = {
        "energy": [None] * len(ds),
        "forces": [None] * len(ds),
        "stress": [None] * len(ds),
    }
    plan = batching.batch_plan(ds, batch_size, buckets)
    for bucket, index in plan:
        batch = batching.make_batch(ds, index, bucket, batch_size, dtype)
        e, f, s = (np.asarray(x) for x in predict_fn(params, batch))
        for slot, k in enumerate(index):
            n = int(batch.n_atoms[slot])
            out["energy"][k] = float(e[slot])
            out["forces"][k] = f[slot, :n]
            if with_stress:  # else ``s`` holds zeros, not a prediction
                out["stress"][k] = s[slot]
    return out


@functools.lru_cache(maxsize=8)
def _committee_predict(energy_fn, with_stress: bool):
    """``(stacked_params, batch) -> (E [K, B], F [K, B, n, 3], σ [K, B, 3, 3])``."""
    one = losses.predict(energy_fn, with_stress)
    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _float_dtype(tree):
    for x in jax.tree.leaves(tree):
        if jax.numpy.issubdtype(jax.numpy.asarray(x).dtype, jax.numpy.floating):
            return jax.numpy.asarray(x).dtype
    return jax.numpy.result_type(float)


def committee_predict_items(
    potential,
    stacked_params,
    items: Sequence,
    *,
    batch_size: int = 8,
    with_stress: bool = False,
    ddof: int = 0,
) -> dict[str, list]:
    """Committee mean and spread of energy, forces (and stress) for each item.

    The members' predictions come from one jitted ``vmap`` over the member
    axis of :func:`mldiff.training.losses.predict`, on a few padded shape
    buckets (one compilation per bucket, cached per energy function).

    Args:
        potential: the members' potential.
        stacked_params: ``[K, ...]`` stacked parameters.
        items: labelled structures (labels are not needed).
        batch_size: structures per padded batch.
        with_stress: also predict the stress (periodic cells).
        ddof: delta degrees of freedom of the spreads.

    Returns:
        Lists in the items' order: ``energy`` and ``energy_std`` (eV),
        ``forces`` and ``forces_std`` (``[n_i, 3]`` eV/Å), ``stress`` and
        ``stress_std`` (``[3, 3]`` eV/Å³, ``None`` without ``with_stress``);
        ``energy``, ``forces``, ``stress`` are the committee means, in the
        layout of :func:`mldiff.training.evaluation.predict_items`.
    """
    from mldiff.data import batching

    keys = ("energy", "energy_std", "forces", "forces_std", "stress", "stress_std")
    items = list(items)
    out: dict[str, list] = {k: [None] * len(items) for k in keys}
    if not items:
        return out
    ds = batching.Dataset.build(items, potential.cutoff)
    buckets = batching.make_buckets(ds, batch_size=batch_size)
    fn = _committee_predict(potential.energy, bool(with_stress))
    dtype = _float_dtype(stacked_params)
    for bucket, index in batching.batch_plan(ds, batch_size, buckets):
        batch = batching.make_batch(ds, index, bucket, batch_size, dtype)
        e, f, s = (np.asarray(x, np.float64) for x in fn(stacked_params, batch))
        stats = [(x.mean(0), x.std(0, ddof=ddof)) for x in (e, f, s)]
        for slot, k in enumerate(index):
            n = int(batch.n_atoms[slot])
            out["energy"][k] = float(stats[0][0][slot])
            out["energy_std"][k] = float(stats[0][1][slot])
            out["forces"][k] = stats[1][0][slot, :n]
            out["forces_std"][k] = stats[1][1][slot, :n]
            if with_stress:
                out["stress"][k] = stats[2][0][slot]
                out["stress_std"][k] = stats[2][1][slot]
    return out


def metrics(items: Sequence, predictions: dict[str, list]) -> dict[str, float | int]:
    """MAE/RMSE of predictions against the items' labels, in meV and GPa.

    Returns:
        ``energy_mae_mev_per_atom``, ``energy_rmse_mev_per_atom``,
        ``forces_mae_mev_per_angstrom``, ``forces_rmse_mev_per_angstrom``,
        ``stress_mae_gpa``/``stress_rmse_gpa`` when available, and
        ``n_structures``.
    """
    from mldiff.units import eV_per_A3_to_GPa

    de = [
        (p - it.energy) / len(it.structure)
        for it, p in zip(items, predictions["energy"], strict=True)
        if it.energy is not None
    ]
    df = [
        np.ravel(p - it.forces)
        for it, p in zip(items, predictions["forces"], strict=True)
        if it.forces is not None
    ]
    ds = [
        np.ravel(p - it.stress)
        for it, p in zip(items, predictions["stress"], strict=True)
        if it.stress is not None and p is not None and all(it.structure.pbc)
    ]
    out: dict[str, float | int] = {"n_structures": len(items)}
    for name, errors, unit, suffix in (
        ("energy", np.asarray(de), 1e3, "mev_per_atom"),
        ("forces", np.concatenate(df) if df else np.zeros(0), 1e3, "mev_per_angstrom"),
        ("stress", np.concatenate(ds) if ds else np.zeros(0), eV_per_A3_to_GPa, "gpa"),
    ):
        if errors.size:
            out[f"{name}_mae_{suffix}"] = float(unit * np.mean(np.abs(errors)))
            out[f"{name}_rmse_{suffix}"] = float(unit * np.sqrt(np.mean(errors**2)))
    return out
