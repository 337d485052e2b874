"""Distilling SevenNet-0 into a small, fast mldiff model for one material (Si).

Run by hand: ``python benchmarks/bench_distill.py [--out bench-distill]
[--rounds 6]``. Query-by-committee active learning
(:func:`mldiff.active.run_active_learning`, the loop behind ``mldiff active``)
with SevenNet-0 in mldiff's JAX as the oracle (``mldiff.ase.Calculator(
"sevennet-0")``, as ``oracle: mldiff:sevennet-0``) trains a committee of four
small NequIP models on rattled and MD-explored 8-atom Si cells. Then, for the
final committee's first member (the distilled model) against the teacher:

* ``labels``: oracle calls the loop made (initial cells included);
* ``test_force_mae_mev_per_angstrom``: on teacher-labelled Langevin MD frames
  (300–1200 K) never seen in training;
* phonon frequencies at Γ, X and L (2×2×2 supercell of the primitive cell, at
  the teacher's lattice constant 5.47 Å): per mode, and the largest difference;
* ``kappa_300k_w_mk``: RTA κ at 300 K on the 8-atom cell, 5×5×5 mesh, σ = 0.2
  THz (not converged; the same setting on both sides);
* ``ef_seconds``: energy + forces of a 216-atom cell, compiled, float32, and
  the teacher/student ratio.

One JSON line is printed; the run folder keeps the rounds.
"""

import argparse
import json
import os
import statistics
import sys
import time

import jax
import numpy as np
from ase.build import bulk

jax.config.update("jax_enable_x64", True)

from mldiff import md, neighbors, phonons, potentials, quantities  # noqa: E402
from mldiff.active import ActiveConfig, label_all, run_active_learning  # noqa: E402
from mldiff.active.oracle import ase_oracle  # noqa: E402
from mldiff.ase import Calculator  # noqa: E402
from mldiff.data import rattled  # noqa: E402
from mldiff.ensemble import load_ensemble  # noqa: E402
from mldiff.phonons import conductivity, third_order  # noqa: E402
from mldiff.structure import Structure  # noqa: E402

A_SI = 5.47  # Å, close to SevenNet-0's (PBE-like) lattice constant
FCC = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
QPOINTS = np.array([[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.5, 0.5]])


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def test_frames(teacher, params, n_per_t=4):
    """Teacher-driven Langevin MD frames of the 8-atom cell, 100 fs apart."""
    base = bulk("Si", "diamond", a=A_SI, cubic=True)
    s0 = Structure.from_ase(base)
    frames = []
    for k, t in enumerate((300.0, 800.0, 1200.0)):
        run = md.run_md(
            teacher,
            params,
            s0,
            steps=50 * (n_per_t + 2),
            timestep_fs=2.0,
            temperature_K=t,
            log_interval=50,
            record_positions=True,
            key=jax.random.key(100 + k),
            progress=False,
        )
        for pos in run.positions[2:]:
            frames.append(s0.replace(positions=np.asarray(pos)))
    return frames


def kappa_and_frequencies(pot, params):
    """Γ/X/L frequencies (THz) and RTA κ(300 K) (W/mK) of a potential."""
    prim = Structure.from_ase(bulk("Si", "diamond", a=A_SI))
    ph = phonons.run(pot, params, prim, [2, 2, 2])
    freqs = np.asarray(phonons.frequencies(ph, QPOINTS))
    cubic = Structure.from_ase(bulk("Si", "diamond", a=A_SI, cubic=True))
    ph8 = phonons.run(pot, params, cubic, [1, 1, 1], primitive_matrix=FCC)
    fc3 = third_order.third_order(
        pot, params, ph8.supercell, first_atoms=ph8.images.representative, chunk_size=4
    )
    res = conductivity.run(ph8, fc3, [5, 5, 5], [300.0], sigma_thz=0.2)
    return freqs, float(np.trace(np.asarray(res.kappa)[0]) / 3)


def ef_seconds(pot, params, repeat=5):
    """Energy + forces of 216-atom Si, float32, compiled (median seconds)."""
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True).repeat(3)
    atoms.rattle(0.03, seed=0)
    s = Structure.from_ase(atoms, dtype=np.float32)
    g = neighbors.allocate(s, pot.cutoff)
    p32 = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    ef = jax.jit(quantities.energy_and_forces(pot.energy))
    jax.block_until_ready(ef(p32, s, g))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(ef(p32, s, g))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    """Distil, then compare student and teacher."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-distill")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--labels-per-round", type=int, default=4)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    teacher = potentials.get("sevennet-0")
    oracle_calc = Calculator("sevennet-0")  # = oracle "mldiff:sevennet-0"
    oracle = ase_oracle(oracle_calc)
    base = Structure.from_ase(bulk("Si", "diamond", a=A_SI, cubic=True))
    t_params = teacher.init(None, base)

    _log("labelling the initial cells and the test set with the teacher")
    cell = bulk("Si", "diamond", a=A_SI, cubic=True)
    initial_frames = [
        Structure.from_ase(a) for a in rattled(cell, 4, 0.05, seed=args.seed)
    ]
    initial, _ = label_all(oracle, initial_frames)
    test_items, _ = label_all(oracle, test_frames(teacher, t_params))

    config = ActiveConfig(
        train=dict(
            model="nequip",
            model_config={
                "num_layers": 2,
                "features": 8,
                "l_max": 1,
                "radial_mlp": [16, 16],
                "cutoff": 4.0,
                "num_basis": 8,
            },
            epochs=args.epochs,
            batch_size=4,
            learning_rate=1e-2,
            warmup_epochs=1,
            patience=0,
            n_buckets=1,
        ),
        n_members=4,
        labels_per_round=args.labels_per_round,
        max_rounds=args.rounds,
        budget=args.labels_per_round * args.rounds,
        temperatures_k=(300.0, 800.0, 1200.0),
        trajectories_per_temperature=2,
        md_steps=200,
        md_timestep_fs=2.0,
        md_frame_interval=10,
        min_frame_gap=3,
        min_train_steps=400,
        seed=args.seed,
    )
    _log("active learning with the SevenNet-0 oracle")
    t0 = time.perf_counter()
    result = run_active_learning(
        config, initial, oracle, args.out, validation=test_items, progress=False
    )
    loop_s = time.perf_counter() - t0
    ens_pot, stacked = load_ensemble(
        os.path.join(result.out_dir, f"round_{result.log[-1]['round']:03d}", "ensemble")
    )
    student = jax.tree.map(lambda x: np.asarray(x[0]), stacked)

    _log("phonons and κ of the student and the teacher")
    f_s, k_s = kappa_and_frequencies(ens_pot, student)
    f_t, k_t = kappa_and_frequencies(teacher, t_params)
    _log("speed")
    t_s, t_t = ef_seconds(ens_pot, student), ef_seconds(teacher, t_params)
    report = {
        "case": "distill-Si-sevennet-0",
        "labels": len(result.labeled),
        "rounds": len(result.log),
        "loop_s": round(loop_s),
        "test_force_mae_mev_per_angstrom": [
            round(r["forces_mae_mev_per_angstrom"], 1) for r in result.log
        ],
        "frequencies_student_thz": np.round(f_s[:, 3:], 3).tolist(),
        "frequencies_teacher_thz": np.round(f_t[:, 3:], 3).tolist(),
        "max_abs_frequency_diff_thz": float(np.abs(f_s - f_t).max()),
        "kappa_300k_student_w_mk": round(k_s, 1),
        "kappa_300k_teacher_w_mk": round(k_t, 1),
        "ef216_student_s": t_s,
        "ef216_teacher_s": t_t,
        "speedup": t_t / t_s,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
