"""RTA thermal conductivity from three-phonon scattering (issue 14).

Reference: phono3py 4.10 run in-process on the same force constants (our fc2
and fc3 handed to it), same supercell, Γ-centred mesh and Gaussian smearing,
``is_LBTE=False``, phono3py's defaults otherwise (``make_r0_average=True``,
cutoff frequency 1e-4 THz, no isotopes): linewidths per mode and κ. The
``slow`` tests are the issue's systems (64-atom Si-SW, 32-atom Cu-EMT) and the
gradient of κ with respect to the Stillinger–Weber λ versus a finite
difference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import phono3py_reference as ref
import pytest
from ase.build import bulk
from compile_counter import count_traces
from phonopy_reference import A_CU, A_SI, FCC_PRIMITIVE

from mldiff import phonons, potentials
from mldiff.errors import ConfigError
from mldiff.phonons import conductivity, interaction, qmesh, third_order
from mldiff.structure import Structure

SIGMA = 0.1  # THz
TEMPS = [300.0, 600.0]


def ours_and_phono3py(atoms, pot, supercell, primitive, mesh, temps=TEMPS):
    """Our κ run and a phono3py object run on our fc2/fc3 of the same system."""
    s = Structure.from_ase(atoms)
    ph = phonons.run(pot, None, s, supercell, primitive_matrix=primitive)
    params = pot.init(None, ph.supercell)
    fc3 = np.asarray(third_order.third_order(pot, params, ph.supercell))
    res = conductivity.run(ph, fc3, mesh, temps, sigma_thz=SIGMA)
    ph3 = ref.phono3py_object(
        atoms, supercell, primitive, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    ref.set_force_constants(
        ph3, ph.force_constants, fc3, ref.order_of(ph, atoms, supercell)
    )
    k3 = ref.kappa(ph3, mesh, temps, SIGMA)
    return ph, fc3, res, ph3, k3


@pytest.fixture(scope="module")
def si2(si_sw):
    """Si-SW, the 8-atom cubic cell as supercell of the 2-atom primitive, 5³ mesh.

    (The session's potential object, so compiled derivatives are shared with
    the other phonon tests.)
    """
    pot, _, atoms = si_sw
    return ours_and_phono3py(atoms, pot, [1, 1, 1], FCC_PRIMITIVE, [5, 5, 5])


def test_linewidths_match_phono3py_mode_by_mode(si2):
    _, _, res, ph3, _ = si2
    tc = ph3.thermal_conductivity
    theirs_q = np.asarray(tc.qpoints)
    gamma3 = np.asarray(tc.gamma)[0]  # [T, gp, band], THz
    ours_q = np.asarray(res.qpoints)
    assert len(ours_q) == len(theirs_q)
    for g, q in enumerate(ours_q):
        d = theirs_q - q
        k = np.flatnonzero(np.all(np.abs(d - np.rint(d)) < 1e-9, axis=1))
        if len(k) == 0:  # phono3py may pick another member of the star
            k = [g]
        np.testing.assert_allclose(
            np.asarray(res.frequencies)[g], np.asarray(tc.frequencies)[k[0]], atol=1e-6
        )
        np.testing.assert_allclose(
            np.asarray(res.gamma)[:, g], gamma3[:, k[0]], rtol=1e-6, atol=1e-9
        )


def test_kappa_matches_phono3py(si2):
    _, _, res, _, k3 = si2
    k = np.asarray(res.kappa)
    # cubic: isotropic, no off-diagonal
    np.testing.assert_allclose(
        k,
        np.trace(k, axis1=1, axis2=2)[:, None, None] / 3 * np.eye(3),
        atol=1e-8 * np.abs(k).max(),
    )
    # residual (0.5 %) from group velocities of degenerate modes on symmetry lines
    np.testing.assert_allclose(
        np.diagonal(k, axis1=1, axis2=2), np.diagonal(k3, axis1=1, axis2=2), rtol=0.01
    )


def test_mode_kappa_and_cumulative_kappa_add_up(si2):
    _, _, res, _, _ = si2
    total = np.trace(np.asarray(res.kappa), axis1=1, axis2=2) / 3
    mfp = np.asarray(conductivity.mean_free_paths(res))
    cum = conductivity.cumulative_kappa(res, [0.0, np.median(mfp), mfp.max()])
    np.testing.assert_allclose(cum[:, -1], total, rtol=1e-12)
    assert np.all(np.diff(cum, axis=1) >= 0) and np.all(cum[:, 0] < total)
    assert int(np.sum(res.weights)) == 125


def test_compact_fc3_gives_the_same_kappa(si2):
    # reference: κ from the full fc3 (its blocks of the primitive atoms)
    ph, fc3, res, _, _ = si2
    rep = np.asarray(ph.images.representative)
    params = potentials.get("sw").init(None, ph.supercell)
    compact = third_order.third_order(
        potentials.get("sw"), params, ph.supercell, first_atoms=rep
    )
    assert compact.shape == (len(rep), *fc3.shape[1:])
    np.testing.assert_allclose(compact, fc3[rep], atol=1e-12 * np.abs(fc3).max())
    res_c = conductivity.run(ph, compact, [5, 5, 5], TEMPS, sigma_thz=SIGMA)
    np.testing.assert_allclose(res_c.kappa, res.kappa, rtol=1e-10)


def test_a_second_run_on_equal_inputs_reuses_the_compiled_program(si2):
    ph, fc3, res, _, _ = si2
    # half the fc3: the same non-zero triples (the threshold is relative), a
    # new mesh object of equal content; Γ ∝ |Φ3|² gives a quarter of the
    # linewidths and, through τ = 1 / (4πΓ), four times κ
    with count_traces() as traces:
        half = conductivity.run(ph, 0.5 * fc3, [5, 5, 5], TEMPS, sigma_thz=SIGMA)
    assert traces["_kappa_compiled"] == 0
    np.testing.assert_allclose(half.gamma, res.gamma / 4, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(half.kappa, 4 * res.kappa, rtol=1e-10)


def test_bad_inputs_are_clear_errors(si2):
    ph, fc3, _, _, _ = si2
    with pytest.raises(ConfigError, match="temperatures"):
        conductivity.run(ph, fc3, [3, 3, 3], [0.0])
    with pytest.raises(ConfigError, match="fc3 must have shape"):
        conductivity.run(ph, fc3[:4, :, :4, :, :4], [3, 3, 3], [300.0])
    with pytest.raises(ConfigError, match="mesh"):
        conductivity.run(ph, fc3, [3, 3], [300.0])
    with pytest.raises(ConfigError, match="sigma_thz must be > 0"):
        conductivity.run(ph, fc3, [3, 3, 3], [300.0], sigma_thz=0.0)


def test_settings_are_checked_and_hashable():
    # settings are a static jit argument: equal settings, equal hash
    a = conductivity.ConductivitySettings(sigma_thz=0.2, batch_size=64)
    assert a == conductivity.ConductivitySettings(sigma_thz=0.2, batch_size=64)
    assert hash(a) == hash(
        conductivity.ConductivitySettings(sigma_thz=0.2, batch_size=64)
    )
    for bad, match in [
        ({"sigma_thz": -0.1}, "sigma_thz must be > 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"degeneracy_thz": 0.0}, "degeneracy_thz must be > 0"),
        ({"pinv_cutoff": -1.0}, "pinv_cutoff must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            conductivity.ConductivitySettings(**bad)


@pytest.mark.slow
@pytest.mark.parametrize("system", ["si_sw_64", "cu_emt_32"])
def test_issue_systems_kappa_within_3_percent_of_phono3py(system):
    """2×2×2 conventional supercells, 11×11×11 mesh, σ = 0.1 THz, 300 and 600 K."""
    if system == "si_sw_64":
        atoms, pot = bulk("Si", "diamond", a=A_SI, cubic=True), potentials.get("sw")
    else:
        atoms, pot = bulk("Cu", "fcc", a=A_CU, cubic=True), potentials.get("emt")
    _, _, res, _, k3 = ours_and_phono3py(atoms, pot, [2, 2, 2], FCC_PRIMITIVE, [11] * 3)
    ours = np.trace(np.asarray(res.kappa), axis1=1, axis2=2) / 3
    theirs = np.trace(k3, axis1=1, axis2=2) / 3
    # measured: Si 0.40 % / 0.39 %, Cu 0.93 % / 0.89 % (300 K / 600 K)
    np.testing.assert_allclose(ours, theirs, rtol=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["kappa_rta", "kappa_lbte"])
def test_gradient_of_kappa_wrt_sw_lambda_equals_finite_difference(solver):
    si = Structure.from_ase(bulk("Si", "diamond", a=A_SI))
    pot = potentials.get("sw")
    ph0 = phonons.run(pot, None, si, [2, 2, 2])
    p0 = pot.init(None, ph0.supercell)
    grid = qmesh.mesh(ph0.primitive, [4, 4, 4])
    trip = interaction.triplets(
        third_order.third_order(pot, p0, ph0.supercell), ph0.images
    )

    def kappa(lam):
        p = dict(p0, lambda_=lam)
        ph = phonons.run(pot, p, si, [2, 2, 2])
        fc3 = third_order.third_order(pot, p, ph.supercell)
        r = getattr(conductivity, solver)(
            ph.force_constants,
            fc3,
            ph.masses,
            ph.images,
            ph.primitive,
            grid,
            trip,
            [300.0],
            conductivity.ConductivitySettings(sigma_thz=1.0),
        )
        return jnp.trace(r.kappa[0]) / 3

    lam = p0["lambda_"]
    value, grad = jax.value_and_grad(kappa)(lam)
    h = 1e-3 * float(lam)
    fd = (kappa(lam + h) - kappa(lam - h)) / (2 * h)
    # measured: RTA 3.5e-7, LBTE 3.0e-7 relative (LBTE κ 208.6 W/mK, dκ/dλ 18.3);
    # O(h²) truncation
    np.testing.assert_allclose(grad, fd, rtol=1e-4)
    assert abs(float(grad)) > 1.0  # κ does depend on λ


def phono3py_on(ph, atoms, supercell, primitive, fc3):
    """A fresh phono3py object holding our fc2 and fc3 of ``ph``."""
    ph3 = ref.phono3py_object(
        atoms, supercell, primitive, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    ref.set_force_constants(
        ph3, ph.force_constants, fc3, ref.order_of(ph, atoms, supercell)
    )
    return ph3


@pytest.fixture(scope="module")
def si2_lbte(si2, si_sw):
    ph, fc3, _, _, _ = si2
    res = conductivity.run(ph, fc3, [5, 5, 5], TEMPS, sigma_thz=SIGMA, method="lbte")
    return ph, fc3, res


def test_lbte_kappa_equals_phono3py_direct_solution(si2, si2_lbte, si_sw):
    # reference: phono3py's direct solution of the LBTE on the same fc2/fc3
    # (is_LBTE=True, reducible collision matrix, k-star symmetry, pinv 1e-8)
    _, _, res_rta, _, _ = si2
    ph, fc3, res = si2_lbte
    ph3 = phono3py_on(ph, si_sw[2], [1, 1, 1], FCC_PRIMITIVE, fc3)
    k3 = ref.kappa(ph3, [5, 5, 5], TEMPS, SIGMA, lbte=True)
    # measured: 5e-14 relative
    np.testing.assert_allclose(res.kappa, k3, rtol=1e-9, atol=1e-9 * np.abs(k3).max())
    np.testing.assert_allclose(res.mode_kappa.sum(axis=(1, 2)), res.kappa, rtol=1e-12)
    # normal processes are not resistive in the LBTE: κ above the RTA's (Si)
    assert np.all(
        np.trace(res.kappa, axis1=1, axis2=2)
        > np.trace(res_rta.kappa, axis1=1, axis2=2)
    )
    np.testing.assert_allclose(res.gamma, res_rta.gamma, rtol=1e-12)


def test_lbte_symmetry_expansion_equals_rows_computed_everywhere(si2_lbte):
    # reference: every row of the collision matrix computed directly
    # (use_symmetry=False) instead of rotated from the irreducible points
    ph, fc3, res = si2_lbte
    full = conductivity.run(
        ph, fc3, [5, 5, 5], TEMPS, sigma_thz=SIGMA, method="lbte", use_symmetry=False
    )
    k, kf = np.asarray(res.kappa), np.asarray(full.kappa)
    # measured: 1.1e-14 of the largest element
    np.testing.assert_allclose(kf, k, rtol=1e-10, atol=1e-10 * np.abs(k).max())


def test_lbte_bad_inputs_are_clear_errors(si2):
    ph, fc3, _, _, _ = si2
    with pytest.raises(ConfigError, match="method"):
        conductivity.run(ph, fc3, [3, 3, 3], [300.0], method="iterative")
    with pytest.raises(ConfigError, match="smaller mesh or method='rta'"):
        conductivity.run(ph, fc3, [30, 30, 30], [300.0], method="lbte")
    # a mesh that breaks the cubic symmetry: the RTA's mesh is fine, the LBTE
    # cannot rotate its rows and says so
    assert qmesh.mesh(ph.primitive, [3, 3, 4]).rotation_map is None
    with pytest.raises(ConfigError, match="breaks the crystal's symmetry"):
        conductivity.run(ph, fc3, [3, 3, 4], [300.0], method="lbte")
