"""Direct solution of the linearised BTE: mldiff against phono3py, same fc2/fc3.

Run by hand (issue 14, the LBTE as a second method)::

    python benchmarks/bench_lbte.py                    # Si-SW and Cu-EMT, 8³ mesh
    python benchmarks/bench_lbte.py --mesh 11 11 11 --systems si

For each system (the issue's: Si with Stillinger–Weber in the 2×2×2
conventional supercell, 64 atoms; fcc Cu with EMT, 32 atoms), fc2 and fc3 by
mldiff's autodiff, then κ at 300 and 600 K with σ = 0.1 THz on a Γ-centred
``--mesh``:

* mldiff: ``conductivity.run(..., method="lbte")`` (timed cold, compilation
  included, and warm) and ``method="rta"``;
* phono3py on the same fc2/fc3: ``is_LBTE=True,
  is_reducible_collision_matrix=True`` (the same collision matrix), timed
  including its interaction strengths.

Prints one JSON line per system: κ (trace/3) from both codes, their largest
relative difference, the LBTE/RTA ratio and the times.
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
TEMPS = [300.0, 600.0]


def scalar(kappa) -> list[float]:
    """Trace/3 of ``[T, 3, 3]``."""
    return (np.trace(np.asarray(kappa), axis1=1, axis2=2) / 3).tolist()


def one_system(name: str, mesh, sigma: float) -> dict:
    """Time and compare both codes on one system."""
    import phono3py_reference as ref
    from ase.build import bulk

    from mldiff import phonons, potentials
    from mldiff.phonons import conductivity, third_order
    from mldiff.structure import Structure

    if name == "si":
        atoms, pot = bulk("Si", "diamond", a=5.431, cubic=True), potentials.get("sw")
    else:
        atoms, pot = bulk("Cu", "fcc", a=3.6, cubic=True), potentials.get("emt")
    ph = phonons.run(
        pot, None, Structure.from_ase(atoms), [2, 2, 2], primitive_matrix=FCC
    )
    rep = np.asarray(ph.images.representative)
    fc3 = third_order.third_order(
        pot, pot.init(None, ph.supercell), ph.supercell, first_atoms=rep
    )

    def ours(method):
        return conductivity.run(ph, fc3, mesh, TEMPS, sigma_thz=sigma, method=method)

    t = time.perf_counter()
    lbte = jax.block_until_ready(ours("lbte"))
    t_cold = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(ours("lbte"))
    t_warm = time.perf_counter() - t
    rta = ours("rta")

    full = np.asarray(
        third_order.third_order(pot, pot.init(None, ph.supercell), ph.supercell)
    )
    ph3 = ref.phono3py_object(
        atoms, [2, 2, 2], FCC, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    ref.set_force_constants(
        ph3, ph.force_constants, full, ref.order_of(ph, atoms, [2, 2, 2])
    )
    t = time.perf_counter()
    k3 = ref.kappa(ph3, mesh, TEMPS, sigma, lbte=True)
    t_p3 = time.perf_counter() - t
    k = np.asarray(lbte.kappa)
    return {
        "system": f"{name}, 2x2x2 conventional supercell ({len(ph.masses)} atoms)",
        "mesh": list(mesh),
        "sigma_thz": sigma,
        "temperatures_k": TEMPS,
        "kappa_lbte_w_mk": scalar(k),
        "kappa_lbte_phono3py_w_mk": scalar(k3),
        "max_rel_difference": float(np.abs(k - k3).max() / np.abs(k3).max()),
        "kappa_rta_w_mk": scalar(rta.kappa),
        "lbte_over_rta": (
            np.asarray(scalar(k)) / np.asarray(scalar(rta.kappa))
        ).tolist(),
        "lbte_s_cold": round(t_cold, 2),
        "lbte_s_warm": round(t_warm, 2),
        "lbte_phono3py_s": round(t_p3, 2),
    }


def main() -> None:
    """Run the requested systems, one JSON line each."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", type=int, nargs=3, default=[8, 8, 8])
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--systems", nargs="+", default=["si", "cu"], choices=["si", "cu"])
    args = ap.parse_args()
    for name in args.systems:
        print(json.dumps(one_system(name, args.mesh, args.sigma)), flush=True)


if __name__ == "__main__":
    main()
