"""Model settings small enough for tests: one compile in seconds on 2 cores.

Importable from any test module (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` is loaded first, in pytest's default prepend mode).
"""

TINY_NEQUIP = {
    "num_layers": 1,
    "features": 4,
    "l_max": 1,
    "radial_mlp": [8],
    "cutoff": 3.0,
    "num_basis": 4,
}
