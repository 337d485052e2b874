"""Gaussian processes: pure kernels, exact and sparse GP (float64), sklearn-style shell.

The pure core (jit / vmap / grad-compatible):

- :mod:`mldiff.gp.kernels`: covariance functions, hyperparameters in log form;
- :func:`fit`, :func:`predict`, :func:`log_marginal_likelihood`,
  :func:`fit_hyperparameters`: exact GP;
- :func:`fit_sparse`, :func:`predict_sparse`, :func:`collapsed_bound`,
  :func:`fit_hyperparameters_sparse`, :func:`kmeans`, :func:`random_subset`:
  sparse GP (Titsias SGPR) for 10⁴–10⁵ points.

:class:`GaussianProcess` only stores results of these functions.

Example:
    >>> import numpy as np
    >>> x = np.linspace(0.0, 5.0, 20)[:, None]
    >>> k = kernels.rbf(1.0) + kernels.white(1e-4)
    >>> gp = GaussianProcess(k, optimizer=None).fit(x, np.sin(x[:, 0]))  # fixed hyper
    >>> mean, std = gp.predict(np.array([[2.5]]))
    >>> bool(abs(mean[0] - np.sin(2.5)) < 0.05)
    True
"""

import jax
import numpy as np

from mldiff.errors import ConfigError, MldiffError
from mldiff.gp import kernels
from mldiff.gp._common import bucket_size
from mldiff.gp._exact import (
    ExactGP,
    fit,
    fit_hyperparameters,
    log_marginal_likelihood,
    predict,
)
from mldiff.gp._sparse import (
    SparseGP,
    collapsed_bound,
    fit_hyperparameters_sparse,
    fit_sparse,
    kmeans,
    predict_sparse,
    random_subset,
)

__all__ = [
    "bucket_size",
    "kernels",
    "GaussianProcess",
    "ExactGP",
    "fit",
    "predict",
    "log_marginal_likelihood",
    "fit_hyperparameters",
    "SparseGP",
    "fit_sparse",
    "predict_sparse",
    "collapsed_bound",
    "fit_hyperparameters_sparse",
    "kmeans",
    "random_subset",
]


class GaussianProcess:
    """sklearn-style GP regressor over the pure functions of :mod:`mldiff.gp`.

    Args:
        kernel: a :class:`~mldiff.gp.kernels.Kernel`; default
            ``rbf(1.0) + white(0.01)`` (learnable noise, standardised units).
        noise: fixed noise variance, scalar or ``[n]``, unit of y squared
            (overridden by ``fit(..., noise=...)``).
        normalize_y: model standardised targets (kernel variances then refer to
            the standardised targets, as in scikit-learn).
        n_restarts: random restarts of the hyperparameter optimisation besides
            the kernel's initial values.
        seed: seed of the restarts and of the k-means initialisation.
        optimizer: ``"lbfgs"``, ``"adam"``, or ``None`` to keep the kernel's
            initial hyperparameters.
        max_steps: optimiser iterations per start.
        inducing: ``None`` for the exact GP; an int ``m`` for SGPR with ``m``
            k-means inducing inputs; or an array ``[m, d]`` of inducing inputs.
        train_inducing: optimise the inducing inputs with the hyperparameters.
        mean: constant prior mean in the unit of y (default: sample mean when
            ``normalize_y``, else zero).
        bucket: exact GP only: pad the training set to :func:`bucket_size`
            rows (padding carries no weight, results are unchanged), so that
            refits on growing data (active learning) compile once per bucket.

    Attributes (after ``fit``):
        state_: the fitted :class:`ExactGP` or :class:`SparseGP`.
        hyper_: fitted unconstrained hyperparameters.
        kernel_: fitted hyperparameters in natural units (same tree shape).
        inducing_: inducing inputs ``[m, d]`` (sparse only).
    """

    def __init__(
        self,
        kernel=None,
        *,
        noise=0.0,
        normalize_y: bool = True,
        n_restarts: int = 0,
        seed: int = 0,
        optimizer="lbfgs",
        max_steps: int = 200,
        inducing=None,
        train_inducing: bool = False,
        mean=None,
        bucket: bool = False,
    ):
        """Store settings; nothing is computed until :meth:`fit`."""
        self.kernel = kernel
        self.noise = noise
        self.normalize_y = normalize_y
        self.n_restarts = n_restarts
        self.seed = seed
        self.optimizer = optimizer
        self.max_steps = max_steps
        self.inducing = inducing
        self.train_inducing = train_inducing
        self.mean = mean
        self.bucket = bucket
        if optimizer not in ("lbfgs", "adam", None):
            raise ConfigError(
                f"optimizer must be 'lbfgs', 'adam' or None, got {optimizer!r}"
            )

    @property
    def _kernel(self):
        if self.kernel is None:
            return kernels.rbf(1.0) + kernels.white(1e-2)
        return self.kernel

    def fit(self, X, y, noise=None):
        """Fit hyperparameters (unless ``optimizer=None``) and condition on data.

        Args:
            X: inputs ``[n, d]``, float64.
            y: targets ``[n]``, float64.
            noise: per-point noise variances ``[n]`` or scalar, unit of y squared
                (default: the constructor's ``noise``).

        Returns:
            self.
        """
        kernel = self._kernel
        self._kernel_used = kernel
        noise = self.noise if noise is None else noise
        key_z, key_r = jax.random.split(jax.random.key(self.seed))
        hyper = kernel.init()
        opt = dict(normalize_y=self.normalize_y, mean=self.mean)
        if self.inducing is None:
            X, y, noise, opt["mask"] = _padded(X, y, noise, self.bucket)
            if self.optimizer is not None:
                hyper, _ = fit_hyperparameters(
                    kernel,
                    hyper,
                    X,
                    y,
                    noise,
                    key=key_r,
                    n_restarts=self.n_restarts,
                    optimizer=self.optimizer,
                    max_steps=self.max_steps,
                    **opt,
                )
            self.state_ = fit(kernel, hyper, X, y, noise, **opt)
        else:
            if isinstance(self.inducing, int | np.integer):
                z = kmeans(X, int(self.inducing), key=key_z)
            else:
                z = self.inducing
            if self.optimizer is not None:
                hyper, z, _ = fit_hyperparameters_sparse(
                    kernel,
                    hyper,
                    X,
                    y,
                    noise,
                    z,
                    key=key_r,
                    n_restarts=self.n_restarts,
                    optimizer=self.optimizer,
                    max_steps=self.max_steps,
                    train_inducing=self.train_inducing,
                    **opt,
                )
            self.state_ = fit_sparse(kernel, hyper, X, y, noise, z, **opt)
            self.inducing_ = np.asarray(self.state_.z)
        self.hyper_ = hyper
        self._data = (X, y, noise)
        self.kernel_ = jax.tree_util.tree_map(np.asarray, kernel.natural(hyper))
        return self

    def _check_fitted(self):
        if not hasattr(self, "state_"):
            raise MldiffError("this GaussianProcess is not fitted; call fit(X, y)")

    def predict(self, X, return_std: bool = True, return_cov: bool = False):
        """Predictive mean and standard deviation (or covariance) at ``X``.

        The spread includes the kernel's white-noise term, not the fixed noise.

        Args:
            X: test inputs ``[s, d]``.
            return_std: also return the standard deviation (default True, so
                ``mean, std = gp.predict(X)``).
            return_cov: return the ``[s, s]`` covariance instead (takes
                precedence over ``return_std``).

        Returns:
            ``(mean [s], std [s])``, ``(mean [s], cov [s, s])`` or ``mean [s]``;
            NumPy arrays in the unit of y (y² for the covariance).
        """
        self._check_fitted()
        pred = predict_sparse if isinstance(self.state_, SparseGP) else predict
        if return_cov:
            mean, cov = pred(self._kernel_used, self.state_, X, full_cov=True)
            return np.asarray(mean), np.asarray(cov)
        mean, var = pred(self._kernel_used, self.state_, X)
        if return_std:
            return np.asarray(mean), np.sqrt(np.asarray(var))
        return np.asarray(mean)

    def log_marginal_likelihood(self, hyper=None) -> float:
        """Log marginal likelihood (exact) or its collapsed bound (sparse), nats.

        Args:
            hyper: unconstrained hyperparameters; default the fitted ones.

        Returns:
            the value for the training data, as a float.
        """
        self._check_fitted()
        if hyper is None:
            s = self.state_
            return float(
                s.elbo if isinstance(s, SparseGP) else s.log_marginal_likelihood
            )
        x, y, noise = self._data
        opt = dict(normalize_y=self.normalize_y, mean=self.mean)
        if isinstance(self.state_, SparseGP):
            k = self._kernel_used
            return float(collapsed_bound(k, hyper, x, y, noise, self.state_.z, **opt))
        return float(
            log_marginal_likelihood(
                self._kernel_used, hyper, x, y, noise, mask=self.state_.mask, **opt
            )
        )


def _padded(x, y, noise, bucket: bool):
    """``(x, y, noise, mask)`` padded to :func:`bucket_size` rows (or as given)."""
    x, y = np.asarray(x), np.asarray(y)
    noise = np.asarray(0.0 if noise is None else noise)
    n = y.shape[0] if y.ndim == 1 else 0
    size = bucket_size(n) if bucket and n else n
    shapes_ok = x.ndim == 2 and x.shape[0] == n and noise.shape in ((), (n,))
    if size == n or not shapes_ok:  # bad shapes are reported by the fit itself
        return x, y, noise, None
    noise = np.broadcast_to(noise, y.shape)
    pad = size - n
    mask = np.concatenate([np.ones(n), np.zeros(pad)])
    x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
    return x, np.concatenate([y, np.zeros(pad, y.dtype)]), np.concatenate(
        [noise, np.zeros(pad, noise.dtype)]
    ), mask
