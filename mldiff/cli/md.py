"""``mldiff md STRUCTURE``: molecular dynamics with a reference or trained potential."""

import json
import os

from mldiff.cli import _common


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("md", help="NVE or Langevin NVT molecular dynamics")
    p.add_argument("structure", help="structure file readable by ASE")
    _common.add_potential_argument(p)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="time step, fs")
    p.add_argument(
        "--temperature",
        type=float,
        default=300.0,
        help="initial (NVE) or thermostat (NVT) temperature, K",
    )
    p.add_argument("--ensemble", choices=("nve", "nvt"), default="nvt")
    p.add_argument(
        "--friction", type=float, default=0.01, help="Langevin friction, 1/fs"
    )
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="directory for trajectory.extxyz and md.json")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run MD and report energies, temperature and drift."""
    import jax
    import numpy as np

    from mldiff import md
    from mldiff.ase import resolve_potential
    from mldiff.potentials import check_species
    from mldiff.structure import Structure

    atoms = _common.read_atoms(args.structure)
    s = Structure.from_ase(atoms)
    potential, params = resolve_potential(args.potential, None, None)
    check_species(potential, s.numbers)
    if params is None:
        params = potential.init(jax.random.key(args.seed), s)
    nvt = args.ensemble == "nvt"
    result = md.run_md(
        potential,
        params,
        s,
        key=jax.random.key(args.seed),
        steps=args.steps,
        timestep_fs=args.timestep,
        temperature_K=args.temperature if nvt else None,
        initial_temperature_K=args.temperature,
        friction_per_fs=args.friction,
        log_interval=args.log_interval,
        record_positions=bool(args.out),
    )
    total = np.asarray(result.total_energy_ev)
    temps = np.asarray(result.temperature_k)
    n = len(atoms)
    summary = {
        "ensemble": args.ensemble,
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "n_atoms": n,
        "mean_temperature_k": float(temps.mean()),
        "final_potential_energy_ev": float(result.potential_energy_ev[-1]),
        "total_energy_drift_ev_per_atom": float((total.max() - total.min()) / n),
    }
    for k, v in summary.items():
        print(f"{k:32s} {v}")
    if args.out:
        from ase.io import write

        from mldiff.training.checkpoint import atomic_write

        os.makedirs(args.out, exist_ok=True)
        frames = []
        for r in np.asarray(result.positions):
            frame = atoms.copy()
            frame.positions = r
            frames.append(frame)
        write(os.path.join(args.out, "trajectory.extxyz"), frames)
        record = {
            **summary,
            "time_fs": np.asarray(result.time_fs).tolist(),
            "temperature_k": temps.tolist(),
            "total_energy_ev": total.tolist(),
        }
        atomic_write(os.path.join(args.out, "md.json"), json.dumps(record).encode())
    return 0
