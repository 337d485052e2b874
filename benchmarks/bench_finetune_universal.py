"""Fine-tuning SevenNet-0 against training from scratch: learning curves.

Run by hand: ``python benchmarks/bench_finetune_universal.py [--labels 5 20 50]
[--epochs 30] [--out bench-finetune]``. The target is a different level of
theory from SevenNet-0's PBE: ASE's EMT for Cu (8-atom cells, lattice
constants 3.45–3.75 Å, rattled 0.1 Å). For each number of training labels,
three models are trained the same way (AdamW, warm-up + cosine, EMA,
float32, the same epochs, 10 % of the labels or at least 2 held out for early
stopping) and scored on 40 held-out EMT cells:

* ``finetuned``: the converted SevenNet-0 (:func:`mldiff.transfer.finetune.
  finetune`, per-species energy shift refitted first, embedding frozen);
* ``sevennet_scratch``: the same architecture from random weights;
* ``nequip_scratch``: a small mldiff NequIP (2 layers, 16 features, l_max 1,
  5 Å).

Prints one JSON line per label count with the test force MAE (meV/Å) and
energy MAE (meV/atom) of each, and writes ``OUT/learning_curves.json``.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mldiff.io import LabeledStructure
from mldiff.io.files import read_checkpoint_file
from mldiff.potentials import universal
from mldiff.training import TrainConfig, checkpoint, evaluation, loop
from mldiff.transfer import finetune

NEQUIP = {"num_layers": 2, "features": 16, "l_max": 1, "radial_mlp": [32, 32]}


def emt_cells(n, seed):
    """EMT-labelled 8-atom Cu cells, strained and rattled."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.45, 3.75), cubic=True).repeat(
            (2, 1, 1)
        )
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        out.append(LabeledStructure.from_atoms(atoms))
    return out


def scores(model, test):
    """Force MAE (meV/Å) and energy MAE (meV/atom) on the test cells."""
    pred = evaluation.predict_items(model.potential, model.params, test)
    f = np.mean(
        [np.abs(p - t.forces).mean() for p, t in zip(pred["forces"], test, strict=True)]
    )
    e = np.mean(
        [
            abs(p - t.energy) / len(t.structure.numbers)
            for p, t in zip(pred["energy"], test, strict=True)
        ]
    )
    return round(1e3 * float(f), 2), round(1e3 * float(e), 2)


def main():
    """Train the three models at each label count and report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, nargs="+", default=[5, 20, 50])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default="bench-finetune")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    pool, test = emt_cells(max(args.labels), args.seed), emt_cells(40, 1000)
    base = TrainConfig(
        epochs=args.epochs,
        batch_size=4,
        learning_rate=5e-3,
        warmup_epochs=1,
        patience=0,
        n_buckets=1,
        dtype="float32",
        seed=args.seed,
    )
    converted = universal.converted_checkpoint("sevennet-0")
    seven_config = read_checkpoint_file(converted)[0]["model"]["config"]
    source = checkpoint.load(converted)
    curves = {"labels": [], "pretrained_zero_shot": scores(source, test)}
    for n in args.labels:
        items = pool[:n]
        k = max(2, n // 10)
        train, val = items[:-k] if n > 2 else items, items[-k:]
        row = {"labels": n}
        t0 = time.perf_counter()
        out = os.path.join(args.out, f"n{n}")
        ft = finetune.finetune(
            "sevennet-0",
            base,
            train,
            val,
            os.path.join(out, "ft"),
            freeze=["/embedding/"],
        )
        row["finetuned"] = scores(checkpoint.load(ft.out_dir), test)
        scratch_cfg = dataclasses.replace(
            base, model="sevennet", model_config=seven_config
        )
        sc = loop.train(
            scratch_cfg,
            train,
            val,
            os.path.join(out, "scratch"),
            resume=False,
            progress=False,
        )
        row["sevennet_scratch"] = scores(checkpoint.load(sc.out_dir), test)
        nq_cfg = dataclasses.replace(base, model="nequip", model_config=NEQUIP)
        nq = loop.train(
            nq_cfg,
            train,
            val,
            os.path.join(out, "nequip"),
            resume=False,
            progress=False,
        )
        row["nequip_scratch"] = scores(checkpoint.load(nq.out_dir), test)
        row["seconds"] = round(time.perf_counter() - t0)
        print(json.dumps(row), flush=True)
        curves["labels"].append(row)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "learning_curves.json"), "w") as fh:
        json.dump(curves, fh, indent=1)
    print(json.dumps({"pretrained_zero_shot": curves["pretrained_zero_shot"]}))
    return 0


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    sys.exit(main())
