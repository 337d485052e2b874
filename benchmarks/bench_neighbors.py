"""Neighbor-graph update inside jit: cell list against all pairs, SW silicon.

Run by hand::

    python benchmarks/bench_neighbors.py [--repeats 5 11 20] [--max-gb 4]

Diamond Si (a = 5.431 Å, cubic cell repeated ``k`` times each way, 8k³ atoms:
k = 11 gives 10,648 atoms, k = 20 gives 64,000), rattled by 0.1 Å, graph for
the Stillinger–Weber cutoff (3.77 Å) plus a 0.5 Å skin, float64. For each size
and each method of :func:`mldiff.neighbors.allocate` one JSON line:

* ``peak_mb``: XLA's buffer assignment for the compiled ``update``
  (``memory_analysis()``: arguments + outputs + scratch), the peak device
  memory of one call; ``temp_mb`` the scratch part alone;
* ``update_ms``: wall time of one jitted ``update`` (mean of ``--calls``,
  after compiling and one warm-up call); ``update_cpu_ms`` the process CPU
  time per call (all threads; meaningful on a shared CPU); ``compile_s``;
* ``edges``, ``host_edges``: edges found in jit and by the host k-d tree
  (:func:`mldiff.neighbors.neighbor_list`), which must agree.

A method whose ``peak_mb`` exceeds ``--max-gb`` is compiled (for its memory
figure) but not run: all pairs holds an ``[n, 27, n]`` distance array.
"""

import argparse
import json
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from mldiff import neighbors, potentials  # noqa: E402
from mldiff.structure import Structure  # noqa: E402

SKIN = 0.5  # Å


def _silicon(repeat: int, seed: int = 0) -> Structure:
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    return Structure.from_ase(atoms)


def _case(s: Structure, cutoff: float, method: str, calls: int, max_gb: float):
    g = neighbors.allocate(s, cutoff, skin=SKIN, method=method)
    moved = s.replace(positions=s.positions + 0.05)

    def update(positions):
        h = neighbors.update(s.replace(positions=positions), g)
        return h.senders, h.receivers, h.shifts, h.mask, h.overflow

    t0 = time.perf_counter()
    compiled = jax.jit(update).lower(moved.positions).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    peak = (
        mem.argument_size_in_bytes
        + mem.output_size_in_bytes
        + mem.temp_size_in_bytes
        + mem.generated_code_size_in_bytes
    )
    row = {
        "case": f"Si{len(s)}-SW",
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "method": g.method,
        "n_atoms": len(s),
        "radius_a": cutoff + SKIN,
        "capacity": g.capacity,
        "bins": list(g.bins),
        "bin_capacity": g.bin_capacity,
        "peak_mb": round(peak / 2**20, 1),
        "temp_mb": round(mem.temp_size_in_bytes / 2**20, 1),
        "compile_s": round(compile_s, 2),
    }
    if peak > max_gb * 2**30:
        row["update_ms"] = None
        return row
    out = jax.block_until_ready(compiled(moved.positions))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        out = jax.block_until_ready(compiled(moved.positions))
    row["update_ms"] = round(1e3 * (time.perf_counter() - t0) / calls, 2)
    row["update_cpu_ms"] = round(1e3 * (time.process_time() - c0) / calls, 2)
    row["overflow"] = bool(out[4])
    row["edges"] = int(np.sum(np.asarray(out[3])))
    row["host_edges"] = len(neighbors.neighbor_list(moved, cutoff + SKIN)[0])
    return row


def main() -> None:
    """Print one JSON line per (size, method)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, nargs="+", default=[5, 11, 20])
    parser.add_argument("--methods", nargs="+", default=["cell_list", "all_pairs"])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--max-gb", type=float, default=4.0)
    args = parser.parse_args()
    cutoff = potentials.get("sw").cutoff
    for k in args.repeats:
        s = _silicon(k)
        for method in args.methods:
            row = _case(s, cutoff, method, args.calls, args.max_gb)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
