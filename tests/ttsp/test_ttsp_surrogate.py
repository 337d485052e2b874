"""Super-TTSP surrogate: held-out isotherm, uncertainty growth outside the data."""

import numpy as np
import pytest

from mldiff.ttsp.data import two_process_data
from mldiff.ttsp.surrogate import fit_surrogate, predict_surrogate


@pytest.fixture(scope="module")
def small_complex():
    return two_process_data(points_per_decade=5, seed=1)


@pytest.fixture(scope="module")
def held_out_model(small_complex):
    """G' surrogate trained on every isotherm except 340 K."""
    return fit_surrogate(
        small_complex, "storage_modulus_pa", exclude_temperatures_k=[340.0]
    )


def test_held_out_temperature_within_stated_uncertainty(small_complex, held_out_model):
    # reference: the measured (noisy) isotherm at 340 K, never seen in training
    s = held_out_model
    x, y = small_complex.log_curve("storage_modulus_pa", 340.0)
    mean, std, _ = predict_surrogate(s, x, 340.0)
    assert np.mean(np.abs(mean - y) <= 2 * std) >= 0.9


def test_uncertainty_grows_30_K_beyond_the_data_and_is_flagged(
    small_complex, held_out_model
):
    s = held_out_model  # its highest training isotherm is the highest measured
    t_max = small_complex.temperatures_k().max()
    x, _ = small_complex.log_curve("storage_modulus_pa", t_max)
    _, std_in, flag_in = predict_surrogate(s, x, t_max)
    _, std_out, flag_out = predict_surrogate(s, x, t_max + 30.0)
    assert np.median(std_out) >= 3 * np.median(std_in)
    assert np.all(std_out >= 3 * std_in)
    assert flag_out.all() and not flag_in.any()
