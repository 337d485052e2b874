"""Helpers shared by MD and relaxation: configs, input checks, graphs, shifts."""

import dataclasses
import math

import numpy as np
from jax_md import space as jmd_space

from mldiff import neighbors
from mldiff.errors import ConfigError, NeighborListOverflowError, StructureError
from mldiff.potentials import Potential, check_species
from mldiff.structure import Structure


def _config(cls, config, overrides):
    """``cls(**overrides)`` or ``config`` with them replaced; ints pass as floats."""
    floats = {f.name for f in dataclasses.fields(cls) if "float" in str(f.type)}
    overrides = {
        k: float(v) if k in floats and type(v) is int else v
        for k, v in overrides.items()
    }
    try:
        if config is None:
            return cls(**overrides)
        return dataclasses.replace(config, **overrides)
    except TypeError as err:
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{err}; {cls.__name__} fields are: {names}") from err


def _check_inputs(potential: Potential, structure: Structure) -> None:
    if not isinstance(potential, Potential):
        raise ConfigError(
            f"expected an mldiff Potential, got {type(potential).__name__}; "
            "use mldiff.potentials.get(name) or a loaded model"
        )
    if not isinstance(structure, Structure):
        raise StructureError(
            f"expected an mldiff Structure, got {type(structure).__name__}; "
            "convert with Structure.from_ase(atoms)"
        )
    check_species(potential, structure.numbers)
    if not np.all(np.isfinite(np.asarray(structure.positions))):
        raise StructureError("non-finite (NaN/inf) positions; check the input")


def _progress_disable(progress: bool | None) -> bool | None:
    """The ``disable`` of tqdm for ``progress`` (None: a bar only on a terminal)."""
    return None if progress is None else not progress


def _shift():
    return jmd_space.free()[1]  # R + dR: positions stay unwrapped


def _reallocate(s, graph, cutoff, skin, multiplier, *, grow: bool) -> neighbors.Graph:
    """A fresh graph for ``s`` searched by ``graph.method``.

    Keeps the edge and bin capacities if they fit (nothing recompiles), unless
    ``grow``: then both grow by at least ``multiplier``, since either may have
    overflowed.
    """
    kw = dict(skin=skin, method=graph.method)
    cell_list = graph.method == "cell_list"
    if not grow:
        try:
            return neighbors.allocate(
                s,
                cutoff,
                capacity=graph.capacity,
                bin_capacity=graph.bin_capacity if cell_list else None,
                **kw,
            )
        except NeighborListOverflowError:
            pass
    fresh = neighbors.allocate(s, cutoff, capacity_multiplier=multiplier, **kw)
    if grow:
        capacity = max(fresh.capacity, math.ceil(graph.capacity * multiplier))
        bins = max(fresh.bin_capacity, math.ceil(graph.bin_capacity * multiplier))
        fresh = neighbors.allocate(
            s,
            cutoff,
            capacity=int(capacity),
            bin_capacity=int(bins) if cell_list else None,
            **kw,
        )
    return fresh
