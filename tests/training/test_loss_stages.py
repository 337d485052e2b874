"""Loss weights, the two training stages, and what the default weights reach."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import TINY_NEQUIP, emt_items

from mldiff import neighbors, potentials
from mldiff.data import batches, label, make_buckets
from mldiff.errors import ConfigError
from mldiff.quantities import energy_forces_stress
from mldiff.training import TrainConfig, losses, train
from mldiff.training.loop import loss_weights, stage_two_epoch, train_step


def _mixed_cells(n, seed=0):
    """Cu cells of 3 to 8 atoms with vacancies, shear and rattles, EMT labels."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    cells = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1 + k % 2, 1, 1))
        if k % 3 == 1:
            del atoms[int(rng.integers(len(atoms)))]
        if k % 3 == 2:
            g = rng.uniform(-0.04, 0.04, 3)
            eps = np.array([[0, g[2], g[1]], [g[2], 0, g[0]], [g[1], g[0], 0]])
            atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        cells.append(atoms)
    return label(cells, EMT(), progress=False)


def test_loss_is_the_weighted_per_atom_energy_and_force_component_mse():
    # reference: the MACE/NequIP weighted loss written out in NumPy from
    # unbatched energies, forces and stresses of each structure
    pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
    items = _mixed_cells(3, seed=4)  # 4, 7 and 4 atoms: padded in one batch
    params = pot.init(None, items[0].structure)
    efs = jax.jit(energy_forces_stress(pot.energy))
    de, df, ds = [], [], []
    for it in items:
        graph = neighbors.allocate(it.structure, pot.cutoff)
        e, f, s = efs(params, it.structure, graph)
        de.append((float(e) - it.energy) / len(it.structure))
        df.append((np.asarray(f) - it.forces).ravel())
        ds.append((np.asarray(s) - it.stress).ravel())
    w_e, w_f, w_s = 3.0, 100.0, 7.0
    expected = (
        w_e * np.mean(np.square(de))
        + w_f * np.mean(np.square(np.concatenate(df)))
        + w_s * np.mean(np.square(np.concatenate(ds)))
    )
    [batch] = batches(
        items,
        pot.cutoff,
        batch_size=4,
        buckets=make_buckets(items, pot.cutoff, batch_size=4, n_buckets=1),
        shuffle=False,
    )
    got = jax.jit(losses.loss_fn(pot.energy, w_e, w_f, w_s))(params, batch)
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_both_stages_share_one_compiled_step():
    # references: the loss with its energy weight multiplied by hand, and a
    # trace counter (the step is traced once for both stages' factors)
    pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
    items = _mixed_cells(3, seed=4)
    params = pot.init(None, items[0].structure)
    [batch] = batches(
        items,
        pot.cutoff,
        batch_size=4,
        buckets=make_buckets(items, pot.cutoff, batch_size=4, n_buckets=1),
        shuffle=False,
    )
    loss = losses.loss_fn(pot.energy, 1.0, 100.0, 0.0)
    by_hand = losses.loss_fn(pot.energy, 1000.0, 100.0, 0.0)
    assert float(loss(params, batch, energy_factor=1000.0)) == pytest.approx(
        float(by_hand(params, batch)), rel=1e-12
    )
    optimizer = optax.sgd(1e-3)
    traces = []
    step = jax.jit(
        lambda *a: (traces.append(1), train_step(loss, optimizer, 0.9)(*a))[1]
    )
    opt_state = optimizer.init(params)
    for factor in (1.0, 1000.0):
        step(params, params, opt_state, batch, jnp.asarray(factor))
    assert len(traces) == 1


def test_default_weights_are_maces_with_stage_two_over_the_second_half():
    # reference: the mace package's run_train defaults: --energy_weight 1,
    # --forces_weight 100, stage two (--swa) --swa_energy_weight 1000 with
    # --swa_forces_weight 100. MACE starts stage two at 3/4 of the epochs; ours
    # starts halfway (bench_train_potential.py --defaults: at 40 epochs the
    # last quarter's learning rate is too low to fit the energies)
    config = TrainConfig(epochs=40)
    assert loss_weights(config, 1) == (1.0, 100.0, 0.0)
    assert loss_weights(config, 2) == (1000.0, 100.0, 0.0)
    assert stage_two_epoch(config) == 20
    assert stage_two_epoch(TrainConfig(epochs=40, stage_two_fraction=0.25)) == 30
    assert config.adam_beta2 == 0.99  # ours: AdamW remembers ~100 steps, not ~1000
    with pytest.raises(ConfigError, match="adam_beta2"):
        TrainConfig(adam_beta2=1.0)
    assert stage_two_epoch(TrainConfig(epochs=40, stage_two_fraction=0.0)) == 40
    assert stage_two_epoch(TrainConfig(epochs=3, stage_two_fraction=0.5)) == 1
    with pytest.raises(ConfigError, match="stage_two_fraction"):
        TrainConfig(stage_two_fraction=1.0)
    with pytest.raises(ConfigError, match="stage_two_energy_factor"):
        TrainConfig(stage_two_energy_factor=-1.0)


def _config(**kw):
    base = dict(
        model="nequip",
        model_config=TINY_NEQUIP,
        epochs=3,
        batch_size=4,
        learning_rate=1e-2,
        warmup_epochs=1,
        stage_two_fraction=0.67,
        patience=0,
        n_buckets=1,
        dtype="float64",
        seed=5,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    items = emt_items(10, seed=6)
    return items[:8], items[8:]


@pytest.fixture(scope="module")
def staged_run(data, tmp_path_factory):
    """Three epochs, the last two in stage two, uninterrupted."""
    out = tmp_path_factory.mktemp("staged")
    return train(_config(), *data, out, progress=False)


def test_stage_two_starts_at_its_epoch_after_a_plain_stage_one(
    data, staged_run, tmp_path
):
    # reference: a run without stage two, which must match the staged run
    # exactly until stage two begins and differ from then on
    plain = train(
        _config(stage_two_fraction=0.0, stage_two_energy_factor=1000.0),
        *data,
        tmp_path,
        progress=False,
    )
    staged = staged_run.history
    assert [r["stage"] for r in staged] == [1, 2, 2]
    assert [r["stage"] for r in plain.history] == [1, 1, 1]
    a, b = staged[0], plain.history[0]
    assert a["train_loss"] == b["train_loss"]
    assert a["forces_mae_mev_per_angstrom"] == b["forces_mae_mev_per_angstrom"]
    assert staged[1]["train_loss"] != plain.history[1]["train_loss"]
    # the validation loss is in the final stage's weights in every epoch:
    # energy 1 * 1000 and forces 100 with stage two, energy 1 without
    for runs, w_e in ((staged, 1000.0), (plain.history, 1.0)):
        for r in runs:
            expected = (
                w_e * r["energy_rmse_mev_per_atom"] ** 2
                + 100.0 * r["forces_rmse_mev_per_angstrom"] ** 2
            )
            assert r["val_loss"] == pytest.approx(expected, rel=1e-12)


def test_run_killed_inside_stage_two_resumes_to_identical_result(
    data, staged_run, tmp_path
):
    # reference: the uninterrupted staged run
    def kill_after_second(record):
        if record["epoch"] == 1:  # the first epoch of stage two is checkpointed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            _config(), *data, tmp_path, progress=False, on_epoch_end=kill_after_second
        )
    resumed = train(_config(), *data, tmp_path, progress=False)
    assert [r["stage"] for r in resumed.history] == [1, 2, 2]
    for a, b in zip(
        jax.tree_util.tree_leaves(staged_run.model.params),
        jax.tree_util.tree_leaves(resumed.model.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_stalled_stage_one_moves_on_to_stage_two(data, tmp_path):
    # reference: the early-stopping rule worked by hand. A zero optimiser keeps
    # the validation loss constant: epoch 0 is the best, epoch 1 uses up
    # patience 1, so stage two starts at epoch 2 (planned: 3) and, stalling
    # too, ends the run after epoch 2.
    def frozen(config, steps_per_epoch):
        return optax.set_to_zero(), optax.constant_schedule(0.0)

    config = _config(epochs=4, stage_two_fraction=0.25, patience=1)
    result = train(config, *data, tmp_path, progress=False, optimizer_fn=frozen)
    assert stage_two_epoch(config) == 3
    assert [r["stage"] for r in result.history] == [1, 1, 2]
    assert result.stopped_early and result.best_epoch == 0
