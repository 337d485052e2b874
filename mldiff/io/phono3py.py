"""phono3py's ``fc3.hdf5`` (third-order force constants) and ``kappa-*.hdf5``.

phono3py stores the dataset ``"fc3"`` in eV/Å³ with the layout
``[n, n, n, 3, 3, 3]`` (full) or ``[p, n, n, 3, 3, 3]`` (compact: only the rows
of the ``p`` supercell atoms listed in the dataset ``"p2s_map"``); ours is
``[n, 3, n, 3, n, 3]``. Atom order is that of the supercell the tensor belongs
to: to hand over to phono3py, reorder to phonopy's supercell order first
(``perm`` from :func:`mldiff.io.phonopy.phonopy_order`, ``fc3[perm][:, :, perm]
[:, :, :, :, perm]``), or pass ``order=perm`` here.

The format is written with h5py (no phono3py import); the tests read the files
back with phono3py's own ``read_fc3_from_hdf5`` and write them with its
``write_fc3_to_hdf5``.

The mode-resolved thermal conductivity goes to phono3py's ``kappa-m{mesh}-s
{sigma}.hdf5`` (:func:`write_kappa`, :func:`kappa_filename`), with the
datasets of :func:`mldiff.phonons.kappa_modes.phono3py_datasets`.

References:
    phono3py 4.10 ``file_IO.py`` (``write_fc3_to_hdf5``, ``read_fc3_from_hdf5``,
    ``write_kappa_to_hdf5`` and its file names).

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> fc3 = np.arange(2.0 * 3 * 2 * 3 * 2 * 3).reshape(2, 3, 2, 3, 2, 3)
    >>> path = os.path.join(tempfile.mkdtemp(), "fc3.hdf5")
    >>> write_fc3(path, fc3)
    >>> bool(np.all(read_fc3(path) == fc3))
    True
"""

import io
import os

import numpy as np

from mldiff.errors import DataError
from mldiff.io.files import atomic_write

__all__ = [
    "write_fc3",
    "read_fc3",
    "to_phono3py_layout",
    "from_phono3py_layout",
    "kappa_filename",
    "write_kappa",
]


def to_phono3py_layout(fc3) -> np.ndarray:
    """``[n, 3, n, 3, n, 3]`` (ours) → ``[n, n, n, 3, 3, 3]`` (phono3py's).

    Example:
        >>> to_phono3py_layout(np.zeros((1, 3, 2, 3, 2, 3))).shape
        (1, 2, 2, 3, 3, 3)
    """
    return np.ascontiguousarray(np.transpose(np.asarray(fc3), (0, 2, 4, 1, 3, 5)))


def from_phono3py_layout(fc3) -> np.ndarray:
    """``[n, n, n, 3, 3, 3]`` (phono3py's) → ``[n, 3, n, 3, n, 3]`` (ours).

    Example:
        >>> from_phono3py_layout(np.zeros((1, 2, 2, 3, 3, 3))).shape
        (1, 3, 2, 3, 2, 3)
    """
    return np.ascontiguousarray(np.transpose(np.asarray(fc3), (0, 3, 1, 4, 2, 5)))


def write_fc3(path, fc3, *, p2s_map=None, order=None, compact: bool = False) -> None:
    """Write third-order force constants as phono3py's ``fc3.hdf5``.

    Args:
        path: output file.
        fc3: ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³.
        p2s_map: ``[p]`` supercell indices (in the written order) of the
            primitive atoms; stored as ``"p2s_map"``. Required for ``compact``.
        order: optional ``[n]`` permutation; the written atom ``k`` is our atom
            ``order[k]`` (e.g. :func:`mldiff.io.phonopy.phonopy_order`).
        compact: write only the ``p2s_map`` rows (``[p, n, n, 3, 3, 3]``).

    The file is written atomically (:func:`mldiff.io.files.atomic_write`).
    """
    a = np.asarray(fc3, np.float64)
    n = a.shape[0]
    if a.shape != (n, 3, n, 3, n, 3):
        raise DataError(
            f"fc3 must have shape (n, 3, n, 3, n, 3), got {a.shape}; use "
            "from_phono3py_layout for arrays in phono3py's (n, n, n, 3, 3, 3) layout"
        )
    if order is not None:
        perm = np.asarray(order, dtype=int)
        if sorted(perm.tolist()) != list(range(n)):
            raise DataError(f"order must be a permutation of range({n})")
        a = a[perm][:, :, perm][:, :, :, :, perm]
    out = to_phono3py_layout(a)
    if compact:
        if p2s_map is None:
            raise DataError("compact fc3 needs p2s_map (the primitive atoms' indices)")
        out = np.ascontiguousarray(out[np.asarray(p2s_map, dtype=int)])
    import h5py

    buffer = io.BytesIO()  # built in memory, then written atomically
    with h5py.File(buffer, "w") as w:
        w.create_dataset("fc3", data=out, compression="gzip")
        if p2s_map is not None:
            w.create_dataset("p2s_map", data=np.asarray(p2s_map, dtype=np.int64))
    atomic_write(path, buffer.getvalue())


def read_fc3(path, *, order=None) -> np.ndarray:
    """Read phono3py's ``fc3.hdf5`` (full or compact) into our layout.

    A compact file (``[p, n, n, 3, 3, 3]``) is refused with a message that
    says how to expand it with phono3py.

    Args:
        path: an ``fc3.hdf5`` file.
        order: optional ``[n]`` permutation; our atom ``order[k]`` is the file's
            atom ``k`` (the same ``order`` as given to :func:`write_fc3`).

    Returns:
        ``[n, 3, n, 3, n, 3]`` third-order force constants, eV/Å³.
    """
    import h5py

    if not os.path.exists(path):
        raise DataError(f"{path}: no such file; give the path of an fc3.hdf5")
    with h5py.File(path, "r") as f:
        if "fc3" not in f:
            raise DataError(f"{path} has no 'fc3' dataset; is it phono3py's fc3.hdf5?")
        a = np.asarray(f["fc3"][:], np.float64)
    if a.ndim != 6 or a.shape[1] != a.shape[2] or a.shape[3:] != (3, 3, 3):
        raise DataError(f"{path}: fc3 has an unexpected shape {a.shape}")
    if a.shape[0] != a.shape[1]:
        raise DataError(
            f"{path} holds compact fc3 {a.shape}; expand it with phono3py "
            "(phono3py.phonon3.fc3.compact_fc3_to_full_fc3) and write it in full "
            "(phono3py --fc3 --full-fc3 or Phono3py(..., is_compact_fc=False))"
        )
    fc3 = from_phono3py_layout(a)
    if order is not None:
        perm = np.asarray(order, dtype=int)
        n = fc3.shape[0]
        if sorted(perm.tolist()) != list(range(n)):
            raise DataError(f"order must be a permutation of range({n})")
        inv = np.argsort(perm)
        fc3 = fc3[inv][:, :, inv][:, :, :, :, inv]
    return fc3


def kappa_filename(mesh_numbers, sigma_thz: float | None = None) -> str:
    """phono3py's name for a κ file: ``kappa-m{n1}{n2}{n3}[-s{σ}].hdf5``.

    Args:
        mesh_numbers: ``[3]`` q-mesh.
        sigma_thz: Gaussian smearing width, THz (trailing zeros dropped, as
            phono3py), or None (tetrahedron method: no suffix).

    Example:
        >>> kappa_filename([11, 11, 11], 0.1)
        'kappa-m111111-s0.1.hdf5'
    """
    name = "kappa-m%d%d%d" % tuple(int(n) for n in mesh_numbers)
    if sigma_thz is not None:
        name += "-s" + ("%f" % sigma_thz).rstrip("0").rstrip(".")
    return name + ".hdf5"


def write_kappa(path, datasets) -> None:
    """Write mode-resolved κ datasets as an HDF5 file, atomically.

    Args:
        path: output file (phono3py's name: :func:`kappa_filename`).
        datasets: ``{name: array or scalar}``, e.g.
            :func:`mldiff.phonons.kappa_modes.phono3py_datasets`; arrays with
            more than one element are gzip-compressed, as phono3py's.
    """
    import h5py

    buffer = io.BytesIO()  # built in memory, then written atomically
    with h5py.File(buffer, "w") as w:
        for name, value in datasets.items():
            a = np.asarray(value)
            w.create_dataset(name, data=a, compression="gzip" if a.ndim else None)
    atomic_write(path, buffer.getvalue())
