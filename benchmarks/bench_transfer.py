"""Transfer learning (issue 9): does pretraining on abundant computed labels help?

Run by hand::

    python benchmarks/bench_transfer.py --quick --out /tmp/bench-transfer   # minutes
    python benchmarks/bench_transfer.py --out /tmp/bench-transfer           # ~1 h
    python benchmarks/bench_transfer.py --part composition                  # one half

Two learning curves (5, 10, 25, 50, 100 % of the small target training set,
several seeds), each comparing three strategies on the same splits:

* ``scratch``: a fresh model trained on the target data only;
* ``finetune_all``: the pretrained model, every parameter trained;
* ``freeze_early``: the pretrained model with the early layers frozen
  (embedding + first block), only the later layers trained.

**Composition level.** Pretraining set: matminer's computed transport
database (:func:`mldiff.data.transport_database`, BoltzTraP on Materials
Project band structures; 34,631 distinct formulas), averaged per formula, eight
standardised targets: log10 of σ, κ_e and m* for p and n doping and the two
Seebeck coefficients. Miedema formation enthalpies (matminer's ``Miedema``)
were considered and not used: they take ~22 ms per formula (13 min for the
set) and are physically meaningless for the ionic compounds that dominate the
target (Miedema gives NaCl +0.60 eV/atom; experiment −2.13). Target:
pymatgen's experimental formation enthalpies
(:func:`mldiff.data.experimental_formation_enthalpies`, eV/atom), split by
chemical system (20 % of compounds, whole systems unseen) so that test
systems are new. Model: :mod:`mldiff.transfer.composition_model` (deep sets +
fraction-weighted attention); the 8-output head is replaced by a fresh
1-output head; ``freeze_early`` freezes the element embedding and the
per-element encoder. Every run takes the same number of Adam steps.

**Potential level.** Pretraining labels: ASE's EMT on random Cu–Ni–Au fcc
alloys (8-atom cells, Vegard lattice constant, ±3 % strain, 0.08 Å rattle).
Target ("more expensive") reference: mldiff's EMT with perturbed parameters
(E0 × 1.10 and every other per-element parameter scaled by 1 + 2 % N(0, 1),
seed 0), on new random structures of the same kind. Like two DFT functionals,
the two references share the physics (the same functional form) but differ
by a few percent in lattice constants and ~10 % in cohesive and mixing
energies, so the question "does the cheap reference teach the expensive
one?" is the real one, and its answer is known offline. Model: a small
NequIP (2 blocks, 8 features, l_max 1, 4 Å cutoff, float32); fine-tuning
refits per-species reference energies first (:func:`mldiff.transfer.finetune`);
``freeze_early`` freezes the species embedding and ``layer_0``. The training
structures double as validation set (there is no spare target data).
Metrics: energy and force MAE on held-out target structures.

Prints both tables (mean ± std over seeds) and JSON lines; writes
``transfer_composition.png`` and ``transfer_potential.png`` to ``--out``.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import jax
import numpy as np

FRACTIONS = (0.05, 0.10, 0.25, 0.50, 1.00)
STRATEGIES = ("scratch", "finetune_all", "freeze_early")


def _table(title, rows, keys, unit):
    """Markdown table: fraction, n, one column per strategy (mean ± std)."""
    lines = [f"\n### {title} ({unit}, mean ± std over seeds)\n"]
    lines.append("| fraction | n_train | " + " | ".join(keys) + " |")
    lines.append("|---" * (len(keys) + 2) + "|")
    for frac in sorted({r["fraction"] for r in rows}):
        sel = [r for r in rows if r["fraction"] == frac]
        cells = []
        for k in keys:
            v = np.array([r[k] for r in sel if k in r])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}" if v.size else "–")
        n = sel[0]["n_train"]
        lines.append(f"| {frac:.0%} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(path, rows, panels, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    axes = np.atleast_1d(axes)
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for strategy in STRATEGIES:
            ns, mean, std = [], [], []
            for frac in sorted({r["fraction"] for r in rows}):
                v = [r[f"{strategy}_{metric}"] for r in rows if r["fraction"] == frac]
                ns.append(next(r["n_train"] for r in rows if r["fraction"] == frac))
                mean.append(np.mean(v))
                std.append(np.std(v))
            ax.errorbar(ns, mean, yerr=std, marker="o", capsize=3, label=strategy)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("target training examples")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- composition
def _transport_targets(max_elements):
    from mldiff.data import transport_database
    from mldiff.transfer import encode_formulas

    t = transport_database()
    cols = {}
    for c in ("sigma_p", "sigma_n", "kappa_p", "kappa_n", "m_p", "m_n"):
        cols[f"log10_{c}"] = np.log10(np.clip(t[c].to_numpy(float), 1e-12, None))
    cols["S_p"] = t["S_p"].to_numpy(float)
    cols["S_n"] = t["S_n"].to_numpy(float)
    import pandas as pd

    table = pd.DataFrame({"formula": t["pretty_formula"], **cols})
    table = table.groupby("formula", sort=True).mean().reset_index()
    keep = []
    for i, f in enumerate(table["formula"]):
        try:
            encode_formulas([f], max_elements)
            keep.append(i)
        except Exception:  # noqa: BLE001 - unparsable or too many elements
            pass
    return table.iloc[keep].reset_index(drop=True)


def composition_demo(args):
    """Composition-level learning curve; prints its table, writes its figure."""
    import optax

    from mldiff.data import experimental_formation_enthalpies, split_by_chemical_system
    from mldiff.transfer import composition_model as cm
    from mldiff.transfer.finetune import finetune_composition

    config = cm.CompositionConfig(
        features=64, hidden=(64,), readout=(64,), max_elements=8, dtype="float32"
    )
    t0 = time.perf_counter()
    pre = _transport_targets(config.max_elements)
    if args.quick:
        pre = pre.sample(n=6000, random_state=0).reset_index(drop=True)
    names = [c for c in pre.columns if c != "formula"]
    y = pre[names].to_numpy(float)
    mean, std = y.mean(0), y.std(0)
    model = cm.composition_model(dataclass_replace(config, n_outputs=len(names)))
    z, f = cm.encode_formulas(list(pre["formula"]), config.max_elements)
    params, history = cm.fit(
        model,
        model.init(jax.random.key(0)),
        z,
        f,
        (y - mean) / std,
        optimizer=optax.adam(2e-3),
        epochs=4 if args.quick else 20,
        batch_size=128,
    )
    pretrained = cm.TrainedComposition(model, params, tuple(names), mean, std)
    print(
        f"# composition pretraining: {len(pre)} formulas, {len(names)} targets, "
        f"loss {history[0]:.3f} -> {history[-1]:.3f} (standardised), "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )

    exp = experimental_formation_enthalpies()
    keep = [
        i
        for i, fm in enumerate(exp["formula"])
        if _fits(cm.encode_formulas, fm, config.max_elements)
    ]
    exp = exp.iloc[keep].reset_index(drop=True)
    train_idx, test_idx = split_by_chemical_system(exp["chemical_system"], 0.2, seed=0)
    test_f = list(exp["formula"][test_idx])
    test_y = exp["enthalpy_ev_per_atom"].to_numpy(float)[test_idx]
    pool_y = exp["enthalpy_ev_per_atom"].to_numpy(float)[train_idx]
    pool_f = np.asarray(exp["formula"])[train_idx]
    steps = 300 if args.quick else 2000
    batch = 32
    rows = []
    for seed in range(args.seeds):
        order = np.random.default_rng(100 + seed).permutation(len(pool_f))
        for frac in FRACTIONS:
            n = max(int(round(frac * len(pool_f))), 8)
            idx = order[:n]
            epochs = max(math.ceil(steps / math.ceil(n / batch)), 1)
            row = {"seed": seed, "fraction": frac, "n_train": n}
            for strategy in STRATEGIES:
                source = None if strategy == "scratch" else pretrained
                freeze = (
                    ["/embedding/", "/encoder/"] if strategy == "freeze_early" else []
                )
                trained, _ = finetune_composition(
                    source,
                    list(pool_f[idx]),
                    pool_y[idx],
                    config=dataclass_replace(config, n_outputs=1),
                    freeze=freeze,
                    learning_rate=2e-3,
                    epochs=epochs,
                    batch_size=batch,
                    seed=seed,
                )
                pred = cm.predict(trained, test_f)[:, 0]
                row[f"{strategy}_mae"] = float(np.mean(np.abs(pred - test_y)))
            rows.append(row)
            print(json.dumps({"demo": "composition", **row}), flush=True)
    print(_table("Composition → experimental ΔHf, test MAE", rows,
                 [f"{s}_mae" for s in STRATEGIES], "eV/atom"))  # fmt: skip
    print(
        f"(test: {len(test_y)} compounds in unseen chemical systems; pool "
        f"{len(pool_f)}; predicting the pool mean gives "
        f"{np.mean(np.abs(test_y - pool_y.mean())):.3f} eV/atom)"
    )
    _figure(
        os.path.join(args.out, "transfer_composition.png"),
        rows,
        [("mae", "test MAE of ΔHf (eV/atom)")],
        "composition model: transport-pretrained vs scratch",
    )
    return rows


def _fits(encode, formula, k):
    try:
        encode([formula], k)
        return True
    except Exception:  # noqa: BLE001
        return False


def dataclass_replace(obj, **kw):
    """``dataclasses.replace``."""
    import dataclasses

    return dataclasses.replace(obj, **kw)


# ------------------------------------------------------------------ potential
def _alloys(n, seed):
    """Random 8-atom Cu–Ni–Au fcc cells (Vegard a, ±3 % strain, 0.08 Å rattle)."""
    from ase.build import bulk

    a0 = {29: 3.61, 28: 3.52, 79: 4.08}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        atoms.numbers = rng.choice([29, 28, 79], size=len(atoms), p=[0.4, 0.3, 0.3])
        a = np.mean([a0[z] for z in atoms.numbers])
        eps = rng.uniform(-0.03, 0.03, size=(3, 3))
        cell = (atoms.cell[:] * a / 3.6) @ (np.eye(3) + 0.5 * (eps + eps.T))
        atoms.set_cell(cell, scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.08, size=atoms.positions.shape)
        out.append(atoms)
    return out


def _target_calculator():
    from mldiff.ase import Calculator
    from mldiff.potentials.emt import emt

    pot = emt((28, 29, 79))
    params = pot.init(None, None)
    rng = np.random.default_rng(0)
    perturbed = {}
    for name, value in params.items():
        value = np.asarray(value, np.float64)
        factor = 1.10 if name == "E0" else 1.0 + 0.02 * rng.standard_normal(value.shape)
        perturbed[name] = jax.numpy.asarray(value * factor)
    return Calculator((pot, perturbed))


def _all_species(spec, items, species=(28, 29, 79)):
    """``spec`` over all alloy species, reference energies refitted on ``items``."""
    import dataclasses

    from mldiff.training import normalization

    e0 = normalization.fit_atomic_energies(
        [np.asarray(it.structure.numbers) for it in items],
        [it.energy for it in items],
        species,
    )
    return dataclasses.replace(spec, species=species, atomic_energies=e0)


def potential_demo(args):
    """Potential-level learning curve; prints both tables, writes the figure."""
    from ase.calculators.emt import EMT

    from mldiff.data import label
    from mldiff.training import TrainConfig, checkpoint, evaluation, loop
    from mldiff.training.models import ModelSpec, build
    from mldiff.transfer import finetune as ft

    model_config = {
        "num_layers": 2,
        "features": 8,
        "l_max": 1,
        "radial_mlp": [16],
        "cutoff": 4.0,
        "num_basis": 6,
    }
    n_pre, n_pool, n_test = (48, 40, 16) if args.quick else (300, 40, 40)
    t0 = time.perf_counter()
    pre_items = label(_alloys(n_pre, seed=1), EMT(), progress=False)
    target = _target_calculator()
    pool = label(_alloys(n_pool, seed=2), target, progress=False)
    test = label(_alloys(n_test, seed=3), target, progress=False)
    base = dict(
        model="nequip",
        model_config=model_config,
        batch_size=4,
        learning_rate=5e-3,
        warmup_epochs=1,
        patience=0,
        n_buckets=1,
        dtype="float32",
        energy_weight=1.0,
        forces_weight=10.0,
    )
    work = args.out
    pre_dir = os.path.join(work, "pretrained")
    cfg = TrainConfig(**base, epochs=12 if args.quick else 60, seed=0)
    n_val = max(len(pre_items) // 10, 2)
    loop.train(cfg, pre_items[n_val:], pre_items[:n_val], pre_dir, progress=False)
    print(
        f"# potential pretraining on {n_pre} EMT cells: "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )

    def score(model):
        pred = evaluation.predict_items(model.potential, model.params, test)
        m = evaluation.metrics(test, pred)
        return m["energy_mae_mev_per_atom"], m["forces_mae_mev_per_angstrom"]

    pretrained = checkpoint.load(pre_dir)
    spec = ModelSpec.from_dict(checkpoint.read(pre_dir)[0]["model"])
    steps = 60 if args.quick else 400
    rows = []
    for seed in range(args.seeds):
        order = np.random.default_rng(200 + seed).permutation(len(pool))
        for frac in FRACTIONS:
            n = max(int(round(frac * len(pool))), 2)
            items = [pool[i] for i in order[:n]]
            epochs = max(math.ceil(steps / math.ceil(n / base["batch_size"])), 1)
            cfg = TrainConfig(**base, epochs=epochs, seed=seed)
            row = {"seed": seed, "fraction": frac, "n_train": n}
            zero = checkpoint.Model(
                build(ft.refit_atomic_energies(pretrained, spec, items)),
                pretrained.params,
            )
            row["zero_shot_energy"], row["zero_shot_forces"] = score(zero)
            for strategy in STRATEGIES:
                out = tempfile.mkdtemp(dir=work, prefix=f"{strategy}-")
                if strategy == "scratch":
                    # every target species known, even if absent from few cells
                    res = loop.train(
                        cfg,
                        items,
                        items,
                        out,
                        progress=False,
                        spec=_all_species(loop.model_spec_from_data(cfg, items), items),
                    )
                else:
                    freeze = ["/embedding/", "/layer_0/"]
                    res = ft.finetune(
                        pre_dir,
                        cfg,
                        items,
                        items,
                        out,
                        freeze=freeze if strategy == "freeze_early" else (),
                    )
                e, f = score(res.model)
                row[f"{strategy}_energy"], row[f"{strategy}_forces"] = e, f
            rows.append(row)
            print(json.dumps({"demo": "potential", **row}), flush=True)
    keys = ["zero_shot", *STRATEGIES]
    print(_table("Potential → perturbed-EMT target, test energy MAE", rows,
                 [f"{k}_energy" for k in keys], "meV/atom"))  # fmt: skip
    print(_table("Potential → perturbed-EMT target, test force MAE", rows,
                 [f"{k}_forces" for k in keys], "meV/Å"))  # fmt: skip
    print(
        f"(zero_shot: pretrained EMT model, only reference energies refitted on "
        f"the n_train target cells; test: {n_test} target cells)"
    )
    _figure(
        os.path.join(args.out, "transfer_potential.png"),
        rows,
        [
            ("energy", "test energy MAE (meV/atom)"),
            ("forces", "test force MAE (meV/Å)"),
        ],
        "NequIP: EMT-pretrained vs scratch on a perturbed-EMT target",
    )
    return rows


def main(argv=None):
    """Parse arguments and run the demonstrations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings")
    parser.add_argument("--part", choices=("both", "composition", "potential"),
                        default="both")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--out", default="bench-transfer")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 2 if args.quick else 3
    os.makedirs(args.out, exist_ok=True)
    print(json.dumps({"device": jax.devices()[0].device_kind, "jax": jax.__version__,
                      "quick": args.quick, "seeds": args.seeds}))  # fmt: skip
    if args.part in ("both", "composition"):
        composition_demo(args)
    if args.part in ("both", "potential"):
        potential_demo(args)


if __name__ == "__main__":
    main()
