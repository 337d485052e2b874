"""A small synthetic materials × properties matrix driven by real compositions."""

import numpy as np
import pandas as pd
import pytest

#: small settings shared by the API and CLI tests (same shapes: compiled once)
SMALL = dict(
    rank=2,
    n_members=3,
    sweeps=50,
    hidden=(16,),
    iterations=20,
    inner_steps=10,
    batch=150,
    neighbors=10,
    autoencoder_steps=500,
)  # = the CLI's with flags
N_FIT, N_NEW = 150, 30


@pytest.fixture(scope="session")
def composition_matrix():
    """Properties that are smooth functions of composition, 30 % hidden.

    Columns: ``a`` = mean Pauling electronegativity, ``b`` = mean melting point
    / 1000 K, ``c`` = 10^(2 a) (positive, logged), ``d`` = a - b. The truth
    comes from pymatgen's element data through mldiff.descriptors; formulas
    are the first compounds of pymatgen's experimental enthalpy table.
    """
    from mldiff.data import experimental_formation_enthalpies
    from mldiff.descriptors import composition_features, feature_names

    formulas = list(experimental_formation_enthalpies()["formula"][: N_FIT + N_NEW])
    x = composition_features(formulas)
    names = feature_names()
    a = x[:, names.index("X_mean")]
    b = x[:, names.index("melting_point_mean")] / 1000.0
    truth = pd.DataFrame(
        {"a": a, "b": b, "c": 10.0 ** (2 * a), "d": a - b}, index=formulas
    )
    rng = np.random.default_rng(1)
    hidden = rng.random(truth.shape) < 0.3
    hidden[:, 0] &= ~hidden[:, 1:].all(axis=1)  # no all-missing row
    observed = truth.mask(hidden)
    return truth, observed
