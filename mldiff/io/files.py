"""Atomic writes, JSON results and mldiff's checkpoint file layout.

Every file mldiff writes for later (results, checkpoints, caches) goes through
:func:`atomic_write` (JSON results through :func:`write_json`): it goes to a
temporary name in the target's directory, is flushed, fsynced and renamed over
the target, so a kill at any moment leaves either the old or the new file,
never a torn one. The file gets the permissions a plain ``open()`` would give
it, ``0666`` less the umask, so colleagues sharing a cluster directory can read
results written under a ``022`` or ``002`` umask.

Temporary names. A write to ``dir/NAME`` goes through
``dir/.tmp-NAME~HOST~PIDNS~PID~XXXXXXXX.part`` (``HOST`` the writer's host
name, ``PIDNS`` its Linux PID-namespace id or empty, ``PID`` its process id,
``XXXXXXXX`` random; ``NAME`` is replaced by a SHA-256 prefix when longer than
100 bytes). A writer killed before its rename (``SIGKILL``, out-of-memory
killer, a job's time limit) leaves that file behind. The first time a process
writes into a directory, it removes the stale temporaries there
(:func:`remove_stale_parts`): those of a dead process of the same host and PID
namespace, and any untouched for :data:`STALE_PART_SECONDS` (an hour), which
covers writers on other hosts of a shared file system and the names
``.tmp-XXXXXXXX.part`` of earlier mldiff versions. A live concurrent
writer's temporary is never removed: its process exists, and while it writes,
its file's modification time is fresh.

A checkpoint file is one msgpack document: ``{"meta": JSON text, "params":
arrays, "arrays": {name: arrays}}``. ``meta`` carries ``format_version`` and the
model specification (``meta["model"]``); :mod:`mldiff.training.checkpoint`
builds models from it. The layout lives here, below the models, so that any
layer (a potential's converted-parameter cache, training, ensembles) writes the
same format. Writing it here is a single-process operation; a multi-process
(``jax.distributed``) run saves through :func:`mldiff.training.checkpoint.save`,
which gathers sharded arrays and writes once.
"""

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import time

import flax.serialization
import jax
import numpy as np

from mldiff.errors import ConfigError

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "STALE_PART_SECONDS",
    "atomic_write",
    "to_jsonable",
    "write_json",
    "remove_stale_parts",
    "write_checkpoint_file",
    "read_checkpoint_file",
    "checkpoint_from_bytes",
]

CHECKPOINT_FORMAT_VERSION = 1

# a temporary untouched this long belongs to a dead writer, whoever wrote it: a
# live writer's file changes as it writes and is renamed right after its fsync
STALE_PART_SECONDS = 3600.0

_PREFIX, _SUFFIX, _SEP = ".tmp-", ".part", "~"
_LEGACY = re.compile(r"\.tmp-[a-z0-9_]{8}\.part")  # tempfile.mkstemp's names
# directories this process has swept of stale temporaries: once each, as the
# sweep lists the directory and a screening run writes thousands of chunk files
# into one; it changes no file's content
_swept: set[str] = set()


def _umask() -> int:
    """This process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe)
    os.umask(mask)
    return mask


def _key(name: str) -> str:
    if len(name.encode()) <= 100:
        return name
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _owner() -> tuple[str, str, str]:
    """``(host, pid namespace, pid)`` of this process, as written in temp names."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    return host, namespace, str(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid: keep the file
    return True


def remove_stale_parts(
    directory: str | os.PathLike,
    max_age_s: float = STALE_PART_SECONDS,
    *,
    target: str | None = None,
) -> list[str]:
    """Remove temporaries in ``directory`` left by writers killed before renaming.

    A temporary ``.tmp-NAME~HOST~PIDNS~PID~XXXXXXXX.part`` is stale when its
    writer ran on this host, in this PID namespace, and that process no longer
    exists; or when the file has not been modified for ``max_age_s`` (writers
    on other hosts, whose processes cannot be checked, and a reused pid).
    Old-style names ``.tmp-XXXXXXXX.part``, which do not say their target, are
    removed after ``max_age_s`` only. A live writer's temporary is kept: its
    process exists and its file is fresh.

    Args:
        directory: where to look (it need not exist).
        max_age_s: age, in seconds since the last modification, beyond which
            any temporary counts as abandoned.
        target: only the temporaries of this file name (default: of any).

    Returns:
        The paths removed.

    Example:
        >>> import pathlib, tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> dead = d / ".tmp-x.json~otherhost~~1~abcdefgh.part"  # another host
        >>> _ = dead.write_bytes(b"torn")
        >>> remove_stale_parts(d)  # fresh: its writer may be alive
        []
        >>> [pathlib.Path(p).name for p in remove_stale_parts(d, 0.0)]
        ['.tmp-x.json~otherhost~~1~abcdefgh.part']
    """
    directory = os.fspath(directory)
    key = None if target is None else _key(os.path.basename(target))
    host, namespace, _ = _owner()
    now = time.time()
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)):
            continue
        parts = name[len(_PREFIX) : -len(_SUFFIX)].rsplit(_SEP, 4)
        legacy = _LEGACY.fullmatch(name) is not None
        if not legacy and (len(parts) != 5 or key not in (None, parts[0])):
            continue  # not a name of ours, or another target's
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue  # renamed or removed meanwhile
        stale = age > max_age_s
        if not legacy and not stale and parts[1:3] == [host, namespace]:
            stale = parts[3].isdigit() and not _alive(int(parts[3]))
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically.

    The data go to a temporary sibling (named as in the module docstring),
    are flushed and fsynced, and the temporary is renamed over ``path``: a
    kill at any moment leaves the old file or the new one. The file gets the
    permissions ``open()`` would give it, ``0o666 & ~umask``. The first write
    of a process into a directory then removes the stale temporaries there
    (:func:`remove_stale_parts`); a failure to remove them does not fail the
    write.

    Args:
        path: the target file; its directory is created if missing.
        data: the new content.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> atomic_write(p, "ok"); p.read_text()
        'ok'
    """
    path = os.path.abspath(os.fspath(path))
    if isinstance(data, str):
        data = data.encode()
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    prefix = _SEP.join((_PREFIX + _key(name), *_owner(), ""))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if directory not in _swept:
        _swept.add(directory)
        with contextlib.suppress(OSError):
            remove_stale_parts(directory)


def to_jsonable(obj):
    """Arrays → nested lists, NumPy scalars → Python numbers, recursively.

    Example:
        >>> to_jsonable({"a": np.arange(2), "b": (np.float64(1.5),)})
        {'a': [0, 1], 'b': [1.5]}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # NumPy or JAX
        return np.asarray(obj).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path: str | os.PathLike, obj, *, indent: int = 1) -> None:
    """Write ``obj`` as JSON with a final newline, atomically (:func:`atomic_write`).

    Arrays become nested lists (:func:`to_jsonable`); the units belong in the
    keys (``frequencies_thz``).

    Args:
        path: the target file; its directory is created if missing.
        obj: a dictionary (or list) of numbers, strings, arrays and nested ones.
        indent: JSON indentation, spaces.

    Example:
        >>> import json, pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.json"
        >>> write_json(p, {"t_k": np.array([300.0])}); json.loads(p.read_text())
        {'t_k': [300.0]}
    """
    atomic_write(path, json.dumps(to_jsonable(obj), indent=indent) + "\n")


def _to_numpy(tree):
    def leaf(x):
        if isinstance(x, jax.Array) and not (
            x.is_fully_addressable or x.sharding.is_fully_replicated
        ):
            raise ConfigError(
                f"an array of shape {x.shape} is sharded over devices of several "
                "processes and cannot be written from one; save through "
                "mldiff.training.checkpoint.save (which gathers it) or gather it "
                "with mldiff.parallel.to_host first"
            )
        return np.asarray(x)

    return jax.tree_util.tree_map(leaf, flax.serialization.to_state_dict(tree))


def write_checkpoint_file(path, meta: dict, params, arrays: dict | None = None) -> None:
    """Write a checkpoint file atomically, from this process.

    Args:
        path: file to write (conventionally ``*.msgpack``).
        meta: JSON-able header; ``format_version`` is added.
        params: parameter pytree (stored as NumPy arrays).
        arrays: further named pytrees (optimiser state, raw parameters).

    Raises:
        ConfigError: a leaf is sharded over several processes' devices (a
            multi-process run saves through
            :func:`mldiff.training.checkpoint.save`).
    """
    meta = {"format_version": CHECKPOINT_FORMAT_VERSION, **meta}
    payload = {
        "meta": json.dumps(meta),
        "params": _to_numpy(params),
        "arrays": {k: _to_numpy(v) for k, v in (arrays or {}).items()},
    }
    atomic_write(path, flax.serialization.msgpack_serialize(payload))


def _resolve(path) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.msgpack")
    return path


def checkpoint_from_bytes(data: bytes, source: str = "<bytes>") -> tuple[dict, dict]:
    """``(meta, payload)`` of a checkpoint file's content, with a version check.

    Args:
        data: the bytes of a checkpoint file.
        source: where they came from, for error messages.

    Raises:
        ConfigError: unreadable bytes or another format version.
    """
    try:
        payload = flax.serialization.msgpack_restore(data)
        meta = json.loads(payload["meta"])
    except Exception as err:
        raise ConfigError(
            f"{source!r} is not a readable mldiff checkpoint: {err}"
        ) from err
    version = meta.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ConfigError(
            f"checkpoint {source!r} has format version {version}; this mldiff reads "
            f"version {CHECKPOINT_FORMAT_VERSION}"
        )
    return meta, payload


def read_checkpoint_file(path) -> tuple[dict, dict]:
    """``(meta, payload)`` of a checkpoint file, with a format-version check.

    Args:
        path: the file, or a directory holding ``model.msgpack``.

    Raises:
        ConfigError: if the file is missing, unreadable or of another version.
    """
    path = _resolve(path)
    if not os.path.exists(path):
        raise ConfigError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as fh:
        return checkpoint_from_bytes(fh.read(), path)
