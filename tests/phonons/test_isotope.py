"""Isotope and boundary scattering, mode-resolved κ and its phono3py file (#35).

References: phono3py 4.10 run in-process on our fc2 and fc3 (same masses,
mesh and Gaussian smearing) with ``is_isotope=True`` and ``boundary_mfp``:
its ``gamma_isotope`` mode by mode, its κ, and the ``kappa-m*.hdf5`` it writes
(``write_kappa=True``) key by key; phono3py's ``get_mass_variances`` for the
natural-abundance table; Matthiessen's rule and Casimir's ``1/τ_b = |v|/L``
evaluated with NumPy from the mode-resolved output.
"""

import os

import h5py
import numpy as np
import phono3py_reference as ref
import pytest
from ase.build import bulk
from phonopy_reference import A_SI, FCC_PRIMITIVE

from mldiff import phonons, potentials
from mldiff.errors import ConfigError
from mldiff.io import phono3py as phono3py_io
from mldiff.phonons import conductivity, isotope, kappa_modes, third_order
from mldiff.structure import Structure

SIGMA = 0.1  # THz
TEMPS = [300.0, 600.0]
MESH = [5, 5, 5]
L_UM = 0.01  # 10 nm: boundary scattering comparable to the anharmonic one


def _ours_and_phono3py(atoms, supercell, mesh, tmp, lbte=False):
    """Our κ with isotopes and boundary, and phono3py's (its file in ``tmp``)."""
    s = Structure.from_ase(atoms)
    pot = potentials.get("sw")
    ph = phonons.run(pot, None, s, supercell, primitive_matrix=FCC_PRIMITIVE)
    fc3 = np.asarray(
        third_order.third_order(pot, pot.init(None, ph.supercell), ph.supercell)
    )
    method = "lbte" if lbte else "rta"
    res = conductivity.run(
        ph,
        fc3,
        mesh,
        TEMPS,
        sigma_thz=SIGMA,
        method=method,
        isotopes=True,
        boundary_mfp_um=L_UM,
    )
    ph3 = ref.phono3py_object(
        atoms, supercell, FCC_PRIMITIVE, masses=np.asarray(ph.masses)[: len(atoms)]
    )
    ref.set_force_constants(
        ph3, ph.force_constants, fc3, ref.order_of(ph, atoms, supercell)
    )
    here = os.getcwd()
    os.chdir(tmp)  # phono3py writes its kappa file into the working directory
    try:
        k3 = ref.kappa(
            ph3,
            mesh,
            TEMPS,
            SIGMA,
            lbte=lbte,
            is_isotope=True,
            boundary_mfp=L_UM,
            write_kappa=True,
        )
    finally:
        os.chdir(here)
    return ph, res, ph3.thermal_conductivity, k3


@pytest.fixture(scope="module")
def si_iso(tmp_path_factory):
    """Si-SW, 2-atom primitive in the 8-atom cubic cell, 5³ mesh, RTA."""
    tmp = tmp_path_factory.mktemp("phono3py_kappa")
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True)
    return (*_ours_and_phono3py(atoms, [1, 1, 1], MESH, tmp), tmp)


def test_natural_mass_variances_equal_phono3pys():
    # reference: phono3py's get_mass_variances on phonopy's isotope table
    from ase.data import atomic_numbers
    from phono3py.other.isotope import get_mass_variances

    symbols = sorted(isotope.MASS_VARIANCES, key=atomic_numbers.get)
    assert len(symbols) == 84
    ours = isotope.mass_variances([atomic_numbers[s] for s in symbols])
    np.testing.assert_allclose(ours, get_mass_variances(symbols=symbols), rtol=1e-9)
    # Tamura's value for natural Si, 2.01e-4 (PRB 27, 858 (1983), table I)
    assert abs(isotope.MASS_VARIANCES["Si"] - 2.01e-4) < 0.01e-4
    with pytest.raises(ConfigError, match="mass_variances"):
        isotope.mass_variances([43])  # Tc: no stable isotope


def _match(ours_q, theirs_q):
    """Index into phono3py's irreducible points of each of ours."""
    out = []
    for g, q in enumerate(np.asarray(ours_q)):
        d = np.asarray(theirs_q) - q
        k = np.flatnonzero(np.all(np.abs(d - np.rint(d)) < 1e-9, axis=1))
        out.append(k[0] if len(k) else g)  # phono3py may pick another star member
    return np.asarray(out)


def test_isotope_linewidths_match_phono3py_mode_by_mode(si_iso):
    _, res, tc, _, _ = si_iso
    k = _match(res.qpoints, tc.qpoints)
    theirs = np.asarray(tc.gamma_isotope)[0][k]  # [g, m] THz
    assert theirs.max() > 1e-3
    # measured: 2e-10 relative
    np.testing.assert_allclose(res.gamma_isotope, theirs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(
        res.gamma, np.asarray(tc.gamma)[0][:, k], rtol=1e-6, atol=1e-9
    )


def test_kappa_with_isotopes_and_boundary_matches_phono3py(si_iso):
    _, res, _, k3, _ = si_iso
    # measured: 0.07 % (the RTA's degenerate group velocities, as without)
    np.testing.assert_allclose(
        np.diagonal(res.kappa, axis1=1, axis2=2),
        np.diagonal(k3, axis1=1, axis2=2),
        rtol=0.01,
    )


def test_boundary_scattering_is_casimir_added_by_matthiessen(si_iso):
    # reference: 1/τ_b = |v|/L and κ = Σ C v²/3 τ / (N V) with 1/τ the sum of
    # the three rates, in NumPy from the mode-resolved output (cubic: κ = tr/3)
    ph, res, _, _, _ = si_iso
    v = np.linalg.norm(np.asarray(res.velocities), axis=-1)  # [g, m] THz·Å
    rate_b = v / (L_UM * 1e4)  # 1/ps
    np.testing.assert_allclose(4 * np.pi * res.gamma_boundary, rate_b, rtol=1e-12)
    rate = 4 * np.pi * (np.asarray(res.gamma) + np.asarray(res.gamma_isotope)) + rate_b
    tau = np.asarray(kappa_modes.lifetimes(res))
    live = np.asarray(res.frequencies) > 1e-4
    np.testing.assert_allclose(tau[:, live], 1 / rate[:, live], rtol=1e-12)
    rate_anh = 4 * np.pi * np.asarray(res.gamma)[0]
    assert np.median(rate_b[live]) > np.median(rate_anh[live])  # L matters
    n_mesh = int(np.prod(MESH))
    volume = abs(np.linalg.det(np.asarray(ph.primitive.cell)))
    c = np.asarray(res.heat_capacities)  # eV/K
    w = np.asarray(res.weights)[None, :, None]
    # W/(m K) per (eV/K)(THz Å)² ps / Å³; τ = 1/(4πΓ) so 1/(2Γ) = 2π τ
    per = conductivity.KAPPA_TO_W_MK * 2 * np.pi
    scalar = (per / volume / n_mesh) * np.sum(
        np.where(live, w * c * v**2 / 3 * tau, 0.0), axis=(1, 2)
    )
    np.testing.assert_allclose(np.trace(res.kappa, axis1=1, axis2=2) / 3, scalar)


def test_cumulative_kappa_reaches_total(si_iso):
    _, res, _, _, _ = si_iso
    total = np.trace(np.asarray(res.kappa), axis1=1, axis2=2) / 3
    mfp = np.asarray(kappa_modes.mean_free_paths(res))
    by_mfp = kappa_modes.cumulative_kappa(res, [0.0, np.median(mfp), mfp.max()])
    f = np.asarray(res.frequencies)
    by_f = kappa_modes.cumulative_kappa_frequency(res, [0.0, 5.0, f.max()])
    for cum in (by_mfp, by_f):
        np.testing.assert_allclose(cum[:, -1], total, rtol=1e-12)
        assert np.all(np.diff(cum, axis=1) >= 0) and np.all(cum[:, 0] < total)
    assert mfp.max() < L_UM * 1e4  # the boundary bounds every mean free path


def test_kappa_file_has_phono3pys_datasets(si_iso, tmp_path):
    # reference: the kappa-m555-s0.1.hdf5 phono3py wrote for the same run
    ph, res, tc, _, tmp = si_iso
    name = phono3py_io.kappa_filename(MESH, SIGMA)
    assert os.listdir(tmp) == [name]
    volume = abs(np.linalg.det(np.asarray(ph.primitive.cell)))
    datasets = kappa_modes.phono3py_datasets(
        res,
        MESH,
        sigma_thz=SIGMA,
        kappa_unit_conversion=conductivity.KAPPA_TO_W_MK / volume,
        isotopes=True,
        boundary_mfp_um=L_UM,
    )
    phono3py_io.write_kappa(tmp_path / name, datasets)
    with h5py.File(tmp_path / name) as ours, h5py.File(tmp / name) as theirs:
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            assert ours[key].shape == theirs[key].shape, key
            assert ours[key].dtype.kind == theirs[key].dtype.kind, key
        for key in ("mesh", "temperature", "sigma", "boundary_mfp", "weight"):
            np.testing.assert_array_equal(ours[key][()], theirs[key][()], key)
        d = ours["qpoint"][()] - theirs["qpoint"][()]  # same points, up to a G
        np.testing.assert_allclose(d, np.rint(d), atol=1e-12)
        # phono3py's grid points index its BZ grid; ours the Γ-centred mesh
        bz_to_mesh = np.asarray(tc.bz_grid.bzg2grg)
        np.testing.assert_array_equal(
            ours["grid_point"][()], bz_to_mesh[theirs["grid_point"][()]]
        )
        for key, tol in [
            ("kappa_unit_conversion", 1e-12),
            ("heat_capacity", 1e-6),
            ("gamma", 1e-6),
            ("gamma_isotope", 1e-6),
        ]:
            np.testing.assert_allclose(ours[key][()], theirs[key][()], rtol=tol)
        np.testing.assert_allclose(ours["frequency"], theirs["frequency"], atol=1e-6)
        k, k3 = ours["kappa"][()], theirs["kappa"][()]
        np.testing.assert_allclose(k[:, :3], k3[:, :3], rtol=0.01)
        for f in (ours, theirs):  # phono3py's normalisation of mode_kappa
            n = f["weight"][()].sum()
            np.testing.assert_allclose(
                f["mode_kappa"][()].sum(axis=(1, 2)) / n,
                f["kappa"][()],
                atol=1e-9 * np.abs(f["kappa"][()]).max(),
            )
            gv, vv = f["group_velocity"][()], f["gv_by_gv"][()]
            np.testing.assert_allclose(  # tr(Σ_star v⊗v) = weight |v|²
                vv[..., :3].sum(-1),
                f["weight"][()][:, None] * np.sum(gv**2, axis=-1),
                rtol=1e-8,
                atol=1e-8 * vv.max(),
            )


def test_isotope_and_boundary_options_are_checked(si_iso):
    ph, _, _, _, _ = si_iso
    fc3 = np.zeros((8, 3, 8, 3, 8, 3))
    fc3[0, 0, 1, 0, 2, 0] = 1.0
    with pytest.raises(ConfigError, match="one value per primitive atom"):
        conductivity.run(
            ph, fc3, [2, 2, 2], [300.0], sigma_thz=0.1, mass_variances=[1e-4]
        )
    with pytest.raises(ConfigError, match="Gaussian smearing only"):
        conductivity.run(ph, fc3, [2, 2, 2], [300.0], isotopes=True)  # tetrahedra
    for bad, match in [
        ({"mass_variances": (-1e-4, 1e-4)}, "mass_variances must be finite"),
        ({"boundary_mfp_um": 0.0}, "boundary_mfp_um must be > 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            conductivity.ConductivitySettings(**bad)


@pytest.mark.slow
def test_lbte_with_isotopes_and_boundary_equals_phono3py(tmp_path):
    """Direct solution, 5³ mesh (25–35 s): isotope and boundary on the diagonal."""
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True)
    _, res, _, k3 = _ours_and_phono3py(atoms, [1, 1, 1], MESH, tmp_path, lbte=True)
    # measured: equal to the printed digits (1e-13 without isotopes)
    np.testing.assert_allclose(res.kappa, k3, rtol=1e-9, atol=1e-9 * np.abs(k3).max())


@pytest.mark.slow
def test_si_64_kappa_with_isotopes_within_1_percent_of_phono3py(tmp_path):
    """2×2×2 conventional supercell, 11³ mesh, RTA (about 3 min)."""
    atoms = bulk("Si", "diamond", a=A_SI, cubic=True)
    _, res, tc, k3 = _ours_and_phono3py(atoms, [2, 2, 2], [11] * 3, tmp_path)
    # measured: κ 13.405 / 13.937 W/(m·K) (L = 10 nm), +0.034 % / +0.033 %;
    # Γ_iso 2.2e-10 of the largest
    np.testing.assert_allclose(
        np.trace(res.kappa, axis1=1, axis2=2), np.trace(k3, axis1=1, axis2=2), rtol=0.01
    )
    k = _match(res.qpoints, tc.qpoints)
    np.testing.assert_allclose(
        res.gamma_isotope, np.asarray(tc.gamma_isotope)[0][k], rtol=1e-6, atol=1e-12
    )


@pytest.mark.slow
def test_gradient_of_kappa_with_isotopes_and_boundary_equals_finite_difference():
    """dκ/dλ (SW) through Γ_iso and Γ_b, RTA, 4³ mesh, σ = 1 THz (about 2 min)."""
    import jax
    import jax.numpy as jnp

    from mldiff.phonons import interaction, qmesh

    si = Structure.from_ase(bulk("Si", "diamond", a=A_SI))
    pot = potentials.get("sw")
    ph0 = phonons.run(pot, None, si, [2, 2, 2])
    p0 = pot.init(None, ph0.supercell)
    grid = qmesh.mesh(ph0.primitive, [4, 4, 4])
    trip = interaction.triplets(
        third_order.third_order(pot, p0, ph0.supercell), ph0.images
    )
    settings = conductivity.ConductivitySettings(
        sigma_thz=1.0, isotopes=True, boundary_mfp_um=L_UM
    )

    def kappa(lam):
        p = dict(p0, lambda_=lam)
        ph = phonons.run(pot, p, si, [2, 2, 2])
        fc3 = third_order.third_order(pot, p, ph.supercell)
        args = (ph.force_constants, fc3, ph.masses, ph.images, ph.primitive)
        r = conductivity.kappa_rta(*args, grid, trip, [300.0], settings)
        return jnp.trace(r.kappa[0]) / 3

    lam = p0["lambda_"]
    grad = jax.grad(kappa)(lam)
    h = 1e-3 * float(lam)
    fd = (kappa(lam + h) - kappa(lam - h)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-4)  # O(h²) truncation
    assert abs(float(grad)) > 1e-3
