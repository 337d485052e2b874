"""Batch screening: energies, forces, relaxations and phonons of many structures.

Thousands of structures are evaluated in padded shape buckets
(:mod:`mldiff.data.batching`), each batch split over the devices of a mesh
(:mod:`mldiff.parallel`), and the results are streamed to disk in chunks:

* The input is cut into consecutive chunks of ``chunk_size`` structures. Each
  chunk is evaluated, then written atomically as ``chunk_NNNNNN.npz``
  (:func:`mldiff.io.files.atomic_write`), so a chunk file on disk is
  always complete.
* ``manifest.json`` holds the settings, the shape buckets and a fingerprint of
  the inputs, potential parameters and settings. A second run with the same
  fingerprint skips every chunk already on disk: after a crash nothing finished
  is recomputed. A run with another fingerprint is refused.
* :func:`read_results` assembles the chunks in input order.

Energies, forces and stress come from one jitted, vmapped
``value_and_grad`` per batch (:func:`mldiff.training.losses.predict`), the
batch axis sharded over the mesh's ``"batch"`` axis and the parameters
replicated. Relaxations (:func:`mldiff.md.relax`) and phonon frequencies
(:func:`mldiff.phonons.run`) have host-side control flow and run one structure
at a time on the default device.

Several hosts: each process (after
:func:`mldiff.parallel.initialize_distributed`) takes the chunks ``k`` with
``k % process_count == process_index`` and evaluates them on its own local
devices; all write to one shared output directory.

Example:
    >>> import tempfile
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
    >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    >>> out = tempfile.mkdtemp()
    >>> run = screen(pot, pot.init(None, cu), [cu] * 3, out,
    ...              ScreenConfig(batch_size=2, chunk_size=2))
    >>> run.computed_chunks, run.complete
    ([0, 1], True)
    >>> r = read_results(out)
    >>> r["energy_ev"].shape, r["forces_ev_per_angstrom"][0].shape
    ((3,), (1, 3))
"""

import dataclasses
import functools
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import md, parallel
from mldiff import phonons as _phonons
from mldiff._config import check_types
from mldiff.data import batching
from mldiff.errors import ConfigError, ScreeningError
from mldiff.io.files import atomic_write
from mldiff.io.labeled import LabeledStructure
from mldiff.structure import Structure
from mldiff.training import losses

__all__ = [
    "ScreeningError",
    "ScreenConfig",
    "ScreenResult",
    "screen",
    "read_results",
    "chunk_ranges",
    "MANIFEST",
]

MANIFEST = "manifest.json"
_FORMAT = 1
_DEFAULT_QPOINTS = ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.5, 0.5))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScreenConfig:
    """Settings of :func:`screen`.

    Attributes:
        batch_size: structure slots per batch, over all devices of the mesh
            (a multiple of the mesh's ``"batch"`` size).
        chunk_size: structures per output chunk (the unit of resumption).
        n_buckets: at most this many padded shapes (compilations).
        with_stress: also compute the stress (periodic cells).
        relax: relax each structure (FIRE, :func:`mldiff.md.relax`).
        relax_cell: relax the cell too (all-periodic structures).
        fmax: relaxation force tolerance, eV/Å.
        max_steps: FIRE steps at most per structure.
        phonons: phonon frequencies (of the relaxed structure with ``relax``).
        supercell: supercell repeats for the force constants.
        qpoints: ``[k, 3]`` q-points in reduced coordinates of the structure's
            own reciprocal cell (the cell is treated as primitive).
    """

    batch_size: int = 8
    chunk_size: int = 256
    n_buckets: int = 4
    with_stress: bool = False
    relax: bool = False
    relax_cell: bool = False
    fmax: float = 0.05
    max_steps: int = 2000
    phonons: bool = False
    supercell: tuple[int, ...] = (2, 2, 2)
    qpoints: tuple[tuple[float, ...], ...] = _DEFAULT_QPOINTS

    def __post_init__(self):
        """Check the settings."""
        check_types(self)
        for name in ("batch_size", "chunk_size", "n_buckets", "max_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(
                    f"ScreenConfig.{name} must be at least 1, got "
                    f"{getattr(self, name)!r}"
                )
        if np.shape(self.qpoints)[-1:] != (3,) or len(self.supercell) != 3:
            raise ConfigError(
                f"qpoints must be [k, 3] and supercell 3 integers, got "
                f"{self.qpoints!r} and {self.supercell!r}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScreenResult:
    """What one call of :func:`screen` did.

    Attributes:
        out_dir: the output directory.
        n_structures: structures in the input.
        n_chunks: chunks in the input.
        computed_chunks: chunks evaluated by this call, in order.
        skipped_chunks: chunks found on disk and not recomputed.
        complete: every chunk (of every host) is on disk.
    """

    out_dir: str
    n_structures: int
    n_chunks: int
    computed_chunks: list[int]
    skipped_chunks: list[int]
    complete: bool


def chunk_ranges(n: int, chunk_size: int) -> list[range]:
    """Consecutive index ranges of at most ``chunk_size`` structures.

    Example:
        >>> chunk_ranges(5, 2)
        [range(0, 2), range(2, 4), range(4, 5)]
    """
    return [range(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]


def _chunk_path(out_dir: str, k: int) -> str:
    return os.path.join(out_dir, f"chunk_{k:06d}.npz")


def _as_items(structures: Sequence) -> list[LabeledStructure]:
    items = []
    for k, s in enumerate(structures):
        if isinstance(s, LabeledStructure):
            items.append(s)
        elif isinstance(s, Structure):
            items.append(LabeledStructure(structure=s))
        else:
            raise ConfigError(
                f"structure {k} is a {type(s).__name__}; pass mldiff Structures "
                "(Structure.from_ase(atoms)) or LabeledStructures"
            )
    return items


def _fingerprint(items, params, config: ScreenConfig, cutoff: float) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(_config_dict(config), sort_keys=True).encode())
    h.update(repr(float(cutoff)).encode())
    for leaf in jax.tree.leaves(params):
        x = np.asarray(leaf)
        h.update(str(x.dtype).encode() + str(x.shape).encode() + x.tobytes())
    for it in items:
        s = it.structure
        for x in (s.positions, s.cell, s.numbers):
            x = np.asarray(x)
            h.update(str(x.dtype).encode() + str(x.shape).encode() + x.tobytes())
        h.update(repr(tuple(bool(p) for p in s.pbc)).encode())
    return h.hexdigest()


def _config_dict(config: ScreenConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _bucket_dicts(buckets) -> list[dict]:
    return [
        {"pbc": list(b.pbc), "n_atoms": b.n_atoms, "n_edges": b.n_edges}
        for b in buckets
    ]


def _buckets_from(dicts) -> tuple:
    return tuple(
        batching.Bucket(
            pbc=tuple(bool(p) for p in d["pbc"]),
            n_atoms=int(d["n_atoms"]),
            n_edges=int(d["n_edges"]),
        )
        for d in dicts
    )


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def _predict_program(energy_fn, with_stress: bool):
    """The jitted batch prediction, cached per potential.

    Repeated or resumed screenings in one process do not recompile; results do
    not depend on the cache.
    """
    return jax.jit(losses.predict(energy_fn, with_stress))


def _local_mesh(mesh):
    if mesh is None:
        return parallel.make_mesh(jax.local_devices())
    local = set(jax.local_devices())
    if not all(d in local for d in mesh.devices.flat):
        raise ConfigError(
            "screening evaluates each host's chunks on that host's own devices; "
            "pass a mesh of jax.local_devices() (or mesh=None)"
        )
    return mesh


def _predict_chunk(predict_fn, params, ds, buckets, config, mesh, dtype) -> dict:
    """Energies, forces (and stress) of every structure of ``ds``, in order."""
    n = len(ds)
    energy = np.zeros(n)
    forces: list = [None] * n
    stress = np.zeros((n, 3, 3))
    for bucket, index in batching.batch_plan(ds, config.batch_size, buckets):
        batch = batching.make_batch(ds, index, bucket, config.batch_size, dtype)
        e, f, s = (
            np.asarray(x) for x in predict_fn(params, parallel.shard_batch(batch, mesh))
        )
        if not np.all(np.isfinite(e[: len(index)])):
            raise ScreeningError(
                "the potential gave a non-finite energy in a batch; check the "
                "structures for overlapping atoms or unsupported elements, and "
                "that the potential gives Z = 0 padding atoms no energy"
            )
        for slot, k in enumerate(index):
            energy[k] = e[slot]
            forces[k] = f[slot, : len(ds.numbers[k])]
            stress[k] = s[slot]
    out = {
        "energy_ev": energy,
        "forces_ev_per_angstrom": np.concatenate(forces).reshape(-1, 3),
    }
    if config.with_stress:
        out["stress_ev_per_angstrom3"] = stress
    return out


def _relax_and_phonons(potential, params, items, config: ScreenConfig) -> dict:
    """Per-structure relaxations and phonon frequencies (host loops)."""
    out: dict[str, list] = {}
    qpoints = jnp.asarray(config.qpoints, jnp.float64)
    for it in items:
        s = it.structure
        if config.relax:
            r = md.relax(
                potential,
                params,
                s,
                fmax=config.fmax,
                relax_cell=config.relax_cell,
                max_steps=config.max_steps,
                progress=False,
            )
            s = r.structure
            for key, value in (
                ("relaxed_energy_ev", float(r.energy_ev)),
                ("relaxed_positions_angstrom", np.asarray(s.positions)),
                ("relaxed_cell_angstrom", np.asarray(s.cell)),
                ("relax_converged", bool(r.converged)),
                ("relax_steps", int(r.steps)),
            ):
                out.setdefault(key, []).append(value)
        if config.phonons:
            ph = _phonons.run(potential, params, s, config.supercell)
            freqs = np.asarray(_phonons.frequencies(ph, qpoints))  # [k, 3n] THz
            out.setdefault("frequencies_thz", []).append(freqs.T)  # [3n, k]
    packed = {}
    for key, values in out.items():
        if key in ("relaxed_positions_angstrom", "frequencies_thz"):
            packed[key] = np.concatenate(values)  # ragged: rows of all structures
        else:
            packed[key] = np.asarray(values)
    return packed


def screen(
    potential,
    params,
    structures: Sequence,
    out_dir: str | os.PathLike,
    config: ScreenConfig | None = None,
    *,
    mesh=None,
    resume: bool = True,
    progress: bool = False,
    max_chunks: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> ScreenResult:
    """Evaluate many structures in sharded batches, streaming chunks to disk.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters.
        structures: ``N`` :class:`~mldiff.structure.Structure` s (or
            ``LabeledStructure`` s; labels are ignored), any sizes.
        out_dir: output directory (``manifest.json``, ``chunk_*.npz``).
        config: :class:`ScreenConfig`.
        mesh: mesh of this host's devices with a ``"batch"`` axis (default all
            local devices); ``config.batch_size`` must divide over it.
        resume: skip chunks already on disk (their fingerprint must match);
            False deletes every chunk in ``out_dir`` and starts over (with
            several hosts, restart from one host first).
        progress: show a progress bar (structures).
        max_chunks: evaluate at most this many chunks in this call, then
            return (e.g. to fit a job's time limit; call again to continue).
        on_chunk: called with the chunk number after each chunk is written.
        process_index: this host (default ``jax.process_index()``).
        process_count: number of hosts (default ``jax.process_count()``).

    Returns:
        :class:`ScreenResult`; read the values with :func:`read_results`.

    Raises:
        ConfigError: bad settings, a batch size that does not divide over the
            mesh, or an output directory written for other inputs or settings.
        ScreeningError: a non-finite energy (overlapping atoms, an element the
            potential lacks, or a potential not safe for Z = 0 padding atoms).
    """
    from tqdm.auto import tqdm

    config = config or ScreenConfig()
    items = _as_items(structures)
    if not items:
        raise ConfigError("screen needs at least one structure, got none")
    mesh = _local_mesh(mesh)
    parallel.check_divisible(config.batch_size, mesh, parallel.BATCH, "batch_size")
    if config.phonons:
        for k, it in enumerate(items):
            if not all(it.structure.pbc):
                raise ConfigError(
                    f"structure {k} is not periodic in all directions; phonons "
                    "need a periodic cell (screen it without phonons)"
                )
    index = jax.process_index() if process_index is None else int(process_index)
    count = jax.process_count() if process_count is None else int(process_count)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    cutoff = float(potential.cutoff)
    ranges = chunk_ranges(len(items), int(config.chunk_size))
    fingerprint = _fingerprint(items, params, config, cutoff)
    manifest_path = os.path.join(out_dir, MANIFEST)
    full = None
    if os.path.exists(manifest_path):
        with open(manifest_path) as fh:
            manifest = json.load(fh)
        if manifest.get("fingerprint") != fingerprint and resume:
            raise ConfigError(
                f"{out_dir!r} holds a screening of other structures, parameters "
                "or settings; use a new output directory or resume=False"
            )
    if not resume or not os.path.exists(manifest_path):
        for name in os.listdir(out_dir):  # chunks of an earlier screening
            if name.startswith("chunk_") and name.endswith(".npz"):
                os.unlink(os.path.join(out_dir, name))
        full = batching.Dataset.build(items, cutoff)
        buckets = batching.make_buckets(
            full, batch_size=config.batch_size, n_buckets=config.n_buckets
        )
        manifest = {
            "format": _FORMAT,
            "fingerprint": fingerprint,
            "n_structures": len(items),
            "n_chunks": len(ranges),
            "chunk_size": int(config.chunk_size),
            "cutoff_angstrom": cutoff,
            "config": _config_dict(config),
            "buckets": _bucket_dicts(buckets),
        }
        atomic_write(manifest_path, json.dumps(manifest, indent=1).encode())
    buckets = _buckets_from(manifest["buckets"])

    dtype = jnp.asarray(items[0].structure.positions).dtype
    predict_fn = _predict_program(potential.energy, bool(config.with_stress))
    params_on_mesh = parallel.replicate(params, mesh)
    mine = [k for k in range(len(ranges)) if k % count == index]
    done = [k for k in mine if os.path.exists(_chunk_path(out_dir, k))]
    todo = [k for k in mine if k not in set(done)]
    if max_chunks is not None:
        todo = todo[: max(int(max_chunks), 0)]
    bar = tqdm(
        total=sum(len(ranges[k]) for k in mine),
        initial=sum(len(ranges[k]) for k in done),
        desc="screen",
        unit="structure",
        disable=None if progress else True,
    )
    computed = []
    for k in todo:
        chunk = ranges[k]
        if full is not None:
            ds = full.subset(np.arange(chunk.start, chunk.stop))
        else:
            ds = batching.Dataset.build(items[chunk.start : chunk.stop], cutoff)
        arrays = {
            "index": np.arange(chunk.start, chunk.stop),
            "n_atoms": ds.n_atoms,
            **_predict_chunk(
                predict_fn, params_on_mesh, ds, buckets, config, mesh, dtype
            ),
        }
        if config.relax or config.phonons:
            arrays.update(
                _relax_and_phonons(
                    potential, params, items[chunk.start : chunk.stop], config
                )
            )
        atomic_write(_chunk_path(out_dir, k), _npz_bytes(arrays))
        computed.append(k)
        bar.update(len(chunk))
        if on_chunk is not None:
            on_chunk(k)
    bar.close()
    complete = all(os.path.exists(_chunk_path(out_dir, k)) for k in range(len(ranges)))
    return ScreenResult(
        out_dir=out_dir,
        n_structures=len(items),
        n_chunks=len(ranges),
        computed_chunks=computed,
        skipped_chunks=done,
        complete=complete,
    )


def read_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The results of a finished :func:`screen`, in input order.

    Args:
        out_dir: the output directory.

    Returns:
        ``n_atoms`` ``[N]``; ``energy_ev`` ``[N]`` eV;
        ``forces_ev_per_angstrom``: ``N`` arrays ``[n_i, 3]`` eV/Å;
        ``stress_ev_per_angstrom3`` ``[N, 3, 3]`` eV/Å³ (with stress); with
        relaxation ``relaxed_energy_ev`` ``[N]``, ``relaxed_positions_angstrom``
        (``N`` arrays ``[n_i, 3]`` Å), ``relaxed_cell_angstrom`` ``[N, 3, 3]``
        Å, ``relax_converged`` ``[N]`` bool, ``relax_steps`` ``[N]``; with
        phonons ``frequencies_thz`` (``N`` arrays ``[k, 3 n_i]`` THz,
        ascending) and ``qpoints`` ``[k, 3]``.

    Raises:
        ConfigError: no screening in ``out_dir``, or chunks still missing.
    """
    out_dir = os.fspath(out_dir)
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        raise ConfigError(f"{out_dir!r} holds no screening ({MANIFEST} missing)")
    with open(path) as fh:
        manifest = json.load(fh)
    n_chunks = int(manifest["n_chunks"])
    missing = [
        k for k in range(n_chunks) if not os.path.exists(_chunk_path(out_dir, k))
    ]
    if missing:
        raise ConfigError(
            f"{len(missing)} of {n_chunks} chunks are missing in {out_dir!r} (first "
            f"{missing[0]}); run screen again with the same inputs to finish"
        )
    parts: dict[str, list] = {}
    for k in range(n_chunks):
        with np.load(_chunk_path(out_dir, k)) as z:
            for key in z.files:
                parts.setdefault(key, []).append(z[key])
    out = {key: np.concatenate(v) for key, v in parts.items()}
    n_atoms = out["n_atoms"]
    splits = np.cumsum(n_atoms)[:-1]
    if not np.array_equal(out["index"], np.arange(int(manifest["n_structures"]))):
        raise ConfigError(
            f"the chunks in {out_dir!r} do not cover the input in order; delete "
            "the directory and screen again"
        )
    for key in ("forces_ev_per_angstrom", "relaxed_positions_angstrom"):
        if key in out:
            out[key] = np.split(out[key], splits)
    if "frequencies_thz" in out:
        rows = np.split(out["frequencies_thz"], np.cumsum(3 * n_atoms)[:-1])
        out["frequencies_thz"] = [r.T for r in rows]  # [k, 3n] per structure
        out["qpoints"] = np.asarray(manifest["config"]["qpoints"], np.float64)
    del out["index"]
    return out
