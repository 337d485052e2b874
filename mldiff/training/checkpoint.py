"""Checkpoints: one msgpack file per save, written atomically, carrying its config.

A checkpoint holds a JSON header (format version, model spec, training config,
epoch, history) and the arrays (parameters, EMA parameters, optimiser state),
in the file layout of :mod:`mldiff.io.files`, written atomically: a kill at any
moment leaves either the old or the new checkpoint, never a torn one.
"""

import os
from typing import Any, NamedTuple

import flax.serialization
import jax
import numpy as np

from mldiff.errors import ConfigError
from mldiff.io.files import (
    CHECKPOINT_FORMAT_VERSION,
    atomic_write,
    read_checkpoint_file,
    write_checkpoint_file,
)
from mldiff.training.models import ModelSpec, build

__all__ = ["FORMAT_VERSION", "Model", "save", "read", "restore", "load", "atomic_write"]

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
    """Save a checkpoint atomically.

    Args:
        path: file to write (conventionally ``*.msgpack``).
        spec: how to rebuild the model.
        params: parameters used for prediction (e.g. the EMA parameters).
        header: extra JSON-able metadata (training config, epoch, history).
        arrays: extra pytrees to store (optimiser state, raw parameters).
    """
    meta = {"model": spec.to_dict(), **(header or {})}
    write_checkpoint_file(path, meta, params, arrays)


def read(path) -> tuple[dict, dict]:
    """Raw ``(meta, payload)`` of a checkpoint file, with a version check."""
    return read_checkpoint_file(path)


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
