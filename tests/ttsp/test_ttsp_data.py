"""Table reading and validation; the synthetic generators' physics."""

import numpy as np
import pytest

from mldiff.ttsp.data import (
    TTSPDataError,
    from_arrays,
    maxwell_moduli,
    read_csv,
    wlf_maxwell_data,
    write_csv,
)


def _rows(temps=(300.0, 310.0, 320.0), n=6):
    w = np.tile(np.logspace(-1, 2, n), len(temps))
    t = np.repeat(temps, n)
    return t, w, 1e5 * w**0.5, 5e4 * w**0.4


def test_maxwell_limits_match_analytic_plateau_and_viscosity():
    # reference: G'(ω→∞) = Σ g, G''(ω→0)/ω = η0 = Σ g τ (Ferry, ch. 3)
    g, tau = np.array([1e5, 3e4, 2e3]), np.array([1e-2, 1.0, 1e2])
    s_hi, _ = maxwell_moduli(np.array([1e8]), g, tau)
    _, l_lo = maxwell_moduli(np.array([1e-8]), g, tau)
    np.testing.assert_allclose(s_hi[0], g.sum(), rtol=1e-6)
    np.testing.assert_allclose(l_lo[0] / 1e-8, np.sum(g * tau), rtol=1e-6)


def test_csv_round_trip(tmp_path):
    data = wlf_maxwell_data(n_temperatures=3, points_per_decade=3)
    write_csv(tmp_path / "d.csv", data)
    back = read_csv(tmp_path / "d.csv")
    np.testing.assert_array_equal(back.temperature_k, data.temperature_k)
    np.testing.assert_array_equal(back.abscissa, data.abscissa)
    for k in data.quantities:
        np.testing.assert_array_equal(back.quantities[k], data.quantities[k])


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("temperature_k,omega,storage_modulus_pa\n300,1,1e5\n")
    with pytest.raises(TTSPDataError, match="frequency_rad_s"):
        read_csv(path)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda t, w, s, l_: (t[:12], w[:12], s[:12], l_[:12]),
            "at least 3 temperatures",
        ),
        (
            lambda t, w, s, l_: (t, w, np.where(np.arange(t.size) == 4, -1.0, s), l_),
            "must be positive",
        ),
        (
            lambda t, w, s, l_: (t, w, s, np.where(np.arange(t.size) == 2, np.nan, l_)),
            "NaN",
        ),
        (
            lambda t, w, s, l_: (t, np.where(np.arange(t.size) == 1, w[0], w), s, l_),
            "duplicate",
        ),
        (lambda t, w, s, l_: (t[3:], w[3:], s[3:], l_[3:]), "at least 5"),
        (
            lambda t, w, s, l_: (t, w, s * np.repeat([1.0, 1e4, 1e8], 6), l_),
            "share no range",
        ),
    ],
)
def test_malformed_tables_raise_with_the_fix(mutate, match):
    t, w, s, loss = mutate(*_rows())
    with pytest.raises(TTSPDataError, match=match):
        from_arrays(t, frequency_rad_s=w, storage_modulus_pa=s, loss_modulus_pa=loss)


def test_time_domain_abscissa_is_negative_log_time():
    t, w, s, _ = _rows()
    d = from_arrays(t, time_s=1.0 / w, relaxation_modulus_pa=s)
    x, y = d.log_curve("relaxation_modulus_pa", 300.0)
    np.testing.assert_allclose(x, np.log10(np.logspace(-1, 2, 6)), atol=1e-12)
