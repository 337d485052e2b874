"""mldiff: differentiable physics for machine learning in materials science.

The top level is a facade: :class:`Structure`, the :mod:`potentials` registry
and the version. Everything else lives in its own module (``mldiff.neighbors``,
``mldiff.quantities``, ``mldiff.ase`` …).
"""

from mldiff import potentials
from mldiff.structure import Structure

__all__ = ["Structure", "potentials", "__version__"]
from mldiff._version import __version__  # noqa: E402
