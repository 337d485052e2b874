"""Matplotlib figures from result arrays and dicts (imported lazily by callers)."""

import numpy as np

__all__ = ["parity_figure"]


def parity_figure(energy_ref, energy_pred, forces_ref, forces_pred, metrics=None):
    """Parity plots: energy per atom (meV/atom) and force components (eV/Å).

    Args:
        energy_ref: ``[N]`` reference energies per atom, eV/atom.
        energy_pred: ``[N]`` predicted energies per atom, eV/atom.
        forces_ref: ``[M]`` reference force components, eV/Å.
        forces_pred: ``[M]`` predicted force components, eV/Å.
        metrics: optional dict with MAE values to print on the panels.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics = metrics or {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), constrained_layout=True)
    panels = (
        (
            axes[0],
            np.asarray(energy_ref),
            np.asarray(energy_pred),
            "energy (eV/atom)",
            metrics.get("energy_mae_mev_per_atom"),
            "meV/atom",
        ),
        (
            axes[1],
            np.asarray(forces_ref),
            np.asarray(forces_pred),
            "force component (eV/Å)",
            metrics.get("forces_mae_mev_per_angstrom"),
            "meV/Å",
        ),
    )
    for ax, ref, pred, label, mae, unit in panels:
        if ref.size:
            lo, hi = (
                float(min(ref.min(), pred.min())),
                float(max(ref.max(), pred.max())),
            )
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1)
            ax.scatter(ref, pred, s=6, alpha=0.6)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        if mae is not None:
            ax.set_title(f"MAE {mae:.2f} {unit}")
        ax.set_aspect("equal", adjustable="datalim")
    return fig
