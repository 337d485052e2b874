import json

import pytest
import yaml
from tiny_models import TINY_NEQUIP

from mldiff.cli import main
from mldiff.cli.active import make_oracle_calculator
from mldiff.errors import ConfigError

TINY = TINY_NEQUIP


def _write(tmp_path, **over):
    cfg = {
        "oracle": "emt",
        "data": {
            "generate": {"element": "Cu", "crystal": "fcc", "a": 3.6, "n": 4,
                         "rattle": 0.05},
            "validation_generate": {"element": "Cu", "crystal": "fcc", "a": 3.6,
                                    "n": 2, "rattle": 0.1},
        },
        "output": "run",
        "active": {
            "n_members": 2,
            "labels_per_round": 2,
            "max_rounds": 1,
            "temperatures_k": [600],
            "md_steps": 20,
            "md_frame_interval": 2,
            "train": {"model": "nequip", "model_config": TINY, "epochs": 3,
                      "batch_size": 8, "learning_rate": 0.02, "warmup_epochs": 0,
                      "patience": 0, "n_buckets": 1, "dtype": "float64"},
        },
    }
    cfg.update(over)
    path = tmp_path / "active.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow  # ~30 s of compilation; the loop itself is tested in test_loop.py
def test_cli_runs_and_resumes(tmp_path, capsys):
    # reference: the run folder's own state and the oracle (ASE EMT) energies
    path = _write(tmp_path)
    assert main(["active", str(path)]) == 0
    out = capsys.readouterr().out
    assert "round   0" in out and "stopped (max_rounds)" in out
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["oracle_calls"] == 2 and state["finished"]
    # a finished run repeated: resumes, labels nothing new
    assert main(["active", str(path), "--rounds", "1"]) == 0
    assert "[resuming]" in capsys.readouterr().out
    state2 = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state2["oracle_calls"] == 2


def test_cli_errors(tmp_path, capsys):
    path = _write(tmp_path, data={})
    assert main(["active", str(path)]) == 2
    assert "needs 'initial'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown oracle"):
        make_oracle_calculator("vasp")
    with pytest.raises(ConfigError, match="cannot import"):
        make_oracle_calculator("ase.calculators.nothere:Calc")
    lj = make_oracle_calculator("ase.calculators.lj:LennardJones")
    assert lj.name == "lennardjones"
