"""Lattice dynamics by automatic differentiation, with phonopy's conventions.

Force constants are the exact Hessian of any mldiff energy
(:mod:`mldiff.phonons.force_constants`); the dynamical matrix, frequencies and
eigenvectors follow phonopy (:mod:`mldiff.phonons.dynamical_matrix`). Those
submodules hold the composable pieces; this module adds one small pure entry
point:

* :func:`run` — unit cell + potential + supercell matrix → :class:`Phonons`,
  a pytree holding the supercell force constants and everything needed to
  diagonalise ``D(q)``; it is :func:`setup` (host-side geometry and
  symmetry, once) followed by :func:`force_constants_fn` (a pure function of
  the parameters, to vmap over an ensemble);
* :func:`frequencies` / :func:`modes` — jitted, vectorised over q-points.

Band structures along seekpath's standard path are in :mod:`.bands`, the
(projected) density of states by Gaussian smearing in :mod:`.dos`, and thermal
properties (free energy, entropy, heat capacity, phonopy's formulas) in
:mod:`.thermal`; group velocities from the autodiff ``∂D/∂q`` in
:mod:`.velocities`; q-point meshes and their symmetry in :mod:`.qmesh`.
Third-order force constants by nested autodiff are in :mod:`.third_order`,
three-phonon interaction strengths and linewidths in :mod:`.interaction` (their
delta functions by the tetrahedron method in :mod:`.tetrahedron`), isotope
scattering in :mod:`.isotope`, the thermal conductivity (RTA and direct LBTE)
in :mod:`.conductivity`, and its mode-resolved quantities (boundary
scattering, lifetimes, cumulative κ) in :mod:`.kappa_modes`.

Float64 is required (raises :class:`~mldiff.errors.PrecisionError` otherwise).

Example:
    >>> import jax
    >>> jax.config.update("jax_enable_x64", True)
    >>> from ase.build import bulk
    >>> from mldiff import potentials
    >>> from mldiff.structure import Structure
    >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
    >>> ph = run(potentials.get("sw"), None, si, supercell_matrix=[2, 2, 2])
    >>> f = frequencies(ph, [[0.5, 0.0, 0.5]])  # X, THz
    >>> f.shape
    (1, 6)
"""

import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mldiff import neighbors, units
from mldiff.errors import ConfigError, check_float64
from mldiff.phonons import (
    bands,
    conductivity,
    dos,
    dynamical_matrix,
    elastic,
    force_constants,
    gruneisen,
    interaction,
    isotope,
    kappa_modes,
    output,
    qha,
    qmesh,
    tetrahedron,
    thermal,
    third_order,
    velocities,
)
from mldiff.phonons.dynamical_matrix import Images
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure

__all__ = [
    "Phonons",
    "Setup",
    "setup",
    "force_constants_fn",
    "run",
    "check_supercell",
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
    "qmesh",
    "interaction",
    "isotope",
    "tetrahedron",
    "conductivity",
    "kappa_modes",
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


class Setup(NamedTuple):
    """The parameter-independent part of a phonon calculation (a pytree).

    Built once on the host by :func:`setup`; :func:`force_constants_fn` turns
    it into a pure function of the parameters, so that ``jax.vmap`` over
    stacked parameters (an ensemble) or ``jax.grad`` reuse one geometry.

    Attributes:
        supercell: the supercell, Å.
        primitive: the primitive cell whose q-points :func:`frequencies` takes.
        masses: ``[n]`` supercell atomic masses, amu.
        images: supercell images and weights (phonopy's shortest vectors).
        graph: the supercell's neighbor graph.
        symmetry: site symmetry of the supercell, or ``None`` (every row is
            differentiated).
        atoms: ``[k]`` indices of the atoms whose Hessian rows are
            differentiated.
    """

    supercell: Structure
    primitive: Structure
    masses: jax.Array
    images: Images
    graph: neighbors.Graph
    symmetry: force_constants.SiteSymmetry | None
    atoms: jax.Array


def setup(
    potential: Potential,
    structure: Structure,
    supercell_matrix=(2, 2, 2),
    *,
    primitive_matrix=None,
    masses=None,
    use_symmetry: bool = True,
    symprec: float = 1e-5,
) -> Setup:
    """Supercell, primitive cell, masses, images, graph and site symmetry.

    The host-side checks and geometry of :func:`run`, which do not depend on
    the parameters. Arguments are those of :func:`run`.

    Returns:
        The :class:`Setup`.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> si = Structure.from_ase(bulk("Si", "diamond", a=5.431))
        >>> st = setup(potentials.get("sw"), si, [2, 2, 2])
        >>> len(st.supercell), st.atoms.tolist()
        (16, [0])
    """
    check_float64("phonons", structure=structure)
    check_species(potential, np.asarray(structure.numbers))
    if masses is None:
        masses = units.masses_amu(structure.numbers)
    masses = np.asarray(masses, np.float64)
    if masses.shape != (len(structure),):
        raise ConfigError(
            f"masses must have shape ({len(structure)},), one per unit-cell atom "
            f"in amu, got {masses.shape}"
        )
    check_supercell(structure, supercell_matrix, potential.cutoff)
    sc = dynamical_matrix.supercell(structure, supercell_matrix)
    prim = dynamical_matrix.primitive(structure, primitive_matrix, symprec=symprec)
    graph = neighbors.check(neighbors.allocate(sc, potential.cutoff))
    symmetry = (
        force_constants.site_symmetry(sc, symprec=symprec) if use_symmetry else None
    )
    if symmetry is not None and len(symmetry.independent) == len(sc):
        symmetry = None  # nothing to gain: differentiate every row directly
    atoms = np.arange(len(sc)) if symmetry is None else symmetry.independent
    return Setup(
        supercell=sc,
        primitive=prim,
        masses=jnp.asarray(masses[dynamical_matrix.site_map(sc, structure)]),
        images=dynamical_matrix.images(sc, prim, symprec=symprec),
        graph=graph,
        symmetry=symmetry,
        atoms=jnp.asarray(atoms),
    )


def force_constants_fn(
    potential: Potential,
    phonon_setup: Setup,
    *,
    enforce_sum_rule: bool = True,
    chunk_size: int = force_constants.DEFAULT_CHUNK_SIZE,
):
    """``params -> [n, 3, n, 3]`` supercell force constants (eV/Å²), pure.

    Hessian rows of the independent atoms (chunked forward-over-reverse
    products), distributed over the supercell by its site symmetry, then
    index symmetry and the acoustic sum rule; every step is jit-, vmap- and
    grad-compatible, e.g. ``jax.vmap(fc_fn)(stacked_params)`` for an ensemble.

    Args:
        potential: the potential of :func:`setup`.
        phonon_setup: from :func:`setup`.
        enforce_sum_rule: as for :func:`run`.
        chunk_size: as for :func:`run`.

    Returns:
        ``fc_fn(params)``.
    """
    st = phonon_setup

    def fc_fn(params):
        rows = _hessian_rows(
            potential.energy, chunk_size, params, st.supercell, st.graph, st.atoms
        )
        return _assemble(rows, st.symmetry, enforce_sum_rule)

    return fc_fn


def run(
    potential: Potential,
    params,
    structure: Structure,
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

    :func:`setup` then :func:`force_constants_fn` at ``params``.

    Args:
        potential: any :class:`~mldiff.potentials.Potential`.
        params: its parameters; ``None`` for ``potential.init(key(0), supercell)``
            (the reference potentials' own values).
        structure: periodic unit cell (float64), Å — phonopy's ``unitcell``.
        supercell_matrix: ``[3]`` repeats or ``[3, 3]`` integers, phonopy's
            convention (supercell lattice ``Mᵀ L``).
        primitive_matrix: ``[3, 3]`` or ``None`` (the unit cell is primitive),
            phonopy's convention (primitive lattice ``Pᵀ L``).
        masses: ``[len(structure)]`` unit-cell masses, amu; default ASE's
            (:func:`mldiff.units.masses_amu`).
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
        >>> ph = run(potentials.get("emt"), None, cu, [2, 2, 2], primitive_matrix=fcc)
        >>> ph.force_constants.shape, len(ph.primitive)
        ((32, 3, 32, 3), 1)
    """
    st = setup(
        potential,
        structure,
        supercell_matrix,
        primitive_matrix=primitive_matrix,
        masses=masses,
        use_symmetry=use_symmetry,
        symprec=symprec,
    )
    if params is None:
        params = potential.init(jax.random.key(0), st.supercell)
    fc_fn = force_constants_fn(
        potential, st, enforce_sum_rule=enforce_sum_rule, chunk_size=chunk_size
    )
    return Phonons(fc_fn(params), st.masses, st.supercell, st.primitive, st.images)


MAX_SUPERCELL_ATOMS = 10_000  # force constants 7.2 GB in float64


def _widths(lattice) -> list[float]:
    """Distances between opposite faces of the cell with rows ``lattice``, Å."""
    volume = abs(np.linalg.det(lattice))
    return [
        volume / np.linalg.norm(np.cross(lattice[(i + 1) % 3], lattice[(i + 2) % 3]))
        for i in range(3)
    ]


def check_supercell(structure: Structure, supercell_matrix, cutoff: float) -> None:
    """Refuse a supercell that cannot give meaningful force constants.

    The unit cell must be periodic in all three directions; the supercell
    matrix an integer ``[3]`` or ``[3, 3]`` with a positive determinant; the
    supercell at most :data:`MAX_SUPERCELL_ATOMS` atoms (its force constants
    take ``72 n²`` bytes); and every perpendicular width of the supercell at
    least half the potential's ``cutoff``.

    Supercell force constants sum the couplings to all periodic images of an
    atom, so frequencies are exact at q-points commensurate with the
    supercell and Fourier-interpolated elsewhere. Thinner than the cutoff,
    an atom sees its own images and the interpolation folds whole shells
    together (a :class:`UserWarning`; phonopy computes this silently too);
    thinner than half the cutoff there is hardly anything left to
    interpolate: a one-atom cell gives all frequencies zero, so it is refused.

    Raises:
        ConfigError: naming the problem and a supercell that works.
    """
    if not all(structure.pbc):
        raise ConfigError(
            "phonons need a crystal periodic in all three directions, got "
            f"pbc={tuple(structure.pbc)}; give a file with a unit cell (CIF, "
            "POSCAR or extxyz with a Lattice)"
        )
    m = np.asarray(supercell_matrix)
    if m.shape not in ((3,), (3, 3)) or not np.all(np.round(m) == m):
        raise ConfigError(
            f"supercell matrix must be 3 integers or 3×3 integers, got {m.tolist()}"
        )
    m = np.diag(m) if m.shape == (3,) else m
    det = int(round(np.linalg.det(m)))
    if det <= 0:
        raise ConfigError(
            f"supercell matrix {m.tolist()} has determinant {det}; it must be "
            "positive (repeats ≥ 1, right-handed)"
        )
    n = det * len(structure)
    if n > MAX_SUPERCELL_ATOMS:
        raise ConfigError(
            f"the supercell would hold {n} atoms; its force constants alone take "
            f"{72 * n * n / 2**30:.1f} GiB (the limit is {MAX_SUPERCELL_ATOMS} "
            "atoms): use a smaller supercell"
        )
    unit = np.asarray(structure.cell, np.float64)
    widths = _widths(m.T @ unit)
    if min(widths) < cutoff:
        need = " ".join(str(int(np.ceil(cutoff / w))) for w in _widths(unit))
        what = (
            f"the supercell is {min(widths):.2f} Å thick, less than the "
            f"potential's cutoff {cutoff:.2f} Å"
        )
        if min(widths) < 0.5 * cutoff:
            raise ConfigError(
                f"{what} by more than half: atoms interact with their own images "
                "and the force constants fold whole shells together; use a "
                f"supercell of at least {need} repeats"
            )
        warnings.warn(
            f"{what}: frequencies are exact only at q-points commensurate with "
            f"the supercell; a supercell of {need} repeats converges the bands",
            stacklevel=2,
        )


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
