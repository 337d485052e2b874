"""Exceptions raised at mldiff's boundaries.

Every error says what is wrong, the value received, and how to fix it. All derive
from :class:`MldiffError`, itself a ``ValueError``, so callers can catch broadly.
"""

__all__ = [
    "MldiffError",
    "StructureError",
    "SpeciesError",
    "NeighborListOverflowError",
    "PrecisionError",
    "ConfigError",
    "TrainingDivergedError",
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
