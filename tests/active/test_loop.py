"""Query by committee on EMT Cu with a tiny model: resume, failures, stopping."""

import json
import os

import jax
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from compile_counter import count_traces
from tiny_models import TINY_NEQUIP

from mldiff.active import ActiveConfig, ase_oracle, read_log, run_active_learning
from mldiff.data import label
from mldiff.errors import ConfigError
from mldiff.io.extxyz import read_extxyz

TINY = TINY_NEQUIP


def _initial(n=4, seed=0):
    rng = np.random.default_rng(seed)
    atoms = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.6 + 0.03 * rng.standard_normal(), cubic=True)
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.append(a)
    return label(atoms, EMT(), progress=False)


def _config(**kw):
    base = dict(
        train=dict(
            model="nequip",
            model_config=TINY,
            epochs=3,
            batch_size=8,
            learning_rate=2e-2,
            warmup_epochs=0,
            patience=0,
            n_buckets=1,
            dtype="float64",
        ),
        n_members=2,
        labels_per_round=2,
        max_rounds=2,
        budget=10,
        temperatures_k=(600.0,),
        md_steps=20,
        md_frame_interval=2,
        min_frame_gap=2,
    )
    base.update(kw)
    return ActiveConfig(**base)


class Counting:
    """EMT oracle that counts calls and can fail or 'die' on chosen calls."""

    def __init__(self, die_at=None, fail_at=()):  # noqa: D107
        self.calls, self.die_at, self.fail_at = 0, die_at, set(fail_at)
        self.oracle = ase_oracle(EMT())

    def __call__(self, s):  # noqa: D102
        self.calls += 1
        if self.calls == self.die_at:
            # not an Exception: it stops the run, as a kill would
            raise KeyboardInterrupt("killed mid-round")
        if self.calls in self.fail_at:
            raise RuntimeError("SCF did not converge")
        return self.oracle(s)


def _keys(items):
    return [np.round(np.asarray(it.structure.positions), 6).tobytes() for it in items]


def test_killed_mid_round_resumes_without_losing_or_duplicating_labels(tmp_path):
    # reference: an uninterrupted run of the same configuration
    initial, cfg = _initial(), _config()
    full = run_active_learning(
        cfg, initial, Counting(), tmp_path / "full", progress=False
    )
    assert full.stop_reason == "max_rounds"
    assert len(full.labeled) == 4 + 2 * 2

    first = Counting(die_at=4)  # round 0 uses calls 1-2; dies on round 1's 2nd
    with pytest.raises(KeyboardInterrupt):
        run_active_learning(cfg, initial, first, tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["rounds_done"] == 1  # round 1 was not committed
    assert len(read_extxyz(tmp_path / "run" / "round_001" / "labels.extxyz")) == 1

    # a folder written before a setting existed resumes: it takes its default
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    del saved["trust_high"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))

    second = Counting()
    resumed = run_active_learning(
        cfg, initial, second, tmp_path / "run", progress=False
    )
    assert second.calls == 1  # only the structure the killed run did not finish
    keys = _keys(resumed.labeled)
    assert len(keys) == len(set(keys)) == 8
    assert keys == _keys(full.labeled)  # same structures as without the kill
    assert [r["n_labels"] for r in read_log(tmp_path / "run")] == [4, 6, 8]
    resumed_mae = read_log(tmp_path / "run")[1]["forces_mae_mev_per_angstrom"]
    assert resumed_mae == pytest.approx(
        full.log[1]["forces_mae_mev_per_angstrom"], rel=1e-9
    )


def test_oracle_failure_is_recorded_and_skipped(tmp_path):
    # reference: the oracle's own failure count; the run goes on
    oracle = Counting(fail_at={2})
    cfg = _config(max_rounds=1)
    out = run_active_learning(cfg, _initial(), oracle, tmp_path, progress=False)
    assert len(out.labeled) == 4 + 1
    assert len(out.failures) == 1 and "SCF" in out.failures[0]["error"]
    assert out.log[0]["failures"] == 1 and out.log[0]["new_labels"] == 1
    failures = json.loads((tmp_path / "round_000" / "failures.json").read_text())
    assert failures[0]["candidate"] in (0, 1)


def test_budget_and_convergence_stop_the_loop_and_config_must_match(tmp_path):
    # reference: the settings themselves — 3 calls of budget, then stop
    out = run_active_learning(
        _config(budget=3, labels_per_round=3, max_rounds=5), _initial(), Counting(),
        tmp_path / "b", progress=False,
    )
    assert out.stop_reason == "budget" and len(out.labeled) == 4 + 3
    # extended: a larger budget goes on from the round that stopped, whose
    # ensemble is reused as it was (not retrained), and spends the 2 calls left
    stopped_model = tmp_path / "b" / "round_001" / "ensemble" / "ensemble.msgpack"
    trained = stopped_model.read_bytes()
    oracle = Counting()
    more = run_active_learning(
        _config(budget=5, labels_per_round=3, max_rounds=5), _initial(), oracle,
        tmp_path / "b", progress=False,
    )
    assert more.stop_reason == "budget" and oracle.calls == 2
    assert [r["round"] for r in more.log] == [0, 1, 2]
    assert [r["n_labels"] for r in more.log] == [4, 7, 9]
    assert len(more.labeled) == 9
    for kept, first in zip(more.labeled[:7], out.labeled, strict=True):
        # the resumed set is read back from extxyz, written to 1e-8 Å
        np.testing.assert_allclose(
            kept.structure.positions, first.structure.positions, atol=1e-7
        )
    assert stopped_model.read_bytes() == trained
    assert more.log[1]["forces_mae_mev_per_angstrom"] == pytest.approx(
        out.log[1]["forces_mae_mev_per_angstrom"], rel=1e-8  # labels via extxyz
    )
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["budget"] == 5
    conv = run_active_learning(
        _config(stop_disagreement=1e6), _initial(), Counting(), tmp_path / "c",
        progress=False,
    )
    assert conv.stop_reason == "converged" and len(conv.labeled) == 4
    assert conv.log[0]["max_disagreement"] > 0  # two members do disagree
    with pytest.raises(ConfigError, match="different configuration.*stop_disagreement"):
        run_active_learning(
            _config(stop_disagreement=1.0), _initial(), Counting(), tmp_path / "c",
            progress=False,
        )
    assert os.path.exists(tmp_path / "c" / "round_000" / "ensemble")


@pytest.mark.slow  # 30 s; the arithmetic is round_epochs' doctest
def test_min_train_steps_raises_the_epochs_of_small_rounds(tmp_path):
    # reference: the epochs each round's checkpoint says it ran, against the
    # steps asked for — 4 then 6 labels in batches of 4 are 1 then 2 steps
    from mldiff.training import checkpoint

    cfg = _config(
        train={**_config().train, "batch_size": 4}, min_train_steps=7, max_rounds=1
    )
    run_active_learning(cfg, _initial(), Counting(), tmp_path, progress=False)
    ran = []
    for r in (0, 1):
        meta, _ = checkpoint.read(
            tmp_path / f"round_{r:03d}" / "ensemble" / "ensemble.msgpack"
        )
        ran.append(meta["state"]["epoch"])
    assert ran == [7, 4]  # ceil(7 / 1); ceil(7 / 2) — both above epochs = 3
    with pytest.raises(ConfigError, match="min_train_steps"):
        _config(min_train_steps=0)


def test_trust_high_keeps_query_by_committee_off_untrusted_frames(tmp_path):
    # reference: the same round without the bound (same seed: the same
    # committee and candidates); its top picks lie above the threshold
    free = run_active_learning(
        _config(max_rounds=1), _initial(), Counting(), tmp_path / "a", progress=False
    )
    top = free.log[0]["selected_disagreement"]
    threshold = 0.5 * (free.log[0]["mean_disagreement"] + max(top))
    initial = _initial()
    bounded = run_active_learning(
        _config(max_rounds=1, trust_high=threshold, min_distance_ratio=1.0),
        initial, Counting(), tmp_path / "b", progress=False,
    )
    record = bounded.log[0]
    assert record["n_candidates"] == free.log[0]["n_candidates"]
    assert max(top) > threshold and record["n_above_trust"] >= 1
    assert record["new_labels"] == 2
    assert all(d <= threshold for d in record["selected_disagreement"])
    # min_distance_ratio: no labeled frame has a pair closer than the initial
    # set's shortest distance (reference: ASE's minimum-image distances)
    def shortest(atoms):
        return atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)].min()

    floor = min(shortest(it.structure.to_ase()) for it in initial)
    assert record["n_too_close"] >= 1
    picked = read_extxyz(tmp_path / "b" / "round_000" / "selected.extxyz", required=())
    assert all(shortest(it.structure.to_ase()) >= floor - 1e-6 for it in picked)


def test_config_errors():
    with pytest.raises(ConfigError, match="trust_high"):
        _config(trust_high=0.0)
    with pytest.raises(ConfigError, match="min_distance_ratio"):
        _config(min_distance_ratio=1.5)
    with pytest.raises(ConfigError, match="n_members >= 2"):
        _config(n_members=1)
    with pytest.raises(ConfigError, match="unknown score"):
        _config(score="entropy")
    with pytest.raises(ConfigError, match="unknown active-learning setting"):
        ActiveConfig.from_dict({"rounds": 3})


def test_compiled_programs_are_released_near_the_map_limit():
    # the process's mappings against a limit read from the kernel (Linux only)
    from mldiff import _compiled

    counts = _compiled.memory_mappings()
    if counts is None:
        pytest.skip("no /proc/self/maps here")
    used, limit = counts
    assert 0 < used < limit

    @jax.jit
    def double(x):
        return 2 * x

    double(np.ones(3))
    assert not _compiled.release_if_near_map_limit(fraction=1.0)
    with count_traces() as traces:
        double(np.ones(3))  # still compiled
    assert traces["double"] == 0
    assert _compiled.release_if_near_map_limit(fraction=0.0)
    with count_traces() as traces:
        double(np.ones(3))  # the caches were dropped: traced and compiled again
    assert traces["double"] == 1
