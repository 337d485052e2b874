"""Query by committee for interatomic potentials, with state that survives a kill.

One round:

1. train an ensemble (:func:`mldiff.ensemble.train_ensemble`) on the labeled
   set, warm-started from the previous round's members;
2. evaluate the committee mean on the validation set;
3. explore: Langevin MD driven by the committee-mean energy at each of
   ``temperatures_k`` from labeled structures, plus an optional pool of
   candidate structures (rattled / strained cells, …);
4. score every candidate by committee disagreement (DP-GEN's max per-atom force
   deviation by default) — or at random, the baseline;
5. take a batch: top-k with a diversity rule (frames of one trajectory at least
   ``min_frame_gap`` apart, at most ``max_per_trajectory`` from one run);
6. label it with the oracle (any ASE calculator or callable); a failure is
   recorded and skipped;
7. commit: the new labeled set, then ``state.json`` (the commit point).

It stops after ``max_rounds``, when ``budget`` oracle calls are spent, or when
the largest candidate disagreement falls under ``stop_disagreement``.

On disk (``out_dir``)::

    config.json                 the ActiveConfig (a resumed run must match it,
                                but for max_rounds and budget)
    state.json                  rounds committed, labels used, log, failures
    labeled_NNN.extxyz          labeled set after NNN committed rounds
    round_NNN/ensemble/         the round's ensemble (resumable training)
    round_NNN/selected.extxyz   the batch chosen for labeling
    round_NNN/labels.extxyz     labels obtained so far in that round
    round_NNN/failures.json     oracle failures of that round

Every file is written atomically. A killed run restarts from ``state.json``:
training resumes from its checkpoint, an already chosen batch is not re-chosen,
and structures already labeled in the unfinished round are not sent to the
oracle again, so no label is lost or duplicated. A run that stopped on
``max_rounds`` or ``budget`` is extended by running it again with a larger
limit: it goes on from the round where it stopped.
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from mldiff import _compiled, md
from mldiff._config import check_types, checked_values
from mldiff.active import acquisition, committee
from mldiff.active.oracle import label_all
from mldiff.errors import ConfigError, MldiffError, OracleError
from mldiff.io.extxyz import read_extxyz, write_extxyz
from mldiff.io.files import write_json
from mldiff.io.labeled import LabeledStructure
from mldiff.structure import Structure, shortest_distance
from mldiff.training import checkpoint
from mldiff.training.config import from_dict as train_config_from_dict
from mldiff.training.models import ModelSpec

__all__ = [
    "ActiveConfig",
    "ActiveResult",
    "OracleError",
    "run_active_learning",
    "read_log",
    "round_epochs",
]

STATE = "state.json"
CONFIG = "config.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActiveConfig:
    """Settings of :func:`run_active_learning`.

    Attributes:
        train: :class:`mldiff.training.TrainConfig` fields of each round's
            ensemble training (``epochs`` per round, model, …).
        n_members: committee size.
        bootstrap: bootstrap-resample the training set per member.
        warm_start: start each round from the previous round's members.
        labels_per_round: batch size of the oracle. Smaller rounds choose
            better per label, at the cost of a retraining per round: in
            ``benchmarks/bench_active.py`` (Cu, Si; 3 seeds) 2 a round reached
            random selection's 36-label error with 12 labels, 4 a round
            needed 20 (Cu) and 24 (Si).
        max_rounds: labeling rounds at most.
        budget: oracle calls at most (failures count: they cost too). A run
            stopped by either limit is extended by running it again on its
            folder with a larger limit.
        stop_disagreement: stop when no candidate scores above this (unit of
            ``score``); ``None`` never stops on it.
        trust_high: upper trust level of query by committee (unit of
            ``score``; DP-GEN's, Zhang et al., Comput. Phys. Commun. 253,
            107206 (2020)): a higher spread marks a frame the committee-mean
            MD reached by leaving what the models know (near-collisions),
            whose huge forces swamp the training set. The batch takes the
            largest spreads at or below it, and is filled with the smallest
            spreads above it only when too few lie below; an exploration
            trajectory is cut at its first frame above the level, whose later
            frames are never labeled
            (:func:`~mldiff.active.acquisition.trusted_scores`). ``None``: no
            level. Random selection ignores it.
        min_distance_ratio: an exploration frame with two atoms closer than
            this fraction of the shortest distance in the labeled set lies
            outside the data, where committee members can agree because all
            are equally wrong (the Cu benchmark's first committee, trained on
            4 rattled cells, agreed to 0.2 eV/Å on frames with atoms 0.5 Å
            apart and forces of 800 eV/Å). Such a frame is never labeled;
            with ``trust_high`` set it counts as above the level, so its
            trajectory is cut there too. ``None``: no check. Random selection
            ignores it.
        score: ``"max_force_std"`` (eV/Å), ``"mean_force_std"`` (eV/Å) or
            ``"energy_std_per_atom"`` (eV/atom).
        selection: ``"committee"`` (query by committee) or ``"random"``.
        temperatures_k: Langevin temperatures of the exploration MD, K; empty
            for pool-only exploration.
        trajectories_per_temperature: MD runs per temperature, each from a
            labeled structure drawn at random.
        md_steps: steps per exploration run.
        md_timestep_fs: time step, fs.
        md_frame_interval: steps between candidate frames.
        min_frame_gap: frames of one trajectory in a batch are at least this
            many frames apart.
        max_per_trajectory: at most this many candidates from one trajectory
            (``None``: no cap). Each pool structure is its own "trajectory".
        min_train_steps: each round trains at least this many optimizer
            steps per member: ``train["epochs"]`` is raised to
            ``ceil(min_train_steps / ceil(n_labeled / batch_size))`` while the
            labeled set is small (see :func:`round_epochs`). Epochs alone
            starve the first rounds, whose few structures make few steps: on
            the Cu benchmark, 40 epochs on 8 labels gave a test force MAE of
            170 meV/Å and 200 epochs gave 32. DP-GEN likewise trains a fixed
            number of steps per iteration. ``None``: ``epochs`` as given.
        seed: seed of training, exploration and random selection.
    """

    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_members: int = 4
    bootstrap: bool = False
    warm_start: bool = True
    labels_per_round: int = 8
    max_rounds: int = 10
    budget: int = 100
    stop_disagreement: float | None = None
    trust_high: float | None = None
    min_distance_ratio: float | None = None
    score: str = "max_force_std"
    selection: str = "committee"
    temperatures_k: tuple[float, ...] = (300.0,)
    trajectories_per_temperature: int = 1
    md_steps: int = 200
    md_timestep_fs: float = 2.0
    md_frame_interval: int = 10
    min_frame_gap: int = 3
    max_per_trajectory: int | None = None
    min_train_steps: int | None = None
    seed: int = 0

    def __post_init__(self):
        """Check values; lists become tuples."""
        check_types(self)
        object.__setattr__(self, "temperatures_k", tuple(self.temperatures_k))
        if self.selection not in ("committee", "random"):
            raise ConfigError(
                f"selection must be 'committee' or 'random', got {self.selection!r}"
            )
        if self.score not in committee.SCORES:
            raise ConfigError(
                f"unknown score {self.score!r}; choose one of {tuple(committee.SCORES)}"
            )
        for name in ("n_members", "labels_per_round", "md_frame_interval"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if int(self.budget) < 0 or int(self.max_rounds) < 0:
            raise ConfigError("budget and max_rounds must be >= 0")
        if self.trust_high is not None and not self.trust_high > 0:
            raise ConfigError(f"trust_high must be > 0 or None, got {self.trust_high}")
        r = self.min_distance_ratio
        if r is not None and not 0 < r <= 1:
            raise ConfigError(
                f"min_distance_ratio must lie in (0, 1] or be None, got {r}"
            )
        if self.min_train_steps is not None and int(self.min_train_steps) < 1:
            raise ConfigError(
                f"min_train_steps must be >= 1 or None, got {self.min_train_steps}"
            )
        if self.n_members < 2 and self.selection == "committee":
            raise ConfigError(
                "query by committee needs n_members >= 2 (the spread of one "
                "member is zero)"
            )
        train_config_from_dict(dict(self.train))  # raises on unknown fields

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["temperatures_k"] = list(self.temperatures_k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ActiveConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown active-learning setting(s) {unknown}; known: {sorted(names)}"
            )
        return cls(**checked_values(cls, d))


@dataclasses.dataclass
class ActiveResult:
    """Outcome of :func:`run_active_learning`.

    Attributes:
        labeled: the final labeled set (initial structures first).
        log: one record per round: ``round``, ``n_labels``, ``oracle_calls``,
            validation errors of the committee mean (``energy_mae_mev_per_atom``,
            ``forces_mae_mev_per_angstrom``, ``forces_rmse_mev_per_angstrom``),
            ``n_candidates``, ``max_disagreement``, ``mean_disagreement``,
            ``selected_disagreement``, ``new_labels``, ``failures``, ``seconds``.
        failures: oracle failures (round, candidate index, error).
        stop_reason: ``"max_rounds"``, ``"budget"`` or ``"converged"``.
        out_dir: the run's folder; the last round's ensemble is in
            ``round_NNN/ensemble``.
    """

    labeled: list[LabeledStructure]
    log: list[dict]
    failures: list[dict]
    stop_reason: str
    out_dir: str


def _path(out_dir, *parts) -> str:
    return os.path.join(out_dir, *parts)


def _read_json(path: str):
    with open(path) as fh:
        return json.load(fh)


def read_log(out_dir) -> list[dict]:
    """The per-round log of a run folder (committed rounds only)."""
    return _read_json(_path(os.fspath(out_dir), STATE))["log"]


#: settings a resumed run may change: the limits, which choose nothing
LIMITS = ("max_rounds", "budget")


def _start_or_resume(config: ActiveConfig, initial, out_dir: str) -> dict:
    cfg_path = _path(out_dir, CONFIG)
    if os.path.exists(_path(out_dir, STATE)):
        # settings added since the folder was written take their defaults
        saved = json.loads(
            json.dumps(ActiveConfig.from_dict(_read_json(cfg_path)).to_dict())
        )
        new = json.loads(json.dumps(config.to_dict()))
        changed = sorted(k for k in new if new[k] != saved.get(k))
        if set(changed) - set(LIMITS):
            raise ConfigError(
                f"{out_dir} holds a run with a different configuration "
                f"({', '.join(c for c in changed if c not in LIMITS)}); resume it "
                f"with the same settings (only {' and '.join(LIMITS)} may change) "
                "or use a new output folder"
            )
        state = _read_json(_path(out_dir, STATE))
        reopened = _reopen(config, state)
        if reopened is not state:
            write_json(_path(out_dir, STATE), reopened)
        if changed:
            write_json(cfg_path, config.to_dict())
        return reopened
    if not initial:
        raise ConfigError("active learning needs at least one labeled structure")
    write_extxyz(_path(out_dir, "labeled_000.extxyz"), initial)
    write_json(cfg_path, config.to_dict())
    state = {
        "rounds_done": 0,
        "labeled_file": "labeled_000.extxyz",
        "oracle_calls": 0,
        "log": [],
        "failures": [],
        "finished": False,
        "stop_reason": None,
    }
    write_json(_path(out_dir, STATE), state)
    return state


def _reopen(config: ActiveConfig, state: dict) -> dict:
    """A run stopped by a limit that ``config`` raises goes on from that round.

    The round that stopped had trained its ensemble and logged its errors but
    chosen nothing; its log record is dropped and the round runs again (its
    training resumes from the finished checkpoint: nothing is retrained).
    """
    r = state["rounds_done"]
    stopped_by_limit = state["finished"] and state["stop_reason"] in LIMITS
    allowed = r < int(config.max_rounds) and state["oracle_calls"] < int(config.budget)
    if not (stopped_by_limit and allowed):
        return state
    log = state["log"]
    if log and log[-1]["round"] == r:
        log = log[:-1]
    return {**state, "log": log, "finished": False, "stop_reason": None}


def _wrapped(structure: Structure, positions: np.ndarray) -> Structure:
    """A frame: ``positions`` wrapped into the cell along periodic directions."""
    cell = np.asarray(structure.cell, np.float64)
    pbc = np.asarray(structure.pbc, bool)
    pos = np.asarray(positions, np.float64)
    if pbc.any():
        frac = pos @ np.linalg.inv(cell)
        frac[:, pbc] = frac[:, pbc] % 1.0
        pos = frac @ cell
    pbc_flags = tuple(bool(p) for p in pbc)
    return Structure.create(pos, cell, np.asarray(structure.numbers), pbc=pbc_flags)


def round_epochs(
    epochs: int, min_steps: int | None, n_labeled: int, batch_size: int
) -> int:
    """Epochs of one round: ``epochs``, raised to make ``min_steps`` steps.

    An epoch is ``ceil(n_labeled / batch_size)`` steps (exact for one size
    bucket; more buckets only add steps).

    Example:
        >>> round_epochs(40, 400, 8, 4), round_epochs(40, 400, 36, 4)
        (200, 45)
        >>> round_epochs(40, None, 8, 4)
        40
    """
    if min_steps is None:
        return int(epochs)
    per_epoch = -(-int(n_labeled) // int(batch_size))
    return max(int(epochs), -(-int(min_steps) // per_epoch))


def _explore(config, pot_mean, params, labeled, pool, round_index):
    """Candidates ``(structures, groups, frames, notes)`` of one round."""
    rng = np.random.default_rng([config.seed, round_index])
    structures, groups, frames, notes = [], [], [], []
    group = 0
    for temperature in config.temperatures_k:
        for _ in range(config.trajectories_per_temperature):
            start = labeled[int(rng.integers(len(labeled)))].structure
            key = jax.random.key(int(rng.integers(2**31)))
            try:
                run = md.run_md(
                    pot_mean,
                    params,
                    start,
                    steps=config.md_steps,
                    timestep_fs=config.md_timestep_fs,
                    temperature_K=float(temperature),
                    log_interval=config.md_frame_interval,
                    record_positions=True,
                    key=key,
                    progress=False,
                )
            except MldiffError as err:  # e.g. an exploding, untrained committee
                notes.append(f"MD at {temperature} K failed: {err}")
                group += 1
                continue
            for f, pos in enumerate(run.positions[1:]):
                if not np.all(np.isfinite(pos)):
                    notes.append(f"MD at {temperature} K left finite positions")
                    break
                try:
                    structures.append(_wrapped(start, pos))
                except MldiffError as err:  # overlapping atoms, …
                    notes.append(f"frame skipped: {err}")
                    continue
                groups.append(group)
                frames.append(f)
            group += 1
    for s in pool or ():
        structures.append(s.structure if isinstance(s, LabeledStructure) else s)
        groups.append(group)
        frames.append(0)
        group += 1
    return structures, np.asarray(groups), np.asarray(frames), notes


def _too_close(ratio: float, candidates, labeled) -> np.ndarray:
    """``[n]`` bool: a pair closer than ``ratio`` × the labeled shortest distance."""
    floor = ratio * min(shortest_distance(it.structure) for it in labeled)
    return np.array([shortest_distance(c) < floor for c in candidates], dtype=bool)


def _label_round(oracle, selected, round_dir) -> tuple[list, list]:
    """Label the chosen batch, saving after every structure; resumable."""
    labels_path = _path(round_dir, "labels.extxyz")
    fail_path = _path(round_dir, "failures.json")
    done = read_extxyz(labels_path, required=()) if os.path.exists(labels_path) else []
    failures = _read_json(fail_path) if os.path.exists(fail_path) else []
    finished = {int(it.info["candidate"]) for it in done}
    finished |= {int(f["candidate"]) for f in failures}
    todo = [i for i in range(len(selected)) if i not in finished]

    def save(j, item, error):
        i = todo[j]
        if item is not None:
            done.append(
                LabeledStructure.create(
                    item.structure,
                    item.energy,
                    item.forces,
                    item.stress,
                    {**dict(item.info), "candidate": i},
                )
            )
            write_extxyz(labels_path, done)
        else:
            failures.append({"candidate": i, "error": error})
            write_json(fail_path, failures)

    infos = [dict(selected[i].info) for i in todo]
    label_all(oracle, [selected[i].structure for i in todo], infos, on_result=save)
    done.sort(key=lambda it: int(it.info["candidate"]))
    return done, failures


def run_active_learning(
    config: ActiveConfig,
    initial: Sequence[LabeledStructure],
    oracle: Callable[[Structure], LabeledStructure],
    out_dir: str | os.PathLike,
    *,
    validation: Sequence[LabeledStructure] = (),
    pool: Sequence[Structure | LabeledStructure] = (),
    progress: bool = True,
    on_round_end: Callable[[dict], None] | None = None,
) -> ActiveResult:
    """Run (or resume) query-by-committee active learning of a potential.

    Args:
        config: :class:`ActiveConfig`.
        initial: the first labeled structures (not counted in the budget).
        oracle: ``structure -> LabeledStructure``, e.g.
            :func:`mldiff.active.oracle.ase_oracle` of any ASE calculator.
        out_dir: the run's folder; an existing run there is resumed.
        validation: labeled structures for the per-round errors (never
            trained on); also used as the ensembles' early-stopping set.
            Default: the labeled set itself (training errors).
        pool: extra candidate structures scored every round.
        progress: print one line per round and show a bar per training.
        on_round_end: called with each round's log record.

    Returns:
        :class:`ActiveResult`.

    Raises:
        ConfigError: no initial data, or a different configuration in
            ``out_dir``.
    """
    from mldiff import ensemble

    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    state = _start_or_resume(config, list(initial), out_dir)
    labeled = read_extxyz(_path(out_dir, state["labeled_file"]))
    train_config = train_config_from_dict({**dict(config.train), "seed": config.seed})
    validation = list(validation)
    spec = None
    if state["rounds_done"] > 0 or os.path.exists(
        _path(out_dir, "round_000", "ensemble", ensemble.MODEL)
    ):
        meta, _ = checkpoint.read(
            _path(out_dir, "round_000", "ensemble", ensemble.MODEL)
        )
        spec = ModelSpec.from_dict(meta["model"])
    while not state["finished"]:
        r = state["rounds_done"]
        t0 = time.perf_counter()
        round_dir = _path(out_dir, f"round_{r:03d}")
        previous = None
        if config.warm_start and r > 0:
            previous = ensemble.load_ensemble(
                _path(out_dir, f"round_{r - 1:03d}", "ensemble")
            ).params
        round_config = dataclasses.replace(
            train_config,
            epochs=round_epochs(
                train_config.epochs,
                config.min_train_steps,
                len(labeled),
                train_config.batch_size,
            ),
        )
        result = ensemble.train_ensemble(
            round_config,
            config.n_members,
            labeled,
            validation or labeled,
            _path(round_dir, "ensemble"),
            bootstrap=config.bootstrap,
            progress=progress,
            spec=spec,
            initial_params=previous,
        )
        spec = result.spec
        potential, params = result.ensemble
        record = {
            "round": r,
            "n_labels": len(labeled),
            "oracle_calls": state["oracle_calls"],
            **committee.committee_errors(potential, params, validation or labeled),
        }
        left = int(config.budget) - state["oracle_calls"]
        stop = None
        if r >= int(config.max_rounds):
            stop = "max_rounds"
        elif left <= 0:
            stop = "budget"
        new, failures = [], []
        if stop is None:
            selected_path = _path(round_dir, "selected.extxyz")
            if os.path.exists(selected_path):
                selected = read_extxyz(selected_path, required=())
                record.update(_read_json(_path(round_dir, "selection.json")))
            else:
                pot_mean = committee.committee_mean(potential)
                cands, groups, frames, notes = _explore(
                    config, pot_mean, params, labeled, pool, r
                )
                pred = committee.committee_predictions(potential, params, cands)
                score = committee.disagreement(pred, config.score)
                summary = {
                    "n_candidates": len(cands),
                    "max_disagreement": float(np.max(score)) if len(cands) else 0.0,
                    "mean_disagreement": float(np.mean(score)) if len(cands) else 0.0,
                    "exploration_notes": notes[:20],
                }
                if (
                    config.stop_disagreement is not None
                    and summary["max_disagreement"] < config.stop_disagreement
                ):
                    stop = "converged"
                    record.update(summary)
                else:
                    rank = np.asarray(score, np.float64)
                    if config.selection == "random":
                        key = jax.random.key(config.seed * 100_003 + r)
                        rank = np.asarray(acquisition.random_scores(key, len(cands)))
                    else:
                        if config.min_distance_ratio is not None:
                            close = _too_close(
                                config.min_distance_ratio, cands, labeled
                            )
                            summary["n_too_close"] = int(np.sum(close))
                            rank = np.where(close, np.inf, rank)  # outside the data
                        if config.trust_high is not None:
                            above = rank > config.trust_high
                            summary["n_above_trust"] = int(np.sum(above))
                            rank = acquisition.trusted_scores(
                                rank, config.trust_high, groups=groups, frames=frames
                            )
                            summary["n_after_exit"] = int(np.sum(np.isnan(rank)))
                    pick = acquisition.select_batch(
                        rank,
                        min(int(config.labels_per_round), left),
                        groups=groups,
                        frames=frames,
                        min_frame_gap=config.min_frame_gap,
                        max_per_group=config.max_per_trajectory,
                    )
                    summary["selected_disagreement"] = [float(score[i]) for i in pick]
                    selected = [
                        LabeledStructure.create(
                            cands[i],
                            info={
                                "round": r,
                                "trajectory": int(groups[i]),
                                "frame": int(frames[i]),
                                "disagreement": float(score[i]),
                            },
                        )
                        for i in pick
                    ]
                    os.makedirs(round_dir, exist_ok=True)
                    write_json(_path(round_dir, "selection.json"), summary)
                    write_extxyz(selected_path, selected)
                    record.update(summary)
            if stop is None:
                new, failures = _label_round(oracle, selected, round_dir)
                if failures and not new:
                    # a broken oracle (setup, licence, paths), not hard structures:
                    # stop, and let a rerun with the oracle fixed label them again
                    os.remove(_path(round_dir, "failures.json"))
                    raise OracleError(
                        f"the oracle failed on all {len(failures)} structures of "
                        f"round {r} (first error: {failures[0]['error']}); fix the "
                        "oracle and run again: the run resumes from this round"
                    )
        record.update(
            new_labels=len(new),
            failures=len(failures),
            seconds=time.perf_counter() - t0,
        )
        # commit: the labeled set first, then the state that points at it
        if stop is None:
            labeled = labeled + [
                LabeledStructure.create(
                    it.structure, it.energy, it.forces, it.stress, dict(it.info)
                )
                for it in new
            ]
            state["labeled_file"] = f"labeled_{r + 1:03d}.extxyz"
            write_extxyz(_path(out_dir, state["labeled_file"]), labeled)
            state["oracle_calls"] += len(new) + len(failures)
            state["failures"] += [{"round": r, **f} for f in failures]
            state["rounds_done"] = r + 1
        else:
            state["finished"] = True
            state["stop_reason"] = stop
        state["log"].append(record)
        write_json(_path(out_dir, STATE), state)
        # each round's data bring new padded shapes, so new compiled programs,
        # each holding memory mappings: a long run once died at the kernel's limit
        _compiled.release_if_near_map_limit()
        if progress:
            print(_progress_line(record), flush=True)
        if on_round_end is not None:
            on_round_end(record)
    return ActiveResult(
        labeled=labeled,
        log=state["log"],
        failures=state["failures"],
        stop_reason=state["stop_reason"],
        out_dir=out_dir,
    )


def _progress_line(record: dict) -> str:
    parts = [f"round {record['round']:3d}", f"labels {record['n_labels']:5d}"]
    if "forces_mae_mev_per_angstrom" in record:
        parts.append(f"val F MAE {record['forces_mae_mev_per_angstrom']:8.2f} meV/Å")
        parts.append(f"E MAE {record['energy_mae_mev_per_atom']:7.2f} meV/atom")
    if "max_disagreement" in record:
        parts.append(f"max σ {record['max_disagreement']:.4f}")
    parts.append(f"+{record.get('new_labels', 0)} labels")
    if record.get("failures"):
        parts.append(f"{record['failures']} oracle failures")
    return " | ".join(parts)
