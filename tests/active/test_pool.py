import numpy as np
import pytest

from mldiff.active import run_pool
from mldiff.errors import ConfigError
from mldiff.gp import GaussianProcess, kernels


def _data(seed=0):
    # a 1-D function with a feature at x = 0.8, and a pool crowded at x < 0.3
    # (as real candidate pools are crowded with similar compounds): random picks
    # mostly land in the crowd, uncertainty sampling spreads out
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0, 0.3, 270), rng.uniform(0.3, 1, 30)])[:, None]

    def f(x):
        return np.sin(6 * x[:, 0]) + 2.0 * np.exp(-((x[:, 0] - 0.8) ** 2) / 0.002)

    xt = np.linspace(0, 1, 200)[:, None]
    return x, f(x) + 0.01 * rng.normal(size=300), xt, f(xt)


def _gp():
    return GaussianProcess(
        kernels.rbf(0.1) + kernels.white(1e-3), optimizer=None, normalize_y=True
    )


def test_uncertainty_sampling_beats_random_on_average():
    # reference: the random-selection baseline on the same pool, same initial set
    x, y, xt, yt = _data()
    final = {}
    for acquisition in ("max_variance", "random"):
        maes = []
        for seed in range(3):
            curve = run_pool(
                _gp, x, y, x_test=xt, y_test=yt, n_initial=4, batch_size=2,
                n_rounds=6, acquisition=acquisition, seed=seed,
            )
            assert curve["n_labels"] == [4, 6, 8, 10, 12, 14, 16]
            assert len(set(curve["selected"])) == 16  # nothing labeled twice
            maes.append(curve["mae"][-1])
        final[acquisition] = np.mean(maes)
    assert final["max_variance"] < 0.7 * final["random"]


def test_pool_too_small_is_an_error():
    x, y, xt, yt = _data()
    with pytest.raises(ConfigError, match="pool holds 300"):
        run_pool(_gp, x, y, x_test=xt, y_test=yt, n_initial=10, batch_size=100,
                 n_rounds=3)
