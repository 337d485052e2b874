"""Fine-tuning a NequIP potential: frozen layers stay bit-identical, reload is exact."""

import dataclasses

import jax
import numpy as np
import pytest

from mldiff import neighbors
from mldiff.errors import ConfigError
from mldiff.training import TrainConfig, checkpoint
from mldiff.training.models import ModelSpec
from mldiff.transfer import finetune, freezing

FREEZE = ["/embedding/", "/layer_0/"]


def _config(**kw):
    base = dict(
        epochs=3,
        batch_size=4,
        learning_rate=2e-2,
        warmup_epochs=0,
        patience=0,
        n_buckets=1,
        dtype="float64",
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, pretrained_checkpoint, tiny_items):
    path, params = pretrained_checkpoint
    out = tmp_path_factory.mktemp("finetuned")
    # the new "reference": EMT energies shifted per atom and scaled (ema on)
    items = [
        it.replace(energy=1.1 * it.energy + 0.2 * len(it.structure.numbers))
        for it in tiny_items
    ]
    # energies are refitted in their own test below (one compilation less here)
    result = finetune.finetune(
        path, _config(), items[:6], items[6:], out, freeze=FREEZE, refit_energies=False
    )
    return result, params, out


def test_frozen_parameters_stay_bit_identical_and_the_others_change(
    finetuned, tiny_items
):
    result, source, _ = finetuned
    assert result.history, "no epoch ran"
    # leaves with a zero gradient (e.g. l = 1 weights of the last block, which do
    # not reach the scalar energy) cannot move; reference: jax.grad of the energy
    model = checkpoint.load(result.out_dir)
    s = tiny_items[0].structure
    graph = neighbors.allocate(s, model.potential.cutoff)
    grads = jax.jit(jax.grad(lambda p: model.potential.energy(p, s, graph)))(source)
    moving = {
        p
        for p, g in zip(
            freezing.param_paths(grads), jax.tree_util.tree_leaves(grads), strict=True
        )
        if np.any(g != 0)
    }
    before = dict(
        zip(
            freezing.param_paths(source), jax.tree_util.tree_leaves(source), strict=True
        )
    )
    after = result.model.params
    after = dict(
        zip(freezing.param_paths(after), jax.tree_util.tree_leaves(after), strict=True)
    )
    frozen = [p for p in before if p.startswith(("params/embedding", "params/layer_0"))]
    assert frozen and len(frozen) < len(before)
    for p, leaf in before.items():
        if p in frozen:  # reference: the pretrained checkpoint's own arrays
            assert after[p].dtype == leaf.dtype
            np.testing.assert_array_equal(after[p], leaf, err_msg=p)
        elif p in moving:
            assert not np.array_equal(after[p], leaf), f"{p} did not train"
    assert moving - set(frozen), "nothing trainable has a gradient"


def test_finetuned_checkpoint_reloads_and_predicts_identically(finetuned, tiny_items):
    result, _, out = finetuned
    loaded = checkpoint.load(out / "model.msgpack")
    for a, b in zip(
        jax.tree_util.tree_leaves(loaded.params),
        jax.tree_util.tree_leaves(result.model.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    s = tiny_items[1].structure
    graph = neighbors.allocate(s, loaded.potential.cutoff)
    # same function (the rebuilt potential), so one compilation serves both
    e_and_f = jax.jit(
        jax.value_and_grad(
            lambda p, r: loaded.potential.energy(p, s.replace(positions=r), graph),
            argnums=1,
        )
    )
    e_loaded, g_loaded = e_and_f(loaded.params, s.positions)
    e_run, g_run = e_and_f(result.model.params, s.positions)
    assert float(e_loaded) == float(e_run)
    np.testing.assert_array_equal(g_loaded, g_run)


@pytest.mark.slow
def test_refit_shifts_reference_energies_by_the_per_species_offset(
    pretrained_checkpoint, tiny_items
):
    path, _ = pretrained_checkpoint
    model = checkpoint.load(path)
    meta, _ = checkpoint.read(path)
    spec = ModelSpec.from_dict(meta["model"])
    base = finetune.refit_atomic_energies(model, spec, tiny_items)
    offsets = {29: 0.25, 79: -1.5}  # eV/atom
    shifted = [
        dataclasses.replace(
            it,
            energy=it.energy
            + sum(offsets[int(z)] for z in np.asarray(it.structure.numbers)),
        )
        for it in tiny_items
    ]
    moved = finetune.refit_atomic_energies(model, spec, shifted)
    # reference: least squares is linear, so the fit moves by exactly the offset
    for z, off in offsets.items():
        assert moved.atomic_energies[z] - base.atomic_energies[z] == pytest.approx(
            off, abs=1e-8
        )


def test_unknown_elements_and_bad_patterns_are_rejected(
    pretrained_checkpoint, tiny_items, tmp_path
):
    path, _ = pretrained_checkpoint
    with pytest.raises(ConfigError, match="matches no parameter"):
        finetune.finetune(
            path, _config(epochs=1), tiny_items, tiny_items, tmp_path, freeze=["zzz"]
        )
    model = checkpoint.load(path)
    spec = dataclasses.replace(
        ModelSpec.from_dict(checkpoint.read(path)[0]["model"]), species=(29,)
    )
    with pytest.raises(ConfigError, match=r"element\(s\) \[79\]"):
        finetune.refit_atomic_energies(model, spec, tiny_items)
