"""Cold start: descriptor → latent map fitted jointly; API, recommend, save / load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import N_FIT, SMALL
from mldiff.descriptors import CompositionError, composition_features
from mldiff.recommender import MatrixFactorization, RecommenderError, window_probability
from mldiff.recommender.cold_start import descriptors, fit_joint, predict_cold


def test_joint_fit_predicts_new_rows_from_synthetic_descriptors():
    # truth: row factors are a smooth function of 2 descriptors, rank 2
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(240, 2))
    u = np.stack([np.sin(2 * x[:, 0]), x[:, 0] * x[:, 1]], axis=1)
    y = u @ rng.normal(size=(2, 6)) + rng.normal(size=6) * 0.3
    observed = rng.random(y.shape) < 0.7
    fit, new = slice(0, 200), slice(200, 240)
    model = fit_joint(
        jnp.asarray(np.where(observed, y, 0.0)[fit]),
        jnp.asarray(observed[fit], dtype=jnp.float64),
        jnp.asarray(x[fit]),
        rank=2,
        reg=0.1,
        key=jax.random.key(0),
        hidden=(16,),
        iterations=20,
        inner_steps=20,
        batch=64,
    )
    pred = np.asarray(predict_cold(model, jnp.asarray(x[new])))
    rmse = np.sqrt(np.mean((pred - y[new]) ** 2))
    baseline = np.sqrt(np.mean((y[fit].mean(0) - y[new]) ** 2))  # column means
    assert rmse < 0.5 * baseline  # a 16-unit MLP, 400 Adam steps


def test_descriptors_match_composition_features():
    formulas = ["NaCl", "Fe2O3", "NaCl", "SiO2"]
    np.testing.assert_allclose(
        descriptors(formulas, chunk=2), composition_features(formulas), rtol=1e-12
    )


@pytest.fixture(scope="module")
def fitted(composition_matrix):
    truth, observed = composition_matrix
    model = MatrixFactorization(**SMALL).fit(
        observed.iloc[:N_FIT], list(observed.index[:N_FIT])
    )
    return truth, observed, model


def test_warm_completion_beats_column_means(fitted):
    truth, observed, model = fitted
    t, o = truth.iloc[:N_FIT], observed.iloc[:N_FIT]
    pred = model.predict()
    assert list(pred.columns) == list(truth.columns) and pred.shape == t.shape
    z = model.transform_.forward
    missing = o.isna().to_numpy()
    err = (z(pred.to_numpy()) - z(t.to_numpy()))[missing]
    base = (z(o.mean().to_numpy()[None, :].repeat(len(t), 0)) - z(t.to_numpy()))[
        missing
    ]
    assert np.sqrt(np.mean(err**2)) < 0.5 * np.sqrt(np.mean(base**2))
    assert model.var_z_.mean() > 1e-6  # bootstrap members differ
    imputed = model.impute()
    np.testing.assert_array_equal(imputed.to_numpy()[~missing], o.to_numpy()[~missing])


def test_cold_start_predicts_every_property_of_unseen_formulas(fitted):
    truth, _, model = fitted
    new = truth.iloc[N_FIT:]
    pred, std = model.predict_new(list(new.index), return_std=True)
    assert pred.shape == new.shape and not pred.isna().any().any()
    assert (std.to_numpy() > 0).all()
    z = model.transform_.forward
    rmse = np.sqrt(np.mean((z(pred.to_numpy()) - z(new.to_numpy())) ** 2))
    assert rmse < 0.6  # column means: ~1 in standardised units


def test_recommend_ranks_by_window_probability(fitted):
    truth, observed, model = fitted
    table = model.recommend({"a": (2.5, None), "c": (None, 1e6)}, top=200)
    p = table["probability"].to_numpy()
    assert np.all(np.diff(p) <= 0) and np.all((p >= 0) & (p <= 1))
    # only rows with an unmeasured target are ranked
    o = observed.iloc[:N_FIT]
    assert o.loc[table.index, ["a", "c"]].isna().any(axis=1).all()
    new = model.recommend({"a": (2.5, None)}, candidates=["NaF", "Cs2Te"], top=2)
    assert list(new["formula"]) == ["NaF", "Cs2Te"]  # χ: F 3.98 vs Te 2.1, Cs 0.79


def test_window_probability_matches_scipy():
    from scipy.stats import norm  # reference

    mean, std = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])
    expect = norm.cdf(1.5, mean, std) - norm.cdf(-0.5, mean, std)
    np.testing.assert_allclose(
        window_probability(mean, std, -0.5, 1.5), expect, rtol=1e-12
    )


def test_save_load_roundtrip(fitted, tmp_path):
    _, _, model = fitted
    model.save(tmp_path / "model.npz")
    again = MatrixFactorization.load(tmp_path / "model.npz")
    np.testing.assert_allclose(again.predict().to_numpy(), model.predict().to_numpy())
    np.testing.assert_allclose(
        again.predict_new(["KBr"]).to_numpy(), model.predict_new(["KBr"]).to_numpy()
    )


def test_bad_requests_raise_clear_errors(fitted, composition_matrix):
    _, _, model = fitted
    with pytest.raises(CompositionError, match="Xx|cannot parse"):
        model.predict_new(["Xx2O3"])
    with pytest.raises(RecommenderError, match="unknown target column"):
        model.recommend({"nope": (0, None)})
    with pytest.raises(RecommenderError, match="one formula per row"):
        MatrixFactorization(**SMALL).fit(composition_matrix[1].iloc[:N_FIT], ["NaCl"])
    plain = MatrixFactorization(rank=2, n_members=1, sweeps=5).fit(np.eye(3) + 1.0)
    with pytest.raises(RecommenderError, match="fit\\(matrix, row_formulas\\)"):
        plain.predict_new(["NaCl"])
    with pytest.raises(RecommenderError, match="rank"):
        MatrixFactorization(rank=0)
