"""phonopy interop: FORCE_CONSTANTS and phonopy_params.yaml.

References: phonopy 4.10's own parsers and API — ``file_IO.parse_FORCE_CONSTANTS``
and ``write_FORCE_CONSTANTS`` (round trip), ``phonopy.load`` and a ``Phonopy``
object built from the unit cell and DIM (its supercell atom order), whose
frequencies must equal ours.
"""

import jax
import numpy as np
import pytest
from ase.build import bulk

from mldiff import phonons, potentials
from mldiff.errors import ConfigError
from mldiff.io import phonopy as phonopy_io
from mldiff.structure import Structure

Q = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.1, 0.2, 0.3], [0.5, 0.5, 0.5]]
DIM = [2, 1, 1]  # a non-cubic repeat makes atom-order mistakes visible


@pytest.fixture(scope="module")
def si_conventional():
    """Si-SW phonons of the 8-atom conventional cell repeated 2×1×1."""
    pot = potentials.get("sw")
    unit = Structure.from_ase(bulk("Si", "diamond", a=5.431, cubic=True))
    params = pot.init(jax.random.key(0), unit)
    return unit, phonons.run(pot, params, unit, DIM)


def test_force_constants_round_trip_with_phonopy_parsers(si_conventional, tmp_path):
    # reference: phonopy.file_IO.parse_FORCE_CONSTANTS / write_FORCE_CONSTANTS
    from phonopy.file_IO import parse_FORCE_CONSTANTS, write_FORCE_CONSTANTS

    _, ph = si_conventional
    fc = np.asarray(ph.force_constants)
    ours = tmp_path / "FORCE_CONSTANTS"
    phonopy_io.write_force_constants(ours, fc)
    theirs = parse_FORCE_CONSTANTS(str(ours))
    np.testing.assert_allclose(theirs, np.transpose(fc, (0, 2, 1, 3)), atol=1e-14)
    other = tmp_path / "FORCE_CONSTANTS_phonopy"
    write_FORCE_CONSTANTS(np.transpose(fc, (0, 2, 1, 3)), filename=str(other))
    np.testing.assert_allclose(phonopy_io.read_force_constants(other), fc, atol=1e-14)
    # compact form: the rows of the primitive atoms only
    rows = np.asarray(ph.images.representative)
    phonopy_io.write_force_constants(ours, fc[rows], rows=rows)
    np.testing.assert_allclose(
        phonopy_io.read_force_constants(ours), fc[rows], atol=1e-14
    )


def test_phonopy_takes_over_from_force_constants_file(si_conventional, tmp_path):
    # reference: a phonopy object of the unit cell with DIM, reading our
    # FORCE_CONSTANTS (reordered to its supercell), gives our frequencies
    from phonopy import Phonopy
    from phonopy.file_IO import parse_FORCE_CONSTANTS
    from phonopy.structure.atoms import PhonopyAtoms

    unit, ph = si_conventional
    perm = phonopy_io.phonopy_order(ph.supercell, unit, DIM)
    fc = np.asarray(ph.force_constants)[perm][:, :, perm]
    phonopy_io.write_force_constants(tmp_path / "FORCE_CONSTANTS", fc)
    atoms = unit.to_ase()
    ref = Phonopy(
        PhonopyAtoms(
            symbols=atoms.get_chemical_symbols(),
            cell=atoms.cell[:],
            scaled_positions=atoms.get_scaled_positions(),
            masses=atoms.get_masses(),
        ),
        supercell_matrix=np.diag(DIM),
        primitive_matrix=np.eye(3),  # phonopy's default is now 'auto'
    )
    np.testing.assert_allclose(
        ref.supercell.positions, np.asarray(ph.supercell.positions)[perm], atol=1e-10
    )
    ref.force_constants = parse_FORCE_CONSTANTS(str(tmp_path / "FORCE_CONSTANTS"))
    ref.run_qpoints(Q)
    np.testing.assert_allclose(
        phonons.frequencies(ph, Q), ref.get_qpoints_dict()["frequencies"], atol=1e-6
    )


def test_phonopy_load_reads_phonopy_params_yaml(si_conventional, tmp_path):
    # reference: phonopy.load on our phonopy_params.yaml, with an fcc primitive
    import phonopy

    unit, ph = si_conventional
    fcc = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    ours = phonons.run(potentials.get("sw"), None, unit, DIM, primitive_matrix=fcc)
    path = tmp_path / "phonopy_params.yaml"
    phonopy_io.write_phonopy_params(
        path,
        unit,
        ours.supercell,
        DIM,
        ours.force_constants,
        primitive_matrix=fcc,
    )
    ref = phonopy.load(str(path), produce_fc=False, symmetrize_fc=False)
    ref.run_qpoints(Q)
    np.testing.assert_allclose(
        phonons.frequencies(ours, Q), ref.get_qpoints_dict()["frequencies"], atol=1e-6
    )


def test_bad_inputs_raise_with_the_fix(si_conventional, tmp_path):
    # reference: STYLE rule 7
    unit, ph = si_conventional
    with pytest.raises(ConfigError, match="diagonal"):
        phonopy_io.phonopy_order(ph.supercell, unit, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ConfigError, match=r"\[k, 3, n, 3\]"):
        phonopy_io.write_force_constants(tmp_path / "FC", np.zeros((2, 2, 3, 3)))
    (tmp_path / "bad").write_text("hello")
    with pytest.raises(ConfigError, match="not a FORCE_CONSTANTS"):
        phonopy_io.read_force_constants(tmp_path / "bad")
