"""Fine-tuning the converted SevenNet-0 on labels of another level of theory.

Reference: ASE's EMT labels Cu configurations (a different "theory" from
SevenNet-0's PBE); checks that fine-tuning starts from the pretrained weights
(frozen ones stay bit-identical), refits the per-species energy shift first
(the energy error drops before any step) and lowers the held-out force error.
"""

import jax
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mldiff.io import LabeledStructure
from mldiff.potentials import universal
from mldiff.training import TrainConfig, checkpoint, evaluation
from mldiff.transfer import finetune, freezing


def emt_items(n, seed):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.05 * rng.normal(), cubic=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        items.append(LabeledStructure.from_atoms(atoms))
    return items


def force_mae(model, items):
    pred = evaluation.predict_items(model.potential, model.params, items)
    pairs = zip(pred["forces"], items, strict=True)
    return np.mean([np.abs(f - it.forces).mean() for f, it in pairs])


def test_finetune_sevennet0_on_emt_labels(tmp_path):
    train, val = emt_items(8, 0), emt_items(4, 1)
    freeze = ["/embedding/", "/layers/[0-3]/", "/bessel_roots/"]
    config = TrainConfig(
        epochs=4,
        batch_size=4,
        learning_rate=2e-2,
        warmup_epochs=0,
        patience=0,
        n_buckets=1,
        dtype="float32",
        seed=0,
    )
    source = checkpoint.load(universal.converted_checkpoint("sevennet-0"))
    before = force_mae(source, val)
    result = finetune.finetune(
        "sevennet-0", config, train, val, tmp_path, freeze=freeze
    )
    tuned = checkpoint.load(result.out_dir)
    # frozen leaves are the pretrained numbers, bit for bit
    labels = freezing.freeze_labels(source.params, freeze)
    frozen = jax.tree.leaves(
        jax.tree.map(
            lambda lab, a, b: lab != "frozen" or bool(np.array_equal(a, b)),
            labels,
            source.params,
            tuned.params,
        )
    )
    assert all(frozen)
    # the refitted Cu shift moves the energy zero to EMT's (|E| ~ 0.01 eV/atom)
    pred = evaluation.predict_items(tuned.potential, tuned.params, val)["energy"]
    err = [abs(p - it.energy) / 4 for p, it in zip(pred, val, strict=True)]
    assert max(err) < 0.05
    assert force_mae(tuned, val) < 0.9 * before  # measured 0.120 vs 0.136 eV/Å
