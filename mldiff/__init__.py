"""mldiff: differentiable physics for machine learning in materials science.

The top level is a facade: :class:`Structure`, the :mod:`potentials` registry,
:func:`load` for trained models, and the version. Everything else lives in its
own module (``mldiff.neighbors``, ``mldiff.quantities``, ``mldiff.ase`` …).
"""

from mldiff import potentials
from mldiff._version import __version__
from mldiff.structure import Structure
from mldiff.training.checkpoint import load

__all__ = ["Structure", "potentials", "load", "__version__"]
