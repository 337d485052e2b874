"""Masked factorisation: recovering a known low-rank matrix, ALS vs Adam, ridge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mldiff.recommender import factorization as mf

N, M, K = 60, 12, 3  # one shape for every test here: one compile per solver
REG = 0.1  # small enough for recovery, large enough for ALS to converge fast


@pytest.fixture(scope="module")
def low_rank():
    """Truth μ + b + c + U Vᵀ (rank 3), 1 % noise, 70 % observed (seeded)."""
    rng = np.random.default_rng(0)
    truth = (
        0.3
        + rng.normal(size=(N, 1)) * 0.5
        + rng.normal(size=(1, M)) * 0.5
        + rng.normal(size=(N, K)) @ rng.normal(size=(K, M))
    )
    observed = rng.random((N, M)) < 0.7
    noisy = truth + 0.01 * rng.normal(size=(N, M))
    y = jnp.asarray(np.where(observed, noisy, 0.0))
    return truth, observed, y, jnp.asarray(observed, dtype=jnp.float64)


@pytest.fixture(scope="module")
def als_fit(low_rank):
    _, _, y, w = low_rank
    return mf.fit_als(y, w, rank=K, reg=REG, key=jax.random.key(0), sweeps=300)


def test_als_recovers_missing_entries_of_a_low_rank_matrix(low_rank, als_fit):
    # reference: the known noise-free truth on entries the fit never saw
    truth, observed, _, _ = low_rank
    pred = np.asarray(mf.predict(als_fit[0]))
    rmse_missing = np.sqrt(np.mean((pred - truth)[~observed] ** 2))
    assert rmse_missing < 0.05 * truth.std()  # noise is 0.01 · 1, truth std ~2


def test_als_objective_never_increases(als_fit):
    history = np.asarray(als_fit[1])
    assert np.all(np.diff(history) <= 1e-9 * history[0])
    assert history[-1] < 1e-2 * history[0]


def test_gradient_and_als_reach_the_same_completion(low_rank, als_fit):
    truth, observed, y, w = low_rank
    f, history = mf.fit_gradient(
        y, w, rank=K, reg=REG, key=jax.random.key(1), steps=3000, learning_rate=0.02
    )
    history = np.asarray(history)
    assert history[-1] < 1e-2 * history[0]  # objective decreases
    j_als = float(mf.objective(als_fit[0], y, w, REG))
    assert abs(float(history[-1]) - j_als) < 1e-2 * j_als
    diff = np.asarray(mf.predict(f)) - np.asarray(mf.predict(als_fit[0]))
    assert np.sqrt(np.mean(diff**2)) < 0.02


def test_ridge_row_update_matches_normal_equations(rng):
    # reference: NumPy solve of (Aᵀ W A + λ I) θ = Aᵀ W t for one row
    a, t, w = rng.normal(size=(M, 4)), rng.normal(size=(5, M)), rng.random((5, M))
    theta = np.asarray(
        mf._ridge_rows(jnp.asarray(a), jnp.asarray(t), jnp.asarray(w), 0.3)
    )
    for i in range(5):
        gram = a.T @ (w[i][:, None] * a) + 0.3 * np.eye(4)
        np.testing.assert_allclose(
            theta[i], np.linalg.solve(gram, a.T @ (w[i] * t[i])), rtol=1e-10
        )


@pytest.mark.slow  # the API tests cover the ensemble spread by default
def test_ensemble_members_differ(low_rank):
    _, _, y, w = low_rank
    keys = jax.random.split(jax.random.key(2), 3)
    f, _ = mf.fit_ensemble(y, w, rank=K, reg=REG, keys=keys, sweeps=300)
    members = np.asarray(jax.vmap(mf.predict)(f))
    assert members.shape == (3, N, M)
    # Bayesian-bootstrap weights and random starts give each member its own fit
    spread = members.std(0)
    assert spread.mean() > 1e-4


@pytest.mark.slow
def test_rank_selection_prefers_the_true_rank(low_rank):
    _, observed, y, _ = low_rank
    best, scores = mf.select_rank(
        np.asarray(y), observed, [1, K], reg=REG, key=jax.random.key(3), sweeps=300
    )
    assert best == K and scores[K] < 0.5 * scores[1]
