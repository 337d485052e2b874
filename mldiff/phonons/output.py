"""Phonon results as one JSON-ready dictionary, and the helpers that make it.

:func:`summary` collects what the ``mldiff phonons`` command writes: the band
structure along seekpath's path, frequencies at the high-symmetry points, the
DOS by Gaussian smearing and the thermal properties, all per primitive cell in
phonopy's units. :func:`auto_primitive_matrix` reproduces phonopy's
``primitive_matrix="auto"`` (spglib's standardisation and the centring of the
space group). :func:`mldiff.io.files.write_json` (re-exported here) writes any
such dictionary atomically, converting arrays to lists.

References:
    phonopy 4.10 ``structure/cells.py`` (``guess_primitive_matrix``,
    ``get_primitive_matrix_by_centring``).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff.structure import Structure
    >>> auto_primitive_matrix(Structure.from_ase(bulk("Cu", cubic=True))).tolist()
    [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
"""

import numpy as np

from mldiff.io.files import to_jsonable, write_json  # re-exported
from mldiff.phonons import bands, dos, thermal

__all__ = ["auto_primitive_matrix", "summary", "to_jsonable", "write_json"]

_CENTRING = {
    "P": np.eye(3),
    "F": np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
    "A": np.array([[1.0, 0.0, 0.0], [0.0, 0.5, -0.5], [0.0, 0.5, 0.5]]),
    "C": np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]),
    "R": np.array(
        [[2 / 3, -1 / 3, -1 / 3], [1 / 3, 1 / 3, -2 / 3], [1 / 3, 1 / 3, 1 / 3]]
    ),
}


def auto_primitive_matrix(structure, *, symprec: float = 1e-5) -> np.ndarray:
    """Phonopy's ``primitive_matrix="auto"`` for a unit cell.

    Args:
        structure: periodic unit cell, Å.
        symprec: spglib tolerance, Å.

    Returns:
        ``[3, 3]`` primitive matrix ``P`` (primitive lattice ``Pᵀ L``), rounded
        to 1e-10.
    """
    import spglib

    lat = np.asarray(structure.cell, np.float64)
    frac = np.linalg.solve(lat.T, np.asarray(structure.positions, np.float64).T).T
    data = spglib.get_symmetry_dataset(
        (lat, frac, np.asarray(structure.numbers)), symprec=symprec
    )
    if data is None:
        return np.eye(3)
    centring = spglib.get_spacegroup_type(data.hall_number).international[0]
    pm = np.linalg.inv(data.transformation_matrix) @ _CENTRING[centring]
    return np.round(pm, 10) + 0.0


def summary(
    phonons,
    *,
    mesh=(20, 20, 20),
    temperatures=None,
    sigma_thz: float = 0.1,
    npoints: int = 51,
) -> dict:
    """Bands, high-symmetry frequencies, DOS and thermal properties.

    Args:
        phonons: a :class:`mldiff.phonons.Phonons`.
        mesh: q-point mesh for the DOS and thermal properties (phonopy's
            ``run_mesh``, Monkhorst–Pack for even numbers).
        temperatures: ``[t]`` temperatures, K; default 0, 10, …, 1000 K.
        sigma_thz: Gaussian smearing of the DOS, THz.
        npoints: q-points per band segment, end points included.

    Returns:
        ``{"path_labels": [[a, b], ...], "qpoints": [k, 3] reduced,
        "distances": [k] 1/Å, "frequencies_thz": [k, 3p],
        "high_symmetry_frequencies_thz": {label: [3p]}, "dos":
        {"frequencies_thz": [f], "states": [f] states/THz, "projected": [p, f],
        "sigma_thz", "mesh"}, "thermal": {"temperatures_k", "free_energy_kj_mol",
        "entropy_j_k_mol", "heat_capacity_j_k_mol", "mesh"}, "n_atoms_primitive"}``;
        per primitive cell (phonopy's "per unit cell" with this primitive), NumPy
        arrays.
    """
    if temperatures is None:
        temperatures = np.arange(0.0, 1001.0, 10.0)
    bs = bands.band_structure(
        phonons, bands.band_path(phonons.primitive, npoints=npoints)
    )
    tp = thermal.mesh_thermal_properties(phonons, mesh, temperatures)
    return {
        **bs,
        "dos": dos.mesh_dos(phonons, mesh, sigma_thz=sigma_thz),
        "thermal": {k: (np.asarray(v) if k != "mesh" else v) for k, v in tp.items()},
        "n_atoms_primitive": len(phonons.primitive),
    }
