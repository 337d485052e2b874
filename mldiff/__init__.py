"""mldiff: differentiable physics for machine learning in materials science.

The top level is a facade: :class:`Structure`, the :mod:`potentials` registry,
:func:`load` for trained models, and the version. Everything else lives in its
own module (``mldiff.neighbors``, ``mldiff.quantities``, ``mldiff.ase`` …).

The facade's names load on first use (PEP 562 ``__getattr__``), so that
``import mldiff.ttsp`` or ``mldiff.recommender`` does not pay for the
potentials' imports (e3nn-jax alone pulls in scipy.signal and sympy, seconds
per process).
"""

import importlib

from mldiff._version import __version__

__all__ = ["Structure", "potentials", "load", "__version__"]

_FACADE = {
    "potentials": ("mldiff.potentials", None),
    "Structure": ("mldiff.structure", "Structure"),
    "load": ("mldiff.training.checkpoint", "load"),
}


def __getattr__(name: str):
    if name not in _FACADE:
        raise AttributeError(f"module 'mldiff' has no attribute {name!r}")
    module, attribute = _FACADE[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FACADE))
