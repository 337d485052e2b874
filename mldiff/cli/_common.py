"""Helpers shared by subcommands: reading structures, building calculators."""

import numpy as np

from mldiff.errors import ConfigError


def read_atoms(path: str):
    """Read any ASE-readable structure file (extxyz, CIF, POSCAR, …)."""
    import os

    from ase.io import read

    if not os.path.exists(path):
        raise ConfigError(f"structure file {path!r} does not exist")
    try:
        return read(path)
    except Exception as err:  # ASE raises many types for unreadable files
        raise ConfigError(f"could not read structure file {path!r}: {err}") from err


def add_potential_argument(parser) -> None:
    """``--potential NAME`` (default emt)."""
    from mldiff import potentials

    parser.add_argument(
        "--potential",
        default="emt",
        help=f"potential ({', '.join(potentials.available())}; "
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
