"""Viscoelastic tables for time–temperature superposition: reading, checks, synthetics.

A table holds rows ``(temperature, frequency or time, quantity…)`` with units in
the column names:

- dynamic moduli: ``storage_modulus_pa`` and/or ``loss_modulus_pa`` (shear G′/G″
  or tensile E′/E″, Pa) and/or ``tan_delta`` (dimensionless), against
  ``frequency_rad_s``;
- time domain: ``relaxation_modulus_pa`` (Pa) or ``creep_compliance_1_pa``
  (1/Pa), against ``time_s``.

Every quantity is superposed in log–log coordinates, so all values must be
positive. Internally the abscissa is the log10 of a *rate*: ``log10 ω`` for
frequency data and ``-log10 t`` for time data, so that a shift factor aT means
the same thing in both (reduced frequency ``ω aT``, reduced time ``t / aT``).

Example:
    >>> import numpy as np
    >>> data = wlf_maxwell_data(n_temperatures=3, points_per_decade=2, noise=0.0)
    >>> data.temperatures_k().tolist()
    [368.0, 373.0, 378.0]
    >>> x, y = data.log_curve("storage_modulus_pa", 373.0)
    >>> x.shape == y.shape == (7,)
    True
"""

import csv
import dataclasses
import io
import math
from collections.abc import Mapping

import numpy as np

from mldiff import units
from mldiff.errors import TTSPDataError
from mldiff.io.files import atomic_write

__all__ = [
    "TTSPDataError",
    "TTSPData",
    "QUANTITIES",
    "from_arrays",
    "read_csv",
    "write_csv",
    "maxwell_moduli",
    "wlf_shift",
    "arrhenius_shift",
    "wlf_maxwell_data",
    "melt_spectrum",
    "two_process_data",
    "GAS_CONSTANT_J_MOL_K",
]

#: molar gas constant, J/(mol·K), from mldiff's one constant set (CODATA 2014)
GAS_CONSTANT_J_MOL_K = units.gas_constant_j_mol_k

#: quantity column -> abscissa column it is measured against
QUANTITIES = {
    "storage_modulus_pa": "frequency_rad_s",
    "loss_modulus_pa": "frequency_rad_s",
    "tan_delta": "frequency_rad_s",
    "relaxation_modulus_pa": "time_s",
    "creep_compliance_1_pa": "time_s",
}

#: fewest temperatures and points per curve that superposition accepts
MIN_TEMPERATURES = 3
MIN_POINTS = 5


@dataclasses.dataclass(frozen=True, kw_only=True)
class TTSPData:
    """Rows of viscoelastic measurements at several temperatures (validated).

    Attributes:
        temperature_k: ``[n]`` temperature of each row, K.
        abscissa: ``[n]`` angular frequency (rad/s) or time (s), per ``domain``.
        quantities: column name -> ``[n]`` values in the unit the name carries
            (see :data:`QUANTITIES`); all positive.
        domain: ``"frequency"`` (abscissa ``frequency_rad_s``) or ``"time"``
            (abscissa ``time_s``).
    """

    temperature_k: np.ndarray
    abscissa: np.ndarray
    quantities: Mapping[str, np.ndarray]
    domain: str = "frequency"

    def temperatures_k(self) -> np.ndarray:
        """Distinct temperatures, ascending, ``[m]``, K."""
        return np.unique(self.temperature_k)

    def log_curve(self, name: str, temperature_k: float):
        """One isotherm in log–log coordinates, sorted by rate.

        Args:
            name: a quantity column, e.g. ``"storage_modulus_pa"``.
            temperature_k: one of :meth:`temperatures_k`, K.

        Returns:
            ``(x [p], y [p])``: ``x = log10 ω`` (rad/s) or ``-log10 t`` (s),
            ``y = log10`` of the quantity in its unit.
        """
        if name not in self.quantities:
            raise TTSPDataError(
                f"quantity {name!r} is not in this table (it has "
                f"{sorted(self.quantities)}); choose one of those"
            )
        rows = self.temperature_k == temperature_k
        if not np.any(rows):
            raise TTSPDataError(
                f"no rows at {temperature_k} K; temperatures are "
                f"{self.temperatures_k().tolist()}"
            )
        x = np.log10(self.abscissa[rows])
        if self.domain == "time":
            x = -x
        y = np.log10(self.quantities[name][rows])
        order = np.argsort(x)
        return x[order], y[order]

    def dynamic(self) -> bool:
        """Whether both storage and loss moduli are present."""
        return {"storage_modulus_pa", "loss_modulus_pa"} <= set(self.quantities)


def from_arrays(
    temperature_k, *, frequency_rad_s=None, time_s=None, **quantities
) -> TTSPData:
    """Build and validate a table from arrays (one value per row).

    Args:
        temperature_k: ``[n]`` temperatures, K.
        frequency_rad_s: ``[n]`` angular frequencies, rad/s (dynamic data).
        time_s: ``[n]`` times, s (relaxation or creep data).
        **quantities: columns named as in :data:`QUANTITIES`, each ``[n]``.

    Returns:
        the validated :class:`TTSPData`.

    Raises:
        TTSPDataError: fewer than 3 temperatures, fewer than 5 points in a
            curve, NaN/inf, non-positive values, duplicate rows, unknown or
            missing columns, or neighbouring curves whose values never overlap.

    Example:
        >>> w = np.tile(np.logspace(-1, 2, 6), 3)
        >>> t = np.repeat([300.0, 310.0, 320.0], 6)
        >>> d = from_arrays(t, frequency_rad_s=w, storage_modulus_pa=1e5 * w**0.5)
        >>> d.domain, len(d.temperatures_k())
        ('frequency', 3)
    """
    if (frequency_rad_s is None) == (time_s is None):
        raise TTSPDataError(
            "give exactly one abscissa: frequency_rad_s (dynamic moduli) or "
            "time_s (relaxation modulus, creep compliance)"
        )
    domain = "frequency" if time_s is None else "time"
    abscissa_name = "frequency_rad_s" if domain == "frequency" else "time_s"
    abscissa = frequency_rad_s if domain == "frequency" else time_s
    if not quantities:
        wanted = [k for k, v in QUANTITIES.items() if v == abscissa_name]
        raise TTSPDataError(f"no quantity columns given; pass at least one of {wanted}")
    for name in quantities:
        if name not in QUANTITIES:
            raise TTSPDataError(
                f"unknown quantity column {name!r}; known columns are "
                f"{sorted(QUANTITIES)} (units are part of the name)"
            )
        if QUANTITIES[name] != abscissa_name:
            raise TTSPDataError(
                f"{name!r} is measured against {QUANTITIES[name]!r}, not "
                f"{abscissa_name!r}; do not mix frequency and time data in a table"
            )
    t = np.asarray(temperature_k, dtype=np.float64).reshape(-1)
    a = np.asarray(abscissa, dtype=np.float64).reshape(-1)
    q = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in quantities.items()}
    columns = {"temperature_k": t, abscissa_name: a, **q}
    for name, col in columns.items():
        if col.shape != t.shape:
            raise TTSPDataError(
                f"column {name!r} has {col.size} values but temperature_k has "
                f"{t.size}; every column needs one value per row"
            )
        bad = ~np.isfinite(col)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise TTSPDataError(
                f"column {name!r} has NaN or inf (first at row {i}); drop or "
                "repair those rows"
            )
    for name in (abscissa_name, *q):
        col = columns[name]
        if np.any(col <= 0):
            i = int(np.argmax(col <= 0))
            raise TTSPDataError(
                f"column {name!r} must be positive for log scales, got {col[i]} at "
                f"row {i} (T = {t[i]} K); drop that row or check the unit/sign"
            )
    if np.any(t <= 0):
        i = int(np.argmax(t <= 0))
        raise TTSPDataError(
            f"temperature_k must be positive (kelvin), got {t[i]} at row {i}; "
            "convert °C to K (add 273.15)"
        )
    data = TTSPData(temperature_k=t, abscissa=a, quantities=q, domain=domain)
    _check_curves(data)
    return data


def _check_curves(data: TTSPData) -> None:
    temps = data.temperatures_k()
    if temps.size < MIN_TEMPERATURES:
        raise TTSPDataError(
            f"superposition needs at least {MIN_TEMPERATURES} temperatures, got "
            f"{temps.size} ({temps.tolist()} K); measure more isotherms"
        )
    pairs = np.stack([data.temperature_k, data.abscissa], axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        i = int(first[np.argmax(counts > 1)])
        raise TTSPDataError(
            f"duplicate rows at T = {data.temperature_k[i]} K, abscissa = "
            f"{data.abscissa[i]}; average repeated measurements first"
        )
    for temp in temps:
        n = int(np.sum(data.temperature_k == temp))
        if n < MIN_POINTS:
            raise TTSPDataError(
                f"the curve at {temp} K has {n} points; each isotherm needs at "
                f"least {MIN_POINTS} to model its shape (drop it or measure more)"
            )
    for name in data.quantities:
        ranges = [data.log_curve(name, temp)[1] for temp in temps]
        for k in range(temps.size - 1):
            lo = max(ranges[k].min(), ranges[k + 1].min())
            hi = min(ranges[k].max(), ranges[k + 1].max())
            if lo > hi:
                raise TTSPDataError(
                    f"{name} at {temps[k]} K and {temps[k + 1]} K share no range "
                    f"of values ({10 ** ranges[k].min():.3g}–"
                    f"{10 ** ranges[k].max():.3g} vs "
                    f"{10 ** ranges[k + 1].min():.3g}–"
                    f"{10 ** ranges[k + 1].max():.3g}), so no horizontal shift can "
                    "overlap them; measure closer temperatures or a wider window"
                )


def read_csv(path) -> TTSPData:
    """Read a table from a CSV file with a header row of unit-carrying names.

    Required: ``temperature_k``, one abscissa (``frequency_rad_s`` or
    ``time_s``) and at least one quantity column of :data:`QUANTITIES`;
    other columns are ignored.

    Args:
        path: file path.

    Returns:
        the validated :class:`TTSPData`.

    Raises:
        TTSPDataError: missing file or columns (named), unparsable numbers, or
            any check of :func:`from_arrays`.
    """
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise TTSPDataError(f"cannot read CSV file {str(path)!r}: {err}") from err
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise TTSPDataError(
            f"{str(path)!r} has no data rows; expected a header such as "
            "temperature_k,frequency_rad_s,storage_modulus_pa,loss_modulus_pa"
        )
    header = [c.strip().lower() for c in rows[0]]
    missing = [c for c in ("temperature_k",) if c not in header]
    has_w, has_t = "frequency_rad_s" in header, "time_s" in header
    if not has_w and not has_t:
        missing.append("frequency_rad_s (or time_s)")
    names = [c for c in header if c in QUANTITIES]
    if not names:
        missing.append("a quantity column, e.g. storage_modulus_pa, loss_modulus_pa")
    if missing:
        raise TTSPDataError(
            f"{str(path)!r} lacks column(s) {', '.join(missing)}; its header is "
            f"{header}. Name columns with their units, e.g. "
            "temperature_k,frequency_rad_s,storage_modulus_pa,loss_modulus_pa"
        )
    values = {}
    for j, name in enumerate(header):
        if name in ("temperature_k", "frequency_rad_s", "time_s") or name in names:
            try:
                values[name] = np.array([float(r[j]) for r in rows[1:]])
            except (ValueError, IndexError) as err:
                raise TTSPDataError(
                    f"column {name!r} of {str(path)!r} has a missing or non-numeric "
                    f"entry ({err}); fix the file"
                ) from err
    abscissa = (
        {"frequency_rad_s": values.pop("frequency_rad_s")}
        if has_w
        else {"time_s": values.pop("time_s")}
    )
    return from_arrays(values.pop("temperature_k"), **abscissa, **values)


def write_csv(path, data: TTSPData) -> None:
    """Write a table as CSV (header with units, one row per measurement), atomically.

    Args:
        path: file path.
        data: the table.
    """
    abscissa = "frequency_rad_s" if data.domain == "frequency" else "time_s"
    names = list(data.quantities)
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["temperature_k", abscissa, *names])
    for i in range(data.temperature_k.size):
        w.writerow(
            [repr(float(data.temperature_k[i])), repr(float(data.abscissa[i]))]
            + [repr(float(data.quantities[n][i])) for n in names]
        )
    atomic_write(path, text.getvalue())


def maxwell_moduli(frequency_rad_s, moduli_pa, times_s):
    """Storage and loss moduli of a generalized Maxwell model.

    ``G′(ω) = Σ gᵢ (ωτᵢ)²/(1+(ωτᵢ)²)``, ``G″(ω) = Σ gᵢ ωτᵢ/(1+(ωτᵢ)²)``.

    Args:
        frequency_rad_s: ``[p]`` angular frequencies, rad/s.
        moduli_pa: ``[k]`` mode strengths gᵢ, Pa.
        times_s: ``[k]`` relaxation times τᵢ, s (or ``[p, k]``, one row per point).

    Returns:
        ``(storage [p], loss [p])``, Pa.

    References:
        J. D. Ferry, *Viscoelastic Properties of Polymers*, 3rd ed. (Wiley,
        1980), ch. 3.

    Example:
        >>> s, l = maxwell_moduli(np.array([1.0]), np.array([2.0]), np.array([1.0]))
        >>> float(s[0]), float(l[0])
        (1.0, 1.0)
    """
    wt = np.asarray(frequency_rad_s)[:, None] * np.asarray(times_s)
    g = np.asarray(moduli_pa)
    return (
        np.sum(g * wt**2 / (1 + wt**2), axis=-1),
        np.sum(g * wt / (1 + wt**2), axis=-1),
    )


def wlf_shift(temperature_k, c1: float, c2: float, t_ref_k: float):
    """``log10 aT = -C1 (T - Tref) / (C2 + T - Tref)`` (Williams–Landel–Ferry).

    Args:
        temperature_k: temperatures, K.
        c1: dimensionless.
        c2: K.
        t_ref_k: reference temperature, K.

    Returns:
        log10 aT, same shape.

    Example:
        >>> round(float(wlf_shift(383.0, 17.44, 51.6, 373.0)), 4)
        -2.8312
    """
    d = np.asarray(temperature_k, dtype=np.float64) - t_ref_k
    return -c1 * d / (c2 + d)


def arrhenius_shift(temperature_k, activation_energy_kj_mol: float, t_ref_k: float):
    """``log10 aT = Ea / (R ln 10) · (1/T - 1/Tref)`` (Arrhenius).

    Args:
        temperature_k: temperatures, K.
        activation_energy_kj_mol: Ea, kJ/mol.
        t_ref_k: reference temperature, K.

    Returns:
        log10 aT, same shape.

    Example:
        >>> round(float(arrhenius_shift(310.0, 100.0, 300.0)), 4)
        -0.5617
    """
    t = np.asarray(temperature_k, dtype=np.float64)
    ea = activation_energy_kj_mol * 1e3 / (GAS_CONSTANT_J_MOL_K * math.log(10.0))
    return ea * (1.0 / t - 1.0 / t_ref_k)


def _noisy(values, noise, rng):
    return values * (1.0 + noise * rng.standard_normal(values.shape))


def wlf_maxwell_data(
    *,
    temperatures_k=None,
    t_ref_k: float = 373.0,
    c1: float = 17.44,
    c2: float = 51.6,
    n_modes: int = 20,
    n_temperatures: int = 8,
    frequency_range_rad_s=(0.1, 100.0),
    points_per_decade: float | int = 10,
    noise: float = 0.02,
    seed: int = 0,
    spectrum=None,
) -> TTSPData:
    """Thermorheologically simple synthetic data: generalized Maxwell + WLF.

    By default twenty modes with ``τᵢ`` log-spaced over 1e-4…1e11 s at
    ``t_ref_k`` and ``gᵢ ∝ τᵢ^-0.3`` modulated (a broad, structured spectrum);
    every mode shifts by the same ``aT`` (WLF), so the curves superpose exactly
    before noise. Noise is multiplicative Gaussian, ``G (1 + noise·N(0, 1))``.

    Args:
        temperatures_k: ``[m]`` temperatures, K (default ``t_ref_k - 5 + 5 k``
            for ``k < n_temperatures``; neighbours then shift by 0.6–1.9
            decades, so 0.1–100 rad/s windows overlap by over a decade).
        t_ref_k: WLF reference temperature, K.
        c1: WLF C1 (dimensionless).
        c2: WLF C2, K.
        n_modes: number of Maxwell modes.
        n_temperatures: used when ``temperatures_k`` is None.
        frequency_range_rad_s: measured window, rad/s.
        points_per_decade: log-spaced frequencies per decade (the window gets
            ``round(decades · points_per_decade) + 1`` of them).
        noise: relative noise level (0.02 = 2 %).
        seed: NumPy seed of the noise.
        spectrum: ``(τ [k] (s), g [k] (Pa))`` at ``t_ref_k`` instead of the
            default (then ``n_modes`` is unused), e.g. :func:`melt_spectrum`.

    Returns:
        a validated :class:`TTSPData` with storage and loss moduli.
    """
    if temperatures_k is None:
        temperatures_k = t_ref_k + 5.0 * (np.arange(n_temperatures) - 1)
    temperatures_k = np.asarray(temperatures_k, dtype=np.float64)
    if spectrum is None:
        spectrum = _spectrum(n_modes, -4.0, 11.0, 1e9, -0.3)
    tau, g = (np.asarray(a, dtype=np.float64) for a in spectrum)
    log_at = wlf_shift(temperatures_k, c1, c2, t_ref_k)
    return _dynamic_table(
        temperatures_k,
        lambda w, k: maxwell_moduli(w, g, tau * 10 ** log_at[k]),
        frequency_range_rad_s,
        points_per_decade,
        noise,
        seed,
    )


def melt_spectrum(
    *,
    plateau_modulus_pa: float = 1e6,
    longest_time_s: float = 1e6,
    glass_time_s: float = 1e-2,
    entanglement_exponent: float = 0.23,
    transition_exponent: float = 0.67,
    modes_per_decade: float = 2.0,
    decades_below: float = 4.0,
):
    """Discrete relaxation spectrum of an entangled melt (BSW with glass term).

    ``H(τ) = nₑ G_N [(τ/τ_max)^nₑ + (τ/τ_c)^-n_g]`` for ``τ ≤ τ_max``: the
    ``-n_g`` branch gives the power-law transition zone (``G′, G″ ∝ ω^n_g``
    at ``ωτ_c > 1``), the ``nₑ`` branch the rubbery plateau ``G_N``, and the
    cut-off at ``τ_max`` the terminal zone (``G′ ∝ ω²``, ``G″ ∝ ω``). Modes
    are log-spaced, ``gᵢ = H(τᵢ) Δln τ``.

    Args:
        plateau_modulus_pa: ``G_N``, Pa.
        longest_time_s: ``τ_max``, s.
        glass_time_s: ``τ_c``, s.
        entanglement_exponent: ``nₑ``.
        transition_exponent: ``n_g``.
        modes_per_decade: mode density (about 1 or less leaves ripples).
        decades_below: the shortest mode is this many decades below ``τ_c``.

    Returns:
        ``(τ [k] (s), g [k] (Pa))``, for :func:`maxwell_moduli`.

    References:
        M. Baumgaertel, A. Schausberger and H. H. Winter, Rheol. Acta 29, 400
        (1990); M. Baumgaertel, M. E. De Rosa, J. Machado, M. Masse and H. H.
        Winter, Rheol. Acta 31, 75 (1992).

    Example:
        >>> tau, g = melt_spectrum(longest_time_s=1e4, glass_time_s=1e-4)
        >>> s, _ = maxwell_moduli(np.array([1.0]), g, tau)  # on the plateau
        >>> bool(0.5e6 < s[0] < 2e6)
        True
    """
    lo = math.log10(glass_time_s) - decades_below
    hi = math.log10(longest_time_s)
    n = max(int(round((hi - lo) * modes_per_decade)), 1) + 1
    tau = 10 ** np.linspace(lo, hi, n)
    h = (
        entanglement_exponent
        * plateau_modulus_pa
        * (
            (tau / longest_time_s) ** entanglement_exponent
            + (tau / glass_time_s) ** -transition_exponent
        )
    )
    return tau, h * math.log(10.0) * (hi - lo) / (n - 1)


def _spectrum(n, log_tau_min, log_tau_max, g0, slope):
    log_tau = np.linspace(log_tau_min, log_tau_max, n)
    g = (
        g0
        * 10 ** (slope * (log_tau - log_tau_min))
        * (1.0 + 0.5 * np.sin(1.3 * log_tau))
    )
    return 10**log_tau, g


def _dynamic_table(temps, moduli, window, points_per_decade, noise, seed):
    rng = np.random.default_rng(seed)
    lo, hi = np.log10(window[0]), np.log10(window[1])
    w = np.logspace(lo, hi, int(round((hi - lo) * points_per_decade)) + 1)
    rows_t, rows_w, rows_s, rows_l = [], [], [], []
    for k, temp in enumerate(temps):
        s, loss = moduli(w, k)
        rows_t.append(np.full(w.size, temp))
        rows_w.append(w)
        rows_s.append(_noisy(s, noise, rng))
        rows_l.append(_noisy(loss, noise, rng))
    return from_arrays(
        np.concatenate(rows_t),
        frequency_rad_s=np.concatenate(rows_w),
        storage_modulus_pa=np.concatenate(rows_s),
        loss_modulus_pa=np.concatenate(rows_l),
    )


def two_process_data(
    *,
    temperatures_k=None,
    t_ref_k: float = 320.0,
    activation_energies_kj_mol=(250.0, 60.0),
    n_modes: int = 20,
    n_temperatures: int = 8,
    frequency_range_rad_s=(0.1, 100.0),
    points_per_decade: int = 10,
    noise: float = 0.02,
    seed: int = 0,
) -> TTSPData:
    """Thermorheologically complex synthetic data: two Arrhenius processes.

    A broad process (half of ``n_modes``, τ 1e-3…1e4 s, shifting with the
    first activation energy) plus a narrower, weaker one (τ 1e-3…1e1 s, the
    second activation energy). Because the processes shift by different
    factors, the isotherms do not superpose by any single aT.

    Args:
        temperatures_k: ``[m]`` temperatures, K (default ``t_ref_k + 5 k``).
        t_ref_k: reference temperature of both Arrhenius laws, K.
        activation_energies_kj_mol: Ea of the two processes, kJ/mol.
        n_modes: total number of Maxwell modes (split in two).
        n_temperatures: used when ``temperatures_k`` is None.
        frequency_range_rad_s: measured window, rad/s.
        points_per_decade: log-spaced frequencies per decade.
        noise: relative noise level.
        seed: NumPy seed of the noise.

    Returns:
        a validated :class:`TTSPData` with storage and loss moduli.
    """
    if temperatures_k is None:
        temperatures_k = t_ref_k + 5.0 * np.arange(n_temperatures)
    temperatures_k = np.asarray(temperatures_k, dtype=np.float64)
    na = n_modes // 2
    tau_a, g_a = _spectrum(na, -3.0, 4.0, 1e7, -0.3)
    tau_b, g_b = _spectrum(n_modes - na, -3.0, 1.0, 3e5, 0.0)
    ea, eb = activation_energies_kj_mol
    shift_a = arrhenius_shift(temperatures_k, ea, t_ref_k)
    shift_b = arrhenius_shift(temperatures_k, eb, t_ref_k)

    def moduli(w, k):
        sa, la = maxwell_moduli(w, g_a, tau_a * 10 ** shift_a[k])
        sb, lb = maxwell_moduli(w, g_b, tau_b * 10 ** shift_b[k])
        return sa + sb, la + lb

    return _dynamic_table(
        temperatures_k, moduli, frequency_range_rad_s, points_per_decade, noise, seed
    )
