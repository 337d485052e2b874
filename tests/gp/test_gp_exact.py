"""Exact GP against scikit-learn, finite differences and analytic limits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_counter import count_traces
from jax.test_util import check_grads

from mldiff.errors import MldiffError, PrecisionError
from mldiff.gp import (
    fit,
    fit_hyperparameters,
    kernels,
    log_marginal_likelihood,
    predict,
)

sk_gp = pytest.importorskip("sklearn.gaussian_process")
skk = pytest.importorskip("sklearn.gaussian_process.kernels")

TOL = 1e-8  # float64 agreement with scikit-learn


def _data(rng, n=25, d=2, s=7):
    x = rng.uniform(-2.0, 2.0, (n, d))
    y = np.sin(x[:, 0]) + 0.5 * np.cos(2.0 * x[:, -1]) + 0.1 * rng.normal(size=n)
    xs = rng.uniform(-2.5, 2.5, (s, d))
    return x, y, xs


def _pairs():
    C, RBF, M, RQ = skk.ConstantKernel, skk.RBF, skk.Matern, skk.RationalQuadratic
    return {
        "rbf": (kernels.rbf(0.8, 1.7), C(1.7) * RBF(0.8)),
        "matern0.5": (kernels.matern(0.5, 1.1, 0.9), C(0.9) * M(1.1, nu=0.5)),
        "matern1.5": (kernels.matern(1.5, 0.7, 1.3), C(1.3) * M(0.7, nu=1.5)),
        "matern2.5": (kernels.matern(2.5, 0.9, 2.0), C(2.0) * M(0.9, nu=2.5)),
        "rq": (
            kernels.rational_quadratic(0.6, 1.5, 1.2),
            C(1.2) * RQ(length_scale=0.6, alpha=1.5),
        ),
        "dot+white": (
            kernels.linear(1.0, bias=0.3**2) + kernels.white(0.05),
            skk.DotProduct(sigma_0=0.3) + skk.WhiteKernel(0.05),
        ),
        "sum": (
            kernels.rbf(1.3, 2.0) + kernels.matern(0.5, 0.7, 0.5),
            C(2.0) * RBF(1.3) + C(0.5) * M(0.7, nu=0.5),
        ),
        "product": (
            kernels.rbf(1.5) * kernels.linear(1.0, bias=1.0) + kernels.white(0.1),
            RBF(1.5) * skk.DotProduct(1.0) + skk.WhiteKernel(0.1),
        ),
        "ard-rbf": (kernels.rbf([0.5, 2.0], 1.5), C(1.5) * RBF([0.5, 2.0])),
        "ard-matern": (
            kernels.matern(2.5, [0.7, 1.9]) * kernels.constant(0.8),
            M([0.7, 1.9], nu=2.5) * C(0.8),
        ),
    }


PAIRS = _pairs()


@pytest.mark.parametrize("name", list(PAIRS))
def test_matches_sklearn_fixed_hyperparameters(name, rng):
    # reference: sklearn GaussianProcessRegressor(optimizer=None, alpha=noise)
    ours, theirs = PAIRS[name]
    x, y, xs = _data(rng)
    noise = 1e-2
    ref = sk_gp.GaussianProcessRegressor(theirs, alpha=noise, optimizer=None).fit(x, y)
    m_ref, s_ref = ref.predict(xs, return_std=True)
    _, c_ref = ref.predict(xs, return_cov=True)

    state = fit(ours, ours.init(), x, y, noise)
    m, v = predict(ours, state, xs)
    _, c = predict(ours, state, xs, full_cov=True)
    np.testing.assert_allclose(m, m_ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(jnp.sqrt(v), s_ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(c, c_ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(
        state.log_marginal_likelihood, ref.log_marginal_likelihood_value_, rtol=TOL
    )
    assert float(state.jitter) == 0.0 and bool(state.ok)


def test_per_point_noise_and_normalize_y_match_sklearn(rng):
    # reference: sklearn with array alpha; with normalize_y its alpha is noise/std²
    # and its log marginal likelihood is that of the standardised targets
    x, y, xs = _data(rng, n=30)
    y = 3.0 * y + 10.0
    noise = rng.uniform(0.01, 0.3, x.shape[0])
    k = kernels.matern(1.5, 0.9, 1.4)
    sk_k = skk.ConstantKernel(1.4) * skk.Matern(0.9, nu=1.5)
    for normalize_y in (False, True):
        sd = np.std(y) if normalize_y else 1.0
        ref = sk_gp.GaussianProcessRegressor(
            sk_k, alpha=noise / sd**2, optimizer=None, normalize_y=normalize_y
        ).fit(x, y)
        m_ref, s_ref = ref.predict(xs, return_std=True)
        state = fit(k, k.init(), x, y, noise, normalize_y=normalize_y)
        m, v = predict(k, state, xs)
        np.testing.assert_allclose(m, m_ref, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(jnp.sqrt(v), s_ref, rtol=TOL, atol=TOL)
        lml_ref = ref.log_marginal_likelihood_value_ - x.shape[0] * np.log(sd)
        np.testing.assert_allclose(state.log_marginal_likelihood, lml_ref, rtol=TOL)


def test_fitted_hyperparameters_reach_sklearn_likelihood(rng, keys):
    # reference: sklearn's L-BFGS-B optimum of the same marginal likelihood
    x, y, _ = _data(rng, n=40)
    k = kernels.rbf([1.0, 1.0], 1.0) + kernels.white(0.1)
    sk_k = skk.ConstantKernel(1.0) * skk.RBF([1.0, 1.0]) + skk.WhiteKernel(0.1)
    ref = sk_gp.GaussianProcessRegressor(sk_k, alpha=1e-10, random_state=0).fit(x, y)
    hyper, lml = fit_hyperparameters(
        k, k.init(), x, y, 1e-10, key=next(keys), n_restarts=3
    )
    lml_ref = ref.log_marginal_likelihood_value_
    assert float(lml) >= lml_ref - 1e-6 * abs(lml_ref), (float(lml), lml_ref)
    # our value is a true marginal likelihood: sklearn agrees at our optimum
    nat = k.natural(hyper)
    theta = np.log([nat[0]["variance"], *nat[0]["length_scale"], nat[1]["variance"]])
    np.testing.assert_allclose(ref.log_marginal_likelihood(theta), lml, rtol=TOL)


@pytest.mark.slow  # 23 s; fitting to sklearn's likelihood uses the same gradients
def test_gradients_match_finite_differences(rng):
    # reference: finite differences (jax.test_util.check_grads)
    x, y, xs = _data(rng, n=15)
    k = kernels.matern(2.5, [0.8, 1.2]) + kernels.white(0.05)
    state = fit(k, k.init(), x, y, 1e-3)

    def mean_and_var(t):
        m, v = predict(k, state, t)
        return jnp.sum(m) + jnp.sum(v)

    check_grads(mean_and_var, (jnp.asarray(xs),), order=2, modes=["rev"], atol=1e-6)

    def lml(h):
        return log_marginal_likelihood(k, h, x, y, 1e-3)

    check_grads(lml, (k.init(),), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    # the closed-form derivative (½(ααᵀ - K⁻¹)): forward mode to second order,
    # and with respect to the data as well as the hyperparameters
    check_grads(lml, (k.init(),), order=2, modes=["fwd"], atol=1e-5, rtol=1e-5)

    def lml_data(xx, yy):
        return log_marginal_likelihood(k, k.init(), xx, yy, 1e-3, normalize_y=True)

    check_grads(lml_data, (jnp.asarray(x), jnp.asarray(y)), order=1, atol=1e-6)
    # and equal to differentiating through the Cholesky factorisation of fit()
    through_fit = jax.grad(lambda h: fit(k, h, x, y, 1e-3).log_marginal_likelihood)
    for a, b in zip(
        jax.tree.leaves(jax.grad(lml)(k.init())),
        jax.tree.leaves(through_fit(k.init())),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # jax.grad of the mean w.r.t. one input point
    g = jax.grad(lambda t: predict(k, state, t[None])[0][0])(jnp.asarray(xs[0]))
    assert g.shape == (2,) and bool(jnp.all(jnp.isfinite(g)))


def test_jit_vmap_and_compile_once(rng):
    # reference: the eager result; tracing count for recompilation
    x, y, xs = _data(rng, n=20)
    k = kernels.rbf(0.9) + kernels.white(0.02)
    traces = []

    @jax.jit
    def fit_predict(hyper, x, y, xs):
        traces.append(1)
        return predict(k, fit(k, hyper, x, y, 1e-3), xs)

    eager = predict(k, fit(k, k.init(), x, y, 1e-3), xs)
    jitted = fit_predict(k.init(), x, y, xs)
    fit_predict(k.init(), x, y + 1.0, xs)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-12, atol=1e-12)
    assert len(traces) == 1
    ys = jnp.stack([jnp.asarray(y), 2.0 * jnp.asarray(y)])
    batched = jax.vmap(fit_predict, in_axes=(None, None, 0, None))(k.init(), x, ys, xs)
    np.testing.assert_allclose(batched[0][1], 2.0 * eager[0], rtol=1e-10, atol=1e-10)
    state = fit(k, k.init(), x, y, 1e-3)
    per_point = jax.vmap(lambda t: predict(k, state, t[None])[0][0])(jnp.asarray(xs))
    np.testing.assert_allclose(per_point, eager[0], rtol=1e-12, atol=1e-12)


def test_jitter_for_duplicates_and_error_when_indefinite(rng):
    # reference: analytic — duplicated inputs without noise are singular
    x = np.repeat(rng.uniform(size=(5, 1)), 2, axis=0)
    k = kernels.rbf()
    state = fit(k, k.init(), x, np.repeat(rng.normal(size=5), 2), 0.0)
    assert 0.0 < float(state.jitter) <= 1e-3 and bool(state.ok)

    def apply(h, x1, x2=None):
        return -jnp.eye(x1.shape[0], dtype=x1.dtype)

    bad = kernels.Kernel(
        dict,
        apply,
        lambda h, x, x2=None: -jnp.ones(x.shape[0]),
        lambda h: {},
        "negative",
    )
    with jax.debug_nans(False):
        with pytest.raises(MldiffError, match="not positive definite"):
            fit(bad, {}, x, np.zeros(10))
        flag = jax.jit(lambda y: fit(bad, {}, x, y).ok)(jnp.zeros(10))
    assert not bool(flag)


def test_float32_raises_precision_error(rng):
    # reference: STYLE rule 5 — library code never flips x64, it says how
    x, y, _ = _data(rng)
    k = kernels.rbf()
    with pytest.raises(PrecisionError, match="jax_enable_x64"):
        fit(k, k.init(), jnp.asarray(x, jnp.float32), y)


def test_clear_errors_for_bad_input(rng):
    x, y, xs = _data(rng)
    k = kernels.rbf()
    with pytest.raises(MldiffError, match="one value per row"):
        fit(k, k.init(), x, y[:-1])
    with pytest.raises(MldiffError, match="2-D"):
        fit(k, k.init(), x[:, 0], y)
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(MldiffError, match="NaN"):
        fit(k, k.init(), x, y_nan)
    with pytest.raises(MldiffError, match="noise"):
        fit(k, k.init(), x, y, -np.ones_like(y))
    with pytest.raises(MldiffError, match="noise must be a scalar"):
        fit(k, k.init(), x, y, np.ones(3))
    state = fit(k, k.init(), x, y, 0.1)
    with pytest.raises(MldiffError, match="like the training inputs"):
        predict(k, state, xs[:, :1])


def test_kernels_built_alike_share_one_compiled_program(rng):
    # reference: JAX's jit cache — a fresh but identical kernel must not recompile
    from mldiff.gp import _exact

    x, y, _ = _data(rng)
    k1 = kernels.rbf(np.ones(x.shape[1])) + kernels.white(0.1)
    k2 = kernels.rbf(2.0 * np.ones(x.shape[1])) + kernels.white(0.3)
    assert k1 == k2 and hash(k1) == hash(k2)
    assert k1 != kernels.matern(1.5, np.ones(x.shape[1])) + kernels.white(0.1)
    fit_hyperparameters(k1, k1.init(), x, y, key=jax.random.key(0), max_steps=3)
    with count_traces() as traces:
        fit_hyperparameters(k2, k2.init(), x, y, key=jax.random.key(0), max_steps=3)
    assert traces[_exact._minimize.__name__] == 0
    # hand-written kernels without a structure compare by identity
    def custom():
        return kernels.Kernel(dict, k1.apply, k1.diag, k1.natural, "custom")

    assert custom() != custom()


def test_padding_changes_nothing_and_buckets_compile_once(rng):
    # reference: the unpadded GP (itself checked against scikit-learn above)
    from mldiff.gp import GaussianProcess, _exact, bucket_size

    x, y, xs = _data(rng, n=21)
    k = kernels.rbf([1.0, 1.0]) + kernels.white(0.1)
    plain = GaussianProcess(k, optimizer=None).fit(x, y)
    padded = GaussianProcess(k, bucket=True, optimizer=None).fit(x, y)
    assert padded.state_.x.shape[0] == bucket_size(21) == 32
    for a, b in zip(plain.predict(xs), padded.predict(xs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        plain.log_marginal_likelihood(), padded.log_marginal_likelihood(), rtol=1e-12
    )
    # the optimiser's objective and its gradient are unchanged by padding
    xp0, yp0 = np.concatenate([x, np.zeros((11, 2))]), np.concatenate([y, np.zeros(11)])
    mask0 = np.arange(32) < 21

    def lml(h, xx, yy, mask):
        return log_marginal_likelihood(k, h, xx, yy, normalize_y=True, mask=mask)

    h0 = k.init()
    np.testing.assert_allclose(
        lml(h0, x, y, None), lml(h0, xp0, yp0, mask0), rtol=1e-12
    )
    for a, b in zip(
        jax.tree.leaves(jax.grad(lml)(h0, x, y, None)),
        jax.tree.leaves(jax.grad(lml)(h0, xp0, yp0, mask0)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # at equal hyperparameters the padded fit is the same computation
    h = plain.hyper_
    s0 = fit(k, h, x, y, normalize_y=True)
    xp = np.concatenate([x, rng.normal(size=(11, 2))])  # any finite padding
    yp = np.concatenate([y, rng.normal(size=11)])
    mask = np.arange(32) < 21
    s1 = fit(k, h, xp, yp, normalize_y=True, mask=mask)
    np.testing.assert_allclose(s0.log_marginal_likelihood, s1.log_marginal_likelihood,
                               rtol=1e-12)
    for a, b in zip(predict(k, s0, xs), predict(k, s1, xs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # growing data within one bucket: no new compilation
    with count_traces() as traces:
        for n in (17, 19, 23, 29):
            GaussianProcess(k, bucket=True, optimizer=None).fit(x[:n], y[:n])
    assert traces[_exact._fit.__name__] <= 1
    with pytest.raises(MldiffError, match="mask"):
        fit(k, h, x, y, mask=np.full(21, 0.5))
