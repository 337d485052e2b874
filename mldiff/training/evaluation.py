"""Predictions and error metrics of a model on labelled structures."""

from collections.abc import Sequence

import jax
import numpy as np

from mldiff.training import losses

__all__ = ["predict_items", "metrics"]


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
