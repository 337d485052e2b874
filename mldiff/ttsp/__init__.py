"""Time–temperature superposition: shift factors, WLF/Arrhenius, diagnostics, surrogate.

- :mod:`~mldiff.ttsp.data`: tables (CSV or arrays, units in column names),
  validation, synthetic generalized-Maxwell data (WLF or two Arrhenius processes);
- :mod:`~mldiff.ttsp.curves`: one GP per isotherm in log–log coordinates;
- :mod:`~mldiff.ttsp.pairwise`: the relative shift of two neighbouring
  isotherms (global search, identifiability, uncertainty);
- :mod:`~mldiff.ttsp.superposition`: GP-based automatic shift factors log aT
  (and log bT) with uncertainty, master curves;
- :mod:`~mldiff.ttsp.shift_models`: WLF and Arrhenius fits with covariance and
  the temperature window where each holds;
- :mod:`~mldiff.ttsp.diagnostics`: tests of thermorheological simplicity and a
  verdict with evidence;
- :mod:`~mldiff.ttsp.surrogate`: a GP over (log rate, T) that flags extrapolation;
- :mod:`~mldiff.ttsp.figures`: master curve, shift factors with fits, van Gurp–Palmen.

:func:`analyse` runs the whole chain and returns a JSON-ready summary.

Example:
    >>> from mldiff.ttsp.data import wlf_maxwell_data
    >>> summary = analyse(wlf_maxwell_data(n_temperatures=4), 373.0)
    >>> summary["ttsp_holds"], round(summary["log10_aT"]["373.0"], 6)
    (True, 0.0)
"""

from mldiff.ttsp import (
    curves,
    data,
    diagnostics,
    pairwise,
    shift_models,
    superposition,
    surrogate,
)
from mldiff.ttsp.data import TTSPData, TTSPDataError, from_arrays, read_csv

__all__ = [
    "curves",
    "pairwise",
    "data",
    "diagnostics",
    "shift_models",
    "superposition",
    "surrogate",
    "TTSPData",
    "TTSPDataError",
    "from_arrays",
    "read_csv",
    "analyse",
]


def _by_temperature(temps, values) -> dict:
    return {str(float(t)): float(v) for t, v in zip(temps, values, strict=True)}


def analyse(
    table: TTSPData,
    reference_temperature_k: float,
    *,
    vertical: bool = False,
    seed: int = 0,
) -> dict:
    """Shift factors, WLF/Arrhenius fits and TTSP diagnostics in one summary.

    Args:
        table: the data.
        reference_temperature_k: reference temperature, K (inside the measured
            range).
        vertical: also fit vertical shift factors bT.
        seed: seed of the GP restarts.

    Returns:
        dict with ``reference_temperature_k``, ``quantities``, ``log10_aT`` and
        ``log10_aT_std`` ``{temperature (str, K): value}``, ``log10_bT``,
        ``log10_bT_std``, ``wlf`` (``c1``, ``c2`` (K), ``t_ref_k``, stds, fit
        quality and ``valid_range_k``), ``arrhenius``
        (``activation_energy_kj_mol`` …), ``ttsp_holds`` (True, False, or
        None when the data cannot decide), ``verdict`` (``"holds"``,
        ``"fails"`` or ``"undetermined"``), ``reasons`` and ``diagnostics``
        (each test with statistic, threshold and status; see
        :func:`~mldiff.ttsp.diagnostics.diagnose`).
    """
    temps = table.temperatures_k()
    if not temps[0] <= float(reference_temperature_k) <= temps[-1]:
        raise TTSPDataError(  # before the curve fits, which take seconds
            f"reference temperature {reference_temperature_k} K is outside the "
            f"measured range {temps[0]}–{temps[-1]} K; choose one inside it"
        )
    quantities = superposition.default_quantities(table)
    models = superposition.curve_models(table, quantities, seed=seed)
    sf = superposition.shift_factors(
        table,
        reference_temperature_k,
        quantities=quantities,
        vertical=vertical,
        models=models,
    )
    t_ref = sf.reference_temperature_k
    report = diagnostics.diagnose(table, t_ref, shifts=sf, models=models, seed=seed)
    temps = sf.temperatures_k
    return {
        "reference_temperature_k": t_ref,
        "quantities": list(quantities),
        "domain": table.domain,
        "log10_aT": _by_temperature(temps, sf.log10_aT),
        "log10_aT_std": _by_temperature(temps, sf.log10_aT_std),
        "log10_bT": _by_temperature(temps, sf.log10_bT),
        "log10_bT_std": _by_temperature(temps, sf.log10_bT_std),
        "wlf": shift_models.fit_wlf(temps, sf.log10_aT, sf.log10_aT_cov, t_ref),
        "arrhenius": shift_models.fit_arrhenius(
            temps, sf.log10_aT, sf.log10_aT_cov, t_ref
        ),
        "ttsp_holds": report["ttsp_holds"],
        "verdict": report["verdict"],
        "reasons": report["reasons"],
        "diagnostics": report["tests"],
    }
