"""Universal potentials: pretrained SevenNet models, converted once and cached.

``sevennet("sevennet-0")`` (or a path to any SevenNet ``*.pth`` checkpoint)
returns a :class:`~mldiff.potentials.Potential` whose ``init`` gives the
pretrained parameters, so it drops into every mldiff workflow:
``potentials.get("sevennet-0")``, ``mldiff.ase.Calculator("sevennet-0")`` and
every ``--potential`` of the ``mldiff`` command.

The first load of a checkpoint reads it with torch and sevenn (the
``universal`` extra) and writes the converted parameters in mldiff's own
checkpoint format to the cache; later loads read only that file, so they need
neither torch nor sevenn (``mldiff.load`` reads it too). The cache directory
is ``$MLDIFF_CACHE_DIR/sevennet`` (default ``~/.cache/mldiff/sevennet``); a
cached file is named for the model, the SHA-256 of its checkpoint and the
converter's version, so a changed checkpoint or converter converts again.

The pretrained checkpoints ship inside the ``sevenn`` wheel; nothing is
downloaded.

Example:
    >>> from mldiff.potentials import universal
    >>> sorted(universal.PRETRAINED)[:2]
    ['sevennet-0', 'sevennet-0-22may2024']
"""

import functools
import hashlib
import importlib.util
import os
import re

from mldiff.errors import ConfigError
from mldiff.io.files import read_checkpoint_file, write_checkpoint_file
from mldiff.potentials._base import Potential
from mldiff.potentials.sevennet_model import SevenNetConfig, sevennet_model

__all__ = [
    "PRETRAINED",
    "sevennet",
    "converted_checkpoint",
    "cache_dir",
    "pretrained_path",
]

# bumped when the converted file's content changes, so older caches are redone
CONVERTER_VERSION = 2

# name -> checkpoint inside the sevenn wheel (sevenn/pretrained_potentials/...)
PRETRAINED = {
    "sevennet-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "sevennet-0-22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "sevennet-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "sevennet-mf-0": "SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
}
_ALIASES = {
    "sevennet-0-11jul2024": "sevennet-0",
    "7net-0": "sevennet-0",
    "7net-l3i5": "sevennet-l3i5",
    "7net-mf-0": "sevennet-mf-0",
}


def cache_dir() -> str:
    """Where converted SevenNet models are kept (see the module docstring)."""
    root = os.environ.get("MLDIFF_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "mldiff"
    )
    return os.path.join(root, "sevennet")


def canonical_name(name: str) -> str | None:
    """The :data:`PRETRAINED` key for ``name`` (any case, ``_`` or ``-``), or None."""
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    return key if key in PRETRAINED else None


def pretrained_path(name: str) -> str | None:
    """Path of a pretrained checkpoint inside the installed sevenn, or None.

    Finds the package without importing it (importing sevenn imports torch).
    """
    spec = importlib.util.find_spec("sevenn")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "pretrained_potentials", PRETRAINED[name])
    return path if os.path.isfile(path) else None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _convert(checkpoint: str, target: str, label: str) -> None:
    from mldiff.potentials._sevennet_convert import read_sevennet_checkpoint

    config, species, params = read_sevennet_checkpoint(checkpoint)
    meta = {
        "model": {
            "name": "sevennet",
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in config.items()
            },
            "species": list(species),
            "atomic_energies": {str(z): 0.0 for z in species},
            "scale": 1.0,
            "shift": 0.0,
        },
        "source": {"checkpoint": os.path.abspath(checkpoint), "name": label},
    }
    write_checkpoint_file(target, meta, params)


def _cached_file(name_or_path: str) -> tuple[str, str]:
    """``(cached converted file, label)``, converting the checkpoint if needed."""
    name = canonical_name(name_or_path) if isinstance(name_or_path, str) else None
    if name is not None:
        checkpoint = pretrained_path(name)
        label = name
    else:
        checkpoint = os.fspath(name_or_path)
        if not os.path.isfile(checkpoint):
            raise ConfigError(
                f"{name_or_path!r} is neither a SevenNet checkpoint file nor a "
                f"pretrained model ({', '.join(sorted(PRETRAINED))})"
            )
        label = os.path.splitext(os.path.basename(checkpoint))[0]
        for known in PRETRAINED:  # a shipped checkpoint by path: its own name
            shipped = pretrained_path(known)
            if shipped and os.path.realpath(shipped) == os.path.realpath(checkpoint):
                label = known
    folder = cache_dir()
    if checkpoint is None:  # sevenn not installed: a cached conversion will do
        own = re.compile(
            rf"{re.escape(label)}-[0-9a-f]{{16}}-v{CONVERTER_VERSION}\.msgpack"
        )
        names = os.listdir(folder) if os.path.isdir(folder) else []
        found = sorted(os.path.join(folder, f) for f in names if own.fullmatch(f))
        if len(found) == 1:
            return found[0], label
        from mldiff.potentials._sevennet_convert import EXTRA_HINT

        raise ConfigError(
            f"{label}: no cached conversion in {folder} and sevenn is not "
            f"installed; {EXTRA_HINT}"
        )
    filename = f"{label}-{_sha256(checkpoint)[:16]}-v{CONVERTER_VERSION}.msgpack"
    target = os.path.join(folder, filename)
    if not os.path.isfile(target):
        _convert(checkpoint, target, label)
    return target, label


def converted_checkpoint(name_or_path: str | os.PathLike) -> str:
    """Path of the converted model in mldiff's checkpoint format (converting once).

    The file loads with ``mldiff.load`` (a single-fidelity model) and is what
    ``mldiff.transfer.finetune`` starts from.

    Args:
        name_or_path: a name of :data:`PRETRAINED` or a SevenNet ``*.pth`` path.
    """
    return _cached_file(name_or_path)[0]


def sevennet(
    name_or_path: str | os.PathLike = "sevennet-0",
    *,
    modality: str | None = None,
) -> Potential:
    """A pretrained SevenNet potential, ready to evaluate.

    Args:
        name_or_path: a name of :data:`PRETRAINED` (``"sevennet-0"``: SevenNet-0
            of 11 July 2024; ``"sevennet-0-22may2024"``; ``"sevennet-l3i5"``;
            ``"sevennet-mf-0"``) or the path of any SevenNet checkpoint file.
        modality: for a multi-fidelity model, the level of theory to evaluate
            (7net-MF-0: ``"PBE"`` or ``"R2SCAN"``); required there and refused
            for single-fidelity models.

    Returns:
        A :class:`~mldiff.potentials.Potential` named ``"sevennet"`` with
        ``cutoff`` 5 Å and the model's 89 elements as ``species``; its
        ``init(key, structure)`` returns the pretrained parameters in the
        structure's float dtype (the key is unused). SevenNet was trained in
        float32; float64 evaluation is supported and used for phonons.

    Raises:
        ConfigError: unknown name, missing file, missing or wrong ``modality``,
            or (first load only) torch/sevenn missing, naming the extra.
    """
    path, _ = _cached_file(name_or_path)
    return _potential_from_file(path, modality)


@functools.lru_cache(maxsize=8)
def _potential_from_file(path: str, modality: str | None) -> Potential:
    """One Potential per converted file and modality.

    Equal requests give the same object, so programs jitted on it (a second
    ``Calculator("sevennet-0")``, MD after phonons) are not compiled again; the
    file name carries the checkpoint's hash, so a changed checkpoint is a new
    entry.
    """
    meta, payload = read_checkpoint_file(path)
    model = meta["model"]
    config = SevenNetConfig(**_config_values(model["config"]), modality=modality)
    return sevennet_model(
        config, species=tuple(model["species"]), params=_params_tree(payload["params"])
    )


def _config_values(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _params_tree(state):
    """Msgpack state dict (lists stored as {"0": ...}) back to lists."""
    if isinstance(state, dict):
        if state and all(k.isdigit() for k in state):
            return [_params_tree(state[str(i)]) for i in range(len(state))]
        return {k: _params_tree(v) for k, v in state.items()}
    return state
