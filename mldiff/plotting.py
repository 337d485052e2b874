"""Matplotlib figures from result arrays and dicts (imported lazily by callers)."""

import numpy as np

__all__ = [
    "conductivity_figure",
    "parity_figure",
    "phonon_figure",
    "reliability_figure",
]


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


def _pretty(label: str) -> str:
    return (
        "Γ"
        if label.upper() in ("GAMMA", "G")
        else label.replace("_", "$_") + ("$" if "_" in label else "")
    )


def phonon_figure(bands: dict, dos: dict | None = None):
    """Phonon band structure with high-symmetry labels, and the DOS beside it.

    Args:
        bands: :func:`mldiff.phonons.bands.band_structure` result:
            ``"distances"`` ``[k]`` 1/Å, ``"frequencies_thz"`` ``[k, m]`` THz,
            ``"path_labels"`` ``[s]`` pairs of labels (equal points per segment).
        dos: optional :func:`mldiff.phonons.dos.mesh_dos` result:
            ``"frequencies_thz"`` ``[f]`` THz, ``"states"`` ``[f]`` states/THz.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = np.asarray(bands["distances"])
    f = np.asarray(bands["frequencies_thz"])
    segments = [tuple(s) for s in bands["path_labels"]]
    npts = len(x) // len(segments)
    widths = (3, 1) if dos is not None else (1,)
    fig, axes = plt.subplots(
        1,
        len(widths),
        figsize=(8 if dos is not None else 6, 4.5),
        sharey=True,
        gridspec_kw={"width_ratios": widths, "wspace": 0.05},
        squeeze=False,
    )
    ax = axes[0, 0]
    ticks, labels = [], []
    for k, (start, end) in enumerate(segments):
        sl = slice(k * npts, (k + 1) * npts)
        ax.plot(x[sl], f[sl], color="C0", lw=1.2)
        if k and segments[k - 1][1] != start:  # a jump: "X|U"
            labels[-1] = f"{_pretty(segments[k - 1][1])}|{_pretty(start)}"
        elif not k:
            ticks.append(x[sl][0])
            labels.append(_pretty(start))
        ticks.append(x[sl][-1])
        labels.append(_pretty(end))
    for t in ticks:
        ax.axvline(t, color="0.7", lw=0.8)
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_xticks(ticks, labels)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("frequency (THz)")
    if dos is not None:
        ax_d = axes[0, 1]
        ax_d.plot(np.asarray(dos["states"]), np.asarray(dos["frequencies_thz"]), "C1")
        ax_d.set_xlabel("DOS (states/THz)")
        ax_d.set_xlim(left=0)
    return fig


def conductivity_figure(result: dict):
    """κ(T), cumulative κ against mean free path, lifetimes against frequency.

    Args:
        result: ``mldiff conductivity``'s ``conductivity.json`` content:
            ``"temperatures_k"`` ``[T]`` K, ``"kappa_scalar_w_mk"`` ``[T]``
            W/(m·K), ``"mean_free_path_a"`` ``[L]`` Å,
            ``"cumulative_kappa_w_mk"`` ``[T, L]`` W/(m·K),
            ``"frequencies_thz"`` ``[g, m]`` THz and ``"lifetimes_ps"``
            ``[T, g, m]`` ps of the irreducible modes.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    temps = np.asarray(result["temperatures_k"])
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    a.plot(temps, np.asarray(result["kappa_scalar_w_mk"]), "o-")
    a.set_xlabel("T (K)")
    a.set_ylabel("κ (W/m·K)")
    freq = np.asarray(result["frequencies_thz"]).reshape(-1)
    lengths_nm = np.asarray(result["mean_free_path_a"]) / 10
    cumulative = np.asarray(result["cumulative_kappa_w_mk"])
    for k, t in enumerate(temps):
        b.semilogx(lengths_nm, cumulative[k], label=f"{t:g} K")
        tau = np.asarray(result["lifetimes_ps"])[k].reshape(-1)
        keep = tau > 0
        c.scatter(freq[keep], tau[keep], s=6, alpha=0.6, label=f"{t:g} K")
    b.set_xlabel("mean free path (nm)")
    b.set_ylabel("cumulative κ (W/m·K)")
    b.legend()
    c.set_yscale("log")
    c.set_xlabel("frequency (THz)")
    c.set_ylabel("lifetime (ps)")
    c.legend()
    return fig


def reliability_figure(curves: dict, title: str | None = None):
    """Reliability diagram: observed against expected Gaussian interval coverage.

    Args:
        curves: ``{label: (expected [p], observed [p])}``, e.g.
            :func:`mldiff.calibration.calibration_curve` of the calibrated and
            the raw spreads; the label may quote the miscalibration area.
        title: optional axes title.

    Returns:
        The ``matplotlib.figure.Figure``; the diagonal is perfect calibration,
        curves below it are overconfident.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for k, (label, (expected, observed)) in enumerate(curves.items()):
        expected, observed = np.asarray(expected), np.asarray(observed)
        ax.plot(expected, observed, color=f"C{k}", lw=1.6, label=label)
        ax.fill_between(expected, expected, observed, color=f"C{k}", alpha=0.15)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("expected coverage of the central interval")
    ax.set_ylabel("observed coverage")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig
