"""Hull energies, P(E_hull < δ) and the stability predictor, against references."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from mldiff.descriptors import CompositionError
from mldiff.stability import (
    StabilityConfig,
    StabilityError,
    hull_energies,
    predict_stability,
    probability_stable,
)

# Li-O with chosen formation energies (eV/atom); LiO2 lies on the hull
LI_O = {"Li2O": -2.07, "Li2O2": -1.65, "LiO2": -1.2}


def _pymatgen_e_above_hull(phases: dict, formula: str, energy: float) -> float:
    """Reference: pymatgen's own e_above_hull of an entry w.r.t. ``phases``."""
    comp = Composition(formula)
    elements = {e.symbol for c in [*phases, formula] for e in Composition(c).elements}
    entries = [PDEntry(Composition(e), 0.0) for e in elements]
    entries += [
        PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in phases.items()
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd = PhaseDiagram(entries)
        entry = PDEntry(comp, energy * comp.num_atoms)
        return pd.get_e_above_hull(entry, allow_negative=True)


def test_hull_energy_by_hand_in_li_o():
    # By hand: without Li2O2, the hull at x_O = 1/2 runs from Li2O (x = 1/3,
    # -2.07) to LiO2 (x = 2/3, -1.2): h = (-2.07 - 1.2) / 2 = -1.635 eV/atom.
    # Li2O2 itself is excluded from its own hull (it is among the phases).
    h = hull_energies(list(LI_O), list(LI_O.values()), ["Li2O2", "Li4O4", "Li"])
    np.testing.assert_allclose(h, [-1.635, -1.635, 0.0], atol=1e-12)
    # included, Li2O2 (-1.65 < -1.635) is the hull there
    h_in = hull_energies(list(LI_O), list(LI_O.values()), ["Li2O2"], exclude_self=False)
    np.testing.assert_allclose(h_in, [-1.65], atol=1e-12)


def test_hull_energies_match_pymatgen_e_above_hull_in_a_ternary(rng):
    phases = {
        "Li2O": -2.07,
        "Fe2O3": -1.71,
        "FeO": -1.41,
        "LiFeO2": -1.9,
        "Fe3O4": -1.66,
    }
    candidates = ["LiFe5O8", "Li5FeO4", "Fe2O3", "LiFeO2", "Li3Fe2O5", "Li2FeO3"]
    h = hull_energies(list(phases), list(phases.values()), candidates)
    for c, hc in zip(candidates, h, strict=True):
        others = {
            f: e for f, e in phases.items() if f != Composition(c).reduced_formula
        }
        energy = rng.uniform(-2.5, -0.5)
        np.testing.assert_allclose(
            energy - hc, _pymatgen_e_above_hull(others, c, energy), atol=1e-9
        )


def test_candidate_elements_missing_from_the_phases_are_added_at_zero():
    # Li2O is the only phase; Li2S has no S phase: hull is Li2O-free Li--S line
    h = hull_energies(["Li2O"], [-2.07], ["Li2S", "Li2OS", "Na"])
    # Li2OS (Li 1/2, O 1/4, S 1/4): Li2O at 3/4 weight -> -2.07 * 3/4
    np.testing.assert_allclose(h, [0.0, -2.07 * 0.75, 0.0], atol=1e-12)


def test_probability_matches_scipy_normal_cdf(rng):
    mean = rng.normal(-1.0, 0.5, 50)
    std = rng.uniform(0.01, 0.3, 50)
    h = rng.normal(-1.0, 0.5, 50)
    p = probability_stable(mean, std, h, 0.05)
    np.testing.assert_allclose(
        p, scipy.stats.norm.cdf((h + 0.05 - mean) / std), rtol=1e-12, atol=1e-15
    )


def test_zero_spread_is_the_step_function_and_the_limit_of_small_spread():
    mean = jnp.array([-1.0, -1.2, -0.9])
    h = jnp.array([-1.1, -1.1, -1.1])
    step = (mean - h < 0.05).astype(float)  # E_hull < δ
    np.testing.assert_array_equal(probability_stable(mean, 0.0, h, 0.05), step)
    np.testing.assert_allclose(
        probability_stable(mean, 1e-9, h, 0.05), step, atol=1e-12
    )


def test_probability_is_differentiable_in_mean_and_spread():
    def p(mu, sigma):
        return probability_stable(mu, sigma, jnp.array([-1.1, -0.5]), 0.05).sum()

    args = (jnp.array([-1.0, -0.6]), jnp.array([0.1, 0.2]))
    check_grads(p, args, order=1, modes=["rev"], eps=1e-5, atol=1e-6, rtol=1e-6)
    # analytic: dP/dμ = -φ(z)/σ, dP/dσ = -φ(z) z/σ
    g_mu, g_sigma = jax.grad(p, argnums=(0, 1))(*args)
    z = (jnp.array([-1.1, -0.5]) + 0.05 - args[0]) / args[1]
    phi = scipy.stats.norm.pdf(z)
    np.testing.assert_allclose(g_mu, -phi / args[1], rtol=1e-10)
    np.testing.assert_allclose(g_sigma, -phi * z / args[1], rtol=1e-10)


def test_bad_input_is_a_clear_error():
    with pytest.raises(StabilityError, match="formation energy"):
        hull_energies(["Li2O"], [np.nan], ["Li2O2"])
    with pytest.raises(StabilityError, match="elemental phase Li"):
        hull_energies(["Li", "Li2O"], [0.3, -2.0], ["Li2O2"])
    with pytest.raises(StabilityError, match="Xx"):
        hull_energies(["Li2O"], [-2.0], ["Xx)2"])
    train = {"formula": ["Li2O"], "energy": [-2.0]}
    with pytest.raises(StabilityError, match="formation_energy_ev_per_atom"):
        predict_stability(train, ["Li2O2"])
    train = {
        "formula": ["Li2O", "LiO2"],
        "formation_energy_ev_per_atom": [-2.0, np.nan],
    }
    with pytest.raises(StabilityError, match="LiO2"):
        predict_stability(train, ["Li2O2"])
    train = {"formula": ["Li2O", "Og2O"], "formation_energy_ev_per_atom": [-2.0, -1.0]}
    with pytest.raises(CompositionError, match="Og"):
        predict_stability(train, ["Li2O2"])


@pytest.mark.slow  # a GP fit: ~20 s on 2 cores; the CLI test covers the path
def test_predict_stability_on_experimental_compounds():
    from mldiff.data import experimental_formation_enthalpies

    t = experimental_formation_enthalpies()
    t = t[
        t["chemical_system"].isin(
            [
                "Li-O",
                "Na-O",
                "K-O",
                "Li-S",
                "Na-S",
                "K-S",
                "Li-F",
                "Na-F",
                "K-F",
                "Li-Cl",
                "Na-Cl",
                "K-Cl",
                "Mg-O",
                "Ca-O",
                "Mg-S",
                "Ca-S",
            ]
        )
    ]
    train = t.rename(columns={"enthalpy_ev_per_atom": "formation_energy_ev_per_atom"})
    config = StabilityConfig(n_restarts=0)
    out = predict_stability(train, ["Li2O", "Na2O2", "RbCl"], 0.05, config=config)
    assert list(out["formula"]) == ["Li2O", "Na2O2", "RbCl"]
    # reference for h: pymatgen's hull of the training table without the row
    known = dict(
        zip(train["formula"], train["formation_energy_ev_per_atom"], strict=True)
    )
    for _, row in out.iloc[:2].iterrows():
        others = {f: e for f, e in known.items() if f != row["formula"]}
        others = {
            f: e
            for f, e in others.items()
            if {x.symbol for x in Composition(f).elements}
            <= {x.symbol for x in Composition(row["formula"]).elements}
        }
        e_ref = _pymatgen_e_above_hull(
            others, row["formula"], row["formation_energy_mean"]
        )
        np.testing.assert_allclose(row["e_hull_mean"], e_ref, atol=1e-9)
    # RbCl has an element (Rb) absent from training: its hull is the elements,
    # its error bar is wider than that of a training compound, and the
    # experimental value (-2.2547 eV/atom, same table) lies within 2σ
    rb = out.iloc[2]
    assert rb["hull_energy"] == 0.0
    assert rb["formation_energy_std"] > 3 * out.iloc[0]["formation_energy_std"]
    assert abs(rb["formation_energy_mean"] + 2.2547) < 2 * rb["formation_energy_std"]
