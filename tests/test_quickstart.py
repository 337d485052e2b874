"""``mldiff quickstart --fast``: the whole job runs and reports checked numbers."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.phonons import Phonons

from mldiff.cli import main


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    assert main(["quickstart", "--fast", "--out", str(out)]) == 0
    return out


def test_fast_quickstart_writes_figure_and_summary(fast_run, capsys):
    summary = json.loads((fast_run / "summary.json").read_text())
    assert (fast_run / "quickstart.png").stat().st_size > 10_000
    assert summary["members"] == 2 and summary["structures"]["test"] >= 1
    for v in summary["test_errors"].values():
        assert np.isfinite(v) and v >= 0
    for lab in ("X", "L"):
        pt = summary["phonons_at"][lab]
        assert len(pt["mean_thz"]) == 3 and min(pt["std_thz"]) >= 0
        # the verdict is what the numbers say (|mean - exact| <= 2 sigma)
        dev = np.abs(np.subtract(pt["mean_thz"], pt["exact_thz"]))
        assert pt["within_2_sigma"] == (dev <= 2 * np.asarray(pt["std_thz"])).tolist()
    # a rerun reuses the labeled data and the finished training
    assert main(["quickstart", "--fast", "--out", str(fast_run)]) == 0
    assert "wall time" in capsys.readouterr().out


def test_exact_emt_reference_matches_ase(fast_run):
    # reference: ASE's EMT equilibrium (analytic minimum of E(a)) and ASE's own
    # finite-displacement phonons (ase.phonons) of the same 3x3x3 supercell
    summary = json.loads((fast_run / "summary.json").read_text())
    a0 = summary["lattice_constant_angstrom"]
    def energy(a):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    e = [energy(a) for a in (a0 - 1e-3, a0, a0 + 1e-3)]
    assert e[1] < e[0] and e[1] < e[2]  # a0 is the minimum to 1e-3 Å
    atoms = bulk("Cu", "fcc", a=a0)
    ph = Phonons(atoms, EMT(), supercell=(3, 3, 3), delta=0.01,
                 name=str(fast_run / "ase-phonons"))
    ph.run()
    ph.read(acoustic=True)
    for lab, q_red in (("X", [0.5, 0.0, 0.5]), ("L", [0.5, 0.5, 0.5])):
        ev = ph.band_structure([q_red])[0]  # eV, q in reduced coordinates
        thz = np.sort(ev) / 4.135667696e-3  # eV -> THz (h = 4.1357e-15 eV s)
        # ASE's unsymmetrised finite differences split the degenerate
        # transverse modes by ~0.05 THz; ours are exact Hessians (and equal
        # phonopy's to 1e-6 THz in tests/phonons)
        assert summary["phonons_at"][lab]["exact_thz"] == pytest.approx(
            thz.tolist(), rel=0.01
        )
