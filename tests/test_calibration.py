"""Calibrated committee uncertainty: scale, scores, storage and the evaluate CLI."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from tiny_models import TINY_NEQUIP, emt_items

from mldiff import calibration as calib
from mldiff import ensemble, neighbors, potentials
from mldiff.errors import ConfigError
from mldiff.structure import Structure


def _synthetic(alpha, n, seed=0):
    """Errors ``alpha`` times wider than the spreads: Gaussian, heteroscedastic."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.02, 0.3, n)  # eV/Å
    return alpha * sigma * rng.standard_normal(n), sigma


def test_scale_is_the_maximum_likelihood_and_recovers_the_true_factor():
    # reference: brute-force maximisation of the Gaussian log-likelihood
    # (scipy.stats.norm.logpdf) over a fine grid of factors
    err, sigma = _synthetic(2.5, 20_000)
    grid = np.linspace(1.0, 4.0, 3001)  # step 0.001
    loglik = [stats.norm.logpdf(err, scale=a * sigma).sum() for a in grid]
    best = grid[int(np.argmax(loglik))]
    alpha = calib.fit_scale(err, sigma)
    assert alpha == pytest.approx(best, abs=1e-3)
    # the true factor, within 4 standard errors (relative error 1/√(2n) = 0.5 %)
    assert alpha == pytest.approx(2.5, rel=0.02)
    # after calibration the 95 % interval covers 95 % (binomial sd 0.0015)
    assert calib.coverage(err, alpha * sigma, 0.95) == pytest.approx(0.95, abs=0.006)
    # an overconfident committee covers far less
    assert calib.coverage(err, sigma, 0.95) < 0.6


def test_musil_scale_corrects_the_finite_committee():
    # references: matscipy's implementation, and Musil et al.'s (2019) model:
    # K members scatter around a latent mean mu with variance sigma^2, the
    # target around mu with (alpha sigma)^2; their finite-committee scale
    # recovers alpha from the sample spread s (ddof=1), while the
    # plain likelihood scale estimates (alpha^2 + 1/K)(K-1)/(K-3) instead
    rng = np.random.default_rng(3)
    k, n, alpha = 8, 100_000, 1.7
    sigma = rng.uniform(0.5, 2.0, n)
    members = sigma * rng.standard_normal((k, n))  # mu = 0
    target = alpha * sigma * rng.standard_normal(n)
    err = members.mean(0) - target
    s1 = members.std(0, ddof=1)
    s0 = members.std(0, ddof=0)
    a1 = calib.fit_scale(err, s1, method="musil", n_members=k, ddof=1)
    assert a1 == pytest.approx(alpha, rel=0.03)
    # the same calibrated spread whatever the ddof of the input spreads
    a0 = calib.fit_scale(err, s0, method="musil", n_members=k, ddof=0)
    np.testing.assert_allclose(a0 * s0, a1 * s1, rtol=1e-12)
    # reference implementation: matscipy's committee calibration (ddof=1 variances)
    from matscipy.calculators.committee import Committee

    committee = types.SimpleNamespace(number=k)  # all the method reads of self
    ref = Committee._calculate_alpha(committee, target, members.mean(0), s1**2)
    assert a1 == pytest.approx(ref, rel=1e-12)
    biased = np.sqrt((alpha**2 + 1 / k) * (k - 1) / (k - 3))
    assert calib.fit_scale(err, s1) == pytest.approx(biased, rel=0.03)
    with pytest.raises(ConfigError, match="more than 3 members"):
        calib.fit_scale(err, s1, method="musil", n_members=3)


def test_coverage_nll_and_curve_against_scipy():
    # references: scipy.stats.norm (interval, logpdf) on the same numbers
    err, sigma = _synthetic(1.6, 2000, seed=1)
    for level in (0.68, 0.95):
        lo, hi = stats.norm.interval(level, scale=sigma)
        ref = np.mean((err >= lo) & (err <= hi))
        assert calib.coverage(err, sigma, level) == pytest.approx(ref, abs=1e-12)
    nll = -np.mean(stats.norm.logpdf(err, scale=sigma))
    assert calib.gaussian_nll(err, sigma) == pytest.approx(nll, rel=1e-12)
    expected, observed = calib.calibration_curve(err, sigma, n_points=11)
    np.testing.assert_allclose(expected, np.linspace(0, 1, 11))
    for p, obs in zip(expected[:-1], observed[:-1], strict=True):
        lo, hi = stats.norm.interval(p, scale=sigma)
        assert obs == pytest.approx(np.mean((err >= lo) & (err <= hi)), abs=1e-12)
    assert observed[-1] == 1.0
    # zero spreads are left out (a committee of identical members), not divided by
    assert calib.coverage(np.r_[err, 5.0], np.r_[sigma, 0.0], 0.95) == (
        calib.coverage(err, sigma, 0.95)
    )
    with pytest.raises(ConfigError, match="positive, finite spread"):
        calib.fit_scale([1.0, 2.0], [0.0, 0.0])


def test_miscalibration_area_against_a_dense_numpy_integral():
    # reference: the area between the curves integrated on a 200 001-point grid
    # with the trapezoid rule (the exact piecewise integral must agree)
    err, sigma = _synthetic(1.8, 400, seed=2)
    p = np.linspace(0.0, 1.0, 200_001)
    u = np.sort(2 * stats.norm.cdf(np.abs(err / sigma)) - 1)
    observed = np.searchsorted(u, p, side="right") / u.size
    ref = np.trapezoid(np.abs(observed - p), p)
    assert calib.miscalibration_area(err, sigma) == pytest.approx(ref, abs=2e-5)
    assert ref > 0.1  # 1.8x overconfident is far from the diagonal
    # perfectly calibrated: the area vanishes as 1/√n (here ~0.004)
    err, sigma = _synthetic(1.0, 20_000, seed=4)
    assert calib.miscalibration_area(err, sigma) < 0.01
    assert calib.miscalibration_area(err, 1.8 * sigma) > 0.1  # underconfident too
    keys = calib.uncertainty_metrics(err, sigma, "forces", "_x")
    assert keys["forces_coverage_68_x"] == pytest.approx(0.68, abs=0.01)
    assert set(keys) == {
        "forces_coverage_68_x",
        "forces_coverage_95_x",
        "forces_nll_x",
        "forces_miscalibration_area_x",
    }


def test_calibration_file_round_trip(tmp_path):
    cal = calib.Calibration(
        forces_scale=2.25, energy_scale=1.5, n_members=4, n_forces=30, n_energies=3
    )
    assert calib.read(tmp_path) is None  # nothing stored: no calibration
    path = calib.write(tmp_path, cal, {"forces_coverage_95": 0.9})
    assert calib.read(tmp_path) == cal
    assert calib.read(tmp_path / "ensemble.msgpack") == cal  # beside the model
    assert json.loads(open(path).read())["validation"]["forces_coverage_95"] == 0.9
    (tmp_path / calib.FILENAME).write_text("{not json")
    with pytest.raises(ConfigError, match="not a calibration file"):
        calib.read(tmp_path)
    with pytest.raises(ConfigError, match="positive"):
        calib.Calibration(forces_scale=0.0)


def test_committee_spreads_are_scaled_by_default():
    # reference: the same committee without a calibration, times the scales
    pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
    s = Structure.create([[0, 0, 0], [2.45, 0.1, 0]], jnp.eye(3) * 9.0, [29, 29])
    g = neighbors.allocate(s, pot.cutoff)
    p = ensemble.stack(
        [
            {**pot.init(None, s), "r0": jnp.asarray(r)}
            for r in (2.55, 2.6, 2.68)  # members disagree
        ]
    )
    cal = calib.Calibration(forces_scale=3.0, energy_scale=2.0, n_members=3)
    raw = jax.jit(ensemble.committee(pot.energy, with_stress=False))(p, s, g)
    out = jax.jit(ensemble.committee(pot.energy, with_stress=False, calibration=cal))(
        p, s, g
    )
    off = calib.apply(cal, raw, calibrated=False)
    for key in ("forces_std_ev_per_angstrom", "max_force_std_ev_per_angstrom"):
        np.testing.assert_allclose(out[key], 3.0 * raw[key], rtol=1e-12)
        np.testing.assert_array_equal(
            out[key.replace("_std_", "_std_uncalibrated_")], raw[key]
        )
        np.testing.assert_array_equal(off[key], raw[key])
    for key in ("energy_std_ev", "energy_std_ev_per_atom"):
        np.testing.assert_allclose(out[key], 2.0 * raw[key], rtol=1e-12)
    np.testing.assert_array_equal(
        out["forces_mean_ev_per_angstrom"], raw["forces_mean_ev_per_angstrom"]
    )
    # Musil's rescaled members: the same mean, the spread times the scale
    x = np.random.default_rng(0).normal(size=(5, 7))
    y = calib.scale_members(x, 2.5)
    np.testing.assert_allclose(y.mean(0), x.mean(0), atol=1e-14)
    np.testing.assert_allclose(y.std(0, ddof=1), 2.5 * x.std(0, ddof=1), rtol=1e-12)


def test_evaluate_cli_scores_a_committee(tmp_path):
    # reference: the committee mean and spread member by member (ASE-free
    # jax.grad forces of each member), scored with scipy.stats.norm
    from mldiff import quantities
    from mldiff.cli import main
    from mldiff.data import read_extxyz, write_extxyz
    from mldiff.training import TrainConfig, checkpoint, loop
    from mldiff.training.models import build

    items = emt_items(3, seed=5)
    config = TrainConfig(model="nequip", model_config=TINY_NEQUIP, dtype="float64")
    spec = loop.model_spec_from_data(config, items)
    pot = build(spec)
    params = ensemble.init_ensemble(pot, jax.random.key(0), items[0].structure, 3)
    run = tmp_path / "ens"
    header = {"ensemble": {"n_members": 3, "bootstrap": False}}
    checkpoint.save(run / ensemble.MODEL, spec=spec, params=params, header=header)
    write_extxyz(tmp_path / "data.extxyz", items)
    items = read_extxyz(tmp_path / "data.extxyz")  # the labels as the CLI reads them
    forces_fn = jax.jit(
        jax.vmap(quantities.forces(pot.energy), in_axes=(0, None, None))
    )
    err, std = [], []
    for it in items:
        g = neighbors.allocate(it.structure, pot.cutoff)
        f = np.asarray(forces_fn(params, it.structure, g))  # [K, n, 3]
        err.append((f.mean(0) - it.forces).ravel())
        std.append(f.std(0).ravel())
    err, std = np.concatenate(err), np.concatenate(std)
    # an untrained committee is overconfident; store the scale that fits here
    alpha = calib.fit_scale(err, std)
    calib.write(run, calib.Calibration(forces_scale=alpha, n_members=3))
    out = tmp_path / "eval"
    assert (
        main(["evaluate", str(run), str(tmp_path / "data.extxyz"), "--out", str(out)])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["forces_mae_mev_per_angstrom"] == pytest.approx(
        1e3 * np.mean(np.abs(err)), rel=1e-8
    )
    assert metrics["forces_calibration_scale"] == pytest.approx(alpha) and alpha > 2
    for scale, suffix in ((alpha, ""), (1.0, "_uncalibrated")):
        for level in (68, 95):
            lo, hi = stats.norm.interval(level / 100, scale=scale * std)
            ref = np.mean((err >= lo) & (err <= hi))
            assert metrics[f"forces_coverage_{level}{suffix}"] == pytest.approx(ref)
        nll = -np.mean(stats.norm.logpdf(err, scale=scale * std))
        assert metrics[f"forces_nll{suffix}"] == pytest.approx(nll, rel=1e-8)
        area = calib.miscalibration_area(err, scale * std)
        assert metrics[f"forces_miscalibration_area{suffix}"] == pytest.approx(area)
    assert metrics["forces_miscalibration_area"] < 0.49  # not degenerate
    assert metrics["n_structures"] == 3
    assert (out / "reliability.png").stat().st_size > 5000
    assert (out / "parity.png").stat().st_size > 5000
