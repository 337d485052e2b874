"""Experimental formation enthalpies shipped with pymatgen, and a split by system.

pymatgen ships ``pymatgen/analysis/compatibility/exp_compounds.json.gz``
(used to fit its energy corrections): 2135 compounds, each with ``formula``,
``exp energy`` (standard formation enthalpy ΔHf° at 298 K, **eV per formula
unit** as written), ``uncertainty`` (eV per formula unit, NaN for 301 entries)
and ``mpid``. :func:`experimental_formation_enthalpies` divides both by the
atoms per formula unit to give eV/atom.

Duplicates: no two entries of the shipped file share a reduced formula. Should
a file hold duplicates, the entry with the smallest finite uncertainty is kept
(the first one on ties, entries without uncertainty last). Entries with a
non-finite enthalpy are dropped.

:func:`split_by_chemical_system` keeps whole chemical systems (the sorted
element set, ``"Fe-O"``) on one side, so that test systems are unseen. Systems
are compared exactly: ``"Fe-O"`` and ``"Fe-O-Si"`` are different systems and
may fall on different sides (a test ternary may have its binaries in
training).

Example:
    >>> t = experimental_formation_enthalpies()
    >>> len(t), list(t.columns[:3])
    (2135, ['formula', 'enthalpy_ev_per_atom', 'uncertainty_ev_per_atom'])
    >>> train, test = split_by_chemical_system(t["chemical_system"], seed=0)
    >>> len(set(t["chemical_system"][train]) & set(t["chemical_system"][test]))
    0
"""

import gzip
import json
import os
import warnings
from collections.abc import Iterable

import numpy as np

from mldiff.errors import DataError

__all__ = [
    "experimental_formation_enthalpies",
    "split_by_chemical_system",
    "default_path",
]


def default_path() -> str:
    """Path of ``exp_compounds.json.gz`` inside the installed pymatgen."""
    import pymatgen.core

    root = os.path.dirname(os.path.dirname(pymatgen.core.__file__))
    return os.path.join(root, "analysis", "compatibility", "exp_compounds.json.gz")


def _read(path: str) -> list[dict]:
    if not os.path.exists(path):
        raise DataError(
            f"experimental enthalpy file {path!r} does not exist; install pymatgen "
            "(it ships analysis/compatibility/exp_compounds.json.gz) or pass path="
        )
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        entries = json.load(fh)
    for key in ("formula", "exp energy"):
        if entries and key not in entries[0]:
            raise DataError(
                f"{path!r} entries lack the key {key!r} (found {sorted(entries[0])}); "
                "expected pymatgen's exp_compounds.json format"
            )
    return entries


def _uncertainty_rank(u: float) -> float:
    return u if np.isfinite(u) else np.inf


def experimental_formation_enthalpies(path: str | None = None):
    """Experimental formation enthalpies per atom (pymatgen's compilation).

    Args:
        path: a JSON (optionally gzipped) list of ``{"formula", "exp energy",
            "uncertainty", "mpid"}`` entries in eV per formula unit; default
            the file pymatgen ships (:func:`default_path`).

    Returns:
        pandas DataFrame, one row per reduced formula, in file order, columns:
        ``formula`` (reduced formula), ``enthalpy_ev_per_atom`` (ΔHf°, eV/atom),
        ``uncertainty_ev_per_atom`` (eV/atom, NaN where the file has none),
        ``chemical_system`` (sorted element symbols joined by ``-``), ``mpid``
        (Materials Project id or None) and ``n_atoms`` (atoms per formula unit
        of the file's formula).

    Raises:
        DataError: missing file, unexpected format, or an unparsable formula.

    Example:
        >>> t = experimental_formation_enthalpies()
        >>> row = t[t["formula"] == "NaCl"].iloc[0]
        >>> round(float(row["enthalpy_ev_per_atom"]), 4), row["chemical_system"]
        (-2.1314, 'Cl-Na')
    """
    import pandas as pd
    from pymatgen.core import Composition

    path = default_path() if path is None else path
    rows: dict[str, dict] = {}
    for entry in _read(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                comp = Composition(entry["formula"])
        except Exception as err:
            raise DataError(
                f"cannot parse formula {entry['formula']!r} in {path!r}: {err}"
            ) from None
        energy = float(entry["exp energy"])
        if not np.isfinite(energy):
            continue
        u = entry.get("uncertainty")
        u = float("nan") if u is None else float(u)
        n = float(comp.num_atoms)
        row = {
            "formula": comp.reduced_formula,
            "enthalpy_ev_per_atom": energy / n,
            "uncertainty_ev_per_atom": u / n,
            "chemical_system": comp.chemical_system,
            "mpid": entry.get("mpid"),
            "n_atoms": n,
        }
        old = rows.get(row["formula"])
        if old is None or _uncertainty_rank(row["uncertainty_ev_per_atom"]) < (
            _uncertainty_rank(old["uncertainty_ev_per_atom"])
        ):
            rows[row["formula"]] = row
    return pd.DataFrame(list(rows.values())).reset_index(drop=True)


def split_by_chemical_system(
    chemical_systems: Iterable[str], test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train / test indices with every chemical system wholly on one side.

    The distinct systems are shuffled with ``seed``; systems are moved to the
    test side in that order while doing so brings the test count closer to
    ``test_fraction · n`` (so the share is approximate).

    Args:
        chemical_systems: one system label per compound, e.g. ``"Fe-O"``
            (compared exactly as strings).
        test_fraction: target share of compounds in the test set, in (0, 1).
        seed: seed of the shuffle; the same seed gives the same split.

    Returns:
        ``(train [n_train], test [n_test])`` sorted int64 index arrays,
        disjoint, together covering ``range(n)``.

    Raises:
        DataError: ``test_fraction`` outside (0, 1) or no compounds.

    Example:
        >>> tr, te = split_by_chemical_system(["A-B", "A-B", "C", "D", "E"], 0.4)
        >>> len(tr) + len(te), len(te)
        (5, 2)
    """
    systems = np.asarray([str(s) for s in chemical_systems])
    if systems.size == 0:
        raise DataError("split_by_chemical_system needs at least one compound")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(
            f"test_fraction must lie in (0, 1), got {test_fraction!r}; e.g. 0.2"
        )
    unique, inverse, counts = np.unique(
        systems, return_inverse=True, return_counts=True
    )
    order = np.random.default_rng(seed).permutation(unique.size)
    target = test_fraction * systems.size
    in_test = np.zeros(unique.size, dtype=bool)
    n_test = 0
    for k in order:
        if abs(n_test + counts[k] - target) < abs(n_test - target):
            in_test[k] = True
            n_test += counts[k]
    test_mask = in_test[inverse]
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
