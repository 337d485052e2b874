"""Labelling parameter trees, per-group optimisers, partial loading, heads."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ase.build import bulk

from mldiff.errors import ConfigError
from mldiff.potentials.mace import MACEConfig, mace
from mldiff.potentials.nequip import NequIPConfig, nequip
from mldiff.structure import Structure
from mldiff.transfer import freezing

# as tests/transfer/conftest.py's TINY
NEQUIP = NequIPConfig(
    num_layers=2, features=4, l_max=1, radial_mlp=(8,), cutoff=3.0, num_basis=4
)


@pytest.fixture(scope="module")
def cu():
    return Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))


def _leaves(tree):
    return dict(
        zip(freezing.param_paths(tree), jax.tree_util.tree_leaves(tree), strict=True)
    )


@pytest.mark.parametrize("name", ["nequip", "mace"])
def test_module_groups_label_every_leaf_of_the_real_models(name, cu):
    if name == "nequip":
        pot = nequip(NEQUIP, species=(29, 79))
    else:
        pot = mace(MACEConfig(features=4, num_layers=2, l_max=1), species=(29, 79))
    params = pot.init(jax.random.key(0), cu)
    labels = freezing.label_params(params, freezing.MODULE_GROUPS[name])  # no default
    by_path = dict(
        zip(
            freezing.param_paths(params), jax.tree_util.tree_leaves(labels), strict=True
        )
    )
    # reference: the module names flax gives in the builders (path components)
    for path, label in by_path.items():
        module = path.split("/")[1]
        expected = (
            "embedding"
            if module == "embedding"
            else "interaction"
            if module.startswith("layer_")
            else "readout"
        )
        assert label == expected, path
    assert set(by_path.values()) == {"embedding", "interaction", "readout"}


def test_partition_optimizer_applies_each_groups_rate_and_freezes(keys):
    params = {
        "embedding": {"w": jax.random.normal(next(keys), (3,))},
        "layer_0": {"w": jax.random.normal(next(keys), (2, 2))},
        "readout": {"w": jax.random.normal(next(keys), (2,))},
    }
    grads = jax.tree_util.tree_map(lambda x: 2.0 * x + 1.0, params)
    labels = freezing.label_params(params, freezing.MODULE_GROUPS["nequip"])
    rates = {"embedding": None, "interaction": 0.1, "readout": 0.01}
    opt = freezing.partition_optimizer(labels, rates, optax.sgd)
    updates, _ = opt.update(grads, opt.init(params), params)
    # reference: SGD by hand, update = -rate * grad, frozen: exactly 0
    np.testing.assert_array_equal(updates["embedding"]["w"], 0.0)
    np.testing.assert_allclose(updates["layer_0"]["w"], -0.1 * grads["layer_0"]["w"])
    np.testing.assert_allclose(updates["readout"]["w"], -0.01 * grads["readout"]["w"])


def test_gradient_clip_ignores_frozen_gradients():
    params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    grads = {"a": jnp.array([1e6, 1e6]), "b": jnp.array([3.0, 4.0])}  # |b| = 5
    opt = freezing.partition_optimizer(
        {"a": "frozen", "b": "free"}, {"frozen": None, "free": 1.0}, optax.sgd, 1.0
    )
    updates, _ = opt.update(grads, opt.init(params), params)
    # reference: clipping b alone to norm 1 gives b / 5
    np.testing.assert_allclose(updates["b"], -np.array([0.6, 0.8]), rtol=1e-12)
    np.testing.assert_array_equal(updates["a"], 0.0)


def test_missing_rate_and_unmatched_pattern_are_clear_errors():
    params = {"embedding": {"w": jnp.ones(2)}, "readout": {"w": jnp.ones(2)}}
    labels = {"embedding": {"w": "embedding"}, "readout": {"w": "readout"}}
    with pytest.raises(ConfigError, match="no learning rate.*readout"):
        freezing.partition_optimizer(labels, {"embedding": 0.1})
    with pytest.raises(ConfigError, match="matches no parameter.*embedding/w"):
        freezing.freeze_labels(params, ["/layer_7/"])
    with pytest.raises(ConfigError, match="matches none of the rules"):
        freezing.label_params(params, [("embedding", "e")])


def test_load_matching_into_a_model_with_other_species_reports_resets(cu, keys):
    source = nequip(NEQUIP, species=(29,)).init(next(keys), cu)
    target = nequip(NEQUIP, species=(29, 79)).init(next(keys), cu)
    params, report = freezing.load_matching(target, source)
    src, tgt, out = _leaves(source), _leaves(target), _leaves(params)
    # reference: shapes compared directly, leaf by leaf
    same = sorted(p for p in tgt if p in src and src[p].shape == tgt[p].shape)
    assert sorted(report["loaded"]) == same
    assert sorted(report["reset"]) == sorted(set(tgt) - set(same))
    assert any("embedding" in p for p in report["reset"])  # species-indexed
    for p in same:
        np.testing.assert_array_equal(out[p], src[p])
    for p in report["reset"]:
        np.testing.assert_array_equal(out[p], tgt[p])
    assert sorted(report["unused"]) == sorted(set(src) - set(same))


def test_reinitialize_head_and_add_a_new_head(cu, keys):
    pot = nequip(NEQUIP, species=(29, 79))
    old, fresh = pot.init(next(keys), cu), pot.init(next(keys), cu)
    new, reset = freezing.reinitialize(old, fresh, ["/readout"])
    assert reset and all("/readout" in "/" + p for p in reset)
    n_old, n_fresh, n_new = _leaves(old), _leaves(fresh), _leaves(new)
    for p, leaf in n_new.items():
        expected = n_fresh[p] if p in reset else n_old[p]
        np.testing.assert_array_equal(leaf, expected)
    head = {"w": jnp.ones((4, 3))}
    grown = freezing.add_subtree(old, "params/readout_gap", head)
    assert grown["params"]["readout_gap"] is head
    assert "readout_gap" not in old["params"]  # the input is not changed
    with pytest.raises(ConfigError, match="exists already"):
        freezing.add_subtree(grown, "params/readout_gap", head)
