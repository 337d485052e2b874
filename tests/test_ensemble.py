"""Deep ensembles: stacked params, committee statistics, vmapped training, phonons."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from tiny_models import TINY_NEQUIP, emt_items

from mldiff import calibration, ensemble, neighbors, phonons, quantities
from mldiff.data import Dataset, batches, make_batch, make_buckets
from mldiff.errors import ConfigError
from mldiff.potentials.nequip import NequIPConfig, nequip, nequip_atomic_energies
from mldiff.structure import Structure
from mldiff.training import TrainConfig, checkpoint, loop, losses

TINY = TINY_NEQUIP
K = 3
TIGHT = dict(rtol=1e-10, atol=1e-12)  # float64, same arithmetic up to reordering


def _config(**kw):
    base = dict(
        model="nequip",
        model_config=TINY,
        epochs=100,
        batch_size=4,
        learning_rate=5e-2,
        warmup_epochs=1,
        patience=0,
        n_buckets=1,
        dtype="float64",
        seed=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def _tiny_model():
    cfg = NequIPConfig(**{**TINY, "radial_mlp": tuple(TINY["radial_mlp"])})
    kw = dict(species=(29, 79), atomic_energies={29: -0.1, 79: -0.2}, scale=0.5)
    return nequip(cfg, **kw), nequip_atomic_energies(cfg, **kw)


def _structure(seed=0, a=3.6):
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.numbers[1] = 79
    atoms.rattle(0.08, seed=seed)
    s = Structure.from_ase(atoms)
    return s, neighbors.allocate(s, TINY["cutoff"])


@pytest.fixture(scope="module")
def model():
    pot, atomic = _tiny_model()
    s, g = _structure()
    params = ensemble.init_ensemble(pot, jax.random.key(1), s, K)
    return pot, atomic, params, s, g


@pytest.fixture(scope="module")
def committee_fn(model):
    """The jitted committee with per-atom energies, compiled once for the module."""
    pot, atomic, *_ = model
    return jax.jit(ensemble.committee(pot.energy, atomic_energies_fn=atomic))


@pytest.fixture(scope="module")
def data():
    items = emt_items(12, seed=2, au_every=3)
    return items[:8], items[8:]


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    """One uninterrupted 100-epoch ensemble run (seconds after compiling)."""
    out = tmp_path_factory.mktemp("ens")
    return out, ensemble.train_ensemble(_config(), K, *data, out)


# --------------------------------------------------------------- parameters


def test_init_ensemble_members_are_single_inits_and_differ(model, committee_fn):
    # reference: potential.init called once per split key, outside vmap
    pot, _, params, s, g = model
    keys = jax.random.split(jax.random.key(1), K)
    members = ensemble.unstack(params)
    assert ensemble.n_members(params) == K and len(members) == K
    for k in range(K):
        ref = pot.init(keys[k], s)
        for a, b in zip(jax.tree.leaves(members[k]), jax.tree.leaves(ref), strict=True):
            np.testing.assert_array_equal(a, b)
    # different seeds give different members: weights and predicted energies
    flat = [np.concatenate([np.ravel(x) for x in jax.tree.leaves(m)]) for m in members]
    for i in range(K):
        for j in range(i + 1, K):
            assert np.abs(flat[i] - flat[j]).max() > 1e-3
    assert float(committee_fn(params, s, g)["energy_std_ev"]) > 1e-6
    # stack inverts unstack exactly
    for a, b in zip(
        jax.tree.leaves(ensemble.stack(members)), jax.tree.leaves(params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- committee


def test_committee_equals_loop_over_members(model, committee_fn):
    # reference: a Python loop of the single-model functions + NumPy mean / std
    pot, atomic, params, s, g = model
    out = committee_fn(params, s, g)
    efs = jax.jit(quantities.energy_forces_stress(pot.energy))
    atomic = jax.jit(atomic)
    e, f, st, ea = [], [], [], []
    for p in ensemble.unstack(params):
        ek, fk, sk = efs(p, s, g)
        e.append(float(ek))
        f.append(np.asarray(fk))
        st.append(np.asarray(sk))
        ea.append(np.asarray(atomic(p, s, g)))
    e, f, st, ea = map(np.asarray, (e, f, st, ea))
    n = len(s)
    np.testing.assert_allclose(out["energy_members_ev"], e, **TIGHT)
    np.testing.assert_allclose(out["energy_mean_ev"], e.mean(), **TIGHT)
    np.testing.assert_allclose(out["energy_std_ev"], e.std(), **TIGHT)
    np.testing.assert_allclose(out["forces_mean_ev_per_angstrom"], f.mean(0), **TIGHT)
    np.testing.assert_allclose(out["forces_std_ev_per_angstrom"], f.std(0), **TIGHT)
    np.testing.assert_allclose(out["stress_mean_ev_per_angstrom3"], st.mean(0), **TIGHT)
    np.testing.assert_allclose(out["stress_std_ev_per_angstrom3"], st.std(0), **TIGHT)
    np.testing.assert_allclose(out["energy_std_ev_per_atom"], e.std() / n, **TIGHT)
    # per-atom force deviation: RMS distance of member force vectors from the mean
    dev = np.sqrt(np.mean(np.sum((f - f.mean(0)) ** 2, axis=-1), axis=0))  # [n]
    np.testing.assert_allclose(out["atom_force_std_ev_per_angstrom"], dev, **TIGHT)
    np.testing.assert_allclose(out["max_force_std_ev_per_angstrom"], dev.max(), **TIGHT)
    np.testing.assert_allclose(
        out["mean_force_std_ev_per_angstrom"], dev.mean(), **TIGHT
    )
    np.testing.assert_allclose(out["atom_energy_mean_ev"], ea.mean(0), **TIGHT)
    np.testing.assert_allclose(out["atom_energy_std_ev"], ea.std(0), **TIGHT)
    # per-atom energies sum to the total for every member
    np.testing.assert_allclose(ea.sum(1), e, **TIGHT)
    # ddof=1: NumPy's sample standard deviation
    np.testing.assert_allclose(ensemble.mean_std(f, ddof=1)[1], f.std(0, ddof=1))


def test_identical_members_have_zero_spread_and_finite_gradient(model, committee_fn):
    # analytic: K copies of one model agree exactly; the mean is that model
    pot, atomic, params, s, g = model
    p0 = ensemble.unstack(params)[0]
    same = ensemble.stack([p0] * K)
    out = committee_fn(same, s, g)
    for key in (
        "energy_std_ev",
        "forces_std_ev_per_angstrom",
        "stress_std_ev_per_angstrom3",
        "atom_force_std_ev_per_angstrom",
        "max_force_std_ev_per_angstrom",
        "atom_energy_std_ev",
    ):
        # zero up to the rounding of the mean of K equal numbers
        assert float(jnp.max(jnp.abs(out[key]))) < 1e-14, key
    np.testing.assert_allclose(
        out["energy_mean_ev"], out["energy_members_ev"][0], **TIGHT
    )
    # the guarded square root keeps the gradient of a spread finite where members
    # agree (analytic: d std / dx at equal x is 0 in the guarded form, NaN plain)
    x = jnp.ones((K, 4))
    grad = jax.grad(lambda x: ensemble.mean_std(x)[1].sum())(x)
    np.testing.assert_array_equal(grad, np.zeros((K, 4)))
    grad = jax.grad(lambda x: ensemble.mean_std(x)[1].sum())(x.at[0, 0].set(2.0))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_committee_over_padded_batch_ignores_ghosts(model):
    # reference: the unpadded single-structure committee
    pot, _, params, s, g = model
    from mldiff.io import LabeledStructure

    items = [
        LabeledStructure(structure=s),
        LabeledStructure(structure=_structure(3)[0]),
    ]
    ds = Dataset.build(items, TINY["cutoff"])
    bucket = make_buckets(ds, batch_size=2, atom_multiple=8)[0]
    assert bucket.n_atoms > len(s)  # really padded
    batch = make_batch(ds, [0, 1], bucket, 2)
    fn = jax.jit(ensemble.committee(pot.energy))
    padded = jax.vmap(fn, in_axes=(None, 0, 0))(params, batch.structure, batch.graph)
    ref = fn(params, s, g)
    n = len(s)
    for key in (
        "energy_std_ev",
        "energy_std_ev_per_atom",
        "max_force_std_ev_per_angstrom",
        "mean_force_std_ev_per_angstrom",
    ):
        np.testing.assert_allclose(padded[key][0], ref[key], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        padded["forces_std_ev_per_angstrom"][0, :n],
        ref["forces_std_ev_per_angstrom"],
        rtol=1e-9,
        atol=1e-12,
    )


# --------------------------------------------------------------- training


def _batches(items, cutoff, batch_size=4):
    ds = Dataset.build(items, cutoff)
    buckets = make_buckets(ds, batch_size=batch_size, n_buckets=1)
    return ds, buckets, list(batches(ds, batch_size=batch_size, buckets=buckets))


def test_weighted_loss_unit_weights_and_duplicates(model, data):
    # references: losses.loss_fn (unit weights), and losses.loss_fn on a batch in
    # which each structure appears as often as its integer weight (bootstrap)
    pot, _, params, _, _ = model
    p0 = ensemble.unstack(params)[0]
    train_items, _ = data
    ds, buckets, _ = _batches(train_items, pot.cutoff)
    wloss = ensemble.weighted_loss_fn(pot.energy, 1.0, 10.0, 0.5)
    ref = losses.loss_fn(pot.energy, 1.0, 10.0, 0.5)
    # (gradients: the vmapped-step test below compares whole optimiser steps)
    wloss, ref = jax.jit(wloss), jax.jit(ref)
    batch = make_batch(ds, [0, 1, 2], buckets[0], 6)
    ones = jnp.ones(6)
    np.testing.assert_allclose(wloss(p0, batch, ones), ref(p0, batch), **TIGHT)
    weights = jnp.array([2.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    dup = make_batch(ds, [0, 0, 2], buckets[0], 6)
    np.testing.assert_allclose(wloss(p0, batch, weights), ref(p0, dup), **TIGHT)
    # the weights matter: dropping structure 1 and doubling 0 changes the loss
    assert abs(float(wloss(p0, batch, weights) - wloss(p0, batch, ones))) > 1e-6


def test_bootstrap_counts_resample_each_member():
    # reference: properties of a multinomial resample with replacement
    c = ensemble.bootstrap_counts(200, 4, seed=3)
    assert c.shape == (4, 200) and (c.sum(1) == 200).all() and (c >= 0).all()
    np.testing.assert_array_equal(c, ensemble.bootstrap_counts(200, 4, seed=3))
    left_out = (c == 0).mean(1)  # expected (1 - 1/N)^N ≈ e⁻¹ ≈ 0.37
    assert np.all(np.abs(left_out - np.exp(-1)) < 0.12)
    assert all((c[i] != c[j]).any() for i in range(4) for j in range(i + 1, 4))
    assert not (c == ensemble.bootstrap_counts(200, 4, seed=4)).all()


def test_vmapped_step_equals_separate_member_steps(model, data):
    # reference: mldiff.training.loop.train_step with losses.loss_fn, run on each
    # member separately (the single-model loop's step), two steps in float64
    pot, _, params, _, _ = model
    train_items, _ = data
    ds, _, bs = _batches(train_items, pot.cutoff)
    cfg = _config()
    optimizer, _ = loop.make_optimizer(cfg, len(bs))
    wloss = ensemble.weighted_loss_fn(pot.energy, 1.0, 10.0, 0.0)
    traces = []

    def traced(*a):
        traces.append(1)
        return ensemble.ensemble_train_step(wloss, optimizer, 0.9)(*a)

    step = jax.jit(traced)
    opt = jax.vmap(optimizer.init)(params)
    state = (params, params, opt)
    weights = jnp.ones((K, 4))
    values = []
    for b in bs[:2]:
        *state, v = step(*state, b, weights)
        values.append(v)
    assert len(traces) == 1  # same bucket: compiled once

    single = jax.jit(
        loop.train_step(losses.loss_fn(pot.energy, 1.0, 10.0, 0.0), optimizer, 0.9)
    )
    for k, p in enumerate(ensemble.unstack(params)):
        st = (p, p, optimizer.init(p))
        for i, b in enumerate(bs[:2]):
            *st, v = single(*st, b)
            np.testing.assert_allclose(values[i][k], v, **TIGHT)
        for got, ref in zip(
            jax.tree.leaves(state[:2]), jax.tree.leaves(st[:2]), strict=True
        ):
            np.testing.assert_allclose(got[k], ref, rtol=1e-9, atol=1e-12)


def test_training_reduces_loss_and_loads(data, full_run):
    out, result = full_run
    hist = result.history
    assert len(hist) == 100
    assert all(len(h["train_loss"]) == K and len(h["members"]) == K for h in hist)
    # the single-model loop's stages (stage_two_epoch: the last half in stage two)
    assert [h["stage"] for h in hist] == [1] * 50 + [2] * 50
    assert np.all(
        np.asarray(hist[-1]["train_loss"]) < np.asarray(hist[0]["train_loss"])
    )
    assert (result.counts == 1).all()
    pot, params = ensemble.load_ensemble(out)
    for a, b in zip(
        jax.tree.leaves(params), jax.tree.leaves(result.ensemble.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert pot.cutoff == TINY["cutoff"] and pot.species == (29, 79)
    # the same model spec gives the same potential object, so what was jitted
    # on the trained one (committee, MD) serves the loaded one without compiling
    assert pot is result.ensemble.potential
    meta, _ = checkpoint.read(out / "ensemble.msgpack")
    assert meta["ensemble"] == {"n_members": K, "bootstrap": False}
    with pytest.raises(ConfigError, match="different training configuration"):
        ensemble.train_ensemble(_config(), K, *data, out, bootstrap=True)


def test_training_fits_and_stores_the_validation_calibration(data, full_run):
    # reference: member-by-member energies and jax.grad forces on the validation
    # structures, NumPy spreads, alpha^2 = mean(e^2 / sigma^2) (Gaussian maximum
    # likelihood, mldiff.calibration)
    out, result = full_run
    pot, params = result.ensemble
    cal = calibration.read(out)
    assert cal == result.calibration and cal.n_members == K
    ef = jax.jit(
        jax.vmap(quantities.energy_and_forces(pot.energy), in_axes=(0, None, None))
    )
    f_err, f_std, e_err, e_std = [], [], [], []
    for it in data[1]:
        e, f = ef(params, it.structure, neighbors.allocate(it.structure, pot.cutoff))
        e, f, n = np.asarray(e), np.asarray(f), len(it.structure)
        f_err.append((f.mean(0) - it.forces).ravel())
        f_std.append(f.std(0).ravel())
        e_err.append((e.mean() - it.energy) / n)
        e_std.append(e.std() / n)
    f_err, f_std = np.concatenate(f_err), np.concatenate(f_std)
    assert cal.n_forces == f_err.size and cal.n_energies == len(data[1])
    ref = np.sqrt(np.mean((f_err / f_std) ** 2))
    assert cal.forces_scale == pytest.approx(ref, rel=1e-8)
    ref_e = np.sqrt(np.mean((np.asarray(e_err) / np.asarray(e_std)) ** 2))
    assert cal.energy_scale == pytest.approx(ref_e, rel=1e-8)


def test_killed_run_resumes_to_identical_stacked_params(data, full_run, tmp_path):
    # reference: the uninterrupted run of the same configuration
    _, full = full_run

    def kill(record):
        if record["epoch"] == 60:
            raise KeyboardInterrupt  # a kill right after epoch 60 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        ensemble.train_ensemble(_config(), K, *data, tmp_path, on_epoch_end=kill)
    resumed = ensemble.train_ensemble(_config(), K, *data, tmp_path)
    assert len(resumed.history) == 100
    assert resumed.best_epoch == full.best_epoch
    for a, b in zip(
        jax.tree.leaves(full.ensemble.params),
        jax.tree.leaves(resumed.ensemble.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        resumed.history[-1]["val_loss"], full.history[-1]["val_loss"], rtol=1e-10
    )


def test_bootstrap_training_changes_each_members_data(
    data, full_run, tmp_path, monkeypatch
):
    # references: the shared-batch run (bootstrap with unit counts must equal it
    # exactly; with real resampling counts every member must differ from it)
    _, shared = full_run
    boot = ensemble.train_ensemble(_config(), K, *data, tmp_path / "b", bootstrap=True)
    np.testing.assert_array_equal(
        boot.counts, ensemble.bootstrap_counts(len(data[0]), K, seed=_config().seed)
    )
    assert (boot.counts == 0).any() and (boot.counts > 1).any()
    meta, _ = checkpoint.read(tmp_path / "b" / "ensemble.msgpack")
    assert meta["ensemble"]["bootstrap"] is True
    for m_boot, m_shared in zip(
        ensemble.unstack(boot.ensemble.params),
        ensemble.unstack(shared.ensemble.params),
        strict=True,
    ):
        diff = max(
            float(jnp.abs(a - b).max())
            for a, b in zip(
                jax.tree.leaves(m_boot), jax.tree.leaves(m_shared), strict=True
            )
        )
        assert diff > 1e-6

    def ones(n, k, seed):
        return np.ones((k, n), dtype=np.int64)

    monkeypatch.setattr(ensemble.training, "bootstrap_counts", ones)
    unit = ensemble.train_ensemble(_config(), K, *data, tmp_path / "u", bootstrap=True)
    for a, b in zip(
        jax.tree.leaves(unit.ensemble.params),
        jax.tree.leaves(shared.ensemble.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_disagreement_grows_out_of_distribution(data, full_run):
    # loose physical check: a briefly trained committee disagrees more on strongly
    # compressed cells (nearest neighbors at 2.0 Å, unseen) than on held-out
    # structures drawn like the training set
    _, result = full_run
    pot, params = result.ensemble
    fn = jax.jit(ensemble.committee(pot.energy))
    extra = emt_items(4, 9, au_every=3)
    val = [it.structure for it in data[1]] + [it.structure for it in extra]
    ood = [it.structure for it in emt_items(8, seed=11, a=2.85, au_every=3)]

    def scores(structures):
        graphs = [neighbors.allocate(s, pot.cutoff, capacity=128) for s in structures]
        out = [fn(params, s, g) for s, g in zip(structures, graphs, strict=True)]
        return (
            np.array([float(o["energy_std_ev_per_atom"]) for o in out]),
            np.array([float(o["max_force_std_ev_per_angstrom"]) for o in out]),
        )

    e_in, f_in = scores(val)
    e_out, f_out = scores(ood)
    assert np.median(e_out) > 3.0 * np.median(e_in)
    assert np.median(f_out) > 3.0 * np.median(f_in)
    assert e_out.min() > e_in.max()


# --------------------------------------------------------------- phonons


def test_phonon_frequency_spread_equals_member_by_member(full_run):
    # reference: mldiff.phonons.run + frequencies for each member, NumPy std
    _, result = full_run
    pot, params = result.ensemble
    cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    q = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.25, 0.75], [0.1, 0, 0.1]])
    out = ensemble.phonon_frequencies_with_uncertainty(pot, params, cu, [2, 2, 2], q)
    ref = np.stack(
        [
            np.asarray(phonons.frequencies(phonons.run(pot, p, cu, [2, 2, 2]), q))
            for p in ensemble.unstack(params)
        ]
    )  # [K, 4, 3]
    assert out["frequencies_thz"].shape == (K, 4, 3)
    # THz; acoustic modes at Γ are √(rounding of a zero eigenvalue) ~ 1e-7 THz
    tol = dict(rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(out["frequencies_thz"], ref, **tol)
    np.testing.assert_allclose(out["frequencies_mean_thz"], ref.mean(0), **tol)
    np.testing.assert_allclose(out["frequencies_std_thz"], ref.std(0), **tol)
    assert float(out["frequencies_std_thz"][1:].min()) > 0  # members disagree


@pytest.mark.slow
def test_member_zero_follows_the_single_model_loop(data, tmp_path):
    # reference: mldiff.training.train with the same config (member 0 has its
    # seed, the same batches, optimiser, EMA and best-epoch selection)
    from mldiff.training import train

    cfg = _config(epochs=3)  # stage two from epoch 1
    single = train(cfg, *data, tmp_path / "single", progress=False)
    ens = ensemble.train_ensemble(cfg, 2, *data, tmp_path / "ens")
    member0 = ensemble.unstack(ens.ensemble.params)[0]
    for a, b in zip(
        jax.tree.leaves(member0), jax.tree.leaves(single.model.params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    assert ens.best_epoch[0] == single.best_epoch
    assert [h["stage"] for h in ens.history] == [1, 2, 2]
    for h_ens, h_one in zip(ens.history, single.history, strict=True):
        assert h_ens["stage"] == h_one["stage"]
        np.testing.assert_allclose(h_ens["train_loss"][0], h_one["train_loss"])
        np.testing.assert_allclose(h_ens["val_loss"][0], h_one["val_loss"])


@pytest.mark.slow
def test_one_member_ensemble_is_the_single_model_run(data, tmp_path):
    # reference: mldiff.training.train with the same config, and the
    # early-stopping rule worked by hand. A learning rate of 1e-30 moves no
    # parameter in float64, so the validation loss stalls: epoch 0 is the best,
    # epoch 1 uses up patience 1, stage two starts at epoch 2 (planned: 6) and,
    # stalling too, ends the run; a K = 1 ensemble runs the same loop
    from mldiff.training import train

    cfg = _config(epochs=8, patience=1, stage_two_fraction=0.25, learning_rate=1e-30)
    single = train(cfg, *data, tmp_path / "single", progress=False)
    ens = ensemble.train_ensemble(cfg, 1, *data, tmp_path / "ens")
    assert [h["stage"] for h in single.history] == [1, 1, 2]
    assert single.stopped_early and single.best_epoch == 0
    assert [h["stage"] for h in ens.history] == [1, 1, 2]
    assert ens.stopped_early == single.stopped_early
    assert ens.best_epoch == [single.best_epoch]
    for a, b in zip(
        jax.tree.leaves(ens.ensemble.params),
        jax.tree.leaves(single.model.params),
        strict=True,
    ):
        np.testing.assert_allclose(a[0], b, rtol=1e-9, atol=1e-11)
