"""Checkpoints: one msgpack file per save, written atomically, carrying its config.

A checkpoint holds a JSON header (format version, model spec, training config,
epoch, history) and the arrays (parameters, EMA parameters, optimiser state),
in the file layout of :mod:`mldiff.io.files`, written atomically: a kill at any
moment leaves either the old or the new checkpoint, never a torn one.

Multi-process runs (``jax.distributed``, one process per host): :func:`save`
is a collective that gathers arrays sharded over several hosts, writes the
file from process 0 only and returns on every process once the file is in
place; :func:`resume_point` gives every process the same checkpoint to resume
from, or refuses. The output directory must be on a file system that every
host sees.
"""

import hashlib
import os
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.serialization
import jax
import numpy as np

from mldiff import parallel
from mldiff.errors import ConfigError
from mldiff.io.files import (
    CHECKPOINT_FORMAT_VERSION,
    atomic_write,
    checkpoint_from_bytes,
    read_checkpoint_file,
    write_checkpoint_file,
)
from mldiff.training.models import ModelSpec, build

__all__ = [
    "FORMAT_VERSION",
    "Model",
    "save",
    "read",
    "resume_point",
    "restore",
    "load",
    "atomic_write",
    "data_fingerprint",
]

FORMAT_VERSION = CHECKPOINT_FORMAT_VERSION


class Model(NamedTuple):
    """A loaded model: a potential and its parameters.

    Usable wherever a ``(Potential, params)`` pair is: ``mldiff.ase.Calculator``,
    ``quantities.forces(model.potential.energy)(model.params, ...)``, phonons.
    """

    potential: Any
    params: Any


def save(
    path,
    *,
    spec: ModelSpec,
    params,
    header: dict | None = None,
    arrays: dict | None = None,
) -> None:
    """Save a checkpoint atomically, one file per run however many processes.

    In a multi-process run this is a collective: every process calls it at the
    same point with the same arguments (the trainers do, at the end of each
    epoch). Arrays sharded over several processes' devices (ensemble members
    split over hosts) are gathered to their global values
    (:func:`mldiff.parallel.to_host`); process 0 alone writes ``path``; and no
    process returns before the file is in place (the processes exchange
    whether the write succeeded, which is a barrier). A job killed at any
    moment therefore leaves one complete checkpoint that all of its processes
    resume from. ``path`` must be on a file system every host sees.

    Args:
        path: file to write (conventionally ``*.msgpack``).
        spec: how to rebuild the model.
        params: parameters used for prediction (e.g. the EMA parameters).
        header: extra JSON-able metadata (training config, epoch, history).
        arrays: extra pytrees to store (optimiser state, raw parameters).

    Raises:
        OSError: the write failed (on process 0: its own error; on the other
            processes: an error naming process 0 and ``path``).
    """
    meta = {"model": spec.to_dict(), **(header or {})}
    params, arrays = parallel.to_host((params, dict(arrays or {})))
    if jax.process_count() == 1:
        write_checkpoint_file(path, meta, params, arrays)
        return
    error = None
    if jax.process_index() == 0:
        try:
            write_checkpoint_file(path, meta, params, arrays)
        except Exception as err:  # raised below, after the others are told
            error = err
    written = parallel.process_values(np.int32(error is None))[0]
    if error is not None:
        raise error
    if not written:
        raise OSError(
            f"process 0 failed to write the checkpoint {os.fspath(path)!r}; its "
            "log has the error"
        )


def read(path) -> tuple[dict, dict]:
    """Raw ``(meta, payload)`` of a checkpoint file, with a version check."""
    return read_checkpoint_file(path)


def resume_point(path) -> tuple[dict, dict] | None:
    """The checkpoint a run resumes from, ``(meta, payload)``, or ``None``.

    Every process reads ``path`` (``None`` where it does not exist). In a
    multi-process run the processes then compare (a collective) whether they
    found it and a CRC-32 of its bytes, so they all resume from the same state
    or all start afresh; processes that disagree, e.g. because the output
    directory is local to each host, would otherwise deadlock or mix states.

    Args:
        path: the checkpoint file (``checkpoint.msgpack``,
            ``ensemble_checkpoint.msgpack``).

    Returns:
        ``(meta, payload)`` as :func:`read` gives, or ``None``.

    Raises:
        ConfigError: an unreadable file, or processes that see different
            files.

    Example:
        >>> resume_point("/nonexistent/checkpoint.msgpack") is None
        True
    """
    path = os.fspath(path)
    data = None
    if os.path.exists(path):
        with open(path, "rb") as fh:
            data = fh.read()
    if jax.process_count() > 1:
        mine = [data is not None, 0 if data is None else zlib.crc32(data) >> 1]
        seen = parallel.process_values(np.asarray(mine, np.int32))
        if not (seen == seen[0]).all():
            found = [p for p in range(len(seen)) if seen[p, 0]]
            raise ConfigError(
                f"the processes of this run see different checkpoints {path!r} "
                f"(present on processes {found} of {len(seen)}, CRC-32/2 "
                f"{seen[:, 1].tolist()}); put the output directory on a file "
                "system that every host shares"
            )
    return None if data is None else checkpoint_from_bytes(data, path)


def restore(target, state_dict):
    """Fill the pytree structure of ``target`` with arrays from a state dict."""
    return flax.serialization.from_state_dict(target, state_dict)


def load(path, dtype=None) -> Model:
    """Load a model from a checkpoint file or a training output directory.

    Args:
        path: ``model.msgpack`` (or any checkpoint file), or a directory that
            holds ``model.msgpack``.
        dtype: cast floating parameters to this dtype (default: as saved).

    Returns:
        :class:`Model` ``(potential, params)``.
    """
    meta, payload = read(path)
    if "ensemble" in meta:
        raise ConfigError(
            f"{os.fspath(path)!r} holds an ensemble of "
            f"{meta['ensemble'].get('n_members', '?')} stacked models; load it with "
            "mldiff.ensemble.load_ensemble"
        )
    spec = ModelSpec.from_dict(meta["model"])
    potential = build(spec)
    template = potential.init(jax.random.key(0), _probe_structure(spec.species[0]))
    params = restore(template, payload["params"])

    def cast(x):
        x = np.asarray(x)
        if dtype is not None and np.issubdtype(x.dtype, np.floating):
            x = x.astype(dtype)
        return jax.numpy.asarray(x)

    return Model(potential, jax.tree_util.tree_map(cast, params))


def _probe_structure(z: int):
    """A one-atom structure, only to get the parameter tree's shape."""
    from mldiff.structure import Structure

    return Structure.create([[0.0, 0.0, 0.0]], np.eye(3) * 10.0, [z])


def data_fingerprint(train_items: Sequence, val_items: Sequence) -> dict:
    """SHA-256 digests of the training and validation structures and labels.

    Stored in checkpoints so that a resumed run refuses data other than its
    own (it would continue the old optimiser state and report stale metrics).
    """

    def digest(items):
        h = hashlib.sha256()
        for it in items:
            s = it.structure
            for part in (s.numbers, s.positions, s.cell, it.forces, it.stress):
                if part is not None:
                    h.update(np.ascontiguousarray(np.asarray(part, np.float64)))
            h.update(repr(it.energy).encode())
        return h.hexdigest()[:32]

    return {"train": digest(train_items), "validation": digest(val_items)}
