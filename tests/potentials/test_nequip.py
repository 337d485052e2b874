"""NequIP-style potential: symmetries, derivatives, padding and jit behaviour.

References: exact symmetries of the energy (rotations, reflections,
translations, permutations — Batzner et al. 2022 build the model to respect
them), central finite differences of the model's own energy, and the
construction rules of mldiff (ghost atoms carry nothing; the C² envelope).
``test_mace.py`` runs the same checks on the MACE-style model through its own
``model`` fixture.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk

from mldiff import neighbors, quantities
from mldiff.errors import ConfigError, SpeciesError
from mldiff.potentials import check_species
from mldiff.potentials.nequip import NequIPConfig, nequip, nequip_atomic_energies
from mldiff.structure import Structure, apply_strain

SPECIES = (14, 29)
E0 = {14: -1.5, 29: -3.0}  # eV
TINY = NequIPConfig(
    cutoff=4.0,
    num_layers=2,
    features=8,
    l_max=2,
    radial_mlp=(16,),
    avg_num_neighbors=8.0,
)


@pytest.fixture(scope="module")
def model():
    """Tiny NequIP on Si/Cu: ``(potential, atomic_energies_fn)``."""
    kwargs = dict(species=SPECIES, atomic_energies=E0, scale=0.7, shift=0.1)
    return nequip(TINY, **kwargs), nequip_atomic_energies(TINY, **kwargs)


def _atoms():
    """8 atoms of alternating Si/Cu in a sheared, rattled fcc cell."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    shear = np.array([[1.0, 0.05, -0.03], [0.02, 0.97, 0.04], [0.0, -0.06, 1.03]])
    atoms.set_cell(atoms.cell[:] @ shear, scale_atoms=True)
    atoms.rattle(0.1, seed=3)
    atoms.numbers[::2] = 14
    return atoms


@pytest.fixture(scope="module")
def system(model):
    """``(pot, params, structure, graph, efs)`` in float64, graph with skin."""
    pot, _ = model
    s = Structure.from_ase(_atoms())
    g = neighbors.allocate(s, pot.cutoff, skin=0.3)
    params = pot.init(jax.random.key(0), s)
    efs = jax.jit(quantities.energy_forces_stress(pot.energy))
    return pot, params, s, g, efs


def _rotation(seed, proper=True):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    q = q if np.linalg.det(q) > 0 else -q
    return q if proper else -q


def _rotated(s, rot):
    rot = jnp.asarray(rot, s.positions.dtype)
    return s.replace(positions=s.positions @ rot.T, cell=s.cell @ rot.T)


def _check_rotation(efs, params, s, g, rot, rtol):
    e, f, sigma = efs(params, s, g)
    e2, f2, sigma2 = efs(params, _rotated(s, rot), g)
    scale = np.abs(np.asarray(f)).max()
    assert abs(e2 - e) <= rtol * abs(e)
    assert np.abs(np.asarray(f2) - np.asarray(f) @ rot.T).max() <= rtol * scale
    # σ = (1/|V|) ∂E/∂ε transforms as R σ Rᵀ for proper and improper R alike
    w, w2 = np.asarray(sigma), np.asarray(sigma2)
    assert np.abs(w2 - rot @ w @ rot.T).max() <= rtol * np.abs(w).max()


@pytest.mark.parametrize("proper", [True, False], ids=["proper", "improper"])
def test_rotation_rotates_forces_and_stress_float64(system, proper):
    # reference: exact O(3) invariance of E (parity=True): E(Rx) = E(x),
    # F(Rx) = R F(x), σ(Rx) = R σ Rᵀ
    pot, params, s, g, efs = system
    rot = _rotation(11, proper)
    if proper:
        e, _, sigma = efs(params, s, g)
        _, _, sigma2 = efs(params, _rotated(s, rot), g)
        np.testing.assert_allclose(sigma2, rot @ np.asarray(sigma) @ rot.T, atol=1e-12)
    _check_rotation(efs, params, s, g, rot, rtol=1e-10)


def test_rotation_float32(model):
    # reference: exact O(3) invariance, to float32 rounding (1e-5 relative)
    pot, _ = model
    s = Structure.from_ase(_atoms(), dtype=jnp.float32)
    g = neighbors.allocate(s, pot.cutoff)
    params = pot.init(jax.random.key(1), s)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    efs = jax.jit(quantities.energy_forces_stress(pot.energy))
    e, f, sigma = efs(params, s, g)
    assert e.dtype == f.dtype == sigma.dtype == jnp.float32
    _check_rotation(efs, params, s, g, _rotation(5, proper=False), rtol=1e-5)


def test_translation_and_permutation_invariance(system, rng):
    # reference: exact invariance under translations and atom relabelling
    pot, params, s, g, efs = system
    e, f, sigma = efs(params, s, g)
    shifted = s.replace(positions=s.positions + jnp.asarray(rng.normal(size=3) * 7.0))
    e_t, f_t, sigma_t = efs(params, shifted, g)
    np.testing.assert_allclose(e_t, e, rtol=1e-12)
    np.testing.assert_allclose(f_t, f, atol=1e-11)
    np.testing.assert_allclose(sigma_t, sigma, atol=1e-11)

    perm = rng.permutation(len(s))
    s_p = s.replace(positions=s.positions[perm], numbers=s.numbers[perm])
    g_p = neighbors.allocate(s_p, pot.cutoff, skin=0.3, capacity=g.capacity)
    e_p, f_p, sigma_p = efs(params, s_p, g_p)
    np.testing.assert_allclose(e_p, e, rtol=1e-12)
    np.testing.assert_allclose(f_p, np.asarray(f)[perm], atol=1e-11)
    np.testing.assert_allclose(sigma_p, sigma, atol=1e-11)


def test_forces_and_stress_match_finite_differences(system):
    # reference: central finite differences of the model energy (h = 1e-5 Å / strain)
    pot, params, s, g, efs = system
    e, f, sigma = efs(params, s, g)
    h = 1e-5
    r0 = np.asarray(s.positions)
    atoms = [0, 3, 6]  # a Si, a Cu and a Si atom, all three Cartesian components
    fd = np.zeros((len(atoms), 3))
    for a, atom in enumerate(atoms):
        for k in range(3):
            d = np.zeros_like(r0)
            d[atom, k] = h
            plus = efs(params, s.replace(positions=jnp.asarray(r0 + d)), g)[0]
            minus = efs(params, s.replace(positions=jnp.asarray(r0 - d)), g)[0]
            fd[a, k] = -(plus - minus) / (2 * h)
    f = np.asarray(f)[atoms]
    assert np.linalg.norm(fd - f) <= 1e-6 * np.linalg.norm(f)

    volume = abs(np.linalg.det(np.asarray(s.cell)))
    fd_voigt = np.zeros(6)
    for k in range(6):
        v = np.zeros(6)
        v[k] = h
        plus = efs(params, apply_strain(s, v), g)[0]
        minus = efs(params, apply_strain(s, -v), g)[0]
        fd_voigt[k] = (plus - minus) / (2 * h) / volume
    voigt = np.asarray(quantities.full_3x3_to_voigt(sigma))
    assert np.linalg.norm(fd_voigt - voigt) <= 1e-6 * np.linalg.norm(voigt)


def _with_ghosts(s, count=3):
    """``s`` plus ``count`` ghost atoms (Z = 0), some on top of real atoms."""
    ghost_pos = np.asarray(s.positions)[:count] + 0.3
    return Structure.create(
        np.concatenate([np.asarray(s.positions), ghost_pos]),
        np.asarray(s.cell),
        np.concatenate([np.asarray(s.numbers), np.zeros(count, int)]),
        s.pbc,
        dtype=s.positions.dtype,
        check=False,
    )


def test_ghost_atoms_change_nothing(system):
    # reference: ghosts are padding by construction — zero energy, no influence
    pot, params, s, g, efs = system
    e, f, sigma = efs(params, s, g)
    sg = _with_ghosts(s)
    gg = neighbors.allocate(sg, pot.cutoff, skin=0.3)  # holds edges to the ghosts
    e_g, f_g, sigma_g = efs(params, sg, gg)
    n = len(s)
    np.testing.assert_allclose(e_g, e, rtol=1e-14)
    np.testing.assert_allclose(f_g[:n], f, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(f_g[n:], 0.0)
    np.testing.assert_allclose(sigma_g, sigma, rtol=0, atol=1e-13)

    only = sg.replace(numbers=jnp.zeros_like(sg.numbers))  # same shapes: no compile
    e0, f0, sigma0 = efs(params, only, gg)
    assert float(e0) == 0.0
    assert np.all(np.asarray(f0) == 0.0) and np.all(np.asarray(sigma0) == 0.0)


@pytest.fixture(scope="module")
def dimer(model):
    """Si–Cu pair near the cutoff plus a ghost bonded to Si, a graph with skin.

    Returns ``(pot, params, make, graph, atomic, traces)`` where ``make(r)``
    places Cu at distance r, and ``atomic`` is the jitted per-atom energy
    function that appends to ``traces`` each time it is traced.
    """
    pot, atomic_energies = model

    def make(r):
        return Structure.create(
            [[0, 0, 0], [r, 0, 0], [0, 1.0, 0]], None, [14, 29, 0], False, check=False
        )

    g = neighbors.allocate(make(pot.cutoff - 0.4), pot.cutoff, skin=0.6, capacity=8)
    params = pot.init(jax.random.key(2), make(1.0))
    traces = []

    def atomic(p, s, graph):
        traces.append(1)  # runs only while tracing
        return atomic_energies(p, s, graph)

    return pot, params, make, g, jax.jit(atomic), traces


def test_energy_continuous_at_cutoff_and_compiled_once(dimer):
    # reference: u_p envelope → 0 with two zero derivatives at r_c (Klicpera 2020)
    pot, params, make, g, atomic, traces = dimer
    assert int(g.n_edges) == 6  # all three pairs, both ways: ghost edges too
    rc = pot.cutoff
    inside = atomic(params, make(rc - 1e-6), g)
    outside = atomic(params, make(rc + 1e-6), g)
    near = atomic(params, make(rc - 0.5), g)
    assert abs(float(inside.sum() - outside.sum())) < 1e-12
    assert abs(float(near.sum() - outside.sum())) > 1e-8  # the pair interacts
    assert float(near[2]) == 0.0  # the ghost carries no energy
    assert len(traces) == 1  # three structures of one shape: one trace


def test_unknown_element_gives_nan_inside_jit():
    # reference: mldiff's rule that results are never silently wrong
    from mldiff.potentials.layers import species_table, total_atomic_energies

    table = species_table(SPECIES)
    rows, real, unknown = table.lookup(jnp.array([14, 0, 8, 29]))
    assert real.tolist() == [True, False, False, True]
    assert unknown.tolist() == [False, False, True, False]
    e0 = np.array([-1.5, -3.0])
    with jax.debug_nans(False):
        out = total_atomic_energies(jnp.ones(4), rows, real, unknown, e0, 2.0, 0.5)
        out = np.asarray(out)
    np.testing.assert_allclose(out[[0, 1, 3]], [1.0, 0.0, -0.5])
    assert np.isnan(out[2])


def test_species_errors(model, dimer):
    # reference: mldiff's boundary rules (STYLE rule 7)
    pot, _ = model
    assert pot.species == SPECIES and pot.name == "nequip" and pot.cutoff == 4.0
    oxide = Structure.create([[0, 0, 0], [1.8, 0, 0]], None, [29, 8], pbc=False)
    with pytest.raises(SpeciesError, match="O"):
        pot.init(jax.random.key(0), oxide)
    with pytest.raises(SpeciesError):
        check_species(pot, [29, 8])
    with pytest.raises(SpeciesError):
        nequip(TINY, species=(29,), atomic_energies={14: -1.0})
    with pytest.raises(ConfigError):
        NequIPConfig(cutoff=-1.0)
    with pytest.raises(ConfigError):
        NequIPConfig(activation="nope")


def test_ensemble_params_under_vmap(dimer):
    # reference: vmap over stacked params equals separate evaluations, and the
    # per-atom energies sum to the energy
    pot, params, make, g, atomic, _ = dimer
    s = make(2.5)
    members = [jax.tree.map(lambda x, c=c: c * x, params) for c in (1.0, 0.9, 1.1)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    committee = jax.jit(jax.vmap(pot.energy, in_axes=(0, None, None)))(stacked, s, g)
    assert committee.shape == (3,)
    for k in range(3):
        np.testing.assert_allclose(
            committee[k], atomic(members[k], s, g).sum(), rtol=1e-12
        )
    assert np.unique(np.asarray(committee)).size == 3


def test_weighted_tensor_product_matches_e3nn(rng):
    # reference: e3nn.tensor_product (dense Clebsch-Gordan, component
    # normalisation); with unit weights both give the same regrouped array
    import e3nn_jax as e3nn

    from mldiff.potentials.layers import irreps as irr

    x = e3nn.IrrepsArray("3x0e + 3x1o + 3x2e", jnp.asarray(rng.normal(size=(5, 27))))
    y = irr.spherical_harmonics(
        jnp.asarray(rng.normal(size=(5, 3))) / 2.0, l_max=2, parity=True
    )
    keep = e3nn.Irreps("0e + 1o + 2e")
    ones = jnp.ones((5, irr.num_path_weights(x.irreps, y.irreps, keep)))
    ours = irr.weighted_tensor_product(x, y, ones, keep).regroup()
    ref = e3nn.tensor_product(x, y, filter_ir_out=keep).regroup()
    assert ours.irreps == ref.irreps
    np.testing.assert_allclose(ours.array, ref.array, atol=1e-12)
    doubled = irr.weighted_tensor_product(x, y, 2.0 * ones, keep).regroup()
    np.testing.assert_allclose(doubled.array, 2.0 * ref.array, atol=1e-12)


def test_average_num_neighbors_counts_fcc_shell():
    # reference: fcc has 12 nearest neighbors at a/√2 = 2.55 Å and 6 more at
    # a = 3.61 Å; a 3.0 Å cutoff counts exactly 12, ghosts and skin excluded
    from mldiff.potentials.layers import average_num_neighbors

    s = Structure.from_ase(bulk("Cu", "fcc", a=3.61, cubic=True))
    g = neighbors.allocate(s, 3.0, skin=1.0)  # the skin reaches the 2nd shell
    assert average_num_neighbors([(s, g)], 3.0) == 12.0
