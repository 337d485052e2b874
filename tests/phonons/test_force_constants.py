"""Force constants as the exact Hessian.

References: central finite differences of the forces; the full Hessian for the
symmetry-reduced path; the defining properties of the projection (analytic);
phonopy's own finite-displacement force constants.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from phonopy_reference import (
    A_CU,
    A_SI,
    graph_for,
)

from mldiff import quantities
from mldiff.errors import PrecisionError
from mldiff.phonons import force_constants as fcm
from mldiff.structure import Structure


def _rattled(symbol, crystal, a, repeat, seed):
    atoms = bulk(symbol, crystal, a=a, cubic=True).repeat(repeat)
    atoms.rattle(0.03, seed=seed)
    cell = np.asarray(atoms.cell) @ (
        np.eye(3) + [[0.01, 0.02, 0], [0, -0.01, 0.03], [0.0, 0.01, 0.02]]
    )
    atoms.set_cell(cell, scale_atoms=True)
    return Structure.from_ase(atoms)


@pytest.mark.parametrize("which", ["si_sw", "cu_emt"])
def test_hessian_equals_finite_differences_of_forces(which, request):
    # reference: central finite differences of mldiff forces, h = 1e-4 Å
    pot, params, _ = request.getfixturevalue(which)
    s = (
        _rattled("Si", "diamond", A_SI, 1, 3)
        if which == "si_sw"
        else _rattled("Cu", "fcc", A_CU, (2, 1, 1), 5)
    )
    g = graph_for(pot, s)
    fc = jax.jit(fcm.force_constants(pot.energy, chunk_size=7))(params, s, g)
    forces = jax.jit(quantities.forces(pot.energy))
    h = 1e-4
    n = len(s)
    fd = np.zeros((n, 3, n, 3))
    for i in range(n):
        for a in range(3):
            plus = forces(params, s.replace(positions=s.positions.at[i, a].add(h)), g)
            minus = forces(params, s.replace(positions=s.positions.at[i, a].add(-h)), g)
            fd[i, a] = -(plus - minus) / (2 * h)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(np.asarray(fc), fd, rtol=0, atol=1e-6 * scale)
    # an exact Hessian is symmetric and translation invariant to rounding
    np.testing.assert_allclose(fc, jnp.transpose(fc, (2, 3, 0, 1)), atol=1e-12 * scale)
    np.testing.assert_allclose(fc.sum(axis=2), 0.0, atol=1e-12 * scale)


@pytest.mark.parametrize("which", ["si_sw", "cu_emt"])
def test_symmetry_reduced_path_equals_full_hessian(which, request):
    # reference: the full Hessian (all 3n rows); the Cu cell is tetragonal
    pot, params, atoms = request.getfixturevalue(which)
    unit = atoms if which == "si_sw" else bulk("Cu", "fcc", a=A_CU, cubic=True)
    s = Structure.from_ase(unit.repeat(1 if which == "si_sw" else (2, 1, 1)))
    g = graph_for(pot, s)
    sym = fcm.site_symmetry(s)
    assert len(sym.independent) == 1  # diamond and fcc: one orbit
    full = jax.jit(fcm.force_constants(pot.energy))(params, s, g)
    reduced = jax.jit(fcm.force_constants(pot.energy, symmetry=sym))(params, s, g)
    np.testing.assert_allclose(reduced, full, rtol=0, atol=1e-11)


def test_site_symmetry_uses_few_rotations_and_valid_operations():
    # reference: spglib's operations applied by hand. Diamond Si in a 2x2x2
    # supercell: each sublattice is reached by one rotation plus translations,
    # so 2 distinct rotations suffice (the rebuild rotates 2 rows, not 64)
    s = Structure.from_ase(bulk("Si", "diamond", a=A_SI, cubic=True).repeat(2))
    sym = fcm.site_symmetry(s)
    assert len(np.unique(np.round(sym.rotations, 8), axis=0)) == 2
    # both are proper (det +1): Fd-3m reaches each sublattice by a proper
    # operation too, and a model without parity (SevenNet-0) obeys only those
    np.testing.assert_allclose(np.linalg.det(sym.rotations), 1.0, atol=1e-10)
    rep = np.asarray(sym.independent)[np.asarray(sym.of)]
    cell = np.asarray(s.cell)
    pos = np.asarray(s.positions)
    for i in range(len(s)):  # each operation maps the representative's
        r, inv = sym.rotations[i], sym.inverse_permutations[i]  # bond vectors
        d_rep = pos[inv] - pos[rep[i]]  # atom inv[j] seen from the representative
        d_img = pos - pos[i]  # atom j seen from i
        diff = np.linalg.solve(cell.T, (d_img - d_rep @ r.T).T).T
        np.testing.assert_allclose(diff - np.rint(diff), 0.0, atol=1e-8)


def test_rattled_cell_and_chunk_size_give_the_same_hessian(si_sw):
    # reference: the full Hessian in one chunk; a rattled cell keeps only the
    # identity, and 24 rows in chunks of 5 exercise lax.map's remainder
    pot, params, _ = si_sw
    s = _rattled("Si", "diamond", A_SI, 1, 11)
    sym = fcm.site_symmetry(s)
    assert len(sym.independent) == len(s)
    g = graph_for(pot, s)
    full = jax.jit(fcm.force_constants(pot.energy, chunk_size=1000))(params, s, g)
    reduced = jax.jit(fcm.force_constants(pot.energy, chunk_size=5, symmetry=sym))(
        params, s, g
    )
    np.testing.assert_allclose(reduced, full, rtol=0, atol=1e-12)


def test_symmetrize_is_the_sum_rule_projection(rng):
    # reference: the defining properties of an orthogonal projection (analytic)
    n = 5
    fc = jnp.asarray(rng.normal(size=(n, 3, n, 3)))
    p = fcm.symmetrize(fc)
    np.testing.assert_allclose(p, jnp.transpose(p, (2, 3, 0, 1)), atol=1e-14)
    np.testing.assert_allclose(p.sum(axis=2), 0.0, atol=1e-13)
    np.testing.assert_allclose(fcm.symmetrize(p), p, atol=1e-13)  # idempotent
    # orthogonal: the removed part is orthogonal to any admissible matrix
    q = fcm.symmetrize(jnp.asarray(rng.normal(size=(n, 3, n, 3))))
    assert abs(float(jnp.sum((fc - p) * q))) < 1e-11


def test_float32_structure_raises_precision_error(si_sw):
    # reference: the float64 contract of STYLE rule 5
    pot, params, atoms = si_sw
    s = Structure.from_ase(atoms, dtype=jnp.float32)
    g = graph_for(pot, s)
    with pytest.raises(PrecisionError, match="jax_enable_x64"):
        fcm.force_constants(pot.energy)(params, s, g)
