"""WLF and Arrhenius fits against scipy's curve_fit and exact synthetic laws."""

import numpy as np
from scipy.optimize import curve_fit

from mldiff.ttsp.shift_models import arrhenius, fit_arrhenius, fit_wlf, wlf


def test_wlf_matches_scipy_curve_fit_with_uncertainty():
    rng = np.random.default_rng(3)
    t = np.linspace(368.0, 403.0, 8)
    sigma = np.full(t.size, 0.05)
    y = wlf(17.44, 51.6, 373.0)(t) + sigma * rng.standard_normal(t.size)
    got = fit_wlf(t, y, sigma, 373.0)
    # reference: scipy least squares, absolute sigma = stated std ⊕ the fit's floor
    from mldiff.ttsp.shift_models import FLOOR

    s_eff = np.hypot(sigma, FLOOR)
    p, pcov = curve_fit(
        lambda tt, c1, c2: wlf(c1, c2, 373.0)(tt),
        t,
        y,
        p0=[15.0, 50.0],
        sigma=s_eff,
        absolute_sigma=True,
    )
    np.testing.assert_allclose([got["c1"], got["c2"]], p, rtol=1e-5)
    np.testing.assert_allclose(
        [got["c1_std"], got["c2_std"]], np.sqrt(np.diag(pcov)), rtol=1e-3
    )
    assert got["holds_over_data"]
    assert got["valid_range_k"] == [368.0, 403.0]


def test_arrhenius_exact_and_rejected_for_wlf_data():
    t = np.linspace(300.0, 340.0, 5)
    exact = fit_arrhenius(t, arrhenius(85.0, 300.0)(t), None, 300.0)
    assert abs(exact["activation_energy_kj_mol"] - 85.0) < 1e-9
    assert exact["holds_over_data"]
    # curved (WLF) data with small errors: Arrhenius must be rejected over the range
    t = np.linspace(368.0, 403.0, 8)
    curved = fit_arrhenius(t, wlf(17.44, 51.6, 373.0)(t), 0.01 * np.ones(8), 373.0)
    assert not curved["holds_over_data"]
    assert curved["reduced_chi2"] > 10
