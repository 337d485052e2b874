"""``mldiff md STRUCTURE``: molecular dynamics with a reference or trained potential."""

import json
import os

from mldiff.cli import _common
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser("md", help="NVE or Langevin NVT molecular dynamics")
    p.add_argument("structure", help="structure file readable by ASE")
    _common.add_potential_argument(p)
    p.add_argument("--steps", type=_common.positive_int, default=1000)
    p.add_argument(
        "--timestep", type=_common.positive_float, default=1.0, help="time step, fs"
    )
    p.add_argument(
        "--temperature",
        type=_common.nonnegative_float,
        default=300.0,
        help="initial (NVE) or thermostat (NVT) temperature, K",
    )
    p.add_argument("--ensemble", choices=("nve", "nvt"), default="nvt")
    p.add_argument(
        "--friction",
        type=_common.nonnegative_float,
        default=0.01,
        help="Langevin friction, 1/fs",
    )
    p.add_argument("--log-interval", type=_common.positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    _common.add_output_argument(
        p, "--out", help="directory for trajectory.extxyz and md.json"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    """Run MD and report energies, temperature and drift."""
    import jax
    import numpy as np

    from mldiff import md
    from mldiff.structure import Structure

    atoms = _common.read_atoms(args.structure)
    s = Structure.from_ase(atoms)
    potential, params = _common.potential_and_params(args.potential, s)
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
    if not (np.isfinite(total).all() and np.isfinite(temps).all()):
        bad = int(np.asarray(result.step)[~np.isfinite(total + temps)][0])
        raise ConfigError(
            f"the trajectory diverged (non-finite energy by step {bad}); lower "
            f"--timestep (now {args.timestep} fs) or start from a relaxed "
            "structure"
        )
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

        from mldiff.io.files import atomic_write

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
