"""``mldiff phonons``, ``mldiff elastic`` and ``mldiff qha``, run in-process.

References: phonopy 4.10 — finite displacements (0.01 Å) through mldiff's ASE
calculator on the same Si-SW cell with ``primitive_matrix="auto"`` (bands to
0.01 THz, thermal properties to 0.2 %, issue 5), ``phonopy.load`` of the
written ``phonopy_params.yaml`` (DOS and thermal properties to 1e-8), the
seekpath q-points of ``get_band_qpoints_by_seekpath``; Cowley's published
Stillinger–Weber elastic constants; phonopy's ``QHA`` on the written grid.
"""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from mldiff.cli import main

TEMPS = [0.0, 100.0, 200.0, 300.0]
MESH = [6, 6, 6]


@pytest.fixture(scope="module")
def si_run(tmp_path_factory):
    """``mldiff phonons`` on the 8-atom Si cell (POSCAR), its outputs."""
    d = tmp_path_factory.mktemp("si")
    write(d / "POSCAR", bulk("Si", "diamond", a=5.431, cubic=True), format="vasp")
    argv = ["phonons", str(d / "POSCAR"), "--potential", "sw", "--supercell"]
    argv += ["1", "1", "1", "--mesh", *map(str, MESH), "--npoints", "11"]
    argv += ["--tmax", "300", "--tstep", "100", "--out", str(d / "out")]
    assert main(argv) == 0
    with open(d / "out" / "phonons.json") as fh:
        return d / "out", json.load(fh)


@pytest.fixture(scope="module")
def si_phonopy_fd():
    """Phonopy's own finite-displacement phonons of the same cell."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from mldiff.ase import Calculator

    atoms = bulk("Si", "diamond", a=5.431, cubic=True)
    ph = Phonopy(
        PhonopyAtoms(
            symbols=atoms.get_chemical_symbols(),
            cell=atoms.cell[:],
            scaled_positions=atoms.get_scaled_positions(),
            masses=atoms.get_masses(),
        ),
        supercell_matrix=np.eye(3, dtype=int),
        primitive_matrix="auto",
    )
    ph.generate_displacements(distance=0.01)
    calc = Calculator("sw")
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions)
        a.pbc = True
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    return ph


def test_phonons_json_has_the_documented_keys(si_run, capsys):
    out, res = si_run
    for key in ("path_labels", "qpoints", "frequencies_thz", "dos", "thermal"):
        assert key in res
    assert set(res["dos"]) >= {"frequencies_thz", "states"}
    assert set(res["thermal"]) >= {
        "temperatures_k",
        "free_energy_kj_mol",
        "entropy_j_k_mol",
        "heat_capacity_j_k_mol",
    }
    assert set(res["high_symmetry_frequencies_thz"]) == {
        "GAMMA",
        "X",
        "U",
        "K",
        "L",
        "W",
    }
    assert np.shape(res["frequencies_thz"]) == (len(res["path_labels"]) * 11, 6)
    assert res["n_atoms_primitive"] == 2
    for name in ("phonons.png", "FORCE_CONSTANTS", "phonopy_params.yaml"):
        assert (out / name).stat().st_size > 0
    # reference: analytic — acoustic sum rule; the DOS counts 3p = 6 modes
    assert np.max(np.abs(res["high_symmetry_frequencies_thz"]["GAMMA"][:3])) < 1e-4
    f, g = np.asarray(res["dos"]["frequencies_thz"]), np.asarray(res["dos"]["states"])
    assert abs(np.trapezoid(g, f) - 6.0) < 1e-3


def test_bands_and_thermal_match_phonopy_finite_displacements(si_run, si_phonopy_fd):
    # reference: phonopy finite displacements; 0.01 THz and 0.2 % (issue 5)
    from phonopy.phonon.band_structure import get_band_qpoints_by_seekpath

    _, res = si_run
    ph = si_phonopy_fd
    qpts, _, _ = get_band_qpoints_by_seekpath(ph.primitive, 11)
    np.testing.assert_allclose(res["qpoints"], np.concatenate(qpts), atol=1e-12)
    ph.run_qpoints(res["qpoints"])
    ref = ph.get_qpoints_dict()["frequencies"]
    np.testing.assert_allclose(res["frequencies_thz"], ref, rtol=0, atol=0.01)
    ph.run_mesh(MESH, is_mesh_symmetry=False)
    ph.run_thermal_properties(temperatures=TEMPS[1:])
    tp = ph.get_thermal_properties_dict()
    ours = res["thermal"]
    for theirs, key in [
        ("free_energy", "free_energy_kj_mol"),
        ("entropy", "entropy_j_k_mol"),
        ("heat_capacity", "heat_capacity_j_k_mol"),
    ]:
        np.testing.assert_allclose(ours[key][1:], tp[theirs], rtol=2e-3)
    np.testing.assert_allclose(ours["temperatures_k"], TEMPS)


def test_written_phonopy_params_reproduce_dos_and_thermal(si_run):
    # reference: phonopy.load of the written file, phonopy's smearing DOS and
    # thermal properties on the same mesh — exact up to the file's 15 digits
    import phonopy

    out, res = si_run
    ph = phonopy.load(str(out / "phonopy_params.yaml"), produce_fc=False)
    ph.run_mesh(MESH, is_mesh_symmetry=False)
    ph.run_total_dos(sigma=0.1, use_tetrahedron_method=False)
    dos = ph.get_total_dos_dict()
    np.testing.assert_allclose(
        res["dos"]["frequencies_thz"], dos["frequency_points"], atol=1e-6
    )
    np.testing.assert_allclose(res["dos"]["states"], dos["total_dos"], atol=1e-6)
    ph.run_thermal_properties(temperatures=TEMPS[1:])
    tp = ph.get_thermal_properties_dict()
    np.testing.assert_allclose(
        res["thermal"]["free_energy_kj_mol"][1:], tp["free_energy"], rtol=1e-8
    )


def test_elastic_command_prints_and_writes_sw_constants(tmp_path, capsys):
    # reference: Cowley's published SW constants (C11, C12, C44 in GPa); extxyz
    # keeps the cubic axes (CIF would rotate the cell, and C with it)
    write(tmp_path / "si.xyz", bulk("Si", "diamond", a=5.431), format="extxyz")
    argv = ["elastic", str(tmp_path / "si.xyz"), "--potential", "sw"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "relaxed-ion" in capsys.readouterr().out
    with open(tmp_path / "elastic.json") as fh:
        res = json.load(fh)
    c = np.asarray(res["relaxed_ion_gpa"])
    np.testing.assert_allclose(
        [c[0, 0], c[0, 1], c[3, 3]], [151.4, 76.4, 56.4], atol=0.1
    )
    assert res["clamped_ion_gpa"][3][3] > c[3, 3] + 40
    assert set(res["sound_velocities_m_s"]) == {"100", "110", "111"}


def test_qha_command_matches_phonopy_on_its_own_grid(tmp_path, capsys):
    # reference: phonopy's QHA on the volumes and free energies the command wrote
    from phonopy.qha.core import QHA

    write(tmp_path / "cu.xyz", bulk("Cu", "fcc", a=3.59), format="extxyz")
    argv = ["qha", str(tmp_path / "cu.xyz"), "--potential", "emt", "--supercell"]
    argv += ["2", "2", "2", "--mesh", "6", "6", "6", "--tmax", "300", "--tstep"]
    argv += ["50", "--strains", "-0.01", "0", "0.01", "0.02", "0.03", "--no-relax-ions"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "alpha" in capsys.readouterr().out
    with open(tmp_path / "qha.json") as fh:
        res = json.load(fh)
    ref = QHA(
        res["volumes_a3"],
        res["energies_ev"],
        res["temperatures_k"],
        res["heat_capacity_j_k_mol"],
        res["entropy_j_k_mol"],
        res["free_energy_kj_mol"],
    )
    ref.run()
    m = len(ref.volume_temperature)
    np.testing.assert_allclose(res["volume_a3"][:m], ref.volume_temperature, rtol=1e-9)
    assert 0 < res["linear_expansion_per_k"][-2] < 1e-4


def test_bad_structure_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "junk.txt").write_text("not a structure")
    assert main(["phonons", str(tmp_path / "junk.txt"), "--out", str(tmp_path)]) == 2
    assert "could read" in capsys.readouterr().err
