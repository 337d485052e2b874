"""The error raised for bad training data.

It lives in :mod:`mldiff.io` (layer 1) so that both the readers here and
:mod:`mldiff.data` (layer 3) can raise it; ``mldiff.data`` re-exports it.
"""

from mldiff.errors import MldiffError

__all__ = ["DataError"]


class DataError(MldiffError):
    """A data file or labeled structure is missing, incomplete or inconsistent.

    Raised for a missing file, a missing label key, a per-atom array of the
    wrong length, a non-finite label or a bad split/batching request.
    """
