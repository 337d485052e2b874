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
    "TTSPDataError",
    "check_float64",
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


class TTSPDataError(MldiffError):
    """A time–temperature superposition table is malformed."""


class OracleError(MldiffError):
    """The oracle failed on every structure of a round: it is broken, not the data."""


_X64_FIX = (
    "call jax.config.update('jax_enable_x64', True) at the start of the program, "
    "before creating arrays, and build the inputs as float64"
)


def check_float64(what: str, **arrays) -> None:
    """Raise :class:`PrecisionError` unless float64 is on and every array is float64.

    The one float64 check of mldiff, called at the boundary of every
    float64-only computation (phonons, elastic constants, Grüneisen parameters,
    GP Cholesky factorisations, carrier statistics, float64 training): library
    code never turns ``jax_enable_x64`` on itself, it says how to.

    Args:
        what: the computation, for the message (``"phonons"``).
        **arrays: named arrays or pytrees of them (a ``Structure``), concrete or
            traced; only the dtypes of their floating-point leaves are read.

    Raises:
        PrecisionError: ``jax_enable_x64`` is off, or an array is not float64.

    Example:
        >>> import numpy as np
        >>> try:
        ...     check_float64("phonons", cell=np.eye(3, dtype=np.float32))
        ... except PrecisionError as err:
        ...     print("float64" in str(err))
        True
    """
    import jax  # here, so that importing mldiff.errors stays free of JAX

    if not jax.config.jax_enable_x64:
        raise PrecisionError(
            f"{what}: float64 is required, but jax_enable_x64 is off; {_X64_FIX}"
        )
    for name, tree in arrays.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            dtype = getattr(leaf, "dtype", None)
            if dtype is not None and dtype.kind == "f" and dtype != "float64":
                where = name + jax.tree_util.keystr(path)
                raise PrecisionError(
                    f"{what}: float64 is required, but {where} is {dtype}; {_X64_FIX}"
                )
