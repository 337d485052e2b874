"""Lattice dynamics by automatic differentiation, with phonopy's conventions.

Force constants are the exact Hessian of any mldiff energy
(:mod:`mldiff.phonons.force_constants`); the dynamical matrix, frequencies and
eigenvectors follow phonopy (:mod:`mldiff.phonons.dynamical_matrix`). Those
submodules hold the composable pieces; this module adds one small pure entry
point:

* :func:`run` — unit cell + potential + supercell matrix → :class:`Phonons`,
  a pytree holding the supercell force constants and everything needed to
  diagonalise ``D(q)``;
* :func:`frequencies` / :func:`modes` — jitted, vectorised over q-points.

Band structures along seekpath's standard path are in :mod:`.bands`, the
(projected) density of states by Gaussian smearing in :mod:`.dos`, and thermal
properties (free energy, entropy, heat capacity, phonopy's formulas) in
:mod:`.thermal`; group velocities from the autodiff ``∂D/∂q`` in
:mod:`.velocities`. Third-order force constants by nested autodiff are in
:mod:`.third_order`, and three-phonon linewidths and the RTA thermal
conductivity in :mod:`.conductivity`.

Float64 is required (raises :class:`~mldiff.errors.PrecisionError` otherwise).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
    >>> ph = run(si, potentials.get("sw"), supercell_matrix=[2, 2, 2])
    >>> f = frequencies(ph, [[0.5, 0.0, 0.5]])  # X, THz
    >>> f.shape
    (1, 6)
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import neighbors
from mldiff.errors import ConfigError
from mldiff.phonons import (
    bands,
    conductivity,
    dos,
    dynamical_matrix,
    elastic,
    force_constants,
    gruneisen,
    output,
    qha,
    thermal,
    third_order,
    velocities,
)
from mldiff.phonons.dynamical_matrix import Images
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure

__all__ = [
    "Phonons",
    "run",
    "frequencies",
    "modes",
    "force_constants",
    "dynamical_matrix",
    "bands",
    "dos",
    "thermal",
    "velocities",
    "elastic",
    "gruneisen",
    "qha",
    "output",
    "third_order",
    "conductivity",
]


class Phonons(NamedTuple):
    """Harmonic phonons of a crystal (a pytree; pass it through ``jit``).

    Attributes:
        force_constants: ``[n, 3, n, 3]`` supercell force constants, eV/Å².
        masses: ``[n]`` supercell atomic masses, amu.
        supercell: the supercell the force constants belong to, Å.
        primitive: the primitive cell whose q-points :func:`frequencies` takes, Å.
        images: supercell images and weights (phonopy's shortest vectors).
    """

    force_constants: jax.Array
    masses: jax.Array
    supercell: Structure
    primitive: Structure
    images: Images


def run(
    structure: Structure,
    potential: Potential,
    params=None,
    supercell_matrix=(2, 2, 2),
    *,
    primitive_matrix=None,
    masses=None,
    use_symmetry: bool = True,
    enforce_sum_rule: bool = True,
    chunk_size: int = force_constants.DEFAULT_CHUNK_SIZE,
    symprec: float = 1e-5,
) -> Phonons:
    """Force constants of a supercell and the data to diagonalise ``D(q)``.

    Args:
        structure: periodic unit cell (float64), Å — phonopy's ``unitcell``.
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters; default ``potential.init(key(0), supercell)``.
        supercell_matrix: ``[3]`` repeats or ``[3, 3]`` integers, phonopy's
            convention (supercell lattice ``Mᵀ L``).
        primitive_matrix: ``[3, 3]`` or ``None`` (the unit cell is primitive),
            phonopy's convention (primitive lattice ``Pᵀ L``).
        masses: ``[len(structure)]`` unit-cell masses, amu; default ASE's
            (:func:`.dynamical_matrix.default_masses`).
        use_symmetry: differentiate only the rows of symmetry-independent atoms
            (spglib) and rebuild the rest; exact when the structure is symmetric
            to rounding (for one symmetric only within ``symprec``, the result
            follows the idealised symmetry). Skipped when nothing is gained.
        enforce_sum_rule: apply :func:`.force_constants.symmetrize` (index
            symmetry + acoustic sum rule) to the force constants.
        chunk_size: Hessian-vector products evaluated at once (memory knob).
        symprec: symmetry and site-matching tolerance, Å.

    Returns:
        The :class:`Phonons`.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))
        >>> fcc = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
        >>> ph = run(cu, potentials.get("emt"), None, [2, 2, 2], primitive_matrix=fcc)
        >>> ph.force_constants.shape, len(ph.primitive)
        ((32, 3, 32, 3), 1)
    """
    force_constants.check_float64(structure, "phonons")
    check_species(potential, np.asarray(structure.numbers))
    if masses is None:
        masses = dynamical_matrix.default_masses(np.asarray(structure.numbers))
    masses = np.asarray(masses, np.float64)
    if masses.shape != (len(structure),):
        raise ConfigError(
            f"masses must have shape ({len(structure)},), one per unit-cell atom "
            f"in amu, got {masses.shape}"
        )
    sc = dynamical_matrix.supercell(structure, supercell_matrix)
    prim = dynamical_matrix.primitive(structure, primitive_matrix, symprec=symprec)
    if params is None:
        params = potential.init(jax.random.key(0), sc)
    graph = neighbors.check(neighbors.allocate(sc, potential.cutoff))
    symmetry = (
        force_constants.site_symmetry(sc, symprec=symprec) if use_symmetry else None
    )
    if symmetry is not None and len(symmetry.independent) == len(sc):
        symmetry = None  # nothing to gain: differentiate every row directly
    atoms = np.arange(len(sc)) if symmetry is None else symmetry.independent
    rows = _hessian_rows(
        potential.energy, chunk_size, params, sc, graph, jnp.asarray(atoms)
    )
    fc = _assemble(rows, symmetry, enforce_sum_rule)
    sc_masses = jnp.asarray(masses[dynamical_matrix.site_map(sc, structure)])
    im = dynamical_matrix.images(sc, prim, symprec=symprec)
    return Phonons(fc, sc_masses, sc, prim, im)


def frequencies(phonons: Phonons, qpoints) -> jax.Array:
    """Phonon frequencies at q-points (compiled once per shape).

    Args:
        phonons: from :func:`run`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``[k, 3p]`` frequencies, THz, ascending; imaginary modes negative.
    """
    return dynamical_matrix.frequencies_at(
        phonons.force_constants, phonons.masses, phonons.images, qpoints
    )


def modes(phonons: Phonons, qpoints) -> tuple[jax.Array, jax.Array]:
    """Phonon frequencies and eigenvectors at q-points (phonopy's layout).

    Args:
        phonons: from :func:`run`.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``([k, 3p] frequencies, THz; [k, 3p, 3p] eigenvectors, column = mode)``.
    """
    return dynamical_matrix.modes_at(
        phonons.force_constants, phonons.masses, phonons.images, qpoints
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def _hessian_rows(energy_fn, chunk_size, params, structure, graph, atoms):
    """Jitted rows, cached on (energy_fn, chunk_size) and shapes across runs."""
    rows_fn = force_constants.force_constant_rows(energy_fn, chunk_size=chunk_size)
    return rows_fn(params, structure, graph, atoms)


@functools.partial(jax.jit, static_argnums=(2,))
def _assemble(rows, symmetry, enforce_sum_rule):
    fc = rows if symmetry is None else force_constants.distribute(rows, symmetry)
    return force_constants.symmetrize(fc) if enforce_sum_rule else fc
