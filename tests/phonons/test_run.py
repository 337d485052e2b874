"""The high-level ``phonons.run`` / ``frequencies`` / ``modes`` API.

References: the lower-level functions it composes (force constants without
symmetry reduction, ``dynamical_matrix.phonon_modes``), the float64 contract, and
jit's trace count.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from compile_counter import count_traces
from phonopy_reference import A_SI, FCC_PRIMITIVE, graph_for

from mldiff import phonons
from mldiff.errors import ConfigError, PrecisionError
from mldiff.phonons import dynamical_matrix as dm
from mldiff.structure import Structure

Q = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.1, 0.2, 0.3]]


def test_symmetry_reduction_does_not_change_frequencies(si_sw, si_phonons):
    # reference: the same workflow differentiating all 3n rows
    pot, params, atoms = si_sw
    full = phonons.run(
        pot,
        params,
        Structure.from_ase(atoms),
        [2, 2, 2],
        primitive_matrix=FCC_PRIMITIVE,
        use_symmetry=False,
    )
    np.testing.assert_allclose(
        full.force_constants, si_phonons.force_constants, rtol=0, atol=1e-11
    )
    np.testing.assert_allclose(
        phonons.frequencies(full, Q),
        phonons.frequencies(si_phonons, Q),
        rtol=0,
        atol=1e-6,
    )


def test_modes_agree_with_low_level_functions(si_phonons):
    # reference: dynamical_matrix.phonon_modes on the same force constants
    ph = si_phonons
    f, v = phonons.modes(ph, Q[1:])
    f_ref, v_ref = dm.phonon_modes(ph.force_constants, ph.masses, ph.images)(Q[1:])
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(phonons.frequencies(ph, Q[1:]), f, rtol=0, atol=1e-8)
    # eigenvectors are orthonormal
    eye = np.einsum("kai,kaj->kij", np.conj(np.asarray(v)), np.asarray(v))
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(6), eye.shape), atol=1e-12)
    assert f.shape == (2, 6) and v.shape == (2, 6, 6) and v_ref.shape == v.shape


def test_frequencies_compile_once_for_same_shapes(si_sw):
    # reference: jit's cache — same shapes, different lattice constants
    pot, params, _ = si_sw
    runs = [
        phonons.run(
            pot, params, Structure.from_ase(bulk("Si", "diamond", a=a)), [2, 2, 2]
        )
        for a in (A_SI, A_SI * 1.01)
    ]
    with count_traces() as traces:
        f0 = phonons.frequencies(runs[0], Q)
        f1 = phonons.frequencies(runs[1], Q)
    assert traces["frequencies_at"] <= 1
    assert np.all(np.asarray(f1[:, 3:]) < np.asarray(f0[:, 3:]))  # softer when expanded


def test_bad_inputs_raise_with_the_fix(si_sw):
    # reference: the boundary checks of STYLE rule 7 and the float64 contract
    pot, params, atoms = si_sw
    with pytest.raises(PrecisionError, match="float64"):
        phonons.run(
            pot, params, Structure.from_ase(atoms, dtype=jnp.float32), [1, 1, 1]
        )
    with pytest.raises(ConfigError, match="masses"):
        phonons.run(pot, params, Structure.from_ase(atoms), [1, 1, 1], masses=[28.0])


def test_frequencies_are_differentiable_in_the_potential_parameters(si_sw):
    # reference: analytic — SW energy is linear in ε, so f ∝ √ε and ∂f/∂ε = f/(2ε)
    import jax

    from mldiff.phonons import force_constants as fcm

    pot, params, _ = si_sw
    cube = [[-1, 1, 1], [1, -1, 1], [1, 1, -1]]
    ph = phonons.run(
        pot, params, Structure.from_ase(bulk("Si", "diamond", a=A_SI)), cube
    )
    g = graph_for(pot, ph.supercell)
    fc_fn = fcm.force_constants(pot.energy, symmetry=fcm.site_symmetry(ph.supercell))
    q = jnp.array([[0.1, 0.2, 0.3]])  # generic: no degenerate modes

    def freqs(eps):
        fc = fc_fn({**params, "epsilon": eps}, ph.supercell, g)
        return dm.frequencies_at(fc, ph.masses, ph.images, q)[0]

    eps = params["epsilon"]
    f, df = jax.jit(lambda e: jax.jvp(freqs, (e,), (jnp.ones_like(e),)))(eps)
    np.testing.assert_allclose(df, f / (2 * eps), rtol=1e-8)


def test_structure_first_order_of_old_releases_names_the_fix(si_sw):
    # reference: the argument order (potential, params, structure) of md.run_md
    from mldiff.phonons import qha
    from mldiff.potentials import check_potential

    pot, params, atoms = si_sw
    s = Structure.from_ase(atoms)
    check_potential(pot, "phonons.run")  # a potential passes
    with pytest.raises(ConfigError, match="potential first"):
        check_potential(s, "phonons.run")
    with pytest.raises(ConfigError, match=r"takes \(potential, params, structure"):
        qha.free_energy_grid(s, pot, params, [1, 1, 1], progress=False)
