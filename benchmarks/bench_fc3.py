"""Third-order force constants and κ: nested autodiff against phono3py.

Run by hand (issue 14, "Done when")::

    python benchmarks/bench_fc3.py               # Si-SW 64 atoms, κ on 19×19×19
    python benchmarks/bench_fc3.py --mesh 11 11 11 --quick

1. fc3 of Si with Stillinger–Weber in the 2×2×2 conventional supercell
   (64 atoms): mldiff's nested autodiff (symmetry-reduced, compiled; timed
   once cold, including compilation, and warm: compiled, with the supercell's
   symmetry known from ``phonons.run``, as phono3py's is from its
   constructor) against phono3py's
   finite-displacement route (``generate_displacements(distance=0.03)``,
   forces of every displaced supercell from the same JAX potential through
   ``mldiff.ase.Calculator``, ``produce_fc3``; timed after a first pass, so
   the calculator is compiled), in one run. Warm times of both routes are
   the median of ``--repeats`` calls, for the full fc3 ``[n, …]`` and for
   the compact one (the primitive cell's first atoms only, phono3py's
   default and all that κ needs); prints the ratios
   and the largest difference between the two fc3 (relative to max |Φ|).
2. The RTA κ(300 K) on a ``--mesh`` (default 19×19×19) Γ-centred mesh with
   σ = 0.1 THz: mldiff's time and value, and phono3py's (on mldiff's fc2/fc3)
   for comparison.

Prints one JSON line.
"""

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "phonons"))

FCC = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (JAX work finished)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    """Time both fc3 routes and κ, print one JSON line."""
    import phono3py_reference as ref
    from ase.build import bulk

    from mldiff import phonons, potentials
    from mldiff.ase import Calculator
    from mldiff.phonons import conductivity, third_order
    from mldiff.structure import Structure

    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", type=int, nargs=3, default=[19, 19, 19])
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--quick", action="store_true", help="skip phono3py's κ")
    ap.add_argument(
        "--repeats", type=int, default=5, help="warm fc3 timings (median) per route"
    )
    args = ap.parse_args()

    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    pot = potentials.get("sw")
    s = Structure.from_ase(atoms)
    ph = phonons.run(pot, None, s, [2, 2, 2], primitive_matrix=FCC)
    params = pot.init(None, ph.supercell)

    t = time.perf_counter()
    fc3 = np.asarray(third_order.third_order(pot, params, ph.supercell))
    t_cold = time.perf_counter() - t
    # warm: compiled; the supercell's spglib dataset is already known from
    # phonons.run, as phono3py's is from its constructor (outside its timing)
    t_warm = median_seconds(
        lambda: np.asarray(third_order.third_order(pot, params, ph.supercell)),
        args.repeats,
    )

    ph3 = ref.phono3py_object(
        atoms, [2, 2, 2], FCC, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    perm = ref.order_of(ph, atoms, [2, 2, 2])  # ours[perm] is in phono3py's order
    first = perm[np.asarray(ph3.primitive.p2s_map)]  # its primitive atoms, ours
    compact = np.asarray(
        third_order.third_order(pot, params, ph.supercell, first_atoms=first)
    )  # compiles the compact assembly
    t_compact = median_seconds(
        lambda: np.asarray(
            third_order.third_order(pot, params, ph.supercell, first_atoms=first)
        ),
        args.repeats,
    )
    calc = Calculator("sw")
    ref.finite_displacement_fc3(ph3, calc, distance=0.03)  # compiles the forces
    t_fd = {}
    for kind in ("compact", "full"):
        t_fd[kind] = median_seconds(
            lambda kind=kind: ref.finite_displacement_fc3(
                ph3, calc, distance=0.03, compact=kind == "compact"
            ),
            args.repeats,
        )
    theirs = ref.finite_displacement_fc3(ph3, calc, distance=0.03, compact=True)
    n_disp = len(ph3.supercells_with_displacements)
    ours = compact[:, :, perm][:, :, :, :, perm].transpose(0, 2, 4, 1, 3, 5)
    fc3_diff = float(np.abs(ours - theirs).max() / np.abs(ours).max())
    full_vs_compact = float(np.abs(fc3[first] - compact).max())

    t = time.perf_counter()
    res = conductivity.run(ph, fc3, args.mesh, [300.0], sigma_thz=args.sigma)
    kappa = float(np.trace(np.asarray(res.kappa[0])) / 3)
    t_kappa = time.perf_counter() - t
    out = {
        "system": "Si Stillinger-Weber, 2x2x2 conventional supercell (64 atoms)",
        "fc3_autodiff_s_cold": round(t_cold, 2),
        "fc3_autodiff_s_warm": round(t_warm, 3),
        "fc3_autodiff_compact_s_warm": round(t_compact, 3),
        "fc3_phono3py_fd_s": round(t_fd["full"], 3),
        "fc3_phono3py_fd_compact_s": round(t_fd["compact"], 3),
        "phono3py_displacements": n_disp,
        "ratio_fd_over_autodiff_cold": round(t_fd["full"] / t_cold, 2),
        "ratio_fd_over_autodiff_warm": round(t_fd["full"] / t_warm, 2),
        "ratio_fd_over_autodiff_compact_warm": round(t_fd["compact"] / t_compact, 2),
        "fc3_max_rel_difference": fc3_diff,
        "fc3_full_vs_compact_max_abs": full_vs_compact,
        "mesh": args.mesh,
        "kappa_300k_w_mk": kappa,
        "kappa_s": round(t_kappa, 2),
        "jax_devices": [str(d) for d in jax.devices()],
    }
    if not args.quick:
        ref.set_force_constants(ph3, ph.force_constants, fc3, perm)
        t = time.perf_counter()
        k3 = ref.kappa(ph3, args.mesh, [300.0], args.sigma)
        out["kappa_phono3py_s"] = round(time.perf_counter() - t, 2)
        out["kappa_300k_phono3py_w_mk"] = float(np.trace(k3[0]) / 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
