"""Batch screening: sharded over devices, streamed to disk in chunks, resumable.

The 4-device run happens in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the flag must be set
before JAX is imported). References: the serial, single-device
:func:`mldiff.training.evaluation.predict_items`, ASE's ``MorsePotential``,
and direct calls of :func:`mldiff.md.relax` and :func:`mldiff.phonons.run`.
"""

import json
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.morse import MorsePotential
from ase.io import write
from host_devices import host_devices_env

from mldiff import md, phonons, potentials, screening
from mldiff.data import read_extxyz
from mldiff.errors import ConfigError
from mldiff.structure import Structure
from mldiff.training.evaluation import predict_items

# Morse for Cu, cut between the first (2.55 Å) and second (3.6 Å) shells
MORSE = dict(epsilon=0.3, rho0=4.0, r0=2.6, rcut1=1.2, rcut2=1.6)

_SCREEN_ON_FOUR = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
from mldiff import parallel, potentials, screening
from mldiff.data import read_extxyz
from mldiff.errors import ConfigError

assert jax.device_count() == 4, jax.devices()
path, out, morse = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
items = read_extxyz(path, required=())
pot = potentials.get("morse", **morse)
params = pot.init(None, items[0].structure)
mesh = parallel.make_mesh(4)
try:
    screening.screen(pot, params, items, out + "/bad",
                     screening.ScreenConfig(batch_size=6), mesh=mesh)
    bad = "no error"
except ConfigError as err:
    bad = str(err)
run = screening.screen(pot, params, items, out + "/run",
                       screening.ScreenConfig(batch_size=8, chunk_size=64,
                                              with_stress=True), mesh=mesh)
json.dump({"bad": bad, "computed": run.computed_chunks, "complete": run.complete},
          open(out + "/info.json", "w"))
"""


def _atoms(n, seed=0):
    """Rattled Cu cells of 1, 2 and 4 atoms (three size buckets)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = 3.6 + 0.05 * rng.standard_normal()
        if k % 3 == 0:
            atoms = bulk("Cu", "fcc", a=a)
        elif k % 3 == 1:
            atoms = bulk("Cu", "fcc", a=a, cubic=True)
        else:
            atoms = bulk("Cu", "fcc", a=a).repeat((2, 1, 1))
        atoms.rattle(0.03, seed=k)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def morse():
    pot = potentials.get("morse", **MORSE)
    return pot, pot.init(None, None)


@pytest.fixture(scope="module")
def sharded_200(tmp_path_factory):
    """200 structures screened on a 4-device mesh (subprocess)."""
    root = tmp_path_factory.mktemp("screen4")
    path = root / "structures.extxyz"
    write(path, _atoms(200))
    env = host_devices_env(4)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_SCREEN_ON_FOUR),
            str(path),
            str(root),
            json.dumps(MORSE),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((root / "info.json").read_text())
    return read_extxyz(path, required=()), root / "run", info


def test_sharded_screening_matches_serial_in_order_and_value(sharded_200, morse):
    # reference: serial single-device predictions (issue 12: exact order, 1e-6)
    items, out, info = sharded_200
    pot, params = morse
    assert info["complete"] and info["computed"] == [0, 1, 2, 3]
    got = screening.read_results(out)
    ref = predict_items(pot, params, items, batch_size=8, with_stress=True)
    assert got["n_atoms"].tolist() == [len(it.structure) for it in items]
    np.testing.assert_allclose(got["energy_ev"], ref["energy"], rtol=0, atol=1e-6)
    for k, (f, f_ref) in enumerate(
        zip(got["forces_ev_per_angstrom"], ref["forces"], strict=True)
    ):
        assert f.shape == f_ref.shape, k
        np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        got["stress_ev_per_angstrom3"], np.stack(ref["stress"]), rtol=0, atol=1e-6
    )


def test_sharded_screening_agrees_with_ase(sharded_200):
    # reference: ASE's MorsePotential on the same structures
    items, out, _ = sharded_200
    got = screening.read_results(out)
    for k in (0, 1, 2, 100, 199):
        atoms = items[k].structure.to_ase()
        atoms.calc = MorsePotential(**MORSE)
        assert got["energy_ev"][k] == pytest.approx(
            atoms.get_potential_energy(), abs=1e-9
        )
        np.testing.assert_allclose(
            got["forces_ev_per_angstrom"][k], atoms.get_forces(), atol=1e-9
        )


def test_batch_size_must_divide_over_the_devices(sharded_200):
    _, _, info = sharded_200
    assert "batch_size = 6" in info["bad"] and "multiple of 4" in info["bad"]


# ---------------------------------------------------------------- one device


@pytest.fixture(scope="module")
def twenty():
    return [Structure.from_ase(a) for a in _atoms(20, seed=3)]


CHUNKED = screening.ScreenConfig(batch_size=4, chunk_size=5, n_buckets=2)


def test_crash_and_resume_recomputes_nothing(morse, twenty, tmp_path):
    # reference: one uninterrupted run of the same screening
    pot, params = morse
    full = screening.screen(pot, params, twenty, tmp_path / "full", CHUNKED)
    assert full.computed_chunks == [0, 1, 2, 3]

    calls = []

    def crash_after_two(k):
        calls.append(k)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        screening.screen(
            pot, params, twenty, tmp_path / "run", CHUNKED, on_chunk=crash_after_two
        )
    with pytest.raises(ConfigError, match="chunks are missing"):
        screening.read_results(tmp_path / "run")
    calls.clear()
    again = screening.screen(
        pot, params, twenty, tmp_path / "run", CHUNKED, on_chunk=calls.append
    )
    assert calls == [2, 3]  # only the unfinished chunks were evaluated
    assert again.skipped_chunks == [0, 1] and again.complete
    done = screening.screen(
        pot, params, twenty, tmp_path / "run", CHUNKED, on_chunk=calls.append
    )
    assert done.computed_chunks == [] and calls == [2, 3]
    a, b = (
        screening.read_results(tmp_path / "full"),
        screening.read_results(tmp_path / "run"),
    )
    np.testing.assert_array_equal(a["energy_ev"], b["energy_ev"])
    for fa, fb in zip(
        a["forces_ev_per_angstrom"], b["forces_ev_per_angstrom"], strict=True
    ):
        np.testing.assert_array_equal(fa, fb)


def test_max_chunks_and_hosts_split_the_chunks(morse, twenty, tmp_path):
    # reference: a single-host, single-call screening of the same input
    pot, params = morse
    ref = screening.screen(pot, params, twenty, tmp_path / "ref", CHUNKED)
    first = screening.screen(
        pot,
        params,
        twenty,
        tmp_path / "hosts",
        CHUNKED,
        max_chunks=1,
        process_index=1,
        process_count=2,
    )
    assert first.computed_chunks == [1] and not first.complete
    rest = screening.screen(
        pot,
        params,
        twenty,
        tmp_path / "hosts",
        CHUNKED,
        process_index=1,
        process_count=2,
    )
    assert rest.computed_chunks == [3] and rest.skipped_chunks == [1]
    host0 = screening.screen(
        pot,
        params,
        twenty,
        tmp_path / "hosts",
        CHUNKED,
        process_index=0,
        process_count=2,
    )
    assert host0.computed_chunks == [0, 2] and host0.complete and ref.complete
    np.testing.assert_array_equal(
        screening.read_results(tmp_path / "hosts")["energy_ev"],
        screening.read_results(tmp_path / "ref")["energy_ev"],
    )


def test_other_inputs_in_the_same_directory_are_refused(morse, twenty, tmp_path):
    pot, params = morse
    screening.screen(pot, params, twenty[:6], tmp_path, CHUNKED)
    with pytest.raises(ConfigError, match="new output directory"):
        screening.screen(pot, params, twenty[:7], tmp_path, CHUNKED)
    other = {**params, "epsilon": params["epsilon"] * 2}
    with pytest.raises(ConfigError, match="new output directory"):
        screening.screen(pot, other, twenty[:6], tmp_path, CHUNKED)
    # resume=False starts over: the energies scale with epsilon (Morse is ∝ ε)
    first = screening.read_results(tmp_path)["energy_ev"]
    screening.screen(pot, other, twenty[:6], tmp_path, CHUNKED, resume=False)
    np.testing.assert_allclose(
        screening.read_results(tmp_path)["energy_ev"], 2 * first, rtol=1e-12
    )


def test_relaxations_and_phonons_match_direct_calls(morse, tmp_path):
    # reference: mldiff.md.relax and mldiff.phonons.run on each structure
    pot, params = morse
    structures = [Structure.from_ase(_atoms(3, seed=5)[2])]  # 2 rattled atoms
    q = ((0.0, 0.0, 0.0), (0.5, 0.0, 0.5))
    config = screening.ScreenConfig(
        batch_size=2,
        relax=True,
        fmax=1e-3,
        phonons=True,
        supercell=(2, 2, 2),
        qpoints=q,
    )
    screening.screen(pot, params, structures, tmp_path, config)
    got = screening.read_results(tmp_path)
    np.testing.assert_array_equal(got["qpoints"], np.asarray(q))
    for k, s in enumerate(structures):
        r = md.relax(pot, params, s, fmax=1e-3, progress=False)
        assert got["relax_converged"][k] and r.converged
        assert got["relaxed_energy_ev"][k] == pytest.approx(r.energy_ev, abs=1e-10)
        np.testing.assert_allclose(
            got["relaxed_positions_angstrom"][k],
            np.asarray(r.structure.positions),
            atol=1e-10,
        )
        ph = phonons.run(pot, params, r.structure, (2, 2, 2))
        ref = np.asarray(phonons.frequencies(ph, np.asarray(q)))
        assert got["frequencies_thz"][k].shape == (2, 3 * len(s))
        np.testing.assert_allclose(got["frequencies_thz"][k], ref, atol=1e-8)
        # analytic: three acoustic modes vanish at Γ (sum rule enforced)
        np.testing.assert_allclose(got["frequencies_thz"][k][0, :3], 0.0, atol=1e-4)


def test_emt_is_padding_safe_and_agrees_with_ase(tmp_path, twenty):
    # reference: ASE's EMT on each structure; the batches pad with Z = 0 ghosts
    from ase.calculators.emt import EMT

    pot = potentials.get("emt")
    config = screening.ScreenConfig(batch_size=4, n_buckets=2)
    screening.screen(pot, pot.init(None, twenty[0]), twenty[:7], tmp_path, config)
    got = screening.read_results(tmp_path)
    for k in range(7):
        atoms = twenty[k].to_ase()
        atoms.calc = EMT()
        assert got["energy_ev"][k] == pytest.approx(
            atoms.get_potential_energy(), abs=1e-9
        )
        np.testing.assert_allclose(
            got["forces_ev_per_angstrom"][k], atoms.get_forces(), atol=1e-9
        )


def test_non_finite_energy_is_reported(tmp_path, twenty):
    # a potential that returns NaN: never a silent NaN in the results
    import jax.numpy as jnp

    lj = potentials.get("lj")
    bad = potentials.Potential(
        lj.init, lambda p, s, g: jnp.nan * lj.energy(p, s, g), lj.cutoff, None, "nan"
    )
    with jax.debug_nans(False):
        with pytest.raises(screening.ScreeningError, match="non-finite"):
            screening.screen(bad, bad.init(None, twenty[0]), twenty[:3], tmp_path)


def test_config_is_checked():
    with pytest.raises(ConfigError, match="chunk_size"):
        screening.ScreenConfig(chunk_size=0)
    with pytest.raises(ConfigError, match="qpoints"):
        screening.ScreenConfig(qpoints=((0.0, 0.0),))
