"""MACE-style potential: the checks of ``test_nequip.py`` on the MACE model.

References: as in ``test_nequip.py`` — exact symmetries (rotations, reflections,
translations, permutations; Batatia et al. 2022 build MACE to respect them),
central finite differences of the model energy, ghost padding rules, the C²
envelope, jit tracing counts and vmap over stacked params. The shared test
functions are imported and run here with this module's ``model`` fixture.
"""

import jax
import numpy as np
import pytest
from test_nequip import (  # noqa: F401  shared checks, run with this module's model
    E0,
    SPECIES,
    dimer,
    system,
    test_energy_continuous_at_cutoff_and_compiled_once,
    test_ensemble_params_under_vmap,
    test_forces_and_stress_match_finite_differences,
    test_ghost_atoms_change_nothing,
    test_rotation_float32,
    test_rotation_rotates_forces_and_stress_float64,
    test_translation_and_permutation_invariance,
)

from mldiff.errors import ConfigError, SpeciesError
from mldiff.potentials.mace import MACEConfig, mace, mace_atomic_energies
from mldiff.structure import Structure

TINY = MACEConfig(
    cutoff=4.0,
    num_layers=2,
    features=8,
    l_max=2,
    hidden_l_max=1,
    correlation=3,
    radial_mlp=(16,),
    avg_num_neighbors=8.0,
    readout_mlp=8,
)


@pytest.fixture(scope="module")
def model():
    """Tiny MACE (ν = 3) on Si/Cu: ``(potential, atomic_energies_fn)``."""
    kwargs = dict(species=SPECIES, atomic_energies=E0, scale=0.7, shift=0.1)
    return mace(TINY, **kwargs), mace_atomic_energies(TINY, **kwargs)


def test_mace_species_and_config_errors(model):
    # reference: mldiff's boundary rules (STYLE rule 7)
    pot, _ = model
    assert pot.species == SPECIES and pot.name == "mace" and pot.cutoff == 4.0
    oxide = Structure.create([[0, 0, 0], [1.8, 0, 0]], None, [29, 8], pbc=False)
    with pytest.raises(SpeciesError, match="O"):
        pot.init(jax.random.key(0), oxide)
    with pytest.raises(ConfigError):
        MACEConfig(hidden_l_max=3, l_max=2)
    with pytest.raises(ConfigError):
        MACEConfig(correlation=0)


def test_contraction_weights_cover_every_order(model, system):  # noqa: F811
    # reference: the symmetric contraction has weights for products of A of
    # every order 1..ν (Batatia et al. 2022, eq. 10), per species and channel
    _, params, *_ = system
    names = params["params"]["layer_0"]["contraction"]
    orders = sorted({int(k[1]) for k in names})
    assert orders == list(range(1, TINY.correlation + 1))
    w = names["w3_0e"]
    assert w.shape[0] == len(SPECIES) and w.shape[-1] == TINY.features
    assert np.all(np.isfinite(w))
