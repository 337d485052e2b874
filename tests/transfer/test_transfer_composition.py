"""Composition model: symmetries, fitting, freezing, save / load, transport data."""

import jax
import numpy as np
import pytest
from pymatgen.core import Composition

from mldiff.errors import ConfigError
from mldiff.transfer import composition_model as cm
from mldiff.transfer import freezing
from mldiff.transfer.finetune import finetune_composition

SMALL = cm.CompositionConfig(
    features=8, hidden=(8,), readout=(8,), max_elements=5, dtype="float64"
)
FORMULAS = [
    "Fe2O3", "NaCl", "MgO", "Al2O3", "SiO2", "TiO2", "CuO", "ZnS", "GaAs", "LiF",
    "KCl", "CaF2", "BaTiO3", "SrTiO3", "NiO", "CoO", "MnO2", "Cr2O3", "V2O5", "ZrO2",
    "Cu3Au", "NiAl", "FeAl", "CuZn", "Mg2Si", "LiCoO2", "NaNO3", "CaCO3", "K2SO4",
    "AgCl",
]  # fmt: skip


def _leaves(tree):
    return dict(
        zip(freezing.param_paths(tree), jax.tree_util.tree_leaves(tree), strict=True)
    )


def test_permutation_and_formula_scaling_invariance(keys):
    model = cm.composition_model(SMALL)
    params = model.init(next(keys))
    apply = jax.jit(model.apply)
    z, f = cm.encode_formulas(["BaTiO3", "LiCoO2", "Cu3Au", "K2SO4"], 5)
    y = apply(params, z, f)
    rng = np.random.default_rng(0)
    for _ in range(3):  # reference: the same set of (element, fraction) pairs
        perm = rng.permutation(5)  # padded slots move too
        np.testing.assert_allclose(
            apply(params, z[:, perm], f[:, perm]), y, rtol=1e-12, atol=1e-12
        )
    # Fe2O3 == Fe4O6 == Composition("Fe2O3") and un-normalised fractions
    za, fa = cm.encode_formulas(["Fe2O3", "Fe4O6", Composition("O3Fe2")], 5)
    ya = np.asarray(apply(params, za, fa))
    yb = np.asarray(apply(params, za, 2.5 * fa))
    np.testing.assert_allclose(ya, ya[:1].repeat(3, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(yb, ya, rtol=1e-12, atol=1e-12)


def test_encode_formulas_matches_pymatgen_fractions():
    z, f = cm.encode_formulas(["BaTiO3"], 4)
    comp = Composition("BaTiO3")  # reference: pymatgen atomic fractions
    expected = {el.Z - 1: comp.get_atomic_fraction(el) for el in comp}
    assert dict(zip(z[0, :3].tolist(), f[0, :3].tolist(), strict=True)) == (
        pytest.approx(expected)
    )
    assert f[0, 3] == 0.0
    with pytest.raises(ConfigError, match="more than max_elements=2"):
        cm.encode_formulas(["BaTiO3"], 2)


def test_fit_learns_the_mean_atomic_mass(keys):
    # reference: pymatgen's weight per atom, an exact linear function of fractions
    y = np.array([Composition(f).weight / Composition(f).num_atoms for f in FORMULAS])
    model = cm.composition_model(SMALL)
    z, f = cm.encode_formulas(FORMULAS, 5)
    mean, std = y.mean(), y.std()
    import optax

    params, history = cm.fit(
        model,
        model.init(next(keys)),
        z,
        f,
        (y - mean) / std,
        optimizer=optax.adam(1e-2),
        epochs=150,
        batch_size=16,
    )
    pred = np.asarray(model.apply(params, z, f))[:, 0] * std + mean
    assert history[-1] < 0.1 * history[0]
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.15 * std  # amu


def test_finetune_freezes_bit_identically_and_replaces_the_head(keys, tmp_path):
    pre_model = cm.composition_model(
        cm.CompositionConfig(**{**SMALL.__dict__, "n_outputs": 3})
    )
    pretrained = cm.TrainedComposition(
        pre_model, pre_model.init(next(keys)), ("a", "b", "c"), np.zeros(3), np.ones(3)
    )
    y = np.arange(len(FORMULAS), dtype=float)
    trained, report = finetune_composition(
        pretrained,
        FORMULAS,
        y,
        freeze=["/embedding/", "/encoder/"],
        epochs=3,
        batch_size=8,
        learning_rate=1e-2,
    )
    before, after = _leaves(pretrained.params), _leaves(trained.params)
    # the head's last layer has 3 outputs before and 1 after: not loaded
    assert sorted(report["reset"]) == [
        "params/readout/Dense_1/bias",
        "params/readout/Dense_1/kernel",
    ]
    for p, leaf in after.items():
        if "/embedding/" in f"/{p}/" or "/encoder/" in f"/{p}/":
            assert p in report["frozen"]
            np.testing.assert_array_equal(leaf, before[p], err_msg=p)
        elif p not in report["reset"]:
            assert not np.array_equal(leaf, before[p]), f"{p} did not train"
    # a saved fine-tuned model reloads and predicts identically
    cm.save(tmp_path / "c.msgpack", trained, {"note": "test"})
    loaded, meta = cm.load(tmp_path / "c.msgpack")
    assert meta["note"] == "test" and loaded.target_names == ("y",)
    np.testing.assert_array_equal(
        cm.predict(loaded, FORMULAS), cm.predict(trained, FORMULAS)
    )
    with pytest.raises(ConfigError, match="pass a pretrained model"):
        finetune_composition(None, FORMULAS, y, freeze=["/embedding/"], epochs=1)


def test_transport_database_is_matminers_table():
    from mldiff.data import transport_database

    t = transport_database()
    # reference: the numbers stated by matminer's dataset description
    # (47,737 entries) and the file's header
    assert t.shape == (47737, 12)
    assert list(t.columns) == [
        "mp_id", "pretty_formula", "sigma_p", "sigma_n", "S_p", "S_n",
        "kappa_p", "kappa_n", "PF_p", "PF_n", "m_p", "m_n",
    ]  # fmt: skip
    assert t.loc[0, "mp_id"] == "mp-1" and t.loc[0, "pretty_formula"] == "Cs"
    t.loc[0, "pretty_formula"] = "changed"
    assert transport_database().loc[0, "pretty_formula"] == "Cs"  # a copy
