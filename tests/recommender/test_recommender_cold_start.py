"""Cold start: descriptor → latent map fitted jointly; API, recommend, save / load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import N_FIT, SMALL
from mldiff.descriptors import CompositionError, composition_features
from mldiff.recommender import MatrixFactorization, RecommenderError, window_probability
from mldiff.recommender.cold_start import (
    descriptors,
    encode,
    encoding_edges,
    fit_joint,
    predict_cold,
)


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


def test_piecewise_linear_encoding_matches_its_definition():
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=50), rng.integers(0, 3, size=50)])  # ties
    edges = encoding_edges(x, bins=4)
    for j in range(2):
        quantiles = np.quantile(x[:, j], [0, 0.25, 0.5, 0.75, 1])
        np.testing.assert_allclose(edges[j], quantiles)
    query = np.array([[-9.0, 0.0], [0.1, 1.0], [9.0, 2.5]])
    got = np.asarray(encode(edges, query)).reshape(3, 2, 4)
    for i in range(3):
        for j in range(2):
            for t in range(4):
                lo, hi = edges[j, t], edges[j, t + 1]
                if hi > lo:
                    want = min(max((query[i, j] - lo) / (hi - lo), 0.0), 1.0)
                else:  # repeated quantile: a step just above the edge
                    want = float(query[i, j] > lo)
                assert got[i, j, t] == pytest.approx(want, abs=1e-6), (i, j, t)


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


def test_cold_start_members_add_their_spread_to_the_std(fitted):
    _, _, model = fitted
    members = SMALL.get("cold_members", 2)
    assert all(leaf.shape[0] == members for leaf in jax.tree.leaves(model.joint_))
    formulas = ["KBr", "MgO", "GaAs"]
    _, std = model.predict_new(formulas, return_std=True)
    # the members' own predictions, without the neighbour correction
    xs = (descriptors(formulas) - model.x_mean_) / model.x_std_
    each = [
        np.asarray(
            predict_cold(
                jax.tree.map(lambda v, k=k: v[k], model.joint_),
                encode(model.edges_, xs),
            )
        )
        for k in range(members)
    ]
    assert np.var(each, axis=0).max() > 1e-8  # the members differ
    floor = np.sqrt(model.cold_var_)[None, :]
    assert np.all(std.to_numpy() >= floor - 1e-12)
    assert np.any(std.to_numpy() > floor + 1e-9)


def test_a_saved_model_with_another_map_form_is_refused(fitted, tmp_path):
    import json

    _, _, model = fitted
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays.pop("header")))
    del header["descriptor_map"]  # as written before the encoding existed
    np.savez(tmp_path / "old.npz", header=np.array(json.dumps(header)), **arrays)
    with pytest.raises(RecommenderError, match="another form.*fit the model again"):
        MatrixFactorization.load(tmp_path / "old.npz")


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
    with pytest.raises(RecommenderError, match="bins"):
        MatrixFactorization(bins=0)
    with pytest.raises(RecommenderError, match="balance"):
        MatrixFactorization(balance=1.5)
    with pytest.raises(RecommenderError, match="cold_members"):
        MatrixFactorization(cold_members=0)
    with pytest.raises(RecommenderError, match="learning_rate"):
        MatrixFactorization(learning_rate=0.0)
    with pytest.raises(RecommenderError, match="neighbor_space"):
        MatrixFactorization(neighbor_space="latent")


def _reference_cold_z(model, formulas, space):
    """The cold-start mean in standardised units, written out in numpy.

    Each member: map output ``g`` by a plain numpy forward pass, plus
    ``neighbor_weight`` × the inverse-distance (``1 / (d + 0.1)``) mean of the
    latent residuals of its ``neighbors`` nearest fitted rows, found by a full
    sort of the distances in the member's last hidden layer or in
    standardised descriptor space; then the factor model's prediction.
    """
    c = model.config
    xs = (composition_features(formulas) - model.x_mean_) / model.x_std_

    def encoded(x):  # the piecewise-linear encoding, from its definition
        lo, hi = model.edges_[:, :-1], model.edges_[:, 1:]
        e = np.clip((x[:, :, None] - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)
        return e.reshape(len(x), -1)

    out = []
    for m in range(c.cold_members):
        layers = [
            (np.asarray(v["w"], np.float64), np.asarray(v["b"], np.float64))
            for v in jax.tree.map(lambda a, m=m: a[m], model.joint_.mlp)
        ]

        def hidden(x, layers=layers):
            h = encoded(x)
            for w, b in layers[:-1]:
                h = np.maximum(h @ w + b, 0.0)
            return h

        hq, hr = hidden(xs), hidden(model.x_train_)
        g = hq @ layers[-1][0] + layers[-1][1]
        q, r = (hq, hr) if space == "hidden" else (xs, model.x_train_)
        dist = np.linalg.norm(q[:, None, :] - r[None, :, :], axis=-1)
        near = np.argsort(dist, axis=1)[:, : c.neighbors]
        wgt = 1.0 / (np.take_along_axis(dist, near, 1) + 0.1)
        wgt /= wgt.sum(1, keepdims=True)
        shift = np.einsum("qk,qkp->qp", wgt, model.latent_residual_[m][near])
        theta = g + c.neighbor_weight * shift
        f = model.joint_.factors
        mu, col_bias, cols = (np.asarray(v[m]) for v in (f.mu, f.col_bias, f.cols))
        out.append(mu + theta[:, -1:] + col_bias + theta[:, :-1] @ cols.T)
    return np.mean(out, axis=0)


@pytest.mark.parametrize("space", ["hidden", "descriptors"])
def test_cold_start_neighbours_match_a_brute_force_search(fitted, space):
    import dataclasses

    _, _, model = fitted
    formulas = ["KBr", "MgO", "GaAs", "AgBr"]  # AgBr is a fitted row
    saved = model.config
    try:
        model.config = dataclasses.replace(saved, neighbor_space=space)
        got = model.transform_.forward(model.predict_new(formulas).to_numpy())
    finally:
        model.config = saved
    # the map runs in float32 (measured: 6e-7 from the float64 reference); the
    # other space, or no correction, differ by ~1e-2
    np.testing.assert_allclose(
        got, _reference_cold_z(model, formulas, space), rtol=0, atol=1e-5
    )


def test_a_file_from_before_hidden_neighbours_keeps_descriptor_neighbours(
    fitted, tmp_path
):
    import json

    _, _, model = fitted
    assert model.config.neighbor_space == "hidden"  # the default
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays.pop("header")))
    del header["config"]["neighbor_space"]  # as written before the setting
    np.savez(tmp_path / "old.npz", header=np.array(json.dumps(header)), **arrays)
    old = MatrixFactorization.load(tmp_path / "old.npz")
    assert old.config.neighbor_space == "descriptors"
    z = old.transform_.forward(old.predict_new(["KBr", "GaAs"]).to_numpy())
    np.testing.assert_allclose(
        z, _reference_cold_z(old, ["KBr", "GaAs"], "descriptors"), rtol=0, atol=1e-5
    )
