"""Composition descriptors against a plain loop over pymatgen's Element data."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pymatgen.core import Composition, Element

from mldiff.descriptors import (
    PROPERTIES,
    CompositionError,
    composition_features,
    element_property_table,
    feature_names,
    features_from_fractions,
    fractions_from_formulas,
)

# properties pymatgen has for every element in these compositions (no filling)
DIRECT = (
    "Z",
    "atomic_mass",
    "row",
    "group",
    "mendeleev_no",
    "X",
    "atomic_radius",
    "melting_point",
    "molar_volume",
    "ionization_energy",
    "electron_affinity",
)
COMPOSITIONS = ("Fe2O3", "NaCl", "LiFePO4", "Ba2YCu3O7", "CeO2", "Si")


def _reference(formula: str, prop: str) -> dict[str, float]:
    """Fraction-weighted statistics by a straightforward loop (reference)."""
    comp = Composition(formula).fractional_composition
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = [(float(getattr(el, prop)), float(f)) for el, f in comp.items()]
    mean = sum(v * f for v, f in pairs)
    values = [v for v, _ in pairs]
    return {
        "mean": mean,
        "mad": sum(f * abs(v - mean) for v, f in pairs),
        "min": min(values),
        "max": max(values),
        "range": max(values) - min(values),
    }


@pytest.mark.parametrize("formula", COMPOSITIONS)
def test_statistics_match_a_loop_over_pymatgen_elements(formula):
    x = composition_features(formula)[0]
    names = feature_names()
    for prop in DIRECT:
        for stat, ref in _reference(formula, prop).items():
            got = x[names.index(f"{prop}_{stat}")]
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # stoichiometric norms of the fraction vector (Ward et al. 2016)
    f = np.array(list(Composition(formula).fractional_composition.values()))
    np.testing.assert_allclose(x[-2], np.sum(f**2) ** 0.5, rtol=1e-12)
    np.testing.assert_allclose(x[-1], np.sum(f**3) ** (1 / 3), rtol=1e-12)


def test_valence_electron_counts_match_textbook_configurations():
    # reference: ground-state configurations, e.g. NIST atomic spectra database
    table, _ = element_property_table()
    cols = [list(PROPERTIES).index(f"n_{o}_valence") for o in "spdf"]
    expected = {  # symbol: (s, p, d, f) outside the noble-gas core
        "O": (2, 4, 0, 0),  # [He] 2s2 2p4
        "Fe": (2, 0, 6, 0),  # [Ar] 3d6 4s2
        "Ga": (2, 1, 10, 0),  # [Ar] 3d10 4s2 4p1
        "Ce": (2, 0, 1, 1),  # [Xe] 4f1 5d1 6s2
        "Cu": (1, 0, 10, 0),  # [Ar] 3d10 4s1
        "H": (1, 0, 0, 0),
    }
    for symbol, counts in expected.items():
        row = table[Element(symbol).Z - 1]
        assert tuple(row[cols]) == counts, symbol


def test_missing_values_are_same_group_means_and_nothing_is_nan():
    table, filled = element_property_table()
    assert np.all(np.isfinite(table))
    assert ("He", "X") in filled and ("Fe", "X") not in filled
    col = list(PROPERTIES).index("X")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        others = [
            Element.from_Z(z).X
            for z in range(1, 104)
            if Element.from_Z(z).group == 18 and not np.isnan(Element.from_Z(z).X)
        ]
    np.testing.assert_allclose(table[Element("He").Z - 1, col], np.mean(others))


def test_scale_and_order_invariance_and_composition_input():
    a = composition_features(["Fe2O3", "Fe4O6", "O3Fe2", Composition("Fe2O3")])
    for row in a[1:]:
        np.testing.assert_array_equal(row, a[0])
    assert a.dtype == np.float64 and a.shape == (4, len(feature_names()))


def test_gradient_with_respect_to_fractions_matches_finite_differences():
    f0 = jnp.asarray(fractions_from_formulas("LiFePO4")[0])
    idx = jnp.flatnonzero(f0 > 0)

    def features(w):  # vary the fractions of the elements present
        return features_from_fractions(f0.at[idx].set(w)[None])[0]

    jitted = jax.jit(features)  # check_grads calls it many times
    check_grads(jitted, (f0[idx],), order=1, modes=["rev"], eps=1e-6)
    g = jax.jacrev(jitted)(f0[idx])
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
    # jit and vmap give the same numbers
    stacked = jnp.stack([f0[None], f0[None]])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(features_from_fractions))(stacked)[1, 0],
        features(f0[idx]),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "bad, match",
    [("Fe2O3)", "Fe2O3\\)"), ("Xx2O", "Xx2O"), ("Og", "Og"), (3, "int")],
)
def test_bad_formulas_are_clear_errors(bad, match):
    with pytest.raises(CompositionError, match=match):
        composition_features(["NaCl", bad])
