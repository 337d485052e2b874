"""Train the default NequIP-style model on EMT Cu or Stillinger–Weber Si.

Run by hand (issue 4, "Done when")::

    python benchmarks/bench_train_potential.py --system cu [--out DIR]
    python benchmarks/bench_train_potential.py --system si --out /tmp/bench-si
    python benchmarks/bench_train_potential.py --system cu --quick   # ~minutes

Steps, each reported with its wall time:

1. **Data.** Labels structures with the reference (ASE's ``EMT()`` for Cu,
   ``mldiff.ase.Calculator("sw")`` for Si) and caches them in
   ``DIR/data.extxyz``; a later run reuses the file (delete it to regenerate).

   * Cu: fcc (a = 3.6 Å) 2×2×2 and 3×3×3 cubic supercells (32 and 108 atoms):
     Langevin MD snapshots at 300, 600 and 900 K, strained (±4 %, rattled) and
     rattled cells; 400 structures, so 320 train / 40 validation / 40 test.
   * Si: diamond 2×2×2 cubic cell (64 atoms, a = 5.431 Å): MD at 300, 900 and
     1500 K, liquid-like MD at 2500 and 3500 K (the crystal is melted for 2 ps
     at 3500 K with 1 fs steps, then each liquid equilibrates for 1 ps),
     strained (±5 %) and rattled cells; 380 structures, 304 / 38 / 38.

   Splits are 80/10/10 % by ``--seed`` (:func:`mldiff.data.split_items`).
2. **Training** with :func:`mldiff.training.train` into ``DIR/run``: the
   default ``NequIPConfig`` (3 layers, 32 features, l_max 2, 5 Å cutoff), float32,
   60 epochs of batch 4, AdamW (peak lr 5e-3, 5 warm-up epochs, cosine decay),
   EMA of the parameters, loss weights 10 (energy/atom) : 1 (forces). Each epoch is
   checkpointed, so a killed run restarted with the same arguments resumes
   (changing ``--epochs`` or the weights needs a new ``--out``). One line per
   epoch goes to stderr.
3. **Evaluation** of the best (EMA) parameters on the test split
   (:func:`mldiff.training.evaluation.predict_items`, ``metrics``).
4. **NVE MD** (velocity Verlet, 1 fs) with the trained model cast to float64:
   108-atom Cu (3×3×3 cubic cell; for ``si`` the 64-atom diamond cell) at
   300 K: the ideal lattice with Maxwell–Boltzmann momenta scaled to exactly
   600 K, which equipartition brings to a mean temperature near 300 K
   (reported).
   ``nve_drift_mev_per_atom`` is max |E_tot(t) − E_tot(0)| / n over the run,
   sampled every 10 steps.

Prints one JSON line: system, model, split sizes, wall times, epochs, test
metrics (meV/atom, meV/Å, GPa), the issue's targets (energy MAE ≤ 2 meV/atom,
force MAE ≤ 20 meV/Å, NVE drift < 1 meV/atom over 2,000 steps of 1 fs) and
pass/fail flags, device and JAX version.

``--quick`` proves the pipeline in a few minutes: ≈40 structures of 32 atoms
(64 for Si), a tiny model (2 layers, 8 features, l_max 1), 40 epochs and 200 MD
steps. Its metrics are not expected to meet the targets.
"""

import argparse
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # float64 labels and NVE; training is float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

import mldiff.ase  # noqa: E402
from mldiff import data as mdata  # noqa: E402
from mldiff import md  # noqa: E402
from mldiff.structure import Structure  # noqa: E402
from mldiff.training import TrainConfig, train  # noqa: E402
from mldiff.training.evaluation import metrics, predict_items  # noqa: E402

TARGETS = {
    "energy_mae_mev_per_atom": 2.0,
    "forces_mae_mev_per_angstrom": 20.0,
    "nve_drift_mev_per_atom": 1.0,
}
CU_A = 3.6  # Å, close to EMT's equilibrium lattice constant of Cu
SI_A = 5.431  # Å, Stillinger–Weber diamond Si


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- data
def _cu_data(quick: bool, seed: int) -> list:
    from ase.calculators.emt import EMT

    # (supercell repeat, rattled, strained, MD snapshots per temperature)
    plan = [(2, 4, 6, 10)] if quick else [(2, 30, 40, 60), (3, 10, 20, 40)]
    items = []
    for k, (rep, n_rat, n_str, n_md) in enumerate(plan):
        base = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(rep)
        items += mdata.generate(
            base,
            EMT(),
            n_rattled=n_rat,
            rattle_stdev=0.05,
            n_strained=n_str,
            max_strain=0.04,
            strain_rattle_stdev=0.03,
            md_temperatures_K=(300.0, 600.0, 900.0),
            n_per_temperature=n_md,
            md_interval=10,
            md_timestep_fs=2.0,
            seed=seed + 1000 * k,
            progress=False,
        )
    return items


def _si_data(quick: bool, seed: int) -> list:
    calc = mldiff.ase.Calculator("sw")
    base = bulk("Si", "diamond", a=SI_A, cubic=True).repeat(2)  # 64 atoms
    n_rat, n_str, n_md, n_liq, eq_liq = (
        (4, 6, 5, 5, 500) if quick else (30, 50, 60, 60, 2000)
    )
    items = mdata.generate(
        base,
        calc,
        n_rattled=n_rat,
        rattle_stdev=0.05,
        n_strained=n_str,
        max_strain=0.05,
        strain_rattle_stdev=0.05,
        md_temperatures_K=(300.0, 900.0, 1500.0),
        n_per_temperature=n_md,
        md_interval=10,
        md_timestep_fs=2.0,
        seed=seed,
        progress=False,
    )
    # liquid-like: SW Si melts near 1700 K. Melt the crystal at 3500 K (1 fs
    # steps), then sample 2500 K and 3500 K liquids from the melt.
    [melt] = mdata.md_sampled(
        base,
        calc,
        (3500.0,),
        1,
        interval=1,
        seed=seed + 1,
        timestep_fs=1.0,
        equilibration_steps=eq_liq,
    )
    liquid = mdata.md_sampled(
        melt,
        calc,
        (2500.0, 3500.0),
        n_liq,
        interval=20,
        seed=seed + 2,
        timestep_fs=1.0,
        equilibration_steps=eq_liq // 2,
    )
    for a in liquid:
        a.info["config_type"] = "liquid"
    return items + mdata.label(liquid, calc, progress=False)


def load_or_generate(system: str, quick: bool, seed: int, path: str):
    """Labelled structures from ``path`` if it exists, else generated and cached."""
    if os.path.exists(path):
        t0 = time.perf_counter()
        items = mdata.read_extxyz(path)
        return items, time.perf_counter() - t0, True
    t0 = time.perf_counter()
    items = (_cu_data if system == "cu" else _si_data)(quick, seed)
    mdata.write_extxyz(path, items)
    return items, time.perf_counter() - t0, False


# ------------------------------------------------------------------- config
def train_config(args) -> TrainConfig:
    """Settings of the run: the model's defaults unless ``--quick``."""
    model_config = {}
    if args.quick:
        model_config = {"num_layers": 2, "features": 8, "l_max": 1}
        if args.model == "nequip":
            model_config["radial_mlp"] = (16,)
        else:
            model_config["correlation"] = 2
    if args.cutoff is not None:
        model_config["cutoff"] = args.cutoff
    epochs = args.epochs or (40 if args.quick else 60)
    return TrainConfig(
        model=args.model,
        model_config=model_config,
        seed=args.seed,
        epochs=epochs,
        batch_size=4,
        learning_rate=args.lr,
        warmup_epochs=2 if args.quick else 5,
        final_lr_ratio=0.01,
        clip_norm=10.0,
        ema_decay=0.99,
        energy_weight=args.energy_weight,
        forces_weight=args.forces_weight,
        stress_weight=args.stress_weight,
        patience=0 if args.quick else 40,
        n_buckets=3,
        dtype="float32",
    )


# ----------------------------------------------------------------------- MD
NVE_TEMPERATURE_K = 300.0


def nve_drift(model, system: str, steps: int, seed: int) -> dict:
    """NVE near 300 K with float64 parameters; energy drift in meV/atom.

    The run starts from the ideal lattice, where all energy is kinetic; by
    equipartition half of it goes into potential energy, so Maxwell–Boltzmann
    momenta are drawn and scaled to exactly 2 × 300 K (a 108-atom draw
    scatters by ±8 %), and the run's mean temperature is close to 300 K
    (reported).
    """
    if system == "cu":
        atoms = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(3)  # 108 atoms
    else:
        atoms = bulk("Si", "diamond", a=SI_A, cubic=True).repeat(2)  # 64 atoms
    s = Structure.from_ase(atoms, dtype=jnp.float64)
    params = jax.tree.map(
        lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        model.params,
    )
    masses = md.masses_amu(s.numbers)
    p0 = md.maxwell_boltzmann(jax.random.key(seed), masses, 2.0 * NVE_TEMPERATURE_K)
    p0 = p0 * jnp.sqrt(2.0 * NVE_TEMPERATURE_K / md.temperature(p0, masses))
    t0 = time.perf_counter()
    out = md.run_md(
        model.potential,
        params,
        s,
        steps=steps,
        timestep_fs=1.0,
        momenta=p0,
        log_interval=10,
        progress=False,
    )
    wall = time.perf_counter() - t0
    n = len(s)
    e = np.asarray(out.total_energy_ev)
    t_ps = np.asarray(out.time_fs) / 1000.0
    slope = np.polyfit(t_ps, e / n, 1)[0] if len(e) > 2 else float("nan")
    drift = 1e3 * float(np.max(np.abs(e - e[0]))) / n
    return {
        "nve_case": f"{atoms.get_chemical_formula()}-{NVE_TEMPERATURE_K:.0f}K-1fs",
        "nve_n_atoms": n,
        "nve_steps": steps,
        "nve_s": wall,
        "nve_drift_mev_per_atom": drift,
        "nve_slope_mev_per_atom_per_ps": 1e3 * float(slope),
        "nve_mean_temperature_K": float(np.mean(out.temperature_k[1:]))
        if len(e) > 1
        else float("nan"),
        "nve_host_rebuilds": out.host_rebuilds,
        "nve_reallocations": out.reallocations,
    }


# --------------------------------------------------------------------- main
def main(argv=None) -> dict:
    """Parse arguments, run the four steps and print the JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=("cu", "si"), required=True)
    p.add_argument("--quick", action="store_true", help="tiny data, model and MD")
    p.add_argument(
        "--out", default=None, help="output dir (default /tmp/bench-SYSTEM[-quick])"
    )
    p.add_argument("--epochs", type=int, default=None, help="default 60 (quick: 40)")
    p.add_argument("--model", choices=("nequip", "mace"), default="nequip")
    p.add_argument(
        "--cutoff",
        type=float,
        default=None,
        help="model cutoff r_c in Å (default: the model's, 5 Å)",
    )
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--energy-weight", type=float, default=10.0, help="1/(eV/atom)²")
    p.add_argument("--forces-weight", type=float, default=1.0, help="1/(eV/Å)²")
    p.add_argument(
        "--md-steps", type=int, default=None, help="default 2000 (quick: 200)"
    )
    p.add_argument(
        "--stress-weight", type=float, default=0.0, help="1/(eV/Å³)²; 0: no stress"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = args.out or f"/tmp/bench-{args.system}{'-quick' if args.quick else ''}"
    os.makedirs(out, exist_ok=True)

    data_path = os.path.join(out, "data.extxyz")
    _log(f"data: {data_path}")
    items, t_data, cached = load_or_generate(
        args.system, args.quick, args.seed, data_path
    )
    tr, va, te = mdata.split_items(items, (0.8, 0.1, 0.1), seed=args.seed)
    sizes = [len(it.structure) for it in items]
    kinds = {}
    for it in items:
        k = str(it.info.get("config_type", "?"))
        kinds[k] = kinds.get(k, 0) + 1
    how = "cached" if cached else f"{t_data:.0f} s"
    _log(
        f"{len(items)} structures {kinds} ({how}); "
        f"train/val/test {len(tr)}/{len(va)}/{len(te)}"
    )

    config = train_config(args)

    def on_epoch_end(r):
        _log(
            f"epoch {r['epoch']:4d}  {r['seconds']:7.1f} s  "
            f"loss {r['train_loss']:.3g}  "
            f"val E {r.get('energy_mae_mev_per_atom', float('nan')):.2f} meV/atom  "
            f"F {r.get('forces_mae_mev_per_angstrom', float('nan')):.1f} meV/Å"
        )

    t0 = time.perf_counter()
    result = train(
        config,
        tr,
        va,
        os.path.join(out, "run"),
        resume=True,
        progress=False,
        on_epoch_end=on_epoch_end,
    )
    t_train = time.perf_counter() - t0
    epoch_s = [r["seconds"] for r in result.history]

    t0 = time.perf_counter()
    model = result.model
    pred = predict_items(
        model.potential, model.params, te, batch_size=4, dtype=jnp.float32
    )
    test = metrics(te, pred)
    t_eval = time.perf_counter() - t0
    _log(f"test {test}")

    steps = args.md_steps
    if steps is None:
        steps = 200 if args.quick else 2000
    nve = nve_drift(model, args.system, steps, args.seed)

    e_mae = test["energy_mae_mev_per_atom"]
    f_mae = test["forces_mae_mev_per_angstrom"]
    report = {
        "case": f"{args.system}-{args.model}{'-quick' if args.quick else ''}",
        "system": args.system,
        "model": args.model,
        "model_config": config.model_config or "defaults",
        "n_params": int(sum(x.size for x in jax.tree.leaves(model.params))),
        "n_structures": len(items),
        "config_types": kinds,
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": len(te),
        "n_atoms_range": [min(sizes), max(sizes)],
        "data_cached": cached,
        "data_s": t_data,
        "train_s": t_train,
        "train_s_all_epochs": float(sum(epoch_s)),
        "epoch_s_median": float(np.median(epoch_s)) if epoch_s else None,
        "epoch_s_first": epoch_s[0] if epoch_s else None,
        "epochs_run": len(result.history),
        "epochs_max": config.epochs,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "eval_s": t_eval,
        "energy_mae_mev_per_atom": e_mae,
        "energy_rmse_mev_per_atom": test.get("energy_rmse_mev_per_atom"),
        "forces_mae_mev_per_angstrom": f_mae,
        "forces_rmse_mev_per_angstrom": test.get("forces_rmse_mev_per_angstrom"),
        **nve,
        "targets": TARGETS,
        "energy_pass": e_mae <= TARGETS["energy_mae_mev_per_atom"],
        "forces_pass": f_mae <= TARGETS["forces_mae_mev_per_angstrom"],
        "nve_pass": nve["nve_drift_mev_per_atom"] < TARGETS["nve_drift_mev_per_atom"],
        "device": jax.devices()[0].device_kind,
        "n_cpu": os.cpu_count(),
        "jax": jax.__version__,
        "out": out,
    }
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
