"""Shared tiny models for the transfer-learning tests."""

import jax
import numpy as np
import pytest
from ase.build import bulk
from tiny_models import TINY_NEQUIP, emt_items

from mldiff.potentials.nequip import NequIPConfig, nequip
from mldiff.structure import Structure
from mldiff.training import checkpoint
from mldiff.training.models import ModelSpec

# two interaction blocks, so one can be frozen
TINY = {**TINY_NEQUIP, "num_layers": 2}
SPECIES = (29, 79)


@pytest.fixture(scope="session")
def tiny_items():
    """Eight labelled 4-atom Cu / Cu3Au cells."""
    return emt_items(8)


@pytest.fixture(scope="session")
def pretrained_checkpoint(tmp_path_factory, tiny_items):
    """A NequIP checkpoint (freshly initialised, float64) and its parameters."""
    spec = ModelSpec(
        name="nequip",
        config=TINY,
        species=SPECIES,
        atomic_energies={29: 0.0, 79: 0.0},
        scale=1.0,
    )
    cfg = NequIPConfig(**{**TINY, "radial_mlp": tuple(TINY["radial_mlp"])})
    pot = nequip(cfg, species=SPECIES, atomic_energies=spec.atomic_energies)
    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True))
    params = jax.tree_util.tree_map(
        lambda x: x.astype(np.float64), pot.init(jax.random.key(1), s)
    )
    path = tmp_path_factory.mktemp("pretrained") / "model.msgpack"
    checkpoint.save(path, spec=spec, params=params)
    return path, params
