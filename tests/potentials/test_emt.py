"""EMT against ASE's EMT calculator, finite differences and exact symmetries.

References: ``ase.calculators.emt.EMT`` (ASE 3.29, ``asap_cutoff=False`` unless a
test says otherwise); central finite differences of our own energy (forces,
stress, Hessian); exact rotation/translation/permutation invariance.
All in float64 (x64 is switched on by ``tests/conftest.py``).
"""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.spatial.transform import Rotation

from mldiff import neighbors, quantities
from mldiff.errors import SpeciesError
from mldiff.potentials import check_species, emt
from mldiff.potentials.emt import BETA, BOHR, PARAMETERS
from mldiff.structure import Structure, apply_strain

POT = emt()
EDGES_PER_ATOM = 100  # fixed capacity per atom, so equal-size cells share one jit
TRACES: list[tuple[int, ...]] = []  # positions shapes traced by EFS


def _efs(params, s, g):
    TRACES.append(tuple(s.positions.shape))  # runs only while tracing
    return quantities.energy_forces_stress(POT.energy)(params, s, g)


EFS = jax.jit(_efs)


def _setup(atoms, pot=POT):
    """(structure, graph, params) for an ase.Atoms, with a per-atom capacity."""
    s = Structure.from_ase(atoms)
    g = neighbors.allocate(s, pot.cutoff, capacity=EDGES_PER_ATOM * len(s))
    return s, g, pot.init(jax.random.key(0), s)


def _rattled(symbol, a, repeat=2, seed=0, shear=False, cubic=True):
    atoms = bulk(symbol, "fcc", a=a, cubic=cubic).repeat(repeat)
    if shear:
        atoms.set_cell(
            atoms.cell[:]
            @ (np.eye(3) + [[0.01, 0.03, 0.0], [0.0, -0.02, 0.02], [0.02, 0.0, 0.01]]),
            scale_atoms=True,
        )
    atoms.rattle(stdev=0.05, seed=seed)
    return atoms


def _cu_au_alloy():
    atoms = _rattled("Cu", 3.75, seed=3)
    rng = np.random.default_rng(11)
    atoms.numbers[rng.permutation(len(atoms))[:12]] = 79  # 12 Au, 20 Cu
    return atoms


def _primitive_cu():
    atoms = bulk("Cu", "fcc", a=3.58)  # 1 atom; a != ASE's equilibrium
    return atoms


CASES = {
    "Cu32": lambda: _rattled("Cu", 3.61, seed=1),
    "Al32-sheared": lambda: _rattled("Al", 4.05, seed=2, shear=True),
    "Ni32": lambda: _rattled("Ni", 3.50, seed=4),
    "CuAu32-random-alloy": _cu_au_alloy,
    "Cu1-primitive": _primitive_cu,
    "Cu108": lambda: _rattled("Cu", 3.62, repeat=3, seed=5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_energy_forces_stress_match_ase(case):
    """Energy, forces and stress equal ASE's EMT."""
    # reference: ase.calculators.emt.EMT on the same atoms
    atoms = CASES[case]()
    atoms.calc = EMT()
    s, g, params = _setup(atoms)
    e, f, sigma = EFS(params, s, g)
    n = len(atoms)
    assert abs(float(e) - atoms.get_potential_energy()) / n < 1e-9  # eV/atom
    np.testing.assert_allclose(f, atoms.get_forces(), rtol=0, atol=1e-8)  # eV/Å
    np.testing.assert_allclose(
        sigma, atoms.get_stress(voigt=False), rtol=0, atol=1e-9
    )  # eV/Å³
    assert TRACES.count(tuple(s.positions.shape)) == 1  # one compile per shape


def test_equal_shapes_compile_once():
    """Cells of equal shape reuse one compiled function."""
    # reference: jit's trace count (the function body runs only while tracing)
    before = len(TRACES)
    for case in ("Cu32", "Ni32"):
        s, g, params = _setup(CASES[case]())
        EFS(params, s, g)
    assert len(TRACES) - before <= 1


def test_cluster_without_pbc_matches_ase_with_an_isolated_atom():
    """A molecule with an atom without neighbors matches ASE; Hessian finite."""
    # reference: ase.calculators.emt.EMT; the far atom has no neighbors and
    # ASE's energy -E0 (the σ1 -> 0 limit), which exercises the guarded log
    atoms = Atoms(
        "Cu3AuCu",
        positions=[
            [0, 0, 0],
            [2.5, 0.1, 0],
            [1.2, 2.2, 0.1],
            [1.3, 0.8, 2.1],
            [20.0, 0, 0],
        ],
    )
    atoms.calc = EMT()
    s = Structure.from_ase(atoms)
    assert s.pbc == (False, False, False)
    g = neighbors.allocate(s, POT.cutoff)
    params = POT.init(None, s)
    e, f = jax.jit(quantities.energy_and_forces(POT.energy))(params, s, g)
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(f, atoms.get_forces(), rtol=0, atol=1e-8)
    hess = jax.jit(
        jax.hessian(lambda r: POT.energy(params, s.replace(positions=r), g))
    )(s.positions)
    assert np.isfinite(hess).all()
    np.testing.assert_array_equal(hess[4], 0.0)  # the isolated atom


def test_parameters_and_cutoff_are_ases():
    """The parameter table, constants and cutoffs are ASE's."""
    # reference: ASE's parameter table, ase.units.Bohr and EMT.initialize
    from ase.calculators import emt as ase_emt
    from ase.data import atomic_numbers
    from ase.units import Bohr

    assert BOHR == Bohr and BETA == ase_emt.beta
    assert PARAMETERS == {atomic_numbers[k]: v for k, v in ase_emt.parameters.items()}
    assert POT.species == tuple(sorted(PARAMETERS)) and POT.name == "emt"
    calc = EMT()
    calc.initialize(bulk("Cu"))
    assert POT.cutoff == calc.rc_list
    assert emt(species=("Cu", 79)).cutoff == calc.rc_list  # whole-table default
    calc_asap = EMT(asap_cutoff=True)
    calc_asap.initialize(bulk("Cu"))
    assert emt(species=(29,), asap_cutoff=True).cutoff == calc_asap.rc_list


def test_species_subset_and_asap_cutoff_match_ase():
    """ASE's asap_cutoff option matches; a species subset changes nothing."""
    # reference: ase.calculators.emt.EMT(asap_cutoff=True), and the full table
    atoms = _rattled("Cu", 3.61, seed=6)
    atoms.calc = EMT(asap_cutoff=True)
    pot = emt(species=("Cu",), asap_cutoff=True)
    s, g, params = _setup(atoms, pot)
    assert set(params) == {"E0", "s0", "V0", "eta2", "kappa", "lambda", "n0"}
    assert params["E0"].shape == (1,)
    e = float(jax.jit(pot.energy)(params, s, g))
    assert abs(e - atoms.get_potential_energy()) / len(atoms) < 1e-9
    alloy = _cu_au_alloy()
    sub = emt(species=("Au", "Cu"))
    s, g, _ = _setup(alloy)
    np.testing.assert_allclose(
        jax.jit(sub.energy)(sub.init(None, s), s, g),
        jax.jit(POT.energy)(POT.init(None, s), s, g),
        rtol=1e-13,
    )


@pytest.fixture(scope="module")
def alloy():
    """Random Cu-Au alloy: (structure, graph, params), shared by several tests."""
    s, g, params = _setup(_cu_au_alloy())
    return s, g, params


def test_forces_equal_central_finite_differences(alloy):
    """Forces are minus the finite-difference gradient of the energy."""
    # reference: central differences of the energy, h = 1e-5 Å
    s, g, params = alloy
    e_of_r = jax.jit(lambda r: POT.energy(params, s.replace(positions=r), g))
    _, f, _ = EFS(params, s, g)
    r0 = np.asarray(s.positions)
    rng = np.random.default_rng(7)
    h = 1e-5
    picks = [
        (int(a), int(k))
        for a, k in zip(
            rng.choice(len(r0), 8, replace=False), rng.integers(0, 3, 8), strict=True
        )
    ]
    fd = []
    for a, k in picks:
        rp, rm = r0.copy(), r0.copy()
        rp[a, k] += h
        rm[a, k] -= h
        fd.append(
            -(float(e_of_r(jnp.asarray(rp))) - float(e_of_r(jnp.asarray(rm)))) / (2 * h)
        )
    ours = np.array([f[a, k] for a, k in picks])
    np.testing.assert_allclose(ours, fd, rtol=0, atol=1e-6 * np.abs(f).max())


def test_stress_equals_finite_strain_differences(alloy):
    """Stress is the finite-strain derivative of the energy over the volume."""
    # reference: central differences of E(ε) / V under symmetric strain, h = 1e-6
    s, g, params = alloy
    e_of_eps = jax.jit(lambda eps: POT.energy(params, apply_strain(s, eps), g))
    _, _, sigma = EFS(params, s, g)
    h = 1e-6
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            d = np.zeros((3, 3))
            d[a, b] = d[b, a] = h if a == b else h / 2  # dE/dh = V σ_ab
            de = float(e_of_eps(jnp.asarray(d))) - float(e_of_eps(jnp.asarray(-d)))
            fd[a, b] = fd[b, a] = de / (2 * h)
    fd /= float(s.volume)
    np.testing.assert_allclose(sigma, fd, rtol=0, atol=1e-6 * np.abs(fd).max())


def test_energy_invariant_under_rotation_translation_permutation(alloy):
    """Energy is invariant under rotation, translation and permutation."""
    # reference: exact symmetry of a physical energy
    s, g, params = alloy
    energy = jax.jit(POT.energy)

    def e_of(x):
        return float(
            energy(params, x, neighbors.allocate(x, POT.cutoff, capacity=g.capacity))
        )

    e0 = float(energy(params, s, g))
    rot = jnp.asarray(Rotation.random(random_state=5).as_matrix())
    rotated = s.replace(positions=s.positions @ rot.T, cell=s.cell @ rot.T)
    moved = s.replace(positions=s.positions + jnp.array([0.31, -1.7, 2.9]))
    perm = np.random.default_rng(2).permutation(len(s))
    permuted = s.replace(positions=s.positions[perm], numbers=s.numbers[perm])
    for other in (rotated, moved, permuted):
        assert abs(e_of(other) - e0) < 1e-10


def test_hessian_is_finite_symmetric_and_matches_force_differences():
    """Second derivatives are finite, symmetric and consistent."""
    # reference: symmetry of second derivatives, translation invariance (acoustic
    # sum rule) and central differences of the forces, h = 1e-5 Å
    atoms = _rattled("Cu", 3.61, repeat=1, seed=8)  # 4 atoms
    s, g, params = _setup(atoms)

    def e_of_r(r):
        return POT.energy(params, s.replace(positions=r), g)

    hess = np.asarray(jax.jit(jax.hessian(e_of_r))(s.positions)).reshape(12, 12)
    assert np.isfinite(hess).all()
    scale = np.abs(hess).max()
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(hess.reshape(12, 4, 3).sum(1), 0.0, atol=1e-10 * scale)
    grad = jax.jit(jax.grad(e_of_r))
    h = 1e-5
    step = np.zeros((4, 3))
    step[1, 2] = h
    column = (grad(s.positions + step) - grad(s.positions - step)) / (2 * h)
    np.testing.assert_allclose(
        hess[:, 5], np.asarray(column).ravel(), rtol=0, atol=1e-6 * scale
    )


def test_params_are_differentiable_and_vmappable():
    """Energy differentiates in params and vmaps over stacked params."""
    # reference: central differences in random directions (check_grads) and the
    # unbatched energy, member by member
    s, g, params = _setup(_primitive_cu())

    @jax.jit
    def e_of_params(p):
        return POT.energy(p, s, g)

    jax.test_util.check_grads(
        e_of_params, (params,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6
    )
    members = [params, {**params, "E0": params["E0"] * 1.01, "s0": params["s0"] * 0.99}]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *members)
    committee = jax.jit(jax.vmap(POT.energy, in_axes=(0, None, None)))(stacked, s, g)
    for k, member in enumerate(members):
        np.testing.assert_allclose(committee[k], e_of_params(member), atol=1e-12)


def test_unsupported_species_raise_species_error():
    """Elements without parameters raise SpeciesError naming them."""
    # reference: the species table (Fe has no EMT parameters)
    atoms = bulk("Fe", "bcc", a=2.87).repeat((2, 1, 1))
    atoms.numbers[0] = 29
    s = Structure.from_ase(atoms)
    with pytest.raises(SpeciesError, match="Fe"):
        check_species(POT, s.numbers.tolist())  # Sequence[int]
    with pytest.raises(SpeciesError, match="Fe"):
        POT.init(jax.random.key(0), s)
    with pytest.raises(SpeciesError, match="Fe"):
        emt(species=("Cu", "Fe"))
    with pytest.raises(SpeciesError, match="Au"):
        check_species(emt(species=("Cu",)), [29, 79])
    check_species(POT, [29, 79, 13])  # supported: no error


def test_unsupported_species_give_nan_inside_jit():
    """Inside jit, elements without parameters give a NaN energy."""
    # reference: the documented in-jit flag for elements check_species rejects
    s, g, _ = _setup(_cu_au_alloy())
    pot = emt(species=("Cu",))
    with jax.debug_nans(False):
        assert np.isnan(float(jax.jit(pot.energy)(pot.init(None, None), s, g)))
