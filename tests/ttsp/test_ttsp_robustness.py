"""Issue #36.1: superposable data are never declared thermorheologically complex.

A TTSP failure must rest on evidence, not on a single-quantity fit that missed
its optimum. References: the exact WLF law the data are generated with, and
analytic shifts of synthetic curves.
"""

import json

import numpy as np
import pytest

from mldiff import ttsp
from mldiff.ttsp import diagnostics, pairwise, superposition
from mldiff.ttsp.curves import curve_model
from mldiff.ttsp.data import (
    melt_spectrum,
    two_process_data,
    wlf_maxwell_data,
    wlf_shift,
)

C1, C2, T_REF = 17.44, 51.6, 373.0


@pytest.fixture(scope="module")
def issue_melt():
    """The issue's melt and its analysis, computed once.

    BSW spectrum (power-law transition zone, plateau and terminal cut-off),
    exact WLF over 373-433 K (13 isotherms), 0.01-100 rad/s, 20 points per
    decade, 2 % noise. Before the fix G' alone put the first neighbour shifts
    2 decades off and the verdict was "TTSP fails".
    """
    temps = np.arange(T_REF, T_REF + 60.0 + 1e-9, 5.0)
    data = wlf_maxwell_data(
        temperatures_k=temps,
        c1=C1,
        c2=C2,
        t_ref_k=T_REF,
        frequency_range_rad_s=(0.01, 100.0),
        points_per_decade=20,
        noise=0.02,
        seed=2,
        spectrum=melt_spectrum(longest_time_s=1e10, glass_time_s=1e-2),
    )
    return temps, ttsp.analyse(data, T_REF)


def test_issue_melt_holds_with_exact_shifts_and_wlf(issue_melt):
    # reference: the generating WLF law (C1 = 17.44, C2 = 51.6 K at 373 K)
    temps, summary = issue_melt
    assert summary["ttsp_holds"] is True, summary["reasons"]
    assert summary["verdict"] == "holds" and summary["reasons"] == []
    got = np.array([summary["log10_aT"][str(t)] for t in temps])
    assert np.max(np.abs(got - wlf_shift(temps, C1, C2, T_REF))) < 0.01
    assert abs(summary["wlf"]["c1"] / C1 - 1) < 0.002
    assert abs(summary["wlf"]["c2"] / C2 - 1) < 0.002
    json.dumps(summary, allow_nan=False)  # the CLI's ttsp.json stays valid JSON


def test_issue_melt_single_quantity_shifts_are_right_or_marked_undetermined(
    issue_melt,
):
    # reference: neighbour differences of the generating WLF law. A shift that
    # one quantity fixes must be within 5 stated σ of the truth; G' on the
    # rubbery plateau fixes none (flat objective) and must say so
    temps, summary = issue_melt
    truth = np.diff(wlf_shift(temps, C1, C2, T_REF))
    test = summary["diagnostics"]["shift_agreement"]
    assert test["status"] == "passed"
    for name in ("storage", "loss"):
        s = np.array(test[f"{name}_log10_shift"])
        std = np.array(
            [np.inf if v is None else v for v in test[f"{name}_log10_shift_std"]]
        )
        ok = np.array(test["identified"][f"{name}_modulus_pa"])
        assert np.all(np.abs(s - truth)[ok] <= 5 * std[ok]), (name, s - truth, std)
    assert all(test["identified"]["loss_modulus_pa"])  # G'' has shape everywhere
    assert not all(test["identified"]["storage_modulus_pa"])  # G' plateau
    undetermined = [z is None for z in test["z"]]
    assert test["dof"] == len(undetermined) - sum(undetermined)


def _superposable_case(seed: int):
    """A thermorheologically simple melt with random shape, window and noise.

    Spectrum: BSW melt with terminal time 1e2-1e10 s, transition time 1e-4-1 s,
    power-law exponents n_g 0.4-0.8 (transition zone) and n_e 0.1-0.3
    (plateau), 1-3 modes per decade (1 leaves ripples); window 2-5 decades
    placed anywhere in 0.01-1e6 rad/s; noise 0-5 % (exactly 0 for every tenth
    seed); three isotherms whose first neighbour shift is 30-60 % of the
    window. 21 points per isotherm whatever the window, so one compilation.
    """
    rng = np.random.default_rng(seed)
    spectrum = melt_spectrum(
        longest_time_s=10 ** rng.uniform(2.0, 10.0),
        glass_time_s=10 ** rng.uniform(-4.0, 0.0),
        entanglement_exponent=rng.uniform(0.1, 0.3),
        transition_exponent=rng.uniform(0.4, 0.8),
        modes_per_decade=rng.uniform(1.0, 3.0),
    )
    decades = rng.uniform(2.0, 5.0)
    lo = rng.uniform(-2.0, 1.0)
    noise = 0.0 if seed % 10 == 0 else rng.uniform(0.0, 0.05)
    first = rng.uniform(0.3, 0.6) * decades  # |log aT(T1) - log aT(T0)|
    temps = T_REF + C2 * first / (C1 - first) * np.arange(3)
    data = wlf_maxwell_data(
        temperatures_k=temps,
        c1=C1,
        c2=C2,
        t_ref_k=T_REF,
        frequency_range_rad_s=(10**lo, 10 ** (lo + decades)),
        points_per_decade=20.0 / decades,
        noise=noise,
        seed=seed,
        spectrum=spectrum,
    )
    return data, f"{decades:.1f} decades, noise {noise:.3f}"


@pytest.mark.parametrize("seed", range(50))
def test_seeded_sweep_of_superposable_data_is_never_flagged(seed):
    # reference: every case superposes exactly by construction (one WLF aT for
    # every mode), so "fails" is always a false alarm; "undetermined" is
    # allowed only where G' or G'' alone cannot fix any neighbour shift (e.g.
    # a plateau across the window), with every other test passed
    data, what = _superposable_case(seed)
    models = superposition.curve_models(data, superposition.default_quantities(data))
    sf = superposition.shift_factors(data, T_REF, models=models)
    report = diagnostics.diagnose(data, T_REF, shifts=sf, models=models)
    assert report["ttsp_holds"] is not False, f"seed {seed} ({what}) flagged: " + (
        "; ".join(report["reasons"])
    )
    if report["ttsp_holds"] is None:
        statuses = {name: t["status"] for name, t in report["tests"].items()}
        assert statuses == {
            "shift_agreement": "undetermined",
            "van_gurp_palmen": "passed",
            "overlap_misfit": "passed",
        }, (seed, what, statuses)
    # the joint shifts stay right within their stated uncertainty
    error = sf.log10_aT - wlf_shift(sf.temperatures_k, C1, C2, T_REF)
    assert np.all(np.abs(error) <= 5 * sf.log10_aT_std + 1e-3), (seed, what, error)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise": 0.0},
        {"noise": 0.05, "seed": 3},
        {"activation_energies_kj_mol": (200.0, 80.0), "n_temperatures": 5},
    ],
    ids=["noise-free", "noise-5pc", "Ea-200-80"],
)
def test_thermorheologically_complex_data_are_still_flagged(kwargs):
    # reference: two processes with different activation energies cannot be
    # superposed by one aT (two_process_data's construction)
    summary = ttsp.analyse(two_process_data(**kwargs), 320.0)
    assert summary["ttsp_holds"] is False and summary["verdict"] == "fails"
    assert summary["diagnostics"]["shift_agreement"]["status"] == "failed"


def test_periodic_curve_shift_is_not_identifiable():
    # reference: y = sin(2π x / P) matches itself at every shift + k·P, so one
    # noisy quantity cannot tell them apart (2 % noise)
    period, rng = 1.2, np.random.default_rng(1)
    x = np.linspace(0.0, 4.0, 81)
    a, b = (
        curve_model(
            x,
            0.3 * np.sin(2 * np.pi * (x + d) / period)
            + 0.0087 * rng.standard_normal(81),
        )
        for d in (0.0, 0.3)
    )
    r = pairwise.search_pair_shift([(a, b)])
    assert not r.identifiable and r.alternatives.size > 0
    gaps = np.abs(r.alternatives - r.params[0]) / period
    assert np.any(np.abs(gaps - np.round(gaps)) < 0.1)  # a period away


def test_featureless_curve_shift_is_not_identifiable_and_plain_fit_raises():
    # reference: a constant curve fixes no shift at all (analytic)
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 3.0, 31)
    a = curve_model(x, 6.0 + 0.01 * rng.standard_normal(31))
    b = curve_model(x, 6.0 + 0.01 * rng.standard_normal(31))
    r = pairwise.search_pair_shift([(a, b)])
    assert not r.identifiable
    if not r.proper:
        with pytest.raises(ttsp.TTSPDataError, match="no proper minimum"):
            pairwise.pairwise_shift([(a, b)])


def test_stated_shift_uncertainty_is_calibrated():
    # reference: 30 noise realisations of a curve and its copy shifted by
    # exactly -0.8 decades (2 % noise); (s - truth) / σ must have unit spread
    x = np.linspace(-1.0, 2.0, 31)

    def curve(u):
        return 5.0 + 0.5 * u + 0.4 * np.sin(1.5 * u)

    z = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        noisy = [curve(x + d) + 0.0087 * rng.standard_normal(31) for d in (0, -0.8)]
        a, b = curve_model(x, noisy[0]), curve_model(x, noisy[1])
        r = pairwise.search_pair_shift([(a, b)])
        assert r.identifiable
        z.append((r.params[0] + 0.8) / np.sqrt(r.cov[0, 0]))
    z = np.array(z)
    assert 0.6 < np.std(z) < 1.25 and np.max(np.abs(z)) < 4.0, z
