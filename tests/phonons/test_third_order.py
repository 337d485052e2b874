"""Third-order force constants by nested autodiff (issue 14).

References: central finite differences of the autodiff Hessian (independent
of the third-derivative code path), the direct computation of every row
(independent of the symmetry rebuild), and phono3py 4.10's own finite-
displacement fc3 on the same potential through mldiff's ASE calculator.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from phonopy_reference import FCC_PRIMITIVE

from mldiff import neighbors, phonons
from mldiff.errors import ConfigError, PrecisionError
from mldiff.phonons import force_constants, third_order
from mldiff.structure import Structure


@pytest.fixture(scope="module")
def si8(si_sw):
    """8-atom Si-SW cell and its fc3 (symmetry rebuild, invariance enforced)."""
    pot, params, atoms = si_sw
    s = Structure.from_ase(atoms)
    return pot, params, s, np.asarray(third_order.third_order(pot, params, s))


def fd_of_hessian(pot, params, s, atoms_k, h=1e-4):
    """``[n, 3, n, 3, len(atoms_k), 3]``: central differences of the Hessian."""
    g = neighbors.allocate(s, pot.cutoff)
    hess = jax.jit(force_constants.force_constants(pot.energy))
    out = []
    for k in atoms_k:
        for c in range(3):
            plus = s.replace(positions=s.positions.at[k, c].add(h))
            minus = s.replace(positions=s.positions.at[k, c].add(-h))
            out.append((hess(params, plus, g) - hess(params, minus, g)) / (2 * h))
    n = len(s)
    return np.stack(out, -1).reshape(n, 3, n, 3, len(atoms_k), 3)


def test_fc3_equals_finite_differences_of_the_hessian(si8):
    pot, params, s, fc3 = si8
    fd = fd_of_hessian(pot, params, s, range(len(s)))
    # O(h²) truncation with h = 1e-4 Å: ~1e-7 of max |Φ| ≈ 27 eV/Å³
    np.testing.assert_allclose(fc3, fd, atol=1e-6 * np.abs(fc3).max())
    assert np.abs(fc3).max() > 10.0  # not trivially zero


def test_symmetry_rebuild_equals_every_row_and_is_invariant(si8):
    pot, params, s, fc3 = si8
    direct = np.asarray(
        third_order.third_order(
            pot, params, s, use_symmetry=False, enforce_invariance=False
        )
    )
    np.testing.assert_allclose(fc3, direct, atol=1e-11)
    sym = force_constants.site_symmetry(s)
    rebuilt = third_order.distribute(jnp.asarray(direct[sym.independent]), sym)
    np.testing.assert_allclose(rebuilt, direct, atol=1e-11)
    for axis in (0, 2, 4):  # translational invariance along every index
        assert np.abs(direct.sum(axis=axis)).max() < 1e-10
    # full index-permutation symmetry
    np.testing.assert_allclose(direct, direct.transpose(2, 3, 0, 1, 4, 5), atol=1e-11)
    np.testing.assert_allclose(direct, direct.transpose(4, 5, 2, 3, 0, 1), atol=1e-11)
    # so enforcing invariance alone equals the full projection (perms + invariance)
    np.testing.assert_allclose(
        fc3, np.asarray(third_order.symmetrize(jnp.asarray(direct))), atol=1e-11
    )
    # the one-pass centring equals centring one index after another
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 3, 3, 3, 3)))
    y = x
    for axis in (0, 2, 4):
        y = y - jnp.mean(y, axis=axis, keepdims=True)
    np.testing.assert_allclose(third_order.translational_invariance(x), y, atol=1e-13)


@pytest.fixture(scope="module")
def lj_fcc():
    """Lennard-Jones fcc, one atom moved (4-atom cell, cheap), and its fc3.

    (In the perfect 4-atom cell every pair's images come in ± pairs, so fc3
    vanishes; the displacement breaks that.)
    """
    from ase.build import bulk

    from mldiff import potentials

    pot = potentials.get("lj")
    atoms = bulk("Ar", "fcc", a=1.6, cubic=True)
    atoms.positions[1] += [0.03, -0.02, 0.01]
    s = Structure.from_ase(atoms)
    params = pot.init(None, s)
    return pot, params, s, np.asarray(third_order.third_order(pot, params, s))


def test_pair_cutoff_drops_far_triples_and_stays_invariant(lj_fcc):
    pot, params, s, fc3 = lj_fcc
    assert np.abs(fc3).max() > 1.0
    # minimum-image distances are 0 and about a/√2 = 1.13 Å: 1.0 Å keeps i = j = k
    assert third_order.pair_mask(s, 1.0).sum() == len(s)
    cut = np.asarray(third_order.third_order(pot, params, s, cutoff=1.0))
    # translational invariance is restored after the cutoff
    for axis in (0, 2, 4):
        assert np.abs(cut.sum(axis=axis)).max() < 1e-10
    # the on-site blocks before the invariance correction are the full ones:
    # for one cell of 4 atoms, centring moves Φ_iii by the row means
    assert np.abs(cut - fc3).max() > 1e-3 * np.abs(fc3).max()
    full = third_order.third_order(pot, params, s, cutoff=10.0)
    np.testing.assert_allclose(full, fc3, atol=1e-10 * np.abs(fc3).max())


def test_cutoff_result_equals_masking_then_centring(si8):
    # reference: every row differentiated directly, the triplet mask applied
    # by hand, then the three-index centring of the whole tensor
    # (translational_invariance). third_order instead rotates a few rows and
    # takes the mean over the first index from the second by symmetry.
    pot, params, s, fc3 = si8
    direct = third_order.third_order(
        pot, params, s, use_symmetry=False, enforce_invariance=False
    )
    mask = third_order.pair_mask(s, 3.0)  # first neighbours (2.35 Å) only
    assert not mask.all()
    tri = mask[:, :, None] & mask[:, None, :] & mask[None, :, :]
    expected = third_order.translational_invariance(
        jnp.where(tri[:, None, :, None, :, None], direct, 0.0)
    )
    got = np.asarray(third_order.third_order(pot, params, s, cutoff=3.0))
    np.testing.assert_allclose(got, expected, atol=1e-11)
    assert np.abs(got - fc3).max() > 1.0  # the cutoff did cut (eV/Å³)


def test_chunking_does_not_change_the_result(lj_fcc):
    pot, params, s, fc3 = lj_fcc
    small = third_order.third_order(pot, params, s, chunk_size=5)
    np.testing.assert_allclose(small, fc3, atol=1e-10 * np.abs(fc3).max())


def test_jit_over_params_with_a_given_graph_equals_the_eager_result(si8):
    # reference: the eager call (the graph is built outside the trace)
    pot, params, s, fc3 = si8
    graph = neighbors.allocate(s, pot.cutoff)

    @jax.jit
    def fc3_of(params):
        return third_order.third_order(pot, params, s, graph=graph)

    np.testing.assert_allclose(fc3_of(params), fc3, atol=1e-12 * np.abs(fc3).max())
    # and it follows the parameters: λ scales the three-body part
    scaled = fc3_of(dict(params, lambda_=2.0 * params["lambda_"]))
    assert np.abs(np.asarray(scaled) - fc3).max() > 1.0


@pytest.mark.parametrize("use_symmetry", [True, False])
def test_first_atoms_give_those_blocks_of_the_full_tensor(si8, use_symmetry):
    # reference: the full, invariance-enforced fc3 of the fixture
    pot, params, s, fc3 = si8
    first = np.array([5, 0, 2])
    part = third_order.third_order(
        pot, params, s, first_atoms=first, use_symmetry=use_symmetry
    )
    np.testing.assert_allclose(part, fc3[first], atol=1e-12 * np.abs(fc3).max())
    with pytest.raises(ConfigError, match="first_atoms"):
        third_order.third_order(pot, params, s, first_atoms=[0, len(s)])


def test_float32_and_bad_cutoff_are_refused(si8):
    pot, params, s, _ = si8
    s32 = Structure.create(
        np.asarray(s.positions), np.asarray(s.cell), s.numbers, dtype=jnp.float32
    )
    with pytest.raises(PrecisionError, match="float64"):
        third_order.third_order(pot, params, s32)
    with pytest.raises(ConfigError, match="cutoff"):
        third_order.third_order(pot, params, s, cutoff=-1.0)


@pytest.mark.slow
def test_64_atom_fc3_matches_fd_of_hessian_and_phono3py(si_sw):
    """2×2×2 conventional Si-SW (64 atoms), the issue's system."""
    import phono3py_reference as ref

    from mldiff.ase import Calculator

    pot, params, atoms = si_sw
    ph = phonons.run(
        pot,
        params,
        Structure.from_ase(atoms),
        [2, 2, 2],
        primitive_matrix=FCC_PRIMITIVE,
    )
    fc3 = np.asarray(third_order.third_order(pot, params, ph.supercell))
    fd = fd_of_hessian(pot, params, ph.supercell, [0, 1, 5])
    np.testing.assert_allclose(
        fc3[..., [0, 1, 5], :], fd, atol=1e-6 * np.abs(fc3).max()
    )
    # phono3py's finite displacements (0.03 Å) on the same potential
    ph3 = ref.phono3py_object(
        atoms, [2, 2, 2], FCC_PRIMITIVE, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    theirs = ref.finite_displacement_fc3(ph3, Calculator("sw"), distance=0.03)
    perm = ref.order_of(ph, atoms, [2, 2, 2])
    ours = fc3[perm][:, :, perm][:, :, :, :, perm].transpose(0, 2, 4, 1, 3, 5)
    if theirs.shape[0] != theirs.shape[1]:  # compact: rows of p2s atoms
        ours = ours[np.asarray(ph3.primitive.p2s_map)]
    # finite differences of forces with 0.03 Å steps: O(h²) ≈ 1 % of max |Φ|
    err = np.abs(ours - theirs).max() / np.abs(ours).max()
    assert err < 0.02, err
