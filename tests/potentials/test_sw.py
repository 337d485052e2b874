"""Stillinger-Weber Si.

References: the published diamond cohesive energy, matscipy's explicit-triplet
implementation, an explicit triplet loop from the 1985 paper, finite differences
and exact symmetries.
"""

import itertools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mldiff import neighbors, potentials, quantities
from mldiff.potentials.sw import stillinger_weber
from mldiff.structure import Structure

A_SI = 5.431  # Å, the lattice constant SW was fitted to


@pytest.fixture(scope="module")
def pot():
    """The 1985 Si parameter set."""
    return stillinger_weber()


@pytest.fixture(scope="module")
def efs(pot):
    """Jitted (energy, forces, stress)."""
    return jax.jit(quantities.energy_forces_stress(pot.energy))


@pytest.fixture(scope="module")
def energy_fn(pot):
    """Jitted energy."""
    return jax.jit(pot.energy)


@pytest.fixture(scope="module")
def forces_fn(pot):
    """Jitted forces."""
    return jax.jit(quantities.forces(pot.energy))


def _setup(pot, atoms, skin=0.0, capacity=None, dtype=None):
    s = Structure.from_ase(atoms, dtype=dtype)
    g = neighbors.allocate(s, pot.cutoff, skin=skin, capacity=capacity)
    return s, g, pot.init(None, s)


def _primitive(rattle=0.05, seed=1):
    atoms = bulk("Si", "diamond", a=A_SI)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def _cubic64():
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=7)
    return atoms


def _strained_triclinic16():
    atoms = bulk("Si", "diamond", a=A_SI).repeat(2)
    strain = np.array([[0.02, 0.03, -0.01], [0.0, -0.015, 0.04], [0.02, 0.0, 0.01]])
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    atoms.rattle(0.05, seed=11)
    return atoms


def _dense_fcc4():
    # 18 neighbours within aσ per atom (153 angles), cell 3.6 Å < 2 aσ
    atoms = bulk("Si", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=5)
    return atoms


def _skewed_primitive():
    # the diamond lattice in a needle-like basis (unimodular change of basis)
    atoms = _primitive(rattle=0.0)
    m = np.array([[1, 0, 0], [1, 1, 0], [2, 1, 1]])
    atoms.set_cell(m @ atoms.cell[:], scale_atoms=False)
    atoms.wrap()
    atoms.set_cell(
        atoms.cell[:]
        @ (np.eye(3) + [[0.01, 0.02, 0], [0, -0.01, 0.03], [0.01, 0, 0.02]]),
        scale_atoms=True,
    )
    atoms.rattle(0.05, seed=3)
    return atoms


def _cluster():
    bulk_si = bulk("Si", "diamond", a=A_SI, cubic=True).repeat(3)
    centre = bulk_si.positions[0] + np.array([1.5, 1.5, 1.5]) * A_SI / 4 + A_SI
    keep = np.linalg.norm(bulk_si.positions - centre, axis=1) < 5.0
    atoms = Atoms(numbers=[14] * int(keep.sum()), positions=bulk_si.positions[keep])
    atoms.rattle(0.05, seed=9)
    return atoms


def _matscipy(atoms):
    """Energy (eV), forces (eV/Å), Voigt stress (eV/Å³) from matscipy's SW."""
    from matscipy.calculators.manybody import Manybody, StillingerWeber
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si,
    )

    # matscipy ships costheta0 = 0.333333333333 (truncated); use exactly 1/3 so
    # the comparison is not limited by that (it moves energies by ~1e-11 eV).
    calc = Manybody(
        **StillingerWeber(dict(Stillinger_Weber_PRB_31_5262_Si, costheta0=1.0 / 3.0))
    )
    atoms = atoms.copy()
    if not atoms.pbc.any():  # matscipy inverts the cell even without pbc
        atoms.set_cell(np.eye(3) * 50.0)
    atoms.calc = calc
    stress = atoms.get_stress() if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress, calc


def _brute_force_energy(positions):
    """SW energy of a molecule by explicit loops over pairs and triplets (PRB 1985)."""
    eps, sig, lam, gam = 2.1683, 2.0951, 21.0, 1.2
    a_, b_, rc = 7.049556277, 0.6022245584, 1.8 * sig
    n = len(positions)
    e = 0.0
    for i, j in itertools.combinations(range(n), 2):
        r = np.linalg.norm(positions[j] - positions[i])
        if r < rc:
            e += a_ * eps * (b_ * (sig / r) ** 4 - 1.0) * np.exp(sig / (r - rc))
    for i in range(n):
        for j, k in itertools.combinations([m for m in range(n) if m != i], 2):
            dij, dik = positions[j] - positions[i], positions[k] - positions[i]
            rij, rik = np.linalg.norm(dij), np.linalg.norm(dik)
            if rij < rc and rik < rc:
                cos = dij @ dik / (rij * rik)
                e += (
                    lam
                    * eps
                    * np.exp(gam * sig / (rij - rc))
                    * np.exp(gam * sig / (rik - rc))
                    * (cos + 1.0 / 3.0) ** 2
                )
    return e


def _central_derivatives(f, x, h):
    """Fourth-order central differences of scalar ``f`` along each entry of ``x``."""
    basis = jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
    steps = jnp.asarray([-2.0, -1.0, 1.0, 2.0], x.dtype) * h
    xs = x + steps[:, None, None, None] * basis[None]  # [4, k, *x.shape]
    fs = jax.jit(jax.vmap(jax.vmap(f)))(xs.reshape((4, x.size) + x.shape))
    return ((fs[0] - 8.0 * fs[1] + 8.0 * fs[2] - fs[3]) / (12.0 * h)).reshape(x.shape)


def test_builder_registry_and_params():
    """Builder metadata, registry lookup and parameter overrides."""
    # reference: the 1985 parameter set and the Potential contract
    pot = potentials.get("stillinger-weber", lambda_=42.0)
    assert (pot.name, pot.species) == ("sw", (14,))
    assert pot.cutoff == pytest.approx(1.80 * 2.0951)
    params = pot.init(None, None)
    assert set(params) == {
        "epsilon",
        "sigma",
        "A",
        "B",
        "p",
        "q",
        "a",
        "lambda_",
        "gamma",
        "cos_theta0",
    }
    assert float(params["lambda_"]) == 42.0
    assert float(params["cos_theta0"]) == pytest.approx(-1.0 / 3.0, abs=1e-15)
    assert stillinger_weber(cutoff=4.0).cutoff == 4.0


def test_diamond_cohesive_energy(pot, energy_fn):
    """Ideal diamond Si at 5.431 Å: −4.3366 eV/atom, no three-body energy."""
    # reference: published E_coh = -4.3366 eV/atom = -2ε at a = 5.431 Å
    # (Stillinger & Weber, PRB 31, 5262 (1985)); analytic: the three-body term
    # vanishes for ideal tetrahedra (cos θ = -1/3), so λ = 0 gives the same energy
    for atoms in (_primitive(rattle=0.0), bulk("Si", "diamond", a=A_SI, cubic=True)):
        s, g, params = _setup(pot, atoms)
        e = float(energy_fn(params, s, g)) / len(atoms)
        assert e == pytest.approx(-4.3366, abs=1e-4)
        e2 = float(energy_fn({**params, "lambda_": jnp.asarray(0.0)}, s, g))
        assert e2 / len(atoms) == pytest.approx(e, abs=1e-12)


@pytest.mark.parametrize(
    "make",
    [_cubic64, _strained_triclinic16, _dense_fcc4],
    ids=["cubic64-rattled", "triclinic16-strained", "fcc4-dense-small-cell"],
)
def test_matches_matscipy(pot, efs, make):
    """Energy, forces and stress equal matscipy's on rattled, strained, dense cells."""
    # reference: matscipy 1.3 Manybody(**StillingerWeber(...)), explicit triplets
    atoms = make()
    s, g, params = _setup(pot, atoms)
    e, f, sigma = efs(params, s, g)
    e_ref, f_ref, s_ref, _ = _matscipy(atoms)
    assert float(e) == pytest.approx(e_ref, abs=1e-8)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        quantities.full_3x3_to_voigt(sigma), s_ref, rtol=0, atol=1e-9
    )


@pytest.mark.parametrize(
    "make", [_primitive, _skewed_primitive], ids=["primitive2", "skewed-triclinic2"]
)
def test_forces_and_stress_match_finite_differences(pot, efs, make):
    """Forces and stress are the derivatives of the energy, in small cells."""
    # reference: 4th-order central finite differences of the energy in positions
    # and in symmetric strain; cells are smaller than 2 aσ (self-image edges)
    atoms = make()
    s, g, params = _setup(pot, atoms, skin=0.5)  # graph reaches beyond aσ
    s0, g0, _ = _setup(pot, atoms)
    e, f, sigma = efs(params, s, g)
    assert float(e) == pytest.approx(float(efs(params, s0, g0)[0]), abs=1e-12)

    def e_of_r(r):
        return pot.energy(params, s.replace(positions=r), g)

    f_fd = -_central_derivatives(e_of_r, s.positions, 1e-3)
    assert np.max(np.abs(f - f_fd)) <= 1e-6 * np.max(np.abs(f))

    eye = jnp.eye(3, dtype=s.cell.dtype)

    def e_of_strain(t):  # t: [3, 3], used through its symmetric part
        x = eye + 0.5 * (t + t.T)
        strained = s.replace(positions=s.positions @ x, cell=s.cell @ x)
        return pot.energy(params, strained, g)

    de = _central_derivatives(e_of_strain, jnp.zeros((3, 3), s.cell.dtype), 1e-4)
    sigma_fd = 0.5 * (de + de.T) / float(np.linalg.det(atoms.cell[:]))
    assert np.max(np.abs(sigma - sigma_fd)) <= 1e-6 * np.max(np.abs(sigma))


def test_invariant_under_rotation_translation_permutation(pot, energy_fn):
    """Energy is unchanged by rigid motions, relabelling and a new cell basis."""
    # reference: exact symmetries of any potential (and the choice of cell basis)
    atoms = _strained_triclinic16()
    s, g, params = _setup(pot, atoms)
    e0 = float(energy_fn(params, s, g))
    rng = np.random.default_rng(2026)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    rot = rot if np.linalg.det(rot) > 0 else -rot
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ rot.T, scale_atoms=True)
    moved = atoms.copy()
    moved.translate(rng.normal(size=3) * 3.0)
    moved.wrap()
    perm = rng.permutation(len(atoms))
    permuted = atoms[perm]
    rebased = atoms.copy()  # same crystal, a skewed basis of the same lattice
    rebased.set_cell(
        np.array([[1, 0, 0], [1, 1, 0], [-1, 1, 1]]) @ atoms.cell[:], scale_atoms=False
    )
    rebased.wrap()
    for other in (rotated, moved, permuted, rebased):
        s2, g2, _ = _setup(pot, other, capacity=g.capacity)
        assert float(energy_fn(params, s2, g2)) == pytest.approx(e0, abs=1e-10)


def test_cluster_without_pbc(pot, energy_fn, forces_fn):
    """A non-periodic Si cluster: energy and forces."""
    # references: matscipy (in a vacuum box) and an explicit triplet loop
    # written from the 1985 paper's formulas
    atoms = _cluster()
    assert 15 < len(atoms) < 40 and not atoms.pbc.any()
    s, g, params = _setup(pot, atoms)
    e = float(energy_fn(params, s, g))
    f = forces_fn(params, s, g)
    e_ref, f_ref, _, _ = _matscipy(atoms)
    assert e == pytest.approx(e_ref, abs=1e-8)
    assert e == pytest.approx(_brute_force_energy(atoms.positions), abs=1e-8)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(np.sum(f, axis=0), 0.0, atol=1e-10)  # Newton III


def test_hessian_finite_symmetric_and_matches_matscipy(pot):
    """Position Hessian of a 2-atom cell: finite, symmetric, matscipy's."""
    # references: symmetry of second derivatives, the acoustic sum rule, and
    # matscipy's analytic Hessian (Manybody.get_hessian)
    atoms = _primitive(rattle=0.05, seed=4)
    s, g, params = _setup(pot, atoms)

    def e_of_r(r):
        return pot.energy(params, s.replace(positions=r), g)

    h = np.asarray(jax.jit(jax.hessian(e_of_r))(s.positions)).reshape(6, 6)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h, h.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(h.reshape(2, 3, 2, 3).sum(axis=2), 0.0, atol=1e-10)
    h_ref = _matscipy(atoms)[3].get_hessian(atoms.copy()).toarray()
    np.testing.assert_allclose(h, h_ref, rtol=0, atol=1e-8)


def test_jit_vmap_and_parameter_gradients(pot, energy_fn):
    """Batched energies compile once; parameter gradients are right."""
    # references: per-structure evaluation (vmap), finite differences (check_grads)
    batch = [_primitive(rattle=0.05, seed=k) for k in range(3)]
    setups = [_setup(pot, atoms, capacity=16) for atoms in batch]
    params = setups[0][2]
    structures = jax.tree.map(lambda *x: jnp.stack(x), *[t[0] for t in setups])
    graphs = jax.tree.map(lambda *x: jnp.stack(x), *[t[1] for t in setups])
    traces = []

    def traced_energy(p, s, g):
        traces.append(1)  # runs only while tracing
        return pot.energy(p, s, g)

    batched = jax.jit(jax.vmap(traced_energy, in_axes=(None, 0, 0)))
    e = batched(params, structures, graphs)
    batched(
        params,
        jax.tree.map(lambda x: x[::-1], structures),
        jax.tree.map(lambda x: x[::-1], graphs),
    )
    assert len(traces) == 1
    expected = [float(energy_fn(params, s_, g_)) for s_, g_, _ in setups]
    np.testing.assert_allclose(e, expected, rtol=0, atol=1e-12)

    s, g, _ = setups[0]
    grads = jax.jit(jax.grad(pot.energy))(params, s, g)
    assert all(np.isfinite(float(v)) for v in grads.values())
    jax.test_util.check_grads(
        jax.jit(lambda p: pot.energy(p, s, g)),
        (params,),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def test_float32_close_to_float64(pot, efs):
    """float32 inputs stay float32 and agree with float64 to rounding."""
    # reference: the float64 result; float32 tolerance from the O(1e-6 eV)
    # rounding of the three-body moment cancellation
    atoms = _primitive(rattle=0.05, seed=2)
    s64, g64, p64 = _setup(pot, atoms)
    s32, g32, p32 = _setup(pot, atoms, dtype=jnp.float32)
    e32, f32, _ = efs(p32, s32, g32)
    e64, f64, _ = efs(p64, s64, g64)
    assert e32.dtype == f32.dtype == jnp.float32
    assert float(e32) == pytest.approx(float(e64), abs=1e-4)
    np.testing.assert_allclose(f32, f64, rtol=0, atol=1e-3)
