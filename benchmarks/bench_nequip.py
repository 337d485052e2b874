"""Energy + forces of mldiff's NequIP-style model against jax-md's own NequIP.

Run by hand: ``python benchmarks/bench_nequip.py [--repeat 7]``. Both models use
identical hyperparameters — 3 interaction layers, 32 channels per degree,
l_max = 2, a 5 Å cutoff, 8 Bessel functions, a 2×64 radial MLP, SE(3) irreps
``32x0e + 32x1e + 32x2e`` (jax-md's convention, so ``parity=False`` here) — in
float32 on a 216-atom diamond Si and a 256-atom fcc Cu cell. Both take one
``value_and_grad`` through a jitted energy with a neighbor list built
beforehand; calls alternate between the two models and the time is the
minimum (and median) over ``repeat`` calls after the first, whose duration is
reported as the compile time (trace + XLA + one run). Memory: XLA's
``memory_analysis()`` of each compiled function (temporaries, arguments,
outputs) and the process peak RSS after the case.

Prints one JSON line per case.
"""

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk
from jax_md import energy as jmd_energy
from jax_md import partition
from jax_md import space as jmd_space

from mldiff import neighbors, quantities
from mldiff.potentials.nequip import NequIPConfig, nequip
from mldiff.structure import Structure

CUTOFF = 5.0  # Å
LAYERS, FEATURES, L_MAX, NUM_BASIS, RADIAL = 3, 32, 2, 8, (64, 64)
AVG_NEIGHBORS = 30.0


def first_call(fn, *args):
    """Seconds of the first call: tracing, XLA compilation and one run."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def interleaved(fns, repeat):
    """Per-call seconds of each ``(fn, args)``, calls alternating between them.

    Alternating makes both models see the same background load (the host may be
    shared); the minimum over ``repeat`` calls is reported as the time.
    """
    times = [[] for _ in fns]
    for _ in range(repeat):
        for k, (fn, args) in enumerate(fns):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[k].append(time.perf_counter() - t0)
    return [(min(t), float(np.median(t))) for t in times]


def memory_mb(jitted, *args):
    """XLA's estimate of the compiled function's memory, MB (None if unavailable)."""
    try:
        m = jitted.lower(*args).compile().memory_analysis()
        total = (
            m.temp_size_in_bytes
            + m.argument_size_in_bytes
            + m.output_size_in_bytes
            - m.alias_size_in_bytes
        )
        return round(total / 2**20, 2)
    except Exception:  # noqa: BLE001 - backend without memory analysis
        return None


def rss_mb():
    """Peak resident set size of this process so far, MB (Linux: KiB units)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ours(atoms):
    """The NequIP-style model of mldiff: jitted energy and forces."""
    cfg = NequIPConfig(
        cutoff=CUTOFF,
        num_layers=LAYERS,
        features=FEATURES,
        l_max=L_MAX,
        parity=False,
        num_basis=NUM_BASIS,
        radial_mlp=RADIAL,
        avg_num_neighbors=AVG_NEIGHBORS,
        resnet=False,
    )
    z = int(atoms.numbers[0])
    pot = nequip(cfg, species=(z,))
    s = Structure.from_ase(atoms, dtype=jnp.float32)
    g = neighbors.allocate(s, pot.cutoff)
    params = pot.init(jax.random.key(0), s)
    fn = jax.jit(quantities.energy_and_forces(pot.energy))
    args = (params, s, g)
    compile_s = first_call(fn, *args)
    return fn, args, compile_s, memory_mb(fn, *args), int(g.n_edges)


def theirs(atoms):
    """jax-md 0.2.29 ``energy.nequip_neighbor_list`` with the same hyperparameters."""
    from jax_md._nn import nequip as jmd_nequip

    cfg = jmd_nequip.default_config()
    cfg.graph_net_steps = LAYERS
    cfg.hidden_irreps = f"{FEATURES}x0e + {FEATURES}x1e + {FEATURES}x2e"
    cfg.sh_irreps = " + ".join(f"1x{deg}e" for deg in range(L_MAX + 1))
    cfg.num_basis = NUM_BASIS
    cfg.r_max = CUTOFF
    cfg.radial_net_n_hidden = RADIAL[0]
    cfg.radial_net_n_layers = len(RADIAL)
    cfg.n_elements = 1
    cfg.n_neighbors = AVG_NEIGHBORS
    cfg.shift, cfg.scale = 0.0, 1.0
    box = float(atoms.cell[0, 0])  # cubic cells
    displacement, _ = jmd_space.periodic(box)
    positions = jnp.asarray(atoms.positions, jnp.float32)
    one_hot = jnp.ones((len(atoms), 1), jnp.float32)
    neighbor_fn, init_fn, energy_fn = jmd_energy.nequip_neighbor_list(
        displacement, box, cfg, atoms=one_hot
    )
    nbrs = neighbor_fn.allocate(positions)
    params = init_fn(jax.random.key(0), positions, nbrs)
    fn = jax.jit(jax.value_and_grad(energy_fn, argnums=1))
    args = (params, positions, nbrs)
    compile_s = first_call(fn, *args)
    n_edges = int(jnp.sum(partition.neighbor_list_mask(nbrs)))
    return fn, args, compile_s, memory_mb(fn, *args), n_edges


def main():
    """Time both models on both cells and print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cases = {
        "Si216": bulk("Si", "diamond", a=5.431, cubic=True).repeat(3),
        "Cu256": bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4),
    }
    for name, atoms in cases.items():
        atoms.rattle(0.02, seed=0)
        fn_o, args_o, ours_compile, ours_mem, ours_edges = ours(atoms)
        rss_ours = rss_mb()
        fn_t, args_t, theirs_compile, theirs_mem, theirs_edges = theirs(atoms)
        (ours_s, ours_med), (theirs_s, theirs_med) = interleaved(
            [(fn_o, args_o), (fn_t, args_t)], args.repeat
        )
        print(
            json.dumps(
                {
                    "case": f"{name}-NequIP-energy+forces",
                    "device": jax.devices()[0].device_kind,
                    "jax": jax.__version__,
                    "dtype": "float32",
                    "atoms": len(atoms),
                    "edges_ours": ours_edges,
                    "edges_jaxmd": theirs_edges,
                    "ours_s": round(ours_s, 5),
                    "jaxmd_s": round(theirs_s, 5),
                    "speedup": round(theirs_s / ours_s, 3),
                    "ours_median_s": round(ours_med, 5),
                    "jaxmd_median_s": round(theirs_med, 5),
                    "compile_ours_s": round(ours_compile, 2),
                    "compile_jaxmd_s": round(theirs_compile, 2),
                    "xla_memory_ours_mb": ours_mem,
                    "xla_memory_jaxmd_mb": theirs_mem,
                    "peak_rss_after_ours_mb": rss_ours,
                    "peak_rss_after_both_mb": rss_mb(),
                    "repeat": args.repeat,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
