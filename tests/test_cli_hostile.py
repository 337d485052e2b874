"""Hostile input through the command line, as a new user would type it.

Every case must end with exit code 2, one line on stderr that names the problem
and the fix, and nothing written (no output file, no empty run folder). Cases
that used to fail only after the expensive part have that part replaced by a
function that fails the test if it is reached: the check must come first.
"""

import json
import os

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from tiny_models import TINY_NEQUIP

from mldiff.cli import main
from mldiff.data import generate

TRAIN = {
    "model": "nequip",
    "model_config": TINY_NEQUIP,
    "epochs": 2,
    "batch_size": 4,
    "learning_rate": 0.01,
    "warmup_epochs": 0,
    "n_buckets": 1,
    "dtype": "float64",
}


def _files(root) -> set:
    """Every file and folder under ``root`` (relative paths)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def refuse(capsys, root, argv, *words):
    """``argv`` exits 2 with one stderr line holding ``words``; nothing new in root."""
    before = _files(root)
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word.lower() in err.lower(), (word, err)
    assert _files(root) == before, sorted(_files(root) - before)
    return err


def _never(*args, **kwargs):
    raise AssertionError("the expensive step ran before the input was checked")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A Cu cell, a 1-atom cell, a molecule, an EMT-labelled set, a config."""
    root = tmp_path_factory.mktemp("hostile")
    cu = bulk("Cu", "fcc", a=3.61, cubic=True)
    write(root / "cu.extxyz", cu)
    write(root / "cu1.extxyz", bulk("Cu", "fcc", a=3.61))
    write(
        root / "h2o.xyz",
        Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [0, 0.96, 0]]),
    )
    generate(
        cu,
        EMT(),
        n_rattled=8,
        rattle_stdev=0.05,
        seed=1,
        progress=False,
        path=root / "train.extxyz",
    )
    generate(
        cu,
        EMT(),
        n_rattled=8,
        rattle_stdev=0.08,
        seed=2,
        progress=False,
        path=root / "other.extxyz",
    )
    (root / "a_file").write_text("not a folder\n")
    return root


def _config(root, name, cfg):
    path = root / name
    path.write_text(yaml.safe_dump(cfg) if not isinstance(cfg, str) else cfg)
    return path


def _train_cfg(**over):
    cfg = {
        "data": {"train": "train.extxyz", "validation_fraction": 0.25},
        "output": "run-never",
        "training": dict(TRAIN),
    }
    for key, value in over.items():
        if key == "training":
            cfg["training"].update(value)
        else:
            cfg[key] = value
    return cfg


# --- success reported for a failed or meaningless run --------------------------


def test_diverged_training_is_an_error_and_writes_no_model(files, capsys):
    # float32, the default: the loss overflows to inf/NaN in the first epoch
    training = {"learning_rate": 1e8, "dtype": "float32"}
    path = _config(files, "diverge.yaml", _train_cfg(training=training))
    refuse(capsys, files, ["train", path], "diverged", "learning_rate")
    assert not (files / "run-never").exists()


@pytest.mark.parametrize(
    "value, words",
    [
        (".nan", ("learning_rate", "finite")),  # YAML's NaN
        ("fast", ("learning_rate", "number", "'fast'")),
    ],
)
def test_meaningless_learning_rates(files, capsys, value, words):
    text = yaml.safe_dump(_train_cfg()).replace(
        "learning_rate: 0.01", f"learning_rate: {value}"
    )
    path = _config(files, "lr.yaml", text)
    refuse(capsys, files, ["train", path], *words)


def test_validation_fraction_zero_is_refused(files, capsys):
    cfg = _train_cfg(data={"train": "train.extxyz", "validation_fraction": 0})
    refuse(
        capsys,
        files,
        ["train", _config(files, "v0.yaml", cfg)],
        "validation_fraction",
        "between 0 and 1",
    )


def test_resuming_on_other_data_is_refused(files, capsys, tmp_path):
    run = tmp_path / "run"
    cfg = _train_cfg(training={"epochs": 1})
    assert (
        main(["train", str(_config(files, "r.yaml", cfg)), "--output", str(run)]) == 0
    )
    cfg["data"]["train"] = "other.extxyz"
    before = (run / "checkpoint.msgpack").read_bytes()
    refuse(
        capsys,
        files,
        ["train", _config(files, "r2.yaml", cfg), "--output", run],
        "different data",
        "--restart",
    )
    assert (run / "checkpoint.msgpack").read_bytes() == before


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--temperature", "-5"),
        ("--timestep", "0"),
        ("--steps", "-1"),
        ("--friction", "nan"),
    ],
)
def test_md_refuses_unphysical_settings(files, capsys, tmp_path, flag, value):
    refuse(
        capsys,
        files,
        ["md", files / "cu.extxyz", flag, value, "--out", tmp_path / "md"],
        flag,
    )
    assert not (tmp_path / "md").exists()


def test_phonons_of_a_cell_thinner_than_half_the_cutoff(files, capsys, tmp_path):
    # one fcc atom, 1x1x1: every displacement drags all images; all ω = 0 before
    refuse(
        capsys,
        files,
        [
            "phonons",
            files / "cu1.extxyz",
            "--supercell",
            1,
            1,
            1,
            "--out",
            tmp_path / "ph",
        ],
        "cutoff",
        "supercell of at least",
    )
    assert not (tmp_path / "ph").exists()


def test_phonons_of_an_unrelaxed_cell_warn_about_residual_forces(
    files, capsys, tmp_path
):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.positions[0] += [0.05, 0.02, 0.0]
    write(tmp_path / "rattled.extxyz", atoms)
    capsys.readouterr()
    assert (
        main(
            [
                "phonons",
                str(tmp_path / "rattled.extxyz"),
                "--mesh",
                "4",
                "4",
                "4",
                "--npoints",
                "3",
                "--out",
                str(tmp_path / "ph"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    # reference: ASE's EMT force on the displaced atom, an independent code
    atoms.calc = EMT()
    fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()
    assert "not relaxed" in err and "mldiff relax" in err
    assert f"{fmax:.3g}" in err
    record = json.loads((tmp_path / "ph" / "phonons.json").read_text())
    assert record["max_residual_force_ev_per_angstrom"] == pytest.approx(fmax, rel=1e-6)


def test_calculate_reports_every_frame_and_structure_commands_refuse_several(
    files, capsys, tmp_path
):
    frames = [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.55, 3.61, 3.70)]
    write(tmp_path / "three.extxyz", frames)
    capsys.readouterr()
    assert main(["calculate", str(tmp_path / "three.extxyz")]) == 0
    out = capsys.readouterr().out
    for k, atoms in enumerate(frames):  # reference: ASE's EMT per frame
        atoms.calc = EMT()
        assert f"frame {k}" in out
        assert f"{atoms.get_potential_energy():.6f}"[:-1] in out
    refuse(
        capsys,
        files,
        ["md", tmp_path / "three.extxyz", "--steps", 2],
        "3 structures",
        "FILE@INDEX",
    )


@pytest.mark.parametrize("energy", [-500.0, 40.0])
def test_stability_refuses_formation_energies_outside_any_known_compound(
    files, capsys, tmp_path, energy
):
    train = tmp_path / "train.csv"
    train.write_text(
        "formula,formation_energy_ev_per_atom\nLiF,-3.2\nNaCl,-2.13\n"
        f"KF,{energy}\nLiCl,-2.11\n"
    )
    (tmp_path / "cand.csv").write_text("formula\nNaF\n")
    refuse(
        capsys,
        tmp_path,
        [
            "stability",
            "--train",
            train,
            "--candidates",
            tmp_path / "cand.csv",
            "--out",
            tmp_path / "o.csv",
        ],
        "KF",
        "eV/atom",
        "per atom",
    )


# --- the active-learning oracle -----------------------------------------------


def _active_cfg(**over):
    cfg = {
        "oracle": "emt",
        "data": {"generate": {"element": "Cu", "crystal": "fcc", "a": 3.6, "n": 2}},
        "output": "active-never",
        "active": {
            "n_members": 2,
            "labels_per_round": 1,
            "max_rounds": 1,
            "train": dict(TRAIN),
        },
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    "oracle, kwargs",
    [
        ("subprocess:run", {"args": "touch {marker}", "shell": True}),
        ("os:system", {"command": "touch {marker}"}),
        ("subprocess:Popen", {"args": "touch {marker}", "shell": True}),
        ("builtins:eval", {"source": "open('{marker}', 'w')"}),
    ],
)
def test_oracle_must_be_an_ase_calculator_and_nothing_runs(
    files, capsys, tmp_path, oracle, kwargs
):
    marker = tmp_path / "pwned"
    kwargs = {
        k: v.format(marker=marker) if isinstance(v, str) else v
        for k, v in kwargs.items()
    }
    path = _config(files, "evil.yaml", _active_cfg(oracle=oracle, oracle_kwargs=kwargs))
    refuse(capsys, files, ["active", path], "not an ASE calculator class")
    assert not marker.exists()


def test_misspelt_oracle_key_is_refused_not_replaced_by_emt(files, capsys):
    cfg = _active_cfg()
    cfg["orcale"] = cfg.pop("oracle")
    refuse(
        capsys,
        files,
        ["active", _config(files, "typo.yaml", cfg)],
        "unknown key 'orcale'",
        "did you mean 'oracle'",
    )


class BrokenCalculator(EMT):
    """An ASE calculator whose setup fails, like a DFT code without its licence."""

    def __init__(self, **kwargs):  # noqa: D107
        raise RuntimeError("licence server not reachable")


def test_failing_oracle_setup_stops_before_any_label(files, capsys, monkeypatch):
    import mldiff.active

    monkeypatch.setattr(mldiff.active, "label_all", _never)
    cfg = _active_cfg(oracle="test_cli_hostile:BrokenCalculator")
    refuse(
        capsys,
        files,
        ["active", _config(files, "setup.yaml", cfg)],
        "could not be set up",
        "oracle_kwargs",
    )
    cfg = _active_cfg(oracle_kwargs=5)
    refuse(
        capsys,
        files,
        ["active", _config(files, "kw.yaml", cfg)],
        "oracle_kwargs",
        "mapping",
    )


@pytest.mark.parametrize(
    "section, key",
    [("data", "validaton_fraction"), ("training", "epoch"), (None, "ouput")],
)
def test_unknown_keys_anywhere_in_a_training_config(files, capsys, section, key):
    cfg = _train_cfg()
    (cfg if section is None else cfg[section])[key] = 1
    err = refuse(capsys, files, ["train", _config(files, "keys.yaml", cfg)], key)
    assert "unknown" in err


# --- tracebacks before: wrong types and missing pieces -------------------------


@pytest.mark.parametrize(
    "training, words",
    [
        ({"epochs": "ten"}, ("epochs", "integer", "'ten'")),
        ({"model_config": {**TINY_NEQUIP, "features": "four"}}, ("features", "'four'")),
        ({"batch_size": [4]}, ("batch_size", "integer")),
        ({"model": "nequipp"}, ("unknown model", "nequip")),
    ],
)
def test_wrong_typed_training_values(files, capsys, training, words):
    cfg = _train_cfg(training=training)
    refuse(capsys, files, ["train", _config(files, "types.yaml", cfg)], *words)


@pytest.mark.parametrize(
    "text, words",
    [
        ("- data\n- training\n", ("top level must be a mapping", "list")),
        ("data: train.extxyz\n", ("'data' must be a mapping", "str")),
        (
            "data: {train: train.extxyz}\ntraining: 5\n",
            ("'training' must be a mapping",),
        ),
        ("data: [\n", ("could not parse",)),
    ],
)
def test_malformed_config_files(files, capsys, text, words):
    refuse(capsys, files, ["train", _config(files, "shape.yaml", text)], *words)


@pytest.mark.parametrize("name", ["nequip", "mace"])
def test_untrained_architecture_as_potential(files, capsys, name):
    refuse(
        capsys,
        files,
        ["calculate", files / "cu.extxyz", "--potential", name],
        "untrained architecture",
        "checkpoint",
    )


def test_phonons_of_a_molecule_without_a_cell(files, capsys, tmp_path):
    refuse(
        capsys,
        files,
        ["phonons", files / "h2o.xyz", "--potential", "lj", "--out", tmp_path / "ph"],
        "periodic",
        "unit cell",
    )
    assert not (tmp_path / "ph").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--sigma", "0"], ("--sigma", "> 0")),
        (["--supercell", "-1", "1", "1"], ("--supercell", "positive")),
        (["--mesh", "0", "4", "4"], ("--mesh", "positive")),
        (["--tstep", "-10"], ("--tstep",)),
        (["--supercell", "two", "1", "1"], ("--supercell", "integer")),
    ],
)
def test_phonon_arguments(files, capsys, tmp_path, argv, words):
    refuse(
        capsys,
        files,
        ["phonons", files / "cu.extxyz", "--out", tmp_path / "ph", *argv],
        *words,
    )
    assert not (tmp_path / "ph").exists()


def test_output_folder_problems_are_found_before_the_work(
    files, capsys, tmp_path, monkeypatch
):
    from mldiff import phonons

    monkeypatch.setattr(phonons, "run", _never)
    cell = files / "cu.extxyz"
    refuse(
        capsys,
        files,
        ["phonons", cell, "--out", files / "a_file"],
        "existing file",
        "folder",
    )
    refuse(
        capsys, files, ["phonons", cell, "--out", files / "a_file" / "sub"], "is a file"
    )
    refuse(
        capsys,
        files,
        ["phonons", cell, "--out", "/proc/mldiff-out"],
        "cannot be written",
    )
    refuse(capsys, files, ["relax", cell, "--output", tmp_path], "is a folder")
    path = _config(files, "out.yaml", _train_cfg(output="a_file"))
    refuse(capsys, files, ["train", path], "existing file")


# --- work done before the input was checked -------------------------------------


def test_recommend_checks_target_columns_before_fitting(capsys, tmp_path, monkeypatch):
    from mldiff.recommender import MatrixFactorization

    monkeypatch.setattr(MatrixFactorization, "fit", _never)
    refuse(
        capsys,
        tmp_path,
        ["recommend", "--data", "transport", "--target", "S_q>=200"],
        "S_q",
        "columns",
    )


def test_stability_checks_candidate_formulas_before_fitting(
    capsys, tmp_path, monkeypatch
):
    from mldiff.stability import _model

    monkeypatch.setattr(_model, "fit_formation_energy", _never)
    (tmp_path / "t.csv").write_text(
        "formula,formation_energy_ev_per_atom\nLiF,-3.2\nNaCl,-2.1\n"
    )
    (tmp_path / "c.csv").write_text("formula\nXy2O\n")
    refuse(
        capsys,
        tmp_path,
        [
            "stability",
            "--train",
            tmp_path / "t.csv",
            "--candidates",
            tmp_path / "c.csv",
            "--out",
            tmp_path / "o.csv",
        ],
        "Xy2O",
    )


def test_ttsp_checks_the_reference_temperature_before_fitting(
    capsys, tmp_path, monkeypatch
):
    from mldiff.ttsp import superposition
    from mldiff.ttsp.data import wlf_maxwell_data, write_csv

    table = wlf_maxwell_data(noise=0.0, seed=0)
    csv = tmp_path / "melt.csv"
    write_csv(csv, table)
    monkeypatch.setattr(superposition, "curve_models", _never)
    temps = table.temperatures_k()
    refuse(
        capsys,
        tmp_path,
        [
            "ttsp",
            csv,
            "--reference-temperature",
            float(temps[-1]) + 50,
            "--out",
            tmp_path / "t",
        ],
        "outside the measured range",
    )


def test_huge_supercell_is_refused_with_its_size(files, capsys, tmp_path, monkeypatch):
    import mldiff.phonons.force_constants as fc

    monkeypatch.setattr(fc, "site_symmetry", _never)
    err = refuse(
        capsys,
        files,
        [
            "phonons",
            files / "cu.extxyz",
            "--supercell",
            60,
            60,
            60,
            "--out",
            tmp_path / "ph",
        ],
        "864000 atoms",
        "GiB",
    )
    assert "smaller supercell" in err


def test_lbte_mesh_is_refused_before_third_order_constants(
    files, capsys, tmp_path, monkeypatch
):
    from mldiff.phonons import third_order

    monkeypatch.setattr(third_order, "third_order", _never)
    refuse(
        capsys,
        files,
        [
            "conductivity",
            files / "cu.extxyz",
            "--method",
            "lbte",
            "--mesh",
            40,
            40,
            40,
            "--out",
            tmp_path / "k",
        ],
        "collision matrix",
        "GiB",
    )


def test_isotopes_without_a_smearing_width_are_refused_before_any_work(
    files, capsys, tmp_path, monkeypatch
):
    from mldiff import phonons

    monkeypatch.setattr(phonons, "run", _never)  # refused before the phonons
    err = refuse(
        capsys,
        files,
        ["conductivity", files / "cu.extxyz", "--isotopes", "--out", tmp_path / "k"],
        "Gaussian smearing",
        "--sigma-thz",
    )
    assert "isotope" in err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--integration", "gaussian"], ("needs a width", "--sigma-thz")),
        (["--integration", "tetrahedron", "--sigma-thz", "0.1"], ("drop it",)),
    ],
)
def test_integration_and_smearing_width_must_agree(
    files, capsys, tmp_path, extra, words
):
    from mldiff import phonons

    with pytest.MonkeyPatch.context() as m:
        m.setattr(phonons, "run", _never)
        refuse(
            capsys,
            files,
            ["conductivity", files / "cu.extxyz", *extra, "--out", tmp_path / "k"],
            *words,
        )
