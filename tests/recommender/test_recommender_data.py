"""Loaders (real shipped data), the column transform, and matrix validation."""

import numpy as np
import pandas as pd
import pytest

from mldiff.recommender import data


@pytest.fixture(scope="module")
def transport():
    return data.transport_matrix()


def test_transport_matrix_shape_columns_and_join(transport):
    from mldiff.data import experimental_formation_enthalpies

    matrix, info = transport
    # 47,737 BoltzTraP compounds (Ricci et al. 2017, as shipped by matminer)
    assert list(matrix.columns) == list(data.TRANSPORT_UNITS)
    assert matrix.iloc[:47737, :10].notna().all().all()
    assert matrix.iloc[47737:, :10].isna().all().all()
    exp = experimental_formation_enthalpies()
    # every experimental enthalpy lands in exactly one row
    assert matrix["enthalpy_ev_per_atom"].notna().sum() == len(exp)
    assert matrix.index.is_unique and list(info.index) == list(matrix.index)
    # joined by Materials Project id: NaCl is mp-22862 in pymatgen's file
    nacl = exp[exp["formula"] == "NaCl"].iloc[0]
    row = matrix.loc[nacl["mpid"]]
    assert info.loc[nacl["mpid"], "formula"] == "NaCl"
    assert row["enthalpy_ev_per_atom"] == pytest.approx(nacl["enthalpy_ev_per_atom"])


def test_transport_columns_logged_where_positive_and_wide(transport):
    matrix, _ = transport
    t = data.fit_column_transform(matrix.to_numpy())
    flags = dict(zip(matrix.columns, t.log10, strict=True))
    # conductivity, κ_e, power factor, effective masses: positive, many decades
    assert all(flags[c] for c in ("sigma_p", "kappa_n", "PF_p", "m_n"))
    # Seebeck is signed and the enthalpy negative: standardised only
    assert not any(flags[c] for c in ("S_p", "S_n", "enthalpy_ev_per_atom"))


def test_element_property_matrix_has_natural_gaps():
    m = data.element_property_matrix()
    assert m.shape[0] == 118 and m.dtypes.eq(np.float64).all()
    assert m.loc["Fe", "density"] == pytest.approx(7.874, abs=5e-3)  # CRC 7.874 g/cm³
    assert m.isna().any().any() and not m.isna().all().any()


def test_column_transform_inverts_exactly_and_matches_numpy(rng):
    values = np.stack(
        [
            10.0 ** rng.uniform(-3, 5, 50),
            rng.normal(size=50) * 100,
            rng.normal(size=50),
        ],
        axis=1,
    )
    values[rng.random(values.shape) < 0.3] = np.nan
    t = data.fit_column_transform(values, log10=[True, False, False])
    z = t.forward(values)
    np.testing.assert_allclose(t.inverse(z), values, rtol=1e-12)
    # reference: NumPy standardisation of log10 / raw observed values
    col = np.log10(values[~np.isnan(values[:, 0]), 0])
    np.testing.assert_allclose(
        z[~np.isnan(values[:, 0]), 0], (col - col.mean()) / col.std(), rtol=1e-12
    )
    # window bounds map like values; non-positive bounds of log columns open
    assert t.forward_bound(0, 10.0, upper=False) == pytest.approx(
        t.forward(np.array([[10.0, 0.0, 0.0]]))[0, 0]
    )
    assert t.forward_bound(0, -1.0, upper=False) == -np.inf
    assert t.forward_bound(1, None, upper=True) == np.inf


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, np.nan]]), "no observed values"),
        (np.array([[1.0, 2.0], [np.nan, np.nan]]), "rows have no observed"),
        ([[1.0, "a"], [2.0, 3.0]], "non-numeric"),
        (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), "not numeric"),
        (np.array([[1.0, np.inf]]), "infinite"),
        (np.zeros((0, 3)), "non-empty 2-D"),
    ],
)
def test_bad_matrices_are_rejected_with_the_fix(matrix, message):
    with pytest.raises(data.RecommenderError, match=message):
        data.as_matrix(matrix)


def test_log_of_non_positive_column_is_rejected():
    with pytest.raises(data.RecommenderError, match="set its log10 flag to False"):
        data.fit_column_transform(np.array([[1.0], [-1.0]]), log10=[True])
