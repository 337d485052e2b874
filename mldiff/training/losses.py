"""Weighted energy / force / stress losses and error sums over padded batches.

All functions take a :class:`mldiff.data.batching.Batch` whose leaves are stacked
over structures and padded with ghost atoms (``atom_mask``) and empty structures
(``structure_mask``); every sum below runs over real entries only.
"""

import jax
import jax.numpy as jnp

from mldiff import quantities

__all__ = ["predict", "loss_fn", "error_sums", "metrics_from_sums"]


def predict(energy_fn, with_stress: bool):
    """``(params, batch) -> (E [B] eV, F [B, n, 3] eV/Å, σ [B, 3, 3] eV/Å³)``.

    :func:`mldiff.quantities.energy_forces_stress` (or, without stress,
    :func:`~mldiff.quantities.energy_and_forces`) vmapped over the batch: one
    ``value_and_grad`` per structure. Without stress, or without a periodic
    volume, the stress is returned as zeros.
    """
    if with_stress:
        one = quantities.energy_forces_stress(energy_fn)
    else:
        energy_and_forces = quantities.energy_and_forces(energy_fn)

        def one(params, structure, graph):
            e, f = energy_and_forces(params, structure, graph)
            return e, f, jnp.zeros((3, 3), structure.cell.dtype)

    def predict_fn(params, batch):
        return jax.vmap(one, in_axes=(None, 0, 0))(params, batch.structure, batch.graph)

    return predict_fn


def _weights(batch, slot_weights=None):
    """Per-entry weights: 1 for real labelled entries (times ``slot_weights``)."""
    dt = batch.energy.dtype
    real = batch.structure_mask
    n = jnp.maximum(batch.n_atoms, 1).astype(dt)
    w = jnp.ones_like(batch.energy) if slot_weights is None else slot_weights
    w = jnp.asarray(w).astype(dt)  # [B]
    w_e = (real & batch.has_energy).astype(dt) * w
    w_f = ((real & batch.has_forces)[:, None] & batch.atom_mask).astype(dt)
    w_f = w_f * w[:, None]
    w_s = (real & batch.has_stress).astype(dt) * w
    return n, w_e, w_f, w_s


def loss_fn(energy_fn, energy_weight, forces_weight, stress_weight):
    """``(params, batch, weights=None, energy_factor=1) -> loss``: weighted MSEs.

    ``energy_weight · mean(ΔE/n)² + forces_weight · mean(ΔF_k)² +
    stress_weight · mean(Δσ_k)²``: the energy term is on energy per atom
    (eV/atom), the force term on force components (eV/Å), the stress term on
    stress components (eV/Å³); each is a mean over the real entries of the
    batch, as in MACE's and NequIP's weighted losses. Optional ``weights``
    ``[B]`` scale each structure slot (e.g. bootstrap counts of an ensemble
    member); ``energy_factor`` (a scalar, may be traced) multiplies the energy
    weight, so that the stages of a run share one compiled step.
    """
    predict_fn = predict(energy_fn, with_stress=stress_weight > 0)

    def loss(params, batch, weights=None, energy_factor=1.0):
        e, f, s = predict_fn(params, batch)
        n, w_e, w_f, w_s = _weights(batch, weights)
        de = (e - batch.energy) / n
        le = jnp.sum(w_e * de**2) / jnp.maximum(jnp.sum(w_e), 1.0)
        df2 = jnp.sum((f - batch.forces) ** 2, axis=-1)
        lf = jnp.sum(w_f * df2) / jnp.maximum(3.0 * jnp.sum(w_f), 1.0)
        total = energy_weight * energy_factor * le + forces_weight * lf
        if stress_weight > 0:
            ds2 = jnp.sum((s - batch.stress) ** 2, axis=(-1, -2))
            ls = jnp.sum(w_s * ds2) / jnp.maximum(9.0 * jnp.sum(w_s), 1.0)
            total = total + stress_weight * ls
        return total

    return loss


def error_sums(energy_fn, with_stress: bool):
    """``(params, batch) -> dict`` of summed absolute/squared errors and counts.

    Sums (not means) so that results over many batches add up exactly.
    """
    predict_fn = predict(energy_fn, with_stress=with_stress)

    def sums(params, batch):
        e, f, s = predict_fn(params, batch)
        n, w_e, w_f, w_s = _weights(batch)
        de = (e - batch.energy) / n
        df = (f - batch.forces) * w_f[..., None]
        out = {
            "energy_abs": jnp.sum(w_e * jnp.abs(de)),
            "energy_sq": jnp.sum(w_e * de**2),
            "energy_count": jnp.sum(w_e),
            "forces_abs": jnp.sum(jnp.abs(df)),
            "forces_sq": jnp.sum(df**2),
            "forces_count": 3.0 * jnp.sum(w_f),
        }
        if with_stress:
            ds = (s - batch.stress) * w_s[:, None, None]
            out.update(
                stress_abs=jnp.sum(jnp.abs(ds)),
                stress_sq=jnp.sum(ds**2),
                stress_count=9.0 * jnp.sum(w_s),
            )
        return out

    return sums


def metrics_from_sums(sums: dict) -> dict[str, float]:
    """MAE/RMSE in the units people quote: meV/atom, meV/Å, GPa.

    Args:
        sums: accumulated output of :func:`error_sums`.

    Returns:
        ``energy_mae_mev_per_atom``, ``energy_rmse_mev_per_atom``,
        ``forces_mae_mev_per_angstrom``, ``forces_rmse_mev_per_angstrom`` and,
        when stress was evaluated, ``stress_mae_gpa``, ``stress_rmse_gpa``.
    """
    from mldiff.units import eV_per_A3_to_GPa

    out = {}
    for key, unit, name in (
        ("energy", 1e3, "mev_per_atom"),
        ("forces", 1e3, "mev_per_angstrom"),
        ("stress", eV_per_A3_to_GPa, "gpa"),
    ):
        count = float(sums.get(f"{key}_count", 0.0))
        if count > 0:
            out[f"{key}_mae_{name}"] = unit * float(sums[f"{key}_abs"]) / count
            out[f"{key}_rmse_{name}"] = unit * (float(sums[f"{key}_sq"]) / count) ** 0.5
    return out
