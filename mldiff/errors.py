"""Exceptions raised at mldiff's boundaries.

Every error says what is wrong, the value received, and how to fix it. All derive
from :class:`MldiffError`, itself a ``ValueError``, so callers can catch broadly.
Every error class of the package is defined here; the modules that raise one
re-export it (``mldiff.stability.StabilityError is mldiff.errors.StabilityError``).
"""

__all__ = [
    "MldiffError",
    "StructureError",
    "SpeciesError",
    "NeighborListOverflowError",
    "PrecisionError",
    "ConfigError",
    "TrainingDivergedError",
    "DataError",
    "CompositionError",
    "StabilityError",
    "ScreeningError",
    "RecommenderError",
    "OracleError",
]


class MldiffError(ValueError):
    """Base class of every error mldiff raises on bad input."""


class StructureError(MldiffError):
    """A structure is malformed: overlapping atoms, bad cell, NaN coordinates."""


class SpeciesError(MldiffError):
    """An element or ion is unknown or unsupported.

    A potential has no parameters for an element present in a structure, or a
    species such as ``"Fe3+"`` names no element or an impossible charge.
    """


class NeighborListOverflowError(MldiffError):
    """A neighbor graph holds more edges than its static capacity."""


class PrecisionError(MldiffError):
    """A float64-only computation received float32 input."""


class ConfigError(MldiffError):
    """A configuration value or name is not recognised."""


class TrainingDivergedError(MldiffError):
    """The training loss became NaN or infinite; the last good state is kept."""


class DataError(MldiffError):
    """A data file or labeled structure is missing, incomplete or inconsistent.

    Raised for a missing file, a missing label key, a per-atom array of the
    wrong length, a non-finite label or a bad split/batching request, by
    :mod:`mldiff.io` and :mod:`mldiff.data` (both re-export it).
    """


class CompositionError(MldiffError):
    """A formula cannot be parsed or holds an element outside H … Lr."""


class StabilityError(MldiffError):
    """Bad input to a stability estimate: missing columns, NaN energies, ..."""


class ScreeningError(MldiffError):
    """A screening produced a value that cannot be trusted (e.g. non-finite)."""


class RecommenderError(MldiffError):
    """A materials × properties matrix or a recommender request is invalid."""


class OracleError(MldiffError):
    """The oracle failed on every structure of a round: it is broken, not the data."""
