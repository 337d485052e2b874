"""``mldiff screen STRUCTURES --potential P --out DIR``: batch screening.

Energies and forces (optionally stress, relaxations and phonon frequencies) of
every structure in a file, in padded batches sharded over ``--devices``,
streamed to ``DIR`` in chunks (``manifest.json``, ``chunk_*.npz``). Run the
same command again after a crash or a time limit: finished chunks are skipped.
When every chunk is done, ``results.csv`` lists one line per structure in input
order; :func:`mldiff.screening.read_results` reads everything.

Several hosts (SLURM, TPU pod): run the command on every host with
``--distributed``; each host screens its share of the chunks on its own devices
into the shared ``DIR`` (see :mod:`mldiff.parallel` for the launch recipe).
"""

import io
import os

import numpy as np

from mldiff.cli import _common
from mldiff.errors import ConfigError


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "screen",
        help="energies, forces, relaxations and phonons of many structures "
        "(sharded, resumable)",
    )
    p.add_argument("structures", help="structures, any multi-frame file ASE reads")
    p.add_argument(
        "--potential",
        required=True,
        type=_common.potential_name,
        help="reference potential name or checkpoint path (model.msgpack)",
    )
    _common.add_output_argument(p, "--out", required=True, help="output directory")
    p.add_argument(
        "--batch-size",
        type=_common.positive_int,
        default=8,
        help="structures per batch",
    )
    p.add_argument(
        "--chunk-size",
        type=_common.positive_int,
        default=256,
        help="structures per output chunk",
    )
    p.add_argument(
        "--buckets", type=_common.positive_int, default=4, help="padded shapes at most"
    )
    p.add_argument(
        "--devices",
        type=_common.positive_int,
        help="local devices to shard over (default all)",
    )
    p.add_argument("--stress", action="store_true", help="also compute the stress")
    p.add_argument("--relax", action="store_true", help="relax each structure")
    p.add_argument("--relax-cell", action="store_true", help="relax the cell too")
    p.add_argument(
        "--fmax", type=_common.positive_float, default=0.05, help="relaxation eV/Å"
    )
    p.add_argument("--phonons", action="store_true", help="phonon frequencies")
    p.add_argument(
        "--supercell",
        type=_common.positive_int,
        nargs=3,
        default=[2, 2, 2],
        metavar="N",
    )
    p.add_argument(
        "--qpoint",
        type=float,
        nargs=3,
        action="append",
        metavar="Q",
        help="q-point in reduced coordinates of each cell (repeatable; default "
        "Γ, X-, M- and R-like points of the cell)",
    )
    p.add_argument(
        "--restart", action="store_true", help="discard finished chunks, start over"
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize (SLURM / TPU pod / MLDIFF_* env)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _read(path: str) -> list:
    from ase.io import read

    from mldiff.structure import Structure

    if not os.path.exists(path):
        raise ConfigError(f"structure file {path!r} does not exist")
    try:
        frames = read(path, index=":")
    except Exception as err:  # ASE raises many types for unreadable files
        raise ConfigError(f"could not read structure file {path!r}: {err}") from err
    return [Structure.from_ase(a) for a in frames]


def _csv(results: dict) -> bytes:
    cols = [
        "index",
        "n_atoms",
        "energy_ev",
        "energy_ev_per_atom",
        "fmax_ev_per_angstrom",
    ]
    rows = [
        results["n_atoms"],
        results["energy_ev"],
        results["energy_ev"] / results["n_atoms"],
        [np.linalg.norm(f, axis=1).max() for f in results["forces_ev_per_angstrom"]],
    ]
    if "relaxed_energy_ev" in results:
        cols += ["relaxed_energy_ev", "relax_converged"]
        rows += [results["relaxed_energy_ev"], results["relax_converged"]]
    if "frequencies_thz" in results:
        cols += ["min_frequency_thz"]
        rows += [[float(np.min(f)) for f in results["frequencies_thz"]]]
    buf = io.StringIO()
    buf.write(",".join(cols) + "\n")
    for k, values in enumerate(zip(*rows, strict=True)):
        buf.write(",".join([str(k)] + [repr(_scalar(v)) for v in values]) + "\n")
    return buf.getvalue().encode()


def _scalar(v):
    v = np.asarray(v).item()
    return int(v) if isinstance(v, bool) else v


def run(args) -> int:
    """Read structures, screen them, write ``results.csv`` when complete."""
    import jax

    from mldiff import parallel, screening
    from mldiff.ase import resolve_potential
    from mldiff.io.files import atomic_write

    if args.distributed:
        info = parallel.initialize_distributed()
        print(
            f"process {info.process_index} of {info.process_count} "
            f"({info.n_local_devices} local devices, {info.mode})"
        )
    structures = _read(args.structures)
    if not structures:
        raise ConfigError(f"{args.structures!r} holds no structures")
    potential, params = resolve_potential(args.potential)
    if params is None:
        params = potential.init(jax.random.key(0), structures[0])
    local = jax.local_devices()
    if args.devices is not None and not 1 <= args.devices <= len(local):
        raise ConfigError(
            f"--devices {args.devices}: this host has {len(local)} devices; ask "
            f"for 1 to {len(local)}"
        )
    mesh = parallel.make_mesh(local[: args.devices or len(local)])
    qpoints = tuple(tuple(q) for q in args.qpoint) if args.qpoint else None
    config = screening.ScreenConfig(
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        n_buckets=args.buckets,
        with_stress=args.stress,
        relax=args.relax or args.relax_cell,
        relax_cell=args.relax_cell,
        fmax=args.fmax,
        phonons=args.phonons,
        supercell=tuple(args.supercell),
        **({"qpoints": qpoints} if qpoints else {}),
    )
    print(
        f"screening {len(structures)} structures on {mesh.size} device(s) -> {args.out}"
    )
    result = screening.screen(
        potential,
        params,
        structures,
        args.out,
        config,
        mesh=mesh,
        resume=not args.restart,
        progress=not args.quiet,
    )
    print(
        f"{len(result.computed_chunks)} chunk(s) computed, "
        f"{len(result.skipped_chunks)} already done, of {result.n_chunks}"
    )
    if result.complete and jax.process_index() == 0:
        csv = _csv(screening.read_results(args.out))
        atomic_write(os.path.join(args.out, "results.csv"), csv)
        print(f"results written to {os.path.join(args.out, 'results.csv')}")
    return 0
