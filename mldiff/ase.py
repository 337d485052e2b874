"""ASE calculator over any mldiff potential.

:class:`Calculator` gives ``ase.optimize``, ``ase.md``, ``ase.filters``, phonopy
(through ASE) and any ASE workflow the energy, forces and stress of an mldiff
potential. Each call is one jitted ``value_and_grad`` over positions and strain;
the neighbor graph is rebuilt on the host only when atoms moved more than half
the Verlet skin, the cell or species changed, or it overflowed — and it keeps
its capacity when it can, so the jitted function is not recompiled.

Shape buckets: the atom count is padded up to a bucket (multiples of
``2^(⌊log₂ n⌋ − 2)``, at least 8, so at most 25 % padding) with ghost atoms
(Z = 0, far away, no edges, zero energy: the padding convention of
:mod:`mldiff.data.batching`), and the edge capacity to a bucket of the same
kind. A vacancy, an adsorbate or a deleted molecule within the bucket then
reuses the compiled function.

Precision: results are float64 when JAX runs with ``jax_enable_x64`` (the
``mldiff`` command enables it); otherwise float32, which is fine for relaxations
to ~1e-3 eV/Å but not for phonons or tight energy conservation.

Example:
    >>> from ase.build import bulk
    >>> atoms = bulk("Cu", "fcc", a=3.6)
    >>> atoms.calc = Calculator("emt")
    >>> round(float(atoms.get_potential_energy()), 3)
    -0.007
"""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import all_changes

from mldiff import neighbors, potentials, quantities
from mldiff.errors import ConfigError
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure

__all__ = ["Calculator", "resolve_potential", "bucket"]

_GHOST_OFFSET = 1000.0  # Å beyond the real atoms, as data.batching.GHOST_OFFSET


def bucket(n: int, minimum: int = 8) -> int:
    """Padded size for ``n``: the next multiple of ``2^(⌊log₂ n⌋ − 2)``.

    Consecutive buckets are at most 25 % apart, so padding costs at most a
    quarter more work, and there are only four buckets per doubling of ``n``.

    Args:
        n: atoms or edges to hold.
        minimum: smallest bucket.

    Returns:
        The bucket, ``>= max(n, minimum)``.

    Example:
        >>> [bucket(n) for n in (1, 8, 9, 31, 33, 100, 1000)]
        [8, 8, 10, 32, 40, 112, 1024]
    """
    if n <= minimum:
        return minimum
    step = 2 ** max(int(math.floor(math.log2(n))) - 2, 0)
    return int(math.ceil(n / step) * step)


def resolve_potential(potential, params=None, key=None):
    """``(Potential, params or None)`` from a name, Potential, pair or checkpoint.

    Args:
        potential: reference or pretrained potential name (``"sevennet-0"``),
            :class:`Potential`, ``(Potential, params)`` pair (e.g. a loaded
            model), mldiff checkpoint path or SevenNet ``*.pth`` path.
        params: parameters overriding the resolved ones.
        key: unused; kept for symmetry with ``Potential.init``.
    """
    del key
    if isinstance(potential, Potential):
        return potential, params
    if isinstance(potential, str | os.PathLike) and os.fspath(potential).endswith(
        ".pth"
    ):
        return potentials.sevennet(potential), params  # a SevenNet checkpoint
    if isinstance(potential, str | os.PathLike) and os.path.exists(potential):
        from mldiff.training import checkpoint

        model = checkpoint.load(potential)
        return model.potential, model.params if params is None else params
    if isinstance(potential, str):
        return potentials.get(potential), params
    if isinstance(potential, tuple) and len(potential) == 2:  # (Potential, params)
        pot, own = potential
        return pot, own if params is None else params
    raise ConfigError(
        f"cannot make a calculator from {potential!r}; pass a reference potential "
        "name, a Potential, a (Potential, params) pair, or a checkpoint path"
    )


class Calculator(_AseCalculator):
    """ASE calculator for an mldiff potential.

    Args:
        potential: reference potential name (``"emt"``, ``"lj"``, ``"morse"``,
            ``"sw"``), pretrained universal model (``"sevennet-0"``, …), a
            :class:`~mldiff.potentials.Potential`, a ``(Potential, params)``
            pair, or a checkpoint path (mldiff, or SevenNet ``*.pth``).
        params: parameters; default ``potential.init(key, structure)`` at the
            first calculation.
        skin: Verlet skin of the neighbor graph, Å.
        key: PRNG key for ``init`` when ``params`` is None.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(
        self, potential="emt", params=None, *, skin: float = 0.5, key=None, **kwargs
    ):
        """Resolve the potential and jit its energy, forces and stress."""
        super().__init__(**kwargs)
        self.potential, self.params = resolve_potential(potential, params, key)
        self.skin = float(skin)
        self._key = jax.random.key(0) if key is None else key
        self._graph = None
        self._graph_atoms = None  # (numbers, pbc, cell) the graph was built for
        efs = quantities.energy_forces_stress(self.potential.energy)
        ef = quantities.energy_and_forces(self.potential.energy)
        self._efs = jax.jit(efs)
        self._ef = jax.jit(ef)

    def _graph_for(self, s: Structure):
        """The neighbor graph for ``s``, rebuilt only when it must be.

        Reused while the atoms and cell are unchanged and no atom moved more
        than half the skin. When rebuilt for the same atoms (MD, relaxation,
        a cell filter), the previous capacity is kept if the edges fit, so the
        jitted energy is not recompiled.
        """
        cell = np.asarray(s.cell)
        numbers = np.asarray(s.numbers)
        same_atoms = (
            self._graph is not None
            and np.array_equal(self._graph_atoms[0], numbers)
            and self._graph_atoms[1] == s.pbc
        )
        same_cell = same_atoms and np.array_equal(self._graph_atoms[2], cell)
        if same_cell and not bool(neighbors.needs_update(s, self._graph)):
            return self._graph
        radius = self.potential.cutoff + self.skin
        n_needed = len(neighbors.neighbor_list(s, radius)[0])
        capacity = bucket(int(math.ceil(1.25 * n_needed)))
        same_bucket = self._graph is not None and bucket(len(s)) == bucket(
            len(self._graph_atoms[0])
        )
        if same_bucket and n_needed <= self._graph.capacity:
            capacity = self._graph.capacity  # same shapes: no recompilation
        # the calculator never updates the graph in jit: all pairs keeps the
        # static metadata fixed whatever the size
        self._graph = neighbors.allocate(
            s,
            self.potential.cutoff,
            skin=self.skin,
            capacity=capacity,
            method="all_pairs",
        )
        self._graph_atoms = (numbers, s.pbc, cell)
        return self._graph

    def _padded(self, s: Structure, g: neighbors.Graph):
        """``s`` and ``g`` padded with ghost atoms to the atom bucket.

        Ghosts have Z = 0, no edges and distinct far positions, so they change
        no energy, force or stress; ``g.images`` (never used outside
        :func:`~mldiff.neighbors.update`) is replaced by one zero shift, so a
        cell that needs more periodic images does not change the shapes either.
        """
        n = len(s)
        k = bucket(n) - n
        r = s.positions
        top = jnp.max(jnp.abs(r)) if n else 0.0
        step = self.potential.cutoff + self.skin + 1.0
        ghosts = jnp.full((k, 3), top + _GHOST_OFFSET, r.dtype)
        ghosts = ghosts.at[:, 0].add(step * jnp.arange(k, dtype=r.dtype))
        positions = jnp.concatenate([r, ghosts])
        numbers = jnp.concatenate([s.numbers, jnp.zeros(k, s.numbers.dtype)])
        padded = s.replace(positions=positions, numbers=numbers)
        graph = g.replace(
            images=jnp.zeros((1, 3), jnp.int32), reference_positions=positions
        )
        return padded, graph

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Compute energy, forces and (for 3D-periodic cells) stress."""
        super().calculate(atoms, properties, system_changes)
        s = Structure.from_ase(self.atoms)  # validates: overlaps, NaN, cell
        check_species(self.potential, s.numbers)
        if self.params is None:
            self.params = self.potential.init(self._key, s)
        padded, g = self._padded(s, self._graph_for(s))
        periodic = all(s.pbc)
        if periodic:
            e, f, sigma = self._efs(self.params, padded, g)
        else:
            e, f = self._ef(self.params, padded, g)
        e = float(e)
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["forces"] = np.asarray(f, dtype=np.float64)[: len(s)]
        if periodic:
            sigma = np.asarray(sigma, dtype=np.float64)
            self.results["stress"] = np.array(
                [
                    sigma[0, 0],
                    sigma[1, 1],
                    sigma[2, 2],
                    sigma[1, 2],
                    sigma[0, 2],
                    sigma[0, 1],
                ]
            )
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError(
                "stress needs a cell periodic in all three directions"
            )
