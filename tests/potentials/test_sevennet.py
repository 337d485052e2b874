"""SevenNet in mldiff's JAX against sevenn's own torch model (the reference).

Every check converts the real checkpoints that ship in the sevenn wheel and
compares with ``sevenn.calculator.SevenNetCalculator`` (float32, as sevenn
runs); float64 is checked against finite differences and symmetry (sevenn's
calculator casts its inputs to float32). Converted models are cached in the
test run's own directory (tests/conftest.py).
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from mldiff import neighbors, potentials, quantities
from mldiff.errors import ConfigError, SpeciesError
from mldiff.io import LabeledStructure
from mldiff.potentials import universal
from mldiff.structure import Structure
from mldiff.training.evaluation import predict_items

SEVENN_NAMES = {
    "sevennet-0": "7net-0",
    "sevennet-0-22may2024": "7net-0_22May2024",
    "sevennet-l3i5": "7net-l3i5",
    "sevennet-mf-0": "7net-mf-0",
}


def sevenn_calculator(name, modality=None):
    from sevenn.calculator import SevenNetCalculator

    extra = {"modal": modality} if modality else {}
    return SevenNetCalculator(model=SEVENN_NAMES[name], device="cpu", **extra)


def structure_classes():
    """The issue's classes: elements, oxide, nitride, alloy, molecule, skewed, 1-500."""
    out = {
        "Si-diamond": bulk("Si", "diamond", a=5.43),
        "Cu-fcc-500": bulk("Cu", "fcc", a=3.61, cubic=True).repeat(5),
        "MgO-rocksalt": bulk("MgO", "rocksalt", a=4.21).repeat(2),
        "GaN-wurtzite": bulk("GaN", "wurtzite", a=3.19, c=5.19),
        "Li3N": bulk("Li", "bcc", a=3.5).repeat((2, 2, 1)),
    }
    out["Li3N"].symbols[0] = "N"
    alloy = bulk("Cu", "fcc", a=3.75, cubic=True).repeat((2, 1, 1))
    alloy.symbols[[0, 3, 5]] = "Au"
    alloy.symbols[6] = "Pd"
    out["CuAuPd-alloy"] = alloy
    h2o = molecule("H2O")
    h2o.center(vacuum=5.0)
    h2o.pbc = True
    out["H2O-in-box"] = h2o
    skew = bulk("Al", "fcc", a=4.0)
    shear = np.array([[1.0, 0.35, 0.1], [0.0, 1.0, 0.45], [0.25, 0.0, 1.0]])
    skew.set_cell(skew.cell[:] @ shear, scale_atoms=True)
    out["Al-skewed-1-atom"] = skew
    # a skewed 2-atom cell whose lattice vectors are 4.995 Å (each atom sees its
    # own images just inside the 5 Å cutoff) and 5.005 Å (just outside)
    a1 = np.array([4.995, 0.0, 0.0])
    a2 = 5.005 * np.array([np.cos(1.1), np.sin(1.1), 0.0])
    a3 = 4.995 * np.array([0.3, 0.25, np.sqrt(1 - 0.3**2 - 0.25**2)])
    out["SiC-near-cutoff"] = Atoms(
        "SiC", cell=[a1, a2, a3], scaled_positions=[[0, 0, 0], [0.4, 0.3, 0.45]]
    )
    out["SiC-near-cutoff"].pbc = True
    rng = np.random.default_rng(7)
    for atoms in out.values():
        atoms.positions += rng.normal(0.0, 0.04, atoms.positions.shape)
    return out


def reference(calc, atoms_by_name):
    ref = {}
    for name, atoms in atoms_by_name.items():
        a = atoms.copy()
        a.calc = calc
        ref[name] = (a.get_potential_energy(), a.get_forces(), a.get_stress())
    return ref


def voigt(s):
    s = np.asarray(s)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def test_sevennet0_equals_sevenn_on_every_structure_class_in_padded_batches():
    # reference: sevenn's SevenNetCalculator, float32 on both sides; ours runs
    # the structures as padded, mixed-species batches (ghost atoms, spare
    # edge slots), so batched numbers are checked against single structures too
    cases = structure_classes()
    ref = reference(sevenn_calculator("sevennet-0"), cases)
    pot = potentials.get("sevennet-0")
    items = [LabeledStructure.from_atoms(a, dtype=np.float32) for a in cases.values()]
    params = pot.init(None, items[0].structure)
    out = predict_items(
        pot, params, items, batch_size=4, with_stress=True, dtype=jnp.float32
    )
    for k, name in enumerate(cases):
        e7, f7, s7 = ref[name]
        n = len(cases[name])
        assert abs(out["energy"][k] - e7) / n < 5e-6, name  # issue: 5e-5 eV/atom
        np.testing.assert_allclose(out["forces"][k], f7, atol=2e-4, err_msg=name)
        np.testing.assert_allclose(voigt(out["stress"][k]), s7, atol=2e-6, err_msg=name)


@pytest.mark.parametrize(
    "name,modality",
    [
        ("sevennet-0-22may2024", None),
        ("sevennet-l3i5", None),
        ("sevennet-mf-0", "PBE"),
        ("sevennet-mf-0", "R2SCAN"),
    ],
)
def test_other_checkpoints_equal_sevenn(name, modality):
    # reference: sevenn's calculator for the same checkpoint (and modality)
    cases = structure_classes()
    cases = {k: cases[k] for k in ("MgO-rocksalt", "Al-skewed-1-atom")}
    ref = reference(sevenn_calculator(name, modality), cases)
    pot = potentials.get(name, **({"modality": modality} if modality else {}))
    efs = jax.jit(quantities.energy_forces_stress(pot.energy))
    for label, atoms in cases.items():
        s = Structure.from_ase(atoms, dtype=np.float32)
        g = neighbors.allocate(s, pot.cutoff)
        e, f, st = efs(pot.init(None, s), s, g)
        e7, f7, s7 = ref[label]
        assert abs(float(e) - e7) / len(atoms) < 5e-6, label
        np.testing.assert_allclose(f, f7, atol=2e-4, err_msg=label)
        np.testing.assert_allclose(voigt(st), s7, atol=2e-6, err_msg=label)


@pytest.fixture(scope="module")
def float64_sevennet():
    pot = potentials.get("sevennet-0")
    atoms = bulk("ZnO", "wurtzite", a=3.25, c=5.2)
    atoms.positions += np.random.default_rng(3).normal(0, 0.05, atoms.positions.shape)
    s = Structure.from_ase(atoms)
    return pot, pot.init(None, s), s


def test_forces_equal_finite_differences(float64_sevennet):
    # reference: central finite differences of the energy (float64)
    pot, params, s = float64_sevennet
    g = neighbors.allocate(s, pot.cutoff)
    energy = jax.jit(lambda r: pot.energy(params, s.replace(positions=r), g))
    forces = -jax.grad(lambda r: pot.energy(params, s.replace(positions=r), g))(
        s.positions
    )
    h = 1e-4
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        dr = jnp.zeros_like(s.positions).at[atom, axis].set(h)
        fd = -(energy(s.positions + dr) - energy(s.positions - dr)) / (2 * h)
        assert abs(float(fd) - float(forces[atom, axis])) < 1e-6


def test_energy_invariant_forces_equivariant_under_rotation_and_permutation(
    float64_sevennet,
):
    # reference: E(3) symmetry — a rotated, translated, re-ordered copy of the
    # crystal has the same energy and rotated, re-ordered forces
    pot, params, s = float64_sevennet
    ef = jax.jit(quantities.energy_and_forces(pot.energy))
    e, f = ef(params, s, neighbors.allocate(s, pot.cutoff))
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a proper rotation (SE(3) model)
    perm = np.array([2, 0, 3, 1])
    t = s.replace(
        positions=(s.positions @ q.T + 0.3)[perm],
        cell=s.cell @ q.T,
        numbers=s.numbers[perm],
    )
    e2, f2 = ef(params, t, neighbors.allocate(t, pot.cutoff))
    assert abs(float(e2 - e)) < 1e-10
    np.testing.assert_allclose(f2, (np.asarray(f) @ q.T)[perm], atol=1e-9)


def test_element_outside_the_table_is_a_species_error():
    pot = potentials.get("sevennet-0")
    assert len(pot.species) == 89
    missing = next(z for z in range(1, 119) if z not in pot.species)
    s = Structure.create([[0, 0, 0], [2.0, 0, 0]], None, [14, missing], pbc=False)
    with pytest.raises(SpeciesError, match="sevennet"):
        pot.init(None, s)


def test_modality_is_required_for_multi_fidelity_and_refused_otherwise():
    with pytest.raises(ConfigError, match="modality= one of R2SCAN, PBE"):
        potentials.get("sevennet-mf-0")
    with pytest.raises(ConfigError, match="single fidelity"):
        potentials.get("sevennet-0", modality="PBE")
    assert potentials.get("sevennet-mf-0:PBE").name == "sevennet"


def test_second_load_reads_no_torch_and_loads_as_mldiff_checkpoint():
    # the cache is mldiff's own checkpoint format: mldiff.load reads it, and a
    # fresh process gets the model without importing torch or sevenn
    import mldiff

    pot = potentials.get("sevennet-0")
    s = Structure.from_ase(bulk("Si", "diamond", a=5.43))
    g = neighbors.allocate(s, pot.cutoff)
    e = float(jax.jit(pot.energy)(pot.init(None, s), s, g))
    cached = universal.converted_checkpoint("sevennet-0")
    assert os.path.dirname(cached) == universal.cache_dir()
    model = mldiff.load(cached)
    assert float(jax.jit(model.potential.energy)(model.params, s, g)) == e
    script = textwrap.dedent(
        """
        import sys
        import jax
        jax.config.update("jax_enable_x64", True)
        from ase.build import bulk
        from mldiff import neighbors, potentials
        from mldiff.structure import Structure
        pot = potentials.get("sevennet-0")
        s = Structure.from_ase(bulk("Si", "diamond", a=5.43))
        g = neighbors.allocate(s, pot.cutoff)
        print(repr(float(pot.energy(pot.init(None, s), s, g))))
        print("torch" in sys.modules, "sevenn" in sys.modules)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    energy, imported = run.stdout.strip().splitlines()[-2:]
    assert imported == "False False"
    assert float(energy) == pytest.approx(e, abs=1e-9)


def test_missing_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MLDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConfigError, match=r"mldiff\[universal\]"):
        potentials.get("sevennet-l3i5")


def test_any_checkpoint_path_and_the_ase_calculator():
    # sevennet(path) on the wheel's file equals the named model, and
    # mldiff.ase.Calculator takes the name and the .pth path
    from mldiff.ase import Calculator

    path = universal.pretrained_path("sevennet-0")
    # one Potential object per model, so its jitted programs are reused
    assert potentials.get("sevennet-0") is universal.sevennet(path)
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.calc = Calculator("sevennet-0")
    e_name = atoms.get_potential_energy()
    atoms.calc = Calculator(path)
    assert atoms.get_potential_energy() == pytest.approx(e_name, abs=1e-10)


def test_active_learning_oracle_mldiff_sevennet0_labels_as_sevenn():
    # `mldiff active` with `oracle: mldiff:sevennet-0` (distillation): the
    # oracle's labels equal sevenn's own calculator
    from mldiff.cli.active import make_oracle_calculator

    atoms = structure_classes()["Si-diamond"]
    ours = atoms.copy()
    ours.calc = make_oracle_calculator("mldiff:sevennet-0")
    theirs = atoms.copy()
    theirs.calc = sevenn_calculator("sevennet-0")
    assert ours.get_potential_energy() == pytest.approx(
        theirs.get_potential_energy(), abs=1e-5
    )
    np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), atol=2e-4)


def test_without_sevenn_a_cached_conversion_is_found_by_name(monkeypatch, tmp_path):
    # sevenn uninstalled after a first load: the cache serves the name, and an
    # empty cache gets the install hint
    cached = universal.converted_checkpoint("sevennet-0")
    universal.converted_checkpoint("sevennet-0-22may2024")  # a prefix-sharing name
    monkeypatch.setattr(universal, "pretrained_path", lambda name: None)
    assert universal.converted_checkpoint("sevennet-0") == cached
    monkeypatch.setenv("MLDIFF_CACHE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no cached conversion.*mldiff\[universal\]"):
        universal.converted_checkpoint("sevennet-0")
