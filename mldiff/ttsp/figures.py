"""Figures: master curve, shift factors with WLF/Arrhenius fits, van Gurp–Palmen.

Each function imports matplotlib lazily and returns the ``Figure``; summaries
are the dicts of :func:`mldiff.ttsp.analyse`.
"""

import numpy as np

from mldiff.ttsp import diagnostics, shift_models
from mldiff.ttsp.data import TTSPData

__all__ = ["master_curve_figure", "shift_factor_figure", "van_gurp_palmen_figure"]

_LABELS = {
    "storage_modulus_pa": "G′ (Pa)",
    "loss_modulus_pa": "G″ (Pa)",
    "tan_delta": "tan δ",
    "relaxation_modulus_pa": "G(t) (Pa)",
    "creep_compliance_1_pa": "J(t) (1/Pa)",
}


def _temps_and(summary, key):
    items = sorted((float(t), v) for t, v in summary[key].items())
    return np.array([t for t, _ in items]), np.array([v for _, v in items])


def master_curve_figure(table: TTSPData, summary: dict):
    """Every quantity on the master curve (log–log), coloured by temperature.

    Args:
        table: the data.
        summary: from :func:`mldiff.ttsp.analyse`.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    temps, log_a = _temps_and(summary, "log10_aT")
    _, log_b = _temps_and(summary, "log10_bT")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colours = plt.cm.viridis(np.linspace(0, 1, temps.size))
    markers = "os^vD"
    for j, name in enumerate(table.quantities):
        for k, t in enumerate(temps):
            x, y = table.log_curve(name, t)
            ax.plot(
                10 ** (x + log_a[k]),
                10 ** (y + log_b[k]),
                markers[j % len(markers)],
                ms=3,
                color=colours[k],
                mfc="none" if j else colours[k],
                label=f"{t:g} K" if j == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    rate = "ω aT (rad/s)" if table.domain == "frequency" else "1 / (t/aT) (1/s)"
    ax.set_xlabel(f"reduced {rate}")
    ax.set_ylabel(", ".join(_LABELS.get(n, n) for n in table.quantities))
    verdict = {True: "TTSP holds", False: "TTSP FAILS"}.get(
        summary["ttsp_holds"], "TTSP undetermined"
    )
    ax.set_title(
        f"master curve at {summary['reference_temperature_k']:g} K — {verdict}"
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def shift_factor_figure(summary: dict):
    """log10 aT against temperature with error bars and the WLF/Arrhenius fits.

    Args:
        summary: from :func:`mldiff.ttsp.analyse`.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    temps, log_a = _temps_and(summary, "log10_aT")
    _, std = _temps_and(summary, "log10_aT_std")
    t = np.linspace(temps.min(), temps.max(), 200)
    w, a = summary["wlf"], summary["arrhenius"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(temps, log_a, yerr=2 * std, fmt="ko", ms=4, label="shift factors (±2σ)")
    ax.plot(
        t,
        shift_models.wlf(w["c1"], w["c2"], w["t_ref_k"])(t),
        label=f"WLF C1={w['c1']:.2f}, C2={w['c2']:.1f} K",
    )
    ax.plot(
        t,
        shift_models.arrhenius(a["activation_energy_kj_mol"], a["t_ref_k"])(t),
        "--",
        label=f"Arrhenius Ea={a['activation_energy_kj_mol']:.0f} kJ/mol",
    )
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("log10 aT")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def van_gurp_palmen_figure(table: TTSPData):
    """Phase angle δ against |G*| per isotherm; TTSP needs them to collapse.

    Args:
        table: the data (storage and loss moduli).

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    curves = diagnostics.van_gurp_palmen(table)
    colours = plt.cm.viridis(np.linspace(0, 1, len(curves)))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (t, g_abs, delta), c in zip(curves, colours, strict=True):
        ax.plot(10**g_abs, delta, "o-", ms=3, color=c, label=f"{t:g} K")
    ax.set_xscale("log")
    ax.set_xlabel("|G*| (Pa)")
    ax.set_ylabel("phase angle δ (°)")
    ax.set_title("van Gurp–Palmen")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
