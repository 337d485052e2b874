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

**Default loss weights** (issue 36)::

    python benchmarks/bench_train_potential.py --defaults [--seeds 0 1 2]

trains a small NequIP (2 layers, 16 features, l_max 1, radial MLP (32,), 5 Å)
for 40 epochs with the default :class:`~mldiff.training.TrainConfig` and with
the old defaults (energy weight 1, forces weight 10, no stage two, AdamW
beta2 0.999), the same seeds and data, on fcc Cu cells labelled by EMT that
mix vacancies, shear strain and rattles (:func:`mixed_cells`: 27- and 32-atom
cells, 100 train / 20 validation / 40 test). One JSON line per (weights,
seed): test energy MAE (meV/atom), force MAE (meV/Å), wall time, and pass
flags against the issue's targets (≤ 5 meV/atom, ≤ 20 meV/Å); then a summary
line with the means and maxima over the seeds.
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
DEFAULTS_TARGETS = {
    "energy_mae_mev_per_atom": 5.0,
    "forces_mae_mev_per_angstrom": 20.0,
}
SMALL_NEQUIP = {"num_layers": 2, "features": 16, "l_max": 1, "radial_mlp": [32]}
# the TrainConfig defaults before issue 36: one stage, forces 10 : energy 1,
# AdamW's usual beta2
OLD_DEFAULTS = {
    "energy_weight": 1.0,
    "forces_weight": 10.0,
    "stage_two_fraction": 0.0,
    "adam_beta2": 0.999,
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


def mixed_cells(n: int, seed: int) -> list:
    """Cu fcc cells mixing vacancies, shear strain and rattles, labelled by EMT.

    Cell ``k`` is the 2×2×2 cubic cell (32 atoms) for even ``k``, else the
    3×3×3 primitive (rhombohedral) cell (27 atoms), a = 3.6 Å. By ``k % 4``
    it is rattled only, sheared, given vacancies, or both: 1 or 2 atoms
    removed; a pure shear strain with the three tensor shear components
    uniform in ±5 %; then every cell is rattled with a standard deviation
    drawn uniformly from 0.02–0.1 Å. ``info["config_type"]`` names the mix.
    Any block of 4 consecutive cells holds each mix once.
    """
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    cells = []
    for k in range(n):
        if k % 2 == 0:
            atoms = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(2)
        else:
            atoms = bulk("Cu", "fcc", a=CU_A).repeat(3)
        kinds = []
        if k % 4 in (2, 3):
            n_vac = int(rng.integers(1, 3))
            del atoms[[int(i) for i in rng.choice(len(atoms), n_vac, replace=False)]]
            kinds.append(f"vacancy{n_vac}")
        if k % 4 in (1, 3):
            g = rng.uniform(-0.05, 0.05, 3)
            eps = np.array([[0, g[2], g[1]], [g[2], 0, g[0]], [g[1], g[0], 0]])
            atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
            kinds.append("shear")
        stdev = rng.uniform(0.02, 0.1)
        atoms.positions = atoms.positions + rng.normal(0, stdev, atoms.positions.shape)
        kinds.append("rattle")
        atoms.info["config_type"] = "+".join(kinds)
        cells.append(atoms)
    return mdata.label(cells, EMT(), progress=False)


def compare_defaults(args) -> list[dict]:
    """Default vs old loss weights on :func:`mixed_cells`; one JSON line each."""
    out = args.out or "/tmp/bench-defaults"
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "mixed.extxyz")
    cached = os.path.exists(path)
    t0 = time.perf_counter()
    if cached:
        items = mdata.read_extxyz(path)
    else:
        items = mixed_cells(160, seed=args.data_seed)
        mdata.write_extxyz(path, items)
    t_data = time.perf_counter() - t0
    # blocks of 4 cells hold each mix once, so every split holds all mixes
    tr, va, te = items[:100], items[100:120], items[120:]
    _log(f"{len(items)} cells ({'cached' if cached else f'{t_data:.0f} s'})")
    reports = []
    for seed in args.seeds:
        for case, overrides in (("defaults", {}), ("old-defaults", OLD_DEFAULTS)):
            config = TrainConfig(
                model="nequip",
                model_config=SMALL_NEQUIP,
                epochs=args.epochs or 40,
                seed=seed,
                **overrides,
            )
            t0 = time.perf_counter()
            result = train(
                config,
                tr,
                va,
                os.path.join(out, f"run-{case}-seed{seed}"),
                progress=False,
            )
            t_train = time.perf_counter() - t0
            model = result.model
            pred = predict_items(
                model.potential, model.params, te, batch_size=4, dtype=jnp.float32
            )
            test = metrics(te, pred)
            e_mae = test["energy_mae_mev_per_atom"]
            f_mae = test["forces_mae_mev_per_angstrom"]
            report = {
                "case": f"cu-mixed-{case}",
                "seed": seed,
                "energy_weight": config.energy_weight,
                "forces_weight": config.forces_weight,
                "stage_two_fraction": config.stage_two_fraction,
                "stage_two_energy_factor": config.stage_two_energy_factor,
                "adam_beta2": config.adam_beta2,
                "model_config": SMALL_NEQUIP,
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "n_train": len(tr),
                "n_val": len(va),
                "n_test": len(te),
                "train_s": t_train,
                "energy_mae_mev_per_atom": e_mae,
                "forces_mae_mev_per_angstrom": f_mae,
                "targets": DEFAULTS_TARGETS,
                "energy_pass": e_mae <= DEFAULTS_TARGETS["energy_mae_mev_per_atom"],
                "forces_pass": f_mae <= DEFAULTS_TARGETS["forces_mae_mev_per_angstrom"],
                "device": jax.devices()[0].device_kind,
                "jax": jax.__version__,
            }
            print(json.dumps(report), flush=True)
            reports.append(report)
    summary = {"case": "cu-mixed-summary", "seeds": list(args.seeds)}
    for case in ("defaults", "old-defaults"):
        rows = [r for r in reports if r["case"] == f"cu-mixed-{case}"]
        for key in ("energy_mae_mev_per_atom", "forces_mae_mev_per_angstrom"):
            summary[f"{case}_{key}_mean"] = float(np.mean([r[key] for r in rows]))
            summary[f"{case}_{key}_max"] = float(np.max([r[key] for r in rows]))
        summary[f"{case}_train_s"] = float(sum(r["train_s"] for r in rows))
    print(json.dumps(summary), flush=True)
    return reports


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
    p.add_argument("--system", choices=("cu", "si"))
    p.add_argument(
        "--defaults",
        action="store_true",
        help="default vs old loss weights on mixed Cu cells (issue 36)",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="--defaults: run seeds"
    )
    p.add_argument(
        "--data-seed", type=int, default=0, help="--defaults: seed of the cells"
    )
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
    if args.defaults:
        return compare_defaults(args)
    if args.system is None:
        p.error("give --system cu|si, or --defaults")
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
