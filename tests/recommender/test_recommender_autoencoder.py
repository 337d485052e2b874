"""The warm-start denoising imputer against linear imputers on two-regime data."""

import numpy as np
import pytest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

from mldiff.recommender import MatrixFactorization, RecommenderError

STEPS = 3000  # enough for 600 rows; the default (6000) is for ~10⁴ rows


@pytest.fixture(scope="module")
def two_regimes():
    """Metals and semiconductors, as in the transport data (standardised-like).

    Columns: log σ, S, log m*, log κ. A metal has a high conductivity (4) and a
    Seebeck coefficient near zero whatever its mass; a semiconductor's S rises
    with log m* and its log σ falls with it. S is a piecewise function of the
    other columns that no linear model of them follows. 20 % of the entries
    are hidden (seeded); every row keeps at least one.
    """
    rng = np.random.default_rng(0)
    n = 600
    metal = rng.random(n) < 0.4
    log_m = rng.normal(size=n)
    log_sigma = np.where(metal, 4.0, -log_m) + 0.1 * rng.normal(size=n)
    seebeck = np.where(metal, 0.0, 2.0 + 0.8 * log_m) + 0.05 * rng.normal(size=n)
    log_kappa = 0.5 * log_sigma + 0.1 * rng.normal(size=n)
    truth = np.stack([log_sigma, seebeck, log_m, log_kappa], axis=1)
    hide = rng.random(truth.shape) < 0.2
    hide[hide.all(axis=1), 0] = False
    return truth, hide


def _rmse(pred, truth, hide, j):
    return float(np.sqrt(np.mean((pred - truth)[:, j][hide[:, j]] ** 2)))


@pytest.fixture(scope="module")
def fitted(two_regimes):
    truth, hide = two_regimes
    matrix = np.where(hide, np.nan, truth)
    kw = dict(rank=3, n_members=2, log10=[False] * 4, seed=0)
    with_ae = MatrixFactorization(autoencoder_steps=STEPS, **kw).fit(matrix)
    without = MatrixFactorization(autoencoder_steps=0, **kw).fit(matrix)
    return with_ae, without


def test_autoencoder_follows_the_regimes_that_linear_imputers_miss(two_regimes, fitted):
    truth, hide = two_regimes
    with_ae, without = fitted
    linear = IterativeImputer(max_iter=10, random_state=0).fit_transform(
        np.where(hide, np.nan, truth)
    )
    ours = np.asarray(with_ae.predict())
    mf = np.asarray(without.predict())
    j = 1  # Seebeck
    assert _rmse(ours, truth, hide, j) < 0.8 * _rmse(linear, truth, hide, j)
    assert _rmse(ours, truth, hide, j) < 0.8 * _rmse(mf, truth, hide, j)
    overall = np.sqrt(np.mean((ours - truth)[hide] ** 2))
    assert overall < np.sqrt(np.mean((linear - truth)[hide] ** 2))
    # impute keeps the measured entries and fills the rest with the same values
    filled = np.asarray(with_ae.impute())
    assert np.array_equal(filled[~hide], truth[~hide])
    assert np.allclose(filled[hide], ours[hide])


def test_noise_variance_is_the_error_on_hidden_entries(two_regimes, fitted):
    truth, hide = two_regimes
    with_ae, _ = fitted
    ours, std = with_ae.predict(return_std=True)
    # held-out estimate from the training entries vs the error on the entries
    # the model never saw (standardised units: divide by the column std)
    scale = np.asarray(with_ae.transform_.std)
    for j in range(truth.shape[1]):
        mse = _rmse(np.asarray(ours), truth, hide, j) ** 2 / scale[j] ** 2
        assert 0.4 < with_ae.noise_var_[j] / mse < 2.5, (j, with_ae.noise_var_[j], mse)
    assert np.all(np.asarray(std) ** 2 >= with_ae.noise_var_[None, :] - 1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"autoencoder_steps": -1}, "autoencoder_steps"),
        ({"drop_rate": 0.0}, "drop_rate"),
        ({"drop_rate": 1.0}, "drop_rate"),
    ],
)
def test_bad_autoencoder_settings_are_rejected(kwargs, message):
    with pytest.raises(RecommenderError, match=message):
        MatrixFactorization(**kwargs)


def test_a_file_from_before_the_autoencoder_loads_with_it_off(fitted, tmp_path):
    import json

    with_ae, _ = fitted
    with_ae.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays.pop("header")))
    for key in ("autoencoder_steps", "autoencoder_hidden", "drop_rate"):
        del header["config"][key]  # as written before these settings existed
    np.savez(tmp_path / "old.npz", header=np.array(json.dumps(header)), **arrays)
    old = MatrixFactorization.load(tmp_path / "old.npz")
    assert old.config.autoencoder_steps == 0  # its values are the factorisation's
    np.testing.assert_array_equal(
        np.asarray(old.predict()), np.asarray(with_ae.predict())
    )
    again = MatrixFactorization.load(tmp_path / "model.npz")
    assert again.config.autoencoder_steps == STEPS
