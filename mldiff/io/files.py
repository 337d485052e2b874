"""Atomic writes and mldiff's checkpoint file layout.

Every file mldiff writes for later (results, checkpoints, caches) goes to a
temporary name in the target's directory, is flushed, fsynced and renamed over
the target, so a kill at any moment leaves either the old or the new file,
never a torn one.

A checkpoint file is one msgpack document: ``{"meta": JSON text, "params":
arrays, "arrays": {name: arrays}}``. ``meta`` carries ``format_version`` and the
model specification (``meta["model"]``); :mod:`mldiff.training.checkpoint`
builds models from it. The layout lives here, below the models, so that any
layer (a potential's converted-parameter cache, training, ensembles) writes the
same format.
"""

import json
import os
import tempfile

import flax.serialization
import jax
import numpy as np

from mldiff.errors import ConfigError

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "atomic_write",
    "write_checkpoint_file",
    "read_checkpoint_file",
]

CHECKPOINT_FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically.

    The file gets the permissions ``open()`` would give it (0666 less the umask).

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> atomic_write(p, "ok"); p.read_text()
        'ok'
    """
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(tree))


def write_checkpoint_file(path, meta: dict, params, arrays: dict | None = None) -> None:
    """Write a checkpoint file atomically.

    Args:
        path: file to write (conventionally ``*.msgpack``).
        meta: JSON-able header; ``format_version`` is added.
        params: parameter pytree (stored as NumPy arrays).
        arrays: further named pytrees (optimiser state, raw parameters).
    """
    meta = {"format_version": CHECKPOINT_FORMAT_VERSION, **meta}
    payload = {
        "meta": json.dumps(meta),
        "params": _to_numpy(params),
        "arrays": {k: _to_numpy(v) for k, v in (arrays or {}).items()},
    }
    atomic_write(path, flax.serialization.msgpack_serialize(payload))


def read_checkpoint_file(path) -> tuple[dict, dict]:
    """``(meta, payload)`` of a checkpoint file, with a format-version check.

    Args:
        path: the file, or a directory holding ``model.msgpack``.

    Raises:
        ConfigError: if the file is missing, unreadable or of another version.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.msgpack")
    if not os.path.exists(path):
        raise ConfigError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as fh:
        try:
            payload = flax.serialization.msgpack_restore(fh.read())
            meta = json.loads(payload["meta"])
        except Exception as err:
            raise ConfigError(
                f"{path!r} is not a readable mldiff checkpoint: {err}"
            ) from err
    version = meta.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ConfigError(
            f"checkpoint {path!r} has format version {version}; this mldiff reads "
            f"version {CHECKPOINT_FORMAT_VERSION}"
        )
    return meta, payload
