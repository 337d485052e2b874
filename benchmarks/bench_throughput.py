"""Throughput of data-parallel training steps and of batch screening per device count.

Run by hand (issue 12, "Done when")::

    # a GPU / TPU machine: every device count 1, 2, 4, ... up to the devices present
    python benchmarks/bench_throughput.py
    python benchmarks/bench_throughput.py --atoms 108 --per-device-batch 8

    # CPU smoke test with 4 fake devices (numbers say nothing about GPUs)
    export XLA_FLAGS=--xla_force_host_platform_device_count=4
    python benchmarks/bench_throughput.py --quick

Cases, for each device count ``d`` (a 1-D ``"batch"`` mesh of the first ``d``
devices, :func:`mldiff.parallel.make_mesh`):

* ``train``: :func:`mldiff.training.loop.train_step` (AdamW, EMA) of a NequIP
  model (default ``NequIPConfig``, float32) made data-parallel with
  :func:`mldiff.parallel.data_parallel`; weak scaling: ``--per-device-batch``
  structures per device, so the global batch is ``d`` times larger. Compiled
  and warmed up first, then ``--steps`` steps are timed.
* ``screen``: :func:`mldiff.screening.screen` of ``--structures`` structures
  (energies and forces) end to end, host-side neighbor lists, padding and chunk
  writes included; global batch ``d × --per-device-batch``. A first run
  compiles; the second, into a fresh directory, is timed.

Structures are rattled fcc Cu cells of ``--atoms`` atoms (32 = 2×2×2 cubic,
108 = 3×3×3 cubic) labelled by ASE's EMT. Prints one JSON line per case with
structures per second and the speed-up over one device (ideal: ``d``), then a
summary line.
"""

import argparse
import json
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from mldiff import parallel, screening
from mldiff.data import batching, label
from mldiff.training import TrainConfig, loop, losses
from mldiff.training.models import ModelSpec, build

REPEATS = {4: 1, 32: 2, 108: 3, 256: 4}


def structures(n: int, atoms: int, seed: int = 0):
    """``n`` rattled fcc Cu cells of ``atoms`` atoms, labelled by ASE's EMT."""
    if atoms not in REPEATS:
        raise SystemExit(f"--atoms must be one of {sorted(REPEATS)}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.6 + 0.03 * rng.standard_normal(), cubic=True)
        a = a.repeat(REPEATS[atoms])
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return label(out, EMT(), progress=False)


def device_counts():
    """1, 2, 4, ... up to the number of devices (and that number itself)."""
    n = jax.device_count()
    counts = [1 << k for k in range(n.bit_length()) if (1 << k) <= n]
    return counts + ([n] if counts[-1] != n else [])


def model(model_config: dict):
    """A NequIP potential for Cu with ``model_config`` (default NequIPConfig)."""
    spec = ModelSpec(
        name="nequip",
        config=model_config,
        species=(29,),
        atomic_energies={29: -3.5},
        scale=0.1,
    )
    return build(spec)


def train_throughput(potential, items, d, per_device, steps, dtype):
    """Structures per second of the data-parallel train step on ``d`` devices."""
    mesh = parallel.make_mesh(d)
    batch_size = d * per_device
    ds = batching.Dataset.build(items, potential.cutoff)
    buckets = batching.make_buckets(ds, batch_size=batch_size, n_buckets=1)
    batch = batching.make_batch(
        ds, np.arange(min(batch_size, len(ds))), buckets[0], batch_size, dtype
    )
    config = TrainConfig(model="nequip", epochs=1, batch_size=batch_size)
    optimizer, _ = loop.make_optimizer(config, steps_per_epoch=steps + 1)
    loss = losses.loss_fn(potential.energy, 1.0, 1.0, 0.0)
    step = parallel.data_parallel(loop.train_step(loss, optimizer, 0.99), mesh)
    params = jax.tree.map(
        lambda x: x.astype(dtype),
        potential.init(jax.random.key(0), items[0].structure),
    )
    state = (params, params, optimizer.init(params))
    batch = parallel.shard_batch(batch, mesh)
    jax.block_until_ready(step(*state, batch))  # compile and warm up
    t0 = time.perf_counter()
    for _ in range(steps):
        *state, value = step(*state, batch)
    jax.block_until_ready(value)
    return steps * batch_size / (time.perf_counter() - t0)


def screen_throughput(potential, params, items, d, per_device):
    """Structures per second of ``screening.screen`` on ``d`` devices."""
    mesh = parallel.make_mesh(d)
    config = screening.ScreenConfig(
        batch_size=d * per_device, chunk_size=max(64, 4 * d * per_device)
    )
    structures = [it.structure for it in items]
    with tempfile.TemporaryDirectory() as tmp:
        screening.screen(
            potential, params, structures, f"{tmp}/warm", config, mesh=mesh
        )
        t0 = time.perf_counter()
        screening.screen(potential, params, structures, f"{tmp}/run", config, mesh=mesh)
        return len(structures) / (time.perf_counter() - t0)


def main():
    """Parse arguments, run every case, print JSON lines."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structures", type=int, default=1024)
    p.add_argument("--atoms", type=int, default=32)
    p.add_argument("--per-device-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--quick", action="store_true", help="tiny model, few structures")
    args = p.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    model_config = {}
    if args.quick:
        args.structures, args.atoms, args.steps = 64, 4, 5
        model_config = {"num_layers": 1, "features": 8, "l_max": 1, "cutoff": 3.0}
    potential = model(model_config)
    items = structures(args.structures, args.atoms)
    params = jax.tree.map(
        lambda x: x.astype(dtype),
        potential.init(jax.random.key(0), items[0].structure),
    )
    items = [it.replace(structure=_cast(it.structure, dtype)) for it in items]
    device = jax.devices()[0].device_kind
    base, summary = {}, {}
    for d in device_counts():
        rates = {
            "train": train_throughput(
                potential, items, d, args.per_device_batch, args.steps, dtype
            ),
            "screen": screen_throughput(
                potential, params, items, d, args.per_device_batch
            ),
        }
        for case, rate in rates.items():
            base.setdefault(case, rate)
            line = {
                "case": case,
                "devices": d,
                "structures_per_s": round(rate, 2),
                "speedup": round(rate / base[case], 3),
                "ideal": d,
                "atoms": args.atoms,
                "per_device_batch": args.per_device_batch,
                "dtype": args.dtype,
                "device": device,
                "jax": jax.__version__,
            }
            summary.setdefault(case, {})[d] = line["speedup"]
            print(json.dumps(line), flush=True)
    print(json.dumps({"summary_speedup": summary, "device": device}))


def _cast(structure, dtype):
    return structure.replace(
        positions=jnp.asarray(structure.positions, dtype),
        cell=jnp.asarray(structure.cell, dtype),
    )


if __name__ == "__main__":
    main()
