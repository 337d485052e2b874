"""Helpers shared by subcommands: checked arguments, output paths, structures.

The command line checks its input at the boundary, before any computation:
numbers through the argparse types below (:func:`positive_int`, …), output
paths through :func:`add_output_argument` (checked by
:func:`check_arguments` before the command runs: an existing file where a
folder is wanted, or a folder that cannot be written, is refused at once) and
structure files through :func:`read_atoms`. Output folders a failed command
created are removed again (:func:`remove_created_folders`), so a refused or
failed run leaves nothing behind.
"""

import argparse
import math
import os
import tempfile

import numpy as np

from mldiff.errors import ConfigError

_created_folders: list[str] = []  # folders made by this command, deepest last


def _number(kind, test, condition):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"must be {condition}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "≥ 0")
positive_float = _number(float, lambda v: v > 0, "> 0")
nonnegative_float = _number(float, lambda v: v >= 0, "≥ 0")
finite_float = _number(float, lambda v: True, "finite")


def add_output_argument(parser, flag="--out", *, kind="folder", **kwargs) -> None:
    """Add an output path argument that is checked before the command runs.

    Args:
        parser: the subcommand's parser.
        flag: option name, e.g. ``"--out"``.
        kind: ``"folder"`` (created at once, removed again if the command
            fails and left it empty) or ``"file"`` (its folder is created).
        **kwargs: passed to ``add_argument`` (``help``, ``required``, …).
    """
    action = parser.add_argument(flag, **kwargs)
    declared = list(parser.get_default("_outputs") or [])
    parser.set_defaults(_outputs=[*declared, (action.dest, flag, kind)])


def check_arguments(args) -> None:
    """Check the declared output paths of ``args`` (see :func:`add_output_argument`)."""
    for dest, flag, kind in getattr(args, "_outputs", None) or ():
        path = getattr(args, dest, None)
        if path is None:
            continue
        if kind == "folder":
            setattr(args, dest, output_folder(path, flag))
        else:
            setattr(args, dest, output_file(path, flag))


def output_folder(path, flag="--out") -> str:
    """Create the output folder ``path`` (if new) and check it can be written.

    Returns:
        The absolute path.

    Raises:
        ConfigError: ``path`` is an existing file, or the folder cannot be
            created or written (permissions, read-only file system).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"{flag} {path!r} is an existing file, not a folder; give a folder path"
        )
    missing = []
    head = path
    while not os.path.exists(head):
        missing.append(head)
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise ConfigError(
            f"{flag} {path!r}: {head!r} is a file, so no folder can be made under "
            "it; choose another path"
        )
    try:
        os.makedirs(path, exist_ok=True)
        _created_folders.extend(reversed(missing))
        fd, probe = tempfile.mkstemp(dir=path, prefix=".mldiff-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        remove_created_folders()
        raise ConfigError(
            f"{flag} {path!r} cannot be written ({err.strerror}); choose a folder "
            "you can write to"
        ) from None
    return path


def output_file(path, flag="--out") -> str:
    """Check that the output file ``path`` can be written; create its folder.

    Returns:
        The absolute path.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path!r} is a folder; give a file name")
    output_folder(os.path.dirname(path), flag=f"{flag} folder")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path!r} exists and cannot be overwritten")
    return path


def remove_created_folders() -> None:
    """Remove the folders this command created, where they are still empty."""
    while _created_folders:
        folder = _created_folders.pop()
        try:
            os.rmdir(folder)  # only succeeds on an empty folder
        except OSError:
            pass


def forget_created_folders() -> None:
    """After a command: its folders stay (success) or were removed (failure)."""
    _created_folders.clear()


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error at the boundary (a file problem)."""
    where = f" {err.filename!r}" if err.filename else ""
    return (
        f"cannot access{where}: {err.strerror or err}; check the path and its "
        "permissions"
    )


def read_config(path: str, sections: dict[str, type | tuple]) -> dict:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) config file and check its shape.

    Args:
        path: the file.
        sections: every allowed top-level key and the Python type(s) its value
            must have (a misspelt key such as ``orcale`` would otherwise be
            ignored silently and its default used).

    Returns:
        The mapping.

    Raises:
        ConfigError: a missing or unparsable file, a top level that is not a
            mapping, an unknown key or a value of the wrong type.
    """
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        if str(path).endswith(".toml"):
            import tomllib

            cfg = tomllib.loads(raw.decode())
        else:
            import yaml

            cfg = yaml.safe_load(raw)
    except Exception as err:  # YAML and TOML raise their own error types
        detail = " ".join(str(err).split())  # YAML's messages span lines
        raise ConfigError(f"could not parse config {path!r}: {detail}") from None
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections "
            f"({', '.join(sections)}), got a {type(cfg).__name__}"
        )
    check_keys(cfg, sections, path)
    return cfg


def check_keys(mapping: dict, allowed: dict[str, type | tuple], where: str) -> None:
    """Refuse keys of ``mapping`` not in ``allowed`` and values of the wrong type."""
    import difflib

    for key, value in mapping.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint} (allowed: {', '.join(allowed)})"
            )
        kinds = allowed[key]
        if value is not None and not isinstance(value, kinds):
            kinds = kinds if isinstance(kinds, tuple) else (kinds,)
            wanted = " or ".join(
                {"dict": "a mapping", "str": "a string", "list": "a list"}.get(
                    k.__name__, k.__name__
                )
                for k in kinds
            )
            raise ConfigError(
                f"{where}: {key!r} must be {wanted}, got {type(value).__name__} "
                f"{value!r}"
            )


def _split_index(path) -> tuple[str, str]:
    """``"FILE@INDEX"`` → ``("FILE", "INDEX")``; a path that exists is taken whole."""
    path = str(path)
    if "@" not in path or os.path.exists(path):
        return path, ""
    name, _, index = path.rpartition("@")
    return name, index


def read_atoms(path: str):
    """Read a one-structure file that ASE reads (extxyz, CIF, POSCAR, …).

    A file with several frames is refused (the command would silently use one
    of them): ``FILE@INDEX`` picks a frame, as in ASE.
    """
    frames = read_frames(path)
    if len(frames) != 1:
        raise ConfigError(
            f"{path!r} holds {len(frames)} structures; this command takes one: "
            "pick a frame with FILE@INDEX (e.g. FILE@0, or FILE@-1 for the last)"
        )
    return frames[0]


def read_frames(path: str) -> list:
    """Every structure of a file (``FILE@SLICE`` as in ASE), at least one."""
    from ase.io import read

    name, index = _split_index(path)
    if not os.path.exists(name):
        raise ConfigError(f"structure file {name!r} does not exist")
    try:
        frames = read(name, index=index or ":")
    except Exception as err:  # ASE raises many types for unreadable files
        raise ConfigError(f"could not read structure file {path!r}: {err}") from err
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ConfigError(f"{path!r} holds no structure")
    return frames


LEARNED_ARCHITECTURES = ("nequip", "mace")


def potential_name(text: str) -> str:
    """``--potential`` value; an untrained architecture name is refused.

    ``nequip`` or ``mace`` alone would mean random parameters and meaningless
    numbers; a trained model is a checkpoint path.
    """
    if text.lower() in LEARNED_ARCHITECTURES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is an untrained architecture; pass a trained checkpoint "
            "(model.msgpack from 'mldiff train') or a reference or pretrained "
            "potential name"
        )
    return text


def potential_and_params(name, structure):
    """``(Potential, params)`` for ``--potential`` on ``structure``.

    A reference or pretrained name, or a checkpoint path. An untrained
    architecture name (``nequip``, ``mace``) is refused: its random
    parameters would give meaningless numbers.
    """
    import jax

    from mldiff.ase import resolve_potential
    from mldiff.potentials import check_species

    potential, params = resolve_potential(name)
    check_species(potential, np.asarray(structure.numbers))
    if params is None:
        params = potential.init(jax.random.key(0), structure)
    return potential, params


def add_potential_argument(parser) -> None:
    """``--potential NAME`` (default emt)."""
    from mldiff import potentials

    names = [n for n in potentials.available() if n not in LEARNED_ARCHITECTURES]
    parser.add_argument(
        "--potential",
        default="emt",
        type=potential_name,
        help=f"potential ({', '.join(names)}; "
        "'sevennet-mf-0:PBE' picks a modality) or checkpoint path (mldiff "
        "*.msgpack or SevenNet *.pth) (default: emt)",
    )


def summary_lines(atoms) -> list[str]:
    """Energy, max force and stress of ``atoms`` (with a calculator) as text."""
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    lines = [
        f"atoms             {len(atoms)}",
        f"energy            {e: .6f} eV  ({e / len(atoms): .6f} eV/atom)",
        f"max |force|       {np.linalg.norm(f, axis=1).max(): .3e} eV/Å",
    ]
    if atoms.pbc.all():
        from mldiff.units import eV_per_A3_to_GPa

        s = atoms.get_stress() * eV_per_A3_to_GPa
        lines.append(
            "stress (GPa)      "
            + " ".join(f"{x: .4f}" for x in s)
            + "  (xx yy zz yz xz xy)"
        )
    return lines
