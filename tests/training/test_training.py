"""Training: normalisation, losses, the loop, checkpoints and exact resume."""

import os

import jax
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from tiny_models import TINY_NEQUIP

from mldiff import neighbors
from mldiff.data import batches, label, make_buckets
from mldiff.errors import ConfigError
from mldiff.training import TrainConfig, checkpoint, load, losses, train
from mldiff.training.normalization import fit_atomic_energies, force_rms

TINY = TINY_NEQUIP


def _emt_items(n, seed=0, repeat=(1, 1, 1)):
    """Rattled fcc Cu (some with one Au) labelled by ASE's EMT."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        atoms = bulk(
            "Cu", "fcc", a=3.6 + 0.05 * rng.standard_normal(), cubic=True
        ).repeat(repeat)
        if k % 3 == 1:
            atoms.numbers[0] = 79
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        structures.append(atoms)
    return label(structures, EMT(), progress=False)


def test_fit_atomic_energies_recovers_known_values():
    # analytic: energies built from known per-species constants plus small noise
    rng = np.random.default_rng(0)
    e0 = {29: -3.5, 79: -3.8, 13: -3.3}
    comps = [rng.choice([13, 29, 79], size=rng.integers(2, 9)) for _ in range(40)]
    energies = [
        sum(e0[int(z)] for z in c) + 1e-4 * rng.standard_normal() for c in comps
    ]
    fit = fit_atomic_energies(comps, energies, [13, 29, 79])
    for z, v in e0.items():
        assert abs(fit[z] - v) < 1e-3
    assert force_rms([np.full((2, 3), 2.0)]) == pytest.approx(2.0)


def test_metrics_match_numpy_errors():
    # reference: MAE/RMSE computed directly in NumPy from unbatched predictions
    from mldiff import potentials

    pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
    items = _emt_items(5, seed=1)
    params = pot.init(None, items[0].structure)
    sums_fn = jax.jit(losses.error_sums(pot.energy, with_stress=True))
    buckets = make_buckets(items, pot.cutoff, batch_size=2)
    total = {}
    for b in batches(items, pot.cutoff, batch_size=2, buckets=buckets, shuffle=False):
        for k, v in sums_fn(params, b).items():
            total[k] = total.get(k, 0.0) + float(v)
    got = losses.metrics_from_sums(total)
    de, df, ds = [], [], []
    from mldiff.quantities import energy_forces_stress

    efs = energy_forces_stress(pot.energy)
    for it in items:
        g = neighbors.allocate(it.structure, pot.cutoff)
        e, f, s = efs(params, it.structure, g)
        de.append((float(e) - it.energy) / len(it.structure))
        df.append(np.asarray(f) - it.forces)
        ds.append(np.asarray(s) - it.stress)
    de, df, ds = np.array(de), np.concatenate(df).ravel(), np.array(ds).ravel()
    assert got["energy_mae_mev_per_atom"] == pytest.approx(
        1e3 * np.abs(de).mean(), rel=1e-9
    )
    assert got["energy_rmse_mev_per_atom"] == pytest.approx(
        1e3 * np.sqrt((de**2).mean()), rel=1e-9
    )
    assert got["forces_mae_mev_per_angstrom"] == pytest.approx(
        1e3 * np.abs(df).mean(), rel=1e-9
    )
    assert got["stress_mae_gpa"] == pytest.approx(
        160.21766208 * np.abs(ds).mean(), rel=1e-6
    )


def test_predict_items_reports_stress_only_when_asked():
    # reference: ASE's MorsePotential stress on the same cells; without
    # with_stress there is no stress prediction, so no stress metric either
    from ase.calculators.morse import MorsePotential

    from mldiff import potentials
    from mldiff.data import LabeledStructure
    from mldiff.training.evaluation import metrics, predict_items

    morse = dict(epsilon=0.3, rho0=4.0, r0=2.6)
    pot = potentials.get("morse", **morse)
    items = _emt_items(3, seed=2)
    params = pot.init(None, items[0].structure)
    ref = []
    for it in items:
        atoms = it.structure.to_ase()
        atoms.calc = MorsePotential(**morse)
        ref.append(
            LabeledStructure.create(
                it.structure,
                energy=atoms.get_potential_energy(),
                forces=atoms.get_forces(),
                stress=atoms.get_stress(voigt=False),
            )
        )
    with_stress = metrics(ref, predict_items(pot, params, ref, with_stress=True))
    assert with_stress["stress_mae_gpa"] < 1e-6
    assert with_stress["forces_mae_mev_per_angstrom"] < 1e-6
    plain = predict_items(pot, params, ref)
    assert all(s is None for s in plain["stress"])
    assert "stress_mae_gpa" not in metrics(ref, plain)


def _config(**kw):
    base = dict(
        model="nequip",
        model_config=TINY,
        epochs=3,
        batch_size=4,
        learning_rate=1e-2,
        warmup_epochs=1,
        patience=0,
        n_buckets=1,
        dtype="float64",
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data():
    items = _emt_items(16, seed=2)
    return items[:12], items[12:]


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    """One uninterrupted 3-epoch run, shared by the tests below."""
    out = tmp_path_factory.mktemp("full")
    return out, train(_config(), *data, out, progress=False)


def test_training_reduces_error_and_model_loads(data, full_run):
    train_items, val_items = data
    tmp_path, result = full_run
    hist = result.history
    assert len(hist) == 3
    # the validation loss has the same weights in every epoch (the training
    # loss does not: the last epoch is in stage two)
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert os.path.exists(tmp_path / "model.msgpack")
    model = load(tmp_path)
    # the loaded model predicts exactly what the in-memory best parameters do
    s = val_items[0].structure
    g = neighbors.allocate(s, model.potential.cutoff)
    e_loaded = model.potential.energy(model.params, s, g)
    e_mem = result.model.potential.energy(result.model.params, s, g)
    assert float(e_loaded) == pytest.approx(float(e_mem), abs=1e-12)
    meta, _ = checkpoint.read(tmp_path / "model.msgpack")
    assert meta["model"]["species"] == [29, 79]
    assert meta["train_config"]["model_config"]["features"] == 4


def test_killed_run_resumes_to_identical_result(data, full_run, tmp_path):
    train_items, val_items = data
    cfg = _config()
    _, full = full_run

    def kill_after_first(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt  # a kill right after epoch 0 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        train(
            cfg,
            train_items,
            val_items,
            tmp_path / "killed",
            progress=False,
            on_epoch_end=kill_after_first,
        )
    resumed = train(cfg, train_items, val_items, tmp_path / "killed", progress=False)
    assert len(resumed.history) == 3
    for a, b in zip(
        jax.tree_util.tree_leaves(full.model.params),
        jax.tree_util.tree_leaves(resumed.model.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert resumed.history[-1]["val_loss"] == pytest.approx(
        full.history[-1]["val_loss"], rel=1e-10
    )


def test_resume_with_a_different_config_is_refused(data, full_run):
    out, _ = full_run
    with pytest.raises(ConfigError, match="different training configuration"):
        train(_config(learning_rate=0.5), *data, out, progress=False)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    checkpoint.atomic_write(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        checkpoint.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no temp file left


def test_config_rejects_unknown_keys_and_bad_values():
    from mldiff.training import from_dict

    with pytest.raises(ConfigError, match="unknown training option"):
        from_dict({"epochs": 2, "learnign_rate": 1e-3})
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.5)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.msgpack"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable mldiff checkpoint"):
        load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.msgpack")
