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

from mldiff import gp
from mldiff.descriptors import CompositionError
from mldiff.stability import (
    StabilityConfig,
    StabilityError,
    calibrate,
    default_kernel,
    fit_formation_energy,
    fit_platt,
    hull_decompositions,
    hull_energies,
    platt,
    predict_stability,
    probability_stable,
    probability_stable_joint,
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


def test_ard_fit_matches_sklearn(rng):
    # reference: scikit-learn's GaussianProcessRegressor with ConstantKernel ×
    # RBF (one length scale per feature, same bounds) + WhiteKernel,
    # normalize_y=True; x2 is irrelevant, so its length scale runs to the bound
    skk = pytest.importorskip("sklearn.gaussian_process.kernels")
    sk_gp = pytest.importorskip("sklearn.gaussian_process")
    n, d = 40, 3
    x = rng.normal(size=(n, d))
    y = np.sin(1.5 * x[:, 0]) + 0.5 * x[:, 1] + 0.05 * rng.normal(size=n)
    config = StabilityConfig(length_scale_bounds=(0.05, 50.0), n_restarts=2)
    model = gp.GaussianProcess(default_kernel(d, config), n_restarts=2).fit(x, y)
    kernel = skk.ConstantKernel(1.0) * skk.RBF(
        np.full(d, np.sqrt(d)), length_scale_bounds=(0.05, 50.0)
    ) + skk.WhiteKernel(0.05)
    ref = sk_gp.GaussianProcessRegressor(
        kernel, normalize_y=True, n_restarts_optimizer=4, random_state=0
    ).fit(x, y)
    # mldiff's LML is the density of y in its own unit: sklearn's - n log std(y)
    np.testing.assert_allclose(
        model.log_marginal_likelihood(),
        ref.log_marginal_likelihood_value_ - n * np.log(np.std(y)),
        atol=1e-3,
    )
    ls = np.asarray(model.kernel_[0]["length_scale"])
    np.testing.assert_allclose(ls[:2], ref.kernel_.k1.k2.length_scale[:2], rtol=2e-2)
    assert ls[2] > 40.0 and ref.kernel_.k1.k2.length_scale[2] > 40.0
    np.testing.assert_allclose(
        model.kernel_[1]["variance"], ref.kernel_.k2.noise_level, rtol=2e-2
    )


def test_hull_decompositions_match_pymatgen_hull_with_sampled_candidates(rng):
    # reference: pymatgen's hull of the known phases plus the other candidates
    # (with the same sampled energies) at each candidate's composition
    known = {"Li2O": -2.07, "Fe2O3": -1.71, "LiFeO2": -1.9}
    cands = ["FeO", "Fe3O4", "Li5FeO4", "LiFe5O8", "Li2O2", "LiO2", "Li2Fe2O5"]
    dec = hull_decompositions(list(known), list(known.values()), cands)
    for _ in range(3):
        e = rng.uniform(-2.2, -0.8, len(cands))
        h = np.asarray(dec.hull(jnp.asarray(e)))
        for i, c in enumerate(cands):
            phases = {**known, **{f: v for f, v in zip(cands, e, strict=True)}}
            phases.pop(c)
            system = {x.symbol for x in Composition(c).elements}
            phases = {
                f: v
                for f, v in phases.items()
                if {x.symbol for x in Composition(f).elements} <= system
            }
            # e_above_hull of an entry at energy 0 is -h
            ref = -_pymatgen_e_above_hull(phases, c, 0.0)
            np.testing.assert_allclose(h[i], ref, atol=1e-9, err_msg=c)


def test_joint_probability_matches_the_bivariate_normal(keys):
    # Li-O, known Li2O at -2.0 eV/atom; candidates Li2O2 (x_O = 1/2, E1) and
    # LiO2 (x_O = 2/3, E2), correlated. Hulls by hand:
    #   Li2O2: min(-1.5 [Li2O + O], -1 + E2/2 [Li2O + LiO2], 3/4 E2 [Li + LiO2])
    #   LiO2: min(-1.0 [Li2O + O], 2/3 E1 [Li2O2 + O])
    # For E2 > -4 the 3/4 E2 branch is never lowest, so each P is a bivariate
    # normal CDF of two linear combinations of (E1, E2): scipy is the reference
    delta = 0.05
    mean = np.array([-1.55, -1.2])
    s1, s2, rho = 0.08, 0.1, 0.8
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    dec = hull_decompositions(["Li2O"], [-2.0], ["Li2O2", "LiO2"])
    p = probability_stable_joint(
        jnp.asarray(mean),
        jnp.asarray(cov),
        dec,
        delta,
        key=next(keys),
        n_samples=200_000,
        batch_size=8192,
    )

    def bivariate(a, bounds):  # P(a @ E < bounds)
        return scipy.stats.multivariate_normal(a @ mean, a @ cov @ a.T).cdf(bounds)

    p1 = bivariate(np.array([[1.0, 0.0], [1.0, -0.5]]), [-1.5 + delta, -1 + delta])
    p2 = bivariate(np.array([[0.0, 1.0], [-2 / 3, 1.0]]), [-1.0 + delta, delta])
    # Monte-Carlo error sqrt(P(1-P)/2e5) <= 0.0011
    np.testing.assert_allclose(p, [p1, p2], atol=0.005)
    # the independent estimate ignores LiO2 as a competitor: it is higher
    indep = probability_stable(
        mean, np.sqrt(np.diag(cov)), dec.known_hull_ev_per_atom, delta
    )
    assert indep[0] > p1 + 0.1


def test_platt_scaling_matches_sklearn_logistic_regression(rng):
    # reference: scikit-learn's unpenalised LogisticRegression on logit(p)
    lm = pytest.importorskip("sklearn.linear_model")
    p = rng.uniform(0.01, 0.99, 3000)
    truth = platt(p, 0.6, 0.8)
    y = (rng.uniform(size=p.size) < truth).astype(float)
    a, b = fit_platt(p, y, l2=0.0)
    logit = np.log(p / (1 - p))[:, None]
    ref = lm.LogisticRegression(C=1e12, tol=1e-12, max_iter=1000).fit(logit, y)
    np.testing.assert_allclose([a, b], [ref.coef_[0, 0], ref.intercept_[0]], rtol=1e-5)
    assert abs(a - 0.6) < 0.15 and abs(b - 0.8) < 0.2


def test_recalibration_is_a_function_of_the_training_table_only():
    # the Platt map must come from cross-validation inside the training table:
    # the same for any candidates, and equal to calibrate() on the training
    # table alone (the candidates, stand-ins for a test set, never enter)
    from mldiff.data import experimental_formation_enthalpies

    t = experimental_formation_enthalpies()
    t = t[t["chemical_system"].isin(["Li-O", "Na-O", "K-O", "Fe-O", "Cu-O", "Mn-O"])]
    train = t.rename(columns={"enthalpy_ev_per_atom": "formation_energy_ev_per_atom"})
    config = StabilityConfig(
        ard=False, n_restarts=0, max_steps=30, n_samples=256, calibration_folds=3
    )
    a = predict_stability(train, ["Li2O2", "KO2"], config=config)
    b = predict_stability(train, ["NaO2", "Fe3O4", "CuO"], config=config)
    assert a.attrs["calibration"] == b.attrs["calibration"] != (1.0, 0.0)
    f = train["formula"].to_numpy()
    e = train["formation_energy_ev_per_atom"].to_numpy()
    u = train["uncertainty_ev_per_atom"].to_numpy()
    predict = fit_formation_energy(f, e, u, config=config)
    assert calibrate(predict, f, e, 0.05, config=config) == a.attrs["calibration"]
    np.testing.assert_allclose(
        a["p_stable"], platt(a["p_stable_uncalibrated"], *a.attrs["calibration"])
    )


def test_too_small_a_table_is_left_uncalibrated_with_a_warning():
    train = {"formula": ["LiF", "NaF", "LiCl", "NaCl"]}
    train["formation_energy_ev_per_atom"] = [-3.2, -2.98, -2.11, -2.13]
    config = StabilityConfig(ard=False, n_restarts=0, max_steps=20, n_samples=64)
    with pytest.warns(UserWarning, match="no recalibration"):
        out = predict_stability(train, ["KF"], config=config)
    assert out.attrs["calibration"] == (1.0, 0.0)
    np.testing.assert_array_equal(out["p_stable"], out["p_stable_uncalibrated"])
