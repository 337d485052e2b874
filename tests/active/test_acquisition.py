import jax
import numpy as np
import pytest
from scipy import integrate, stats

from mldiff.active import acquisition as acq
from mldiff.active import pool
from mldiff.errors import ConfigError


@pytest.mark.parametrize("maximize", [True, False])
def test_expected_improvement_equals_numerical_integral(maximize):
    # reference: E[max(0, ±(f - best) - xi)] by quadrature of the Gaussian density
    mean, std, best, xi = (
        np.array([0.3, -1.0, 2.0]),
        np.array([0.7, 0.2, 1.5]),
        0.5,
        0.1,
    )
    ei = acq.expected_improvement(mean, std, best=best, maximize=maximize, xi=xi)
    for m, s, e in zip(mean, std, np.asarray(ei), strict=True):
        sign = 1.0 if maximize else -1.0

        def integrand(f, m=m, s=s, sign=sign):
            return max(sign * (f - best) - xi, 0.0) * stats.norm.pdf(f, m, s)

        ref, _ = integrate.quad(integrand, m - 12 * s, m + 12 * s, points=[best])
        assert e == pytest.approx(ref, rel=1e-7, abs=1e-12)


def test_expected_improvement_zero_std_and_gradient():
    # reference: analytic limit max(d - xi, 0) and finite differences
    ei = acq.expected_improvement(np.array([1.0, -1.0]), np.zeros(2), best=0.0)
    assert np.asarray(ei).tolist() == [1.0, 0.0]
    g = jax.grad(lambda m: acq.expected_improvement(m, 0.5, best=0.2).sum())(0.4)
    h = 1e-6
    fd = (
        acq.expected_improvement(0.4 + h, 0.5, best=0.2)
        - acq.expected_improvement(0.4 - h, 0.5, best=0.2)
    ) / (2 * h)
    # dEI/dmu = Phi(z) for maximisation
    assert float(g) == pytest.approx(float(fd), rel=1e-6)
    assert float(g) == pytest.approx(stats.norm.cdf(0.2 / 0.5), rel=1e-9)


def test_ucb_and_dispatch():
    # reference: the definitions mu + kappa sigma, -mu + kappa sigma
    m, s = np.array([1.0, 2.0]), np.array([0.5, 0.1])
    assert acq.scores("upper_confidence_bound", m, s, kappa=3.0).tolist() == [2.5, 2.3]
    assert acq.scores(
        "upper_confidence_bound", m, s, kappa=1.0, maximize=False
    ).tolist() == pytest.approx([-0.5, -1.9])
    assert acq.scores("max_variance", m, s).tolist() == [0.5, 0.1]
    r = acq.scores("random", m, s, key=jax.random.key(1))
    assert r.shape == (2,) and np.all((r >= 0) & (r < 1))
    with pytest.raises(ConfigError, match="choose one of"):
        acq.scores("thompson", m, s)
    with pytest.raises(ConfigError, match="best="):
        acq.scores("expected_improvement", m, s)


def test_select_batch_diversity_rules():
    # reference: hand-worked greedy selections
    s = [5.0, 4.0, 3.0, 2.0, 1.0, np.nan]
    assert acq.select_batch(s, 3).tolist() == [0, 1, 2]
    # one trajectory: frames 0,1,2 are one event; gap 2 keeps 0, 2, 4
    groups, frames = [0, 0, 0, 0, 0, 1], [0, 1, 2, 3, 4, 0]
    out = acq.select_batch(s, 5, groups=groups, frames=frames, min_frame_gap=2)
    assert out.tolist() == [0, 2, 4]  # the NaN candidate is never taken
    out = acq.select_batch(s, 5, groups=[0, 0, 1, 1, 2, 2], max_per_group=1)
    assert out.tolist() == [0, 2, 4]
    x = np.array([[0.0], [0.1], [1.0], [1.05], [3.0], [9.0]])
    assert acq.select_batch(s, 3, features=x, min_distance=0.5).tolist() == [0, 2, 4]


def test_trusted_scores_rank_trusted_first_then_least_untrusted():
    # reference: the rule written out by hand on a brute-force sort
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.0, 2.0, 50)
    level = 0.6
    order = np.argsort(-acq.trusted_scores(spread, level), kind="stable")
    trusted = [i for i in np.argsort(-spread, kind="stable") if spread[i] <= level]
    untrusted = [i for i in np.argsort(spread, kind="stable") if spread[i] > level]
    assert order.tolist() == trusted + untrusted
    # a batch of 5 with 3 trusted: the 3, then the 2 nearest above the level
    few = np.array([0.1, 3.0, 0.5, 0.7, 0.2, 1.5])
    pick = acq.select_batch(acq.trusted_scores(few, 0.6), 5)
    assert pick.tolist() == [2, 4, 0, 3, 5]


def test_trusted_scores_cut_each_trajectory_at_its_first_exit():
    # reference: the cut written out as a loop over frames in time order;
    # frames are shuffled so the rule cannot lean on the candidates' order
    rng = np.random.default_rng(1)
    groups = np.repeat([0, 1, 2], 8)
    frames = np.tile(np.arange(8), 3)
    spread = rng.uniform(0.0, 0.5, 24)
    spread[groups == 2] = 0.1  # never leaves trust: nothing is cut
    perm = rng.permutation(24)
    g, f, s = groups[perm], frames[perm], spread[perm]
    out = acq.trusted_scores(s, 0.3, groups=g, frames=f)
    for label in (0, 1, 2):
        left = False
        for frame in range(8):
            i = int(np.flatnonzero((g == label) & (f == frame))[0])
            if left:
                assert np.isnan(out[i])
            else:
                assert out[i] == (s[i] if s[i] <= 0.3 else 0.3 - s[i])
                left = s[i] > 0.3
    assert np.isnan(out).sum() > 0
    assert np.all(np.isfinite(out[g == 2]))
    # NaN frames are never taken, even when the batch is not full
    pick = acq.select_batch(out, 24)
    assert len(pick) == np.isfinite(out).sum()
    with pytest.raises(ConfigError, match="frames"):
        acq.trusted_scores(s, 0.3, groups=g)


def test_regression_metrics_against_scipy():
    # reference: scipy.stats.norm.logpdf for the NLPD, direct counts for coverage
    rng = np.random.default_rng(0)
    y, m, s = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.5, 2, 50)
    out = pool.regression_metrics(y, m, s)
    assert out["nlpd"] == pytest.approx(-np.mean(stats.norm.logpdf(y, m, s)), rel=1e-12)
    assert out["coverage_95"] == np.mean(np.abs(y - m) <= 1.96 * s)
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((y - m) ** 2)))
