"""Computed transport properties of Materials Project compounds, shipped by matminer.

matminer ships ``matminer/utils/data_files/mp_transport/transport_database.tar.xz``,
one ``transport_database.csv`` of 47,737 rows (34,631 distinct formulas) from
BoltzTraP calculations on Materials Project band structures (Ricci et al.), at
300 K and a carrier concentration of 10²⁰ cm⁻³, for p- and n-type doping:

- ``mp_id``, ``pretty_formula``;
- ``sigma_p``, ``sigma_n``: electrical conductivity, 1/(Ω·m);
- ``S_p``, ``S_n``: Seebeck coefficient, µV/K;
- ``kappa_p``, ``kappa_n``: electronic thermal conductivity, W/(m·K);
- ``PF_p``, ``PF_n``: power factor, µW/(cm·K²);
- ``m_p``, ``m_n``: conductivity effective mass, electron masses.

These are the *computed* labels of :mod:`mldiff.transfer`'s composition-level
demonstration: many, cheap and only loosely related to formation enthalpies.

References:
    F. Ricci, W. Chen, U. Aydemir, G. J. Snyder, G.-M. Rignanese, A. Jain and
    G. Hautier, "An ab initio electronic transport database for inorganic
    materials", Sci. Data 4, 170085 (2017).

Example:
    >>> t = transport_database()
    >>> t.shape, t.columns[1]
    ((47737, 12), 'pretty_formula')
"""

import functools
import os
import tarfile

from mldiff.errors import DataError

__all__ = ["transport_database", "default_transport_path"]

_MEMBER = "transport_database.csv"


def default_transport_path() -> str:
    """Path of ``transport_database.tar.xz`` inside the installed matminer."""
    import importlib.util

    spec = importlib.util.find_spec("matminer")
    if spec is None or spec.origin is None:
        raise DataError(
            "matminer is not installed; install it (pip install matminer) or pass "
            "path= to a copy of transport_database.tar.xz"
        )
    root = os.path.dirname(spec.origin)
    return os.path.join(
        root, "utils", "data_files", "mp_transport", "transport_database.tar.xz"
    )


@functools.lru_cache(maxsize=2)
def _read(path: str):
    import pandas as pd

    if not os.path.exists(path):
        raise DataError(
            f"transport database {path!r} does not exist; install matminer (it "
            "ships utils/data_files/mp_transport/transport_database.tar.xz) or "
            "pass path="
        )
    with tarfile.open(path) as archive:
        try:
            member = archive.getmember(_MEMBER)
        except KeyError:
            raise DataError(
                f"{path!r} holds no {_MEMBER}; pass the matminer archive"
            ) from None
        return pd.read_csv(archive.extractfile(member))


def transport_database(path: str | None = None):
    """The raw transport table (one row per Materials Project entry).

    Read once per process (about 4 s) and cached; a copy is returned, so
    changing it does not change later calls.

    Args:
        path: the ``.tar.xz`` archive (default: matminer's shipped one).

    Returns:
        pandas DataFrame with columns ``mp_id, pretty_formula, sigma_p,
        sigma_n, S_p, S_n, kappa_p, kappa_n, PF_p, PF_n, m_p, m_n`` (units in
        the module docstring).

    Raises:
        DataError: the archive is missing or holds no ``transport_database.csv``.
    """
    return _read(os.fspath(path or default_transport_path())).copy()
