"""Pool-based active learning for regressors with a predictive mean and spread.

A pool of unlabeled candidates ``x_pool`` whose labels ``y_pool`` are revealed
only when asked for (the "oracle" is the lookup); a model with
``fit(X, y[, noise])`` and ``predict(X) -> (mean, std)`` — a
:class:`mldiff.gp.GaussianProcess`, or any regressor with that protocol, such
as an ensemble — is refitted after every batch. Each round records test
metrics, so the result is a learning curve::

    curve = run_pool(lambda: GaussianProcess(kernel, bucket=True), x, y,
                     x_test=xt, y_test=yt, n_initial=20, batch_size=10,
                     n_rounds=20, acquisition="max_variance", seed=0)
    curve["n_labels"], curve["mae"]

Each new training-set size compiles the GP once per process (shared by all
seeds and acquisitions); with small batches, ``bucket=True`` pads the refits
to a few sizes so that several rounds share one program. The acquisition
vocabulary is that of :mod:`mldiff.active.acquisition`.
"""

from collections.abc import Callable

import jax
import numpy as np

from mldiff.active import acquisition as acq
from mldiff.errors import ConfigError

__all__ = ["run_pool", "regression_metrics"]


def regression_metrics(y, mean, std) -> dict[str, float]:
    """MAE, RMSE, 95 % interval coverage and mean NLPD of Gaussian predictions.

    Args:
        y: ``[n]`` true values.
        mean: ``[n]`` predictive means.
        std: ``[n]`` predictive standard deviations (of an observation).

    Returns:
        ``mae``, ``rmse`` (unit of y), ``coverage_95`` (fraction of ``y`` inside
        ``mean ± 1.96 std``) and ``nlpd`` (nats, mean over points).

    Example:
        >>> m = regression_metrics([0.0, 1.0], [0.0, 0.0], [1.0, 1.0])
        >>> m["mae"], m["coverage_95"], round(m["nlpd"], 4)
        (0.5, 1.0, 1.1689)
    """
    y, mean, std = (np.asarray(a, np.float64) for a in (y, mean, std))
    err = y - mean
    var = np.maximum(std, 1e-300) ** 2
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "coverage_95": float(np.mean(np.abs(err) <= 1.96 * std)),
        "nlpd": float(np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * err**2 / var)),
    }


def _fit(model, x, y, noise):
    if noise is None:
        return model.fit(x, y)
    return model.fit(x, y, noise=noise)


def run_pool(
    make_model: Callable[[], object],
    x_pool,
    y_pool,
    *,
    x_test,
    y_test,
    n_initial: int,
    batch_size: int,
    n_rounds: int,
    acquisition: str = "max_variance",
    seed: int = 0,
    noise_pool=None,
    maximize: bool = True,
    kappa: float = 2.0,
    xi: float = 0.0,
    min_distance: float = 0.0,
) -> dict[str, list]:
    """Run pool-based active learning and return its learning curve.

    Round 0 fits on ``n_initial`` random pool points (drawn with ``seed``); each
    later round scores the unlabeled pool, takes ``batch_size`` points by
    :func:`~mldiff.active.acquisition.select_batch` (with ``min_distance`` in
    the units of ``x``) and refits. With the same ``seed`` every acquisition
    starts from the same initial set, so curves are paired.

    Args:
        make_model: ``() -> model`` with ``fit(X, y[, noise=])`` and
            ``predict(X) -> (mean, std)``; a fresh model is fitted each round.
        x_pool: ``[n, d]`` candidate inputs.
        y_pool: ``[n]`` their labels, revealed when selected.
        x_test: ``[m, d]`` held-out inputs.
        y_test: ``[m]`` held-out labels.
        n_initial: labels before the first acquisition.
        batch_size: labels per round.
        n_rounds: acquisition rounds.
        acquisition: one of :data:`~mldiff.active.acquisition.ACQUISITIONS`.
        seed: seed of the initial set and of ``"random"``.
        noise_pool: optional ``[n]`` per-point noise variances passed to ``fit``.
        maximize: direction for UCB / EI (e.g. False to hunt low formation
            energies).
        kappa: UCB weight.
        xi: EI margin.
        min_distance: diversity rule of the batch.

    Returns:
        ``{"n_labels": [...], "mae": [...], "rmse": [...], "coverage_95": [...],
        "nlpd": [...], "selected": [pool indices in the order labeled]}``, one
        entry per round (``n_rounds + 1`` of them).

    Raises:
        ConfigError: a pool too small for the requested labels, or mismatched
            shapes.
    """
    x_pool = np.asarray(x_pool, np.float64)
    y_pool = np.asarray(y_pool, np.float64).reshape(-1)
    x_pool = x_pool.reshape(len(x_pool), -1)
    if len(x_pool) != len(y_pool):
        raise ConfigError(
            f"x_pool has {len(x_pool)} rows but y_pool {len(y_pool)} values"
        )
    need = int(n_initial) + int(batch_size) * int(n_rounds)
    if need > len(x_pool) or int(n_initial) < 1:
        raise ConfigError(
            f"the pool holds {len(x_pool)} points but n_initial + batch_size × "
            f"n_rounds = {need} labels were asked for (n_initial >= 1); shrink "
            "the rounds or the batch"
        )
    noise = None if noise_pool is None else np.asarray(noise_pool, np.float64)
    rng = np.random.default_rng(seed)
    labeled = list(rng.choice(len(x_pool), int(n_initial), replace=False))
    key = jax.random.key(seed)
    curve: dict[str, list] = {
        k: [] for k in ("n_labels", "mae", "rmse", "coverage_95", "nlpd")
    }
    for r in range(int(n_rounds) + 1):
        idx = np.asarray(labeled)
        model = _fit(
            make_model(),
            x_pool[idx],
            y_pool[idx],
            None if noise is None else noise[idx],
        )
        mean, std = model.predict(x_test)
        curve["n_labels"].append(len(labeled))
        for k, v in regression_metrics(y_test, mean, std).items():
            curve[k].append(v)
        if r == int(n_rounds):
            break
        rest = np.setdiff1d(np.arange(len(x_pool)), idx)
        mean_u, std_u = model.predict(x_pool[rest])
        key, sub = jax.random.split(key)
        best = y_pool[idx].max() if maximize else y_pool[idx].min()
        s = acq.scores(
            acquisition,
            mean_u,
            std_u,
            key=sub,
            best=float(best),
            maximize=maximize,
            kappa=kappa,
            xi=xi,
        )
        pick = acq.select_batch(
            s, int(batch_size), features=x_pool[rest], min_distance=min_distance
        )
        labeled.extend(int(i) for i in rest[pick])
    curve["selected"] = [int(i) for i in labeled]
    return curve
