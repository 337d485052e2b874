"""Automatic shift factors against known synthetic truth."""

import numpy as np
import pytest
from compile_counter import count_traces

from mldiff.ttsp import pairwise, superposition
from mldiff.ttsp.data import (
    _spectrum,
    from_arrays,
    maxwell_moduli,
    wlf_maxwell_data,
    wlf_shift,
)


def test_done_when_log_aT_within_0p03_and_wlf_within_10_percent(simple_summary):
    # reference: the WLF law the data were generated with (C1=17.44, C2=51.6 K)
    temps = np.array([float(t) for t in simple_summary["log10_aT"]])
    got = np.array(list(simple_summary["log10_aT"].values()))
    truth = wlf_shift(temps, 17.44, 51.6, 373.0)
    assert np.max(np.abs(got - truth)) < 0.03
    wlf = simple_summary["wlf"]
    assert abs(wlf["c1"] / 17.44 - 1) < 0.10
    assert abs(wlf["c2"] / 51.6 - 1) < 0.10
    # the stated uncertainty is honest: errors within 4σ (σ = 0 at the reference)
    std = np.array(list(simple_summary["log10_aT_std"].values()))
    assert np.all(np.abs(got - truth) <= 4 * std + 1e-9)


def test_noise_free_shifts_are_exact_and_reference_can_lie_between_isotherms():
    data = wlf_maxwell_data(noise=0.0, n_temperatures=4)
    sf = superposition.shift_factors(data, 375.5)
    truth = wlf_shift(sf.temperatures_k, 17.44, 51.6, 373.0)
    # reference between 373 and 378 K: log aT is linear in 1/T there by
    # construction, so compare differences between measured isotherms
    np.testing.assert_allclose(np.diff(sf.log10_aT), np.diff(truth), atol=5e-3)
    assert sf.log10_aT[1] > 0 > sf.log10_aT[2]


@pytest.mark.slow  # compiles the two-parameter (aT, bT) optimiser: ~10 s
def test_vertical_shift_is_recovered():
    # reference: the same curve shifted by known factors a and b (analytic)
    w = np.logspace(-1, 2, 31)
    log_a = np.array([0.0, -0.8, -1.5])
    log_b = np.array([0.0, 0.1, 0.25])
    rows = []
    for a, b in zip(log_a, log_b, strict=True):
        x = np.log10(w) + a  # reduced frequency
        rows.append(1e5 * 10 ** (0.5 * x + 0.4 * np.sin(1.5 * x)) / 10**b)
    data = from_arrays(
        np.repeat([300.0, 310.0, 320.0], w.size),
        frequency_rad_s=np.tile(w, 3),
        storage_modulus_pa=np.concatenate(rows),
    )
    sf = superposition.shift_factors(data, 300.0, vertical=True)
    np.testing.assert_allclose(sf.log10_aT, log_a, atol=0.01)
    np.testing.assert_allclose(sf.log10_bT, log_b, atol=0.01)


def test_master_curve_collapses_onto_the_reference_model(simple_data, simple_summary):
    # reference: the noise-free generalized Maxwell model at 373 K
    sf_a = np.array(list(simple_summary["log10_aT"].values()))
    temps = simple_data.temperatures_k()
    x_all, y_all = [], []
    for k, t in enumerate(temps):
        x, y = simple_data.log_curve("storage_modulus_pa", t)
        x_all.append(x + sf_a[k])
        y_all.append(y)
    x_all, y_all = np.concatenate(x_all), np.concatenate(y_all)
    tau, g = _spectrum(20, -4.0, 11.0, 1e9, -0.3)
    model = np.log10(maxwell_moduli(10**x_all, g, tau)[0])
    assert np.sqrt(np.mean((y_all - model) ** 2)) < 0.02  # 2 % noise ≈ 0.0087 rms


def test_pair_optimiser_compiles_once_per_shape(simple_summary):
    # simple_summary already superposed 8 isotherms of 31 points; a new data set
    # with the same shapes must reuse the compiled optimiser
    with count_traces() as traces:
        superposition.shift_factors(wlf_maxwell_data(seed=5, n_temperatures=3), 373.0)
    assert traces[pairwise._optimise_pair.__name__] == 0
