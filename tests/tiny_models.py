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


def emt_items(n: int, seed: int = 0, a: float = 3.6, au_every: int = 2) -> list:
    """Rattled 4-atom fcc Cu cells labelled by ASE's EMT.

    Every ``au_every``-th cell (k % au_every == 1) has one Au, so two species.
    """
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mldiff.data import label

    rng = np.random.default_rng(seed)
    structures = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=a + 0.05 * rng.standard_normal(), cubic=True)
        if k % au_every == 1:
            atoms.numbers[0] = 79
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        structures.append(atoms)
    return label(structures, EMT(), progress=False)
