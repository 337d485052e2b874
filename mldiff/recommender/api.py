"""``MatrixFactorization``: a thin estimator over the pure factorisation core.

````fit`` validates the matrix, fits the per-column transform, optionally picks
the rank by validation, fits an ensemble of ALS factorisations (bootstrap
weights, ``vmap`` over seeds) and, when row formulas are given, the joint
descriptor → latent map for cold start. With formulas, the factorisation's
warm values are those of the joint model (its descriptor prior helps sparse
rows and columns such as the formation enthalpy). Last, a masked denoising
autoencoder (:mod:`mldiff.recommender.autoencoder`) learns to predict each
row's entries from its other measured entries (and its composition), the
nonlinear relations a low-rank model misses (``autoencoder_steps``; 0 keeps
the factorisation's values). Predictions come back in original units; a
DataFrame in gives a DataFrame out.

Uncertainty: the predictive standard deviation in standardised units is
``sqrt(ensemble variance + noise variance of the column)``. For the fitted
rows the ensemble is that of the plain factorisations and the noise variance
is the autoencoder's error on entries hidden from it (without it, the
factorisation's residual variance on the fitted entries); for new formulas,
the residual variance of the cold-start path on the fitted rows plus the
variance among the cold-start members. :meth:`MatrixFactorization.recommend`
turns it into the probability that a material lies inside a target window,
assuming Gaussian errors in standardised units, independent across
properties.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 5))
    >>> m = np.where(rng.random(truth.shape) < 0.8, truth, np.nan)
    >>> m[:, 0] = truth[:, 0]  # no empty rows
    >>> model = MatrixFactorization(rank=2, reg=0.1, n_members=2,
    ...                             autoencoder_steps=1000).fit(m)
    >>> model.predict().shape
    (30, 5)
    >>> bool(np.isnan(model.impute()).any())
    False
"""

import dataclasses
import io
import json

import jax
import jax.numpy as jnp
import numpy as np

from mldiff.io.files import atomic_write
from mldiff.recommender import autoencoder as _ae
from mldiff.recommender import cold_start as _cold
from mldiff.recommender import factorization as _mf
from mldiff.recommender.data import (
    ColumnTransform,
    RecommenderError,
    as_matrix,
    fit_column_transform,
)

__all__ = ["FactorizationConfig", "MatrixFactorization", "window_probability"]

#: where the cold start's neighbours are found: each member map's last hidden
#: layer, or the standardised composition descriptors
NEIGHBOR_SPACES = ("hidden", "descriptors")


@dataclasses.dataclass(frozen=True)
class FactorizationConfig:
    """The settings of a :class:`MatrixFactorization` (see its arguments).

    Saved with the model (:meth:`MatrixFactorization.save`) and read back by
    :meth:`MatrixFactorization.load`.
    """

    rank: int | tuple[int, ...] = 8
    reg: float = 1.0
    n_members: int = 4
    sweeps: int = 60
    log10: str | tuple[bool, ...] = "auto"
    hidden: tuple[int, ...] = (256, 256, 256)
    iterations: int = 30
    inner_steps: int = 100
    batch: int = 512
    bins: int = 32
    balance: float = 1.0
    learning_rate: float = 1e-3
    cold_members: int = 2
    neighbors: int = 20
    neighbor_weight: float = 0.5
    neighbor_space: str = "hidden"
    autoencoder_steps: int = 6000
    autoencoder_hidden: tuple[int, ...] = (128, 128, 128)
    drop_rate: float = 0.25
    seed: int = 0


def window_probability(mean, std, lo, hi) -> np.ndarray:
    """``P(lo ≤ v ≤ hi)`` for ``v ~ N(mean, std²)``, elementwise.

    Example:
        >>> round(float(window_probability(0.0, 1.0, 0.0, np.inf)), 6)
        0.5
    """
    from jax.scipy.special import ndtr

    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    upper = np.asarray(ndtr(jnp.asarray((hi - np.asarray(mean)) / std)))
    lower = np.asarray(ndtr(jnp.asarray((lo - np.asarray(mean)) / std)))
    return np.asarray(upper - lower)


class MatrixFactorization:
    """Masked low-rank completion of a materials × properties matrix.

    Args:
        rank: latent dimension, or a sequence of candidates chosen by RMSE on
            a held-out 10 % of the observed entries.
        reg: ridge ``λ`` of factors and biases (standardised units).
        n_members: factorisations in the ensemble.
        sweeps: ALS sweeps per member.
        log10: ``"auto"`` or one flag per column (see
            :func:`mldiff.recommender.data.fit_column_transform`).
        hidden: MLP widths of the descriptor map (cold start).
        iterations, inner_steps, batch: joint-fit schedule (see
            :func:`mldiff.recommender.cold_start.fit_joint`).
        bins: quantile bins of the descriptors' piecewise-linear encoding
            (:func:`mldiff.recommender.cold_start.encode`). Finer bins let the
            map follow sharper changes between neighbouring compositions: on
            the transport matrix 32 bins beat 16 (8 fits, descriptor-space
            neighbours: RMSE 0.607 against 0.611 for held-out materials), at
            about 1.6× the map's time.
        balance: column balance of the map's loss (0: entries alike, 1:
            columns alike; see :func:`~mldiff.recommender.cold_start.fit_joint`).
        learning_rate: peak Adam step size of the map.
        cold_members: joint fits (seeds, ``vmap``-ed) whose mean gives the
            cold-start predictions (and the warm ones when
            ``autoencoder_steps`` is 0); their spread adds to the cold-start
            std. Each costs about as much as the first. On the
            transport matrix (``benchmarks/bench_recommender.py``, 32 bins,
            hidden-layer neighbours), 8 fits beat a random forest on the
            same descriptors for 11, 10 and 9 of 11 properties on three
            splits (RMSE 0.6049 vs 0.6119, 0.5911 vs 0.5958, 0.6025 vs
            0.6045); they win most on polymorphs of training formulas and on
            the formation enthalpy, and are about even on new compositions.
            2 fits take a quarter of the time: 8 of 11 on the first split
            (RMSE 0.6103 vs 0.6119).
        neighbors: neighbours of the latent-residual correction for new
            formulas (0 turns it off).
        neighbor_weight: the fraction of the neighbours' mean latent residual
            that is added (a shrinkage towards the map; 1: all of it).
        neighbor_space: where the neighbours are found. ``"hidden"``: in each
            member map's last hidden layer
            (:func:`~mldiff.recommender.cold_start.mlp_features`, a deep
            k-NN), so that compositions count as alike when the map treats
            them alike; ``"descriptors"``: in standardised descriptor space.
            On the three splits above (the same 8 fits), descriptor space
            gave 9, 9 and 5 wins of 11 (RMSE 0.6072, 0.5936, 0.6050).
        autoencoder_steps: Adam steps of the warm-start imputer, a masked
            denoising autoencoder that predicts each row's missing entries
            from its measured ones (and, with formulas, its composition;
            :mod:`mldiff.recommender.autoencoder`). It gives :meth:`predict`
            and :meth:`impute` their values, and its held-out error the noise
            part of their std. 0: the factorisation's values instead.
        autoencoder_hidden: its hidden widths.
        drop_rate: fraction of measured entries it hides per training step.
        seed: seed of every random choice.
    """

    def __init__(
        self,
        rank=8,
        *,
        reg: float = 1.0,
        n_members: int = 4,
        sweeps: int = 60,
        log10="auto",
        hidden=(256, 256, 256),
        iterations: int = 30,
        inner_steps: int = 100,
        batch: int = 512,
        bins: int = 32,
        balance: float = 1.0,
        learning_rate: float = 1e-3,
        cold_members: int = 2,
        neighbors: int = 20,
        neighbor_weight: float = 0.5,
        neighbor_space: str = "hidden",
        autoencoder_steps: int = 6000,
        autoencoder_hidden=(128, 128, 128),
        drop_rate: float = 0.25,
        seed: int = 0,
    ):
        """Store the configuration (validated); nothing is fitted here."""
        ranks = [rank] if np.isscalar(rank) else list(rank)
        if not ranks or any(int(r) != r or r < 1 for r in ranks):
            raise RecommenderError(
                f"rank must be a positive integer or a list of them, got {rank!r}"
            )
        if n_members < 1 or cold_members < 1:
            raise RecommenderError(
                f"n_members and cold_members must be ≥ 1, got {n_members} and "
                f"{cold_members}"
            )
        if int(bins) < 1 or not 0.0 <= float(balance) <= 1.0:
            raise RecommenderError(
                f"need bins ≥ 1 and 0 ≤ balance ≤ 1, got bins={bins!r}, "
                f"balance={balance!r}"
            )
        if not 0.0 <= float(neighbor_weight) <= 1.0:
            raise RecommenderError(
                f"neighbor_weight must be in [0, 1], got {neighbor_weight!r}"
            )
        if neighbor_space not in NEIGHBOR_SPACES:
            raise RecommenderError(
                f"neighbor_space must be one of {NEIGHBOR_SPACES}, got "
                f"{neighbor_space!r}"
            )
        if not float(learning_rate) > 0.0:
            raise RecommenderError(f"learning_rate must be > 0, got {learning_rate!r}")
        if int(autoencoder_steps) < 0 or not 0.0 < float(drop_rate) < 1.0:
            raise RecommenderError(
                f"need autoencoder_steps ≥ 0 and 0 < drop_rate < 1, got "
                f"autoencoder_steps={autoencoder_steps!r}, drop_rate={drop_rate!r}"
            )
        self.config = FactorizationConfig(
            rank=rank if np.isscalar(rank) else tuple(int(r) for r in ranks),
            reg=float(reg),
            n_members=int(n_members),
            sweeps=int(sweeps),
            log10=log10 if isinstance(log10, str) else tuple(bool(f) for f in log10),
            hidden=tuple(int(h) for h in hidden),
            iterations=int(iterations),
            inner_steps=int(inner_steps),
            batch=int(batch),
            bins=int(bins),
            balance=float(balance),
            learning_rate=float(learning_rate),
            cold_members=int(cold_members),
            neighbors=int(neighbors),
            neighbor_weight=float(neighbor_weight),
            neighbor_space=str(neighbor_space),
            autoencoder_steps=int(autoencoder_steps),
            autoencoder_hidden=tuple(int(h) for h in autoencoder_hidden),
            drop_rate=float(drop_rate),
            seed=int(seed),
        )

    # ------------------------------------------------------------------ fit
    def fit(self, matrix, row_formulas=None) -> "MatrixFactorization":
        """Fit on ``matrix [n, m]`` (NaN = missing); formulas enable cold start.

        Args:
            matrix: pandas DataFrame or array ``[n, m]`` in original units.
            row_formulas: ``n`` formulas (strings or pymatgen Compositions),
                one per row; needed by :meth:`predict_new` and by
                :meth:`recommend` with candidate formulas.

        Returns:
            ``self``.

        Raises:
            RecommenderError: bad matrix (see :func:`as_matrix`) or a formula
                count that does not match the rows.
            mldiff.descriptors.CompositionError: an unknown element.
        """
        c = self.config
        values, self.columns_, self.index_ = as_matrix(matrix)
        self.is_frame_ = self.index_ is not None
        self.values_ = values
        self.transform_ = fit_column_transform(values, c.log10)
        z = self.transform_.forward(values)
        observed = ~np.isnan(z)
        self.observed_ = observed
        y = jnp.asarray(np.where(observed, z, 0.0))
        w = jnp.asarray(observed, dtype=y.dtype)
        key = jax.random.key(c.seed)
        k_rank, k_ens, k_cold = jax.random.split(key, 3)
        if np.isscalar(c.rank):
            self.rank_, self.rank_scores_ = int(c.rank), None
        else:
            self.rank_, self.rank_scores_ = _mf.select_rank(
                np.asarray(y),
                observed,
                c.rank,
                reg=c.reg,
                key=k_rank,
                sweeps=c.sweeps,
            )
        keys = jax.random.split(k_ens, c.n_members)
        factors, _ = _mf.fit_ensemble(
            y,
            w,
            rank=self.rank_,
            reg=c.reg,
            keys=keys,
            sweeps=c.sweeps,
            bootstrap=c.n_members > 1,
        )
        self.factors_ = factors  # stacked members [e, ...]
        members = np.asarray(jax.vmap(_mf.predict)(factors))  # [e, n, m]
        self.var_z_ = members.var(0)  # the spread, whichever gives the values
        self.formulas_ = None
        self.reference_features_ = None  # hidden features of the rows, on demand
        if row_formulas is not None:
            self._fit_cold(row_formulas, y, w, z, observed, k_cold)
        if c.autoencoder_steps > 0:
            # warm values from the denoising imputer; its held-out error is the
            # noise variance
            extra = self.x_train_ if self.formulas_ is not None else None
            params = _ae.fit(
                z,
                observed,
                jax.random.fold_in(key, 4),
                extra,
                hidden=c.autoencoder_hidden,
                steps=c.autoencoder_steps,
                batch=c.batch,
                drop_rate=c.drop_rate,
            )
            self.mean_z_ = _ae.impute(params, z, observed, extra)
            self.noise_var_ = _ae.held_out_error(params, z, observed, extra)
        else:
            # the factorisation's values: the joint models' with formulas
            # (descriptor prior on every row), else the plain ensemble's
            if self.formulas_ is not None:
                warm = np.asarray(jax.vmap(_mf.predict)(self.joint_.factors))
            else:
                warm = members
            self.mean_z_ = warm.mean(0)
            resid = np.where(observed, z - self.mean_z_, np.nan)
            self.noise_var_ = np.nanmean(resid**2, axis=0)
        return self

    def _fit_cold(self, row_formulas, y, w, z, observed, key):
        c = self.config
        formulas = list(row_formulas)
        if len(formulas) != z.shape[0]:
            raise RecommenderError(
                f"got {len(formulas)} row formulas for {z.shape[0]} rows; give one "
                "formula per row of the matrix"
            )
        x = _cold.descriptors(formulas)
        self.x_mean_ = x.mean(0)
        std = x.std(0)
        self.x_std_ = np.where(std > 0, std, 1.0)
        xs = (x - self.x_mean_) / self.x_std_
        self.edges_ = _cold.encoding_edges(xs, c.bins)
        encoded = _cold.encode(self.edges_, xs)

        def fit_one(k):
            return _cold.fit_joint(
                y,
                w,
                encoded,
                rank=self.rank_,
                reg=c.reg,
                key=k,
                hidden=c.hidden,
                iterations=c.iterations,
                inner_steps=c.inner_steps,
                batch=min(c.batch, z.shape[0]),
                balance=c.balance,
                learning_rate=c.learning_rate,
            )

        models = jax.vmap(fit_one)(jax.random.split(key, c.cold_members))
        self.joint_ = models  # every leaf [M, ...]
        f = models.factors
        theta = np.concatenate(
            [np.asarray(f.rows), np.asarray(f.row_bias)[..., None]], -1
        )  # [M, n, k + 1]
        g = self._members_g(encoded)  # [M, n, k + 1]
        self.latent_residual_ = theta - g
        self.x_train_ = xs
        self.formulas_ = [str(v) for v in formulas]
        cold = self._members_z(g).mean(0)  # the map alone, no neighbour shift
        resid = np.where(observed, z - cold, np.nan)
        self.cold_var_ = np.nanmean(resid**2, axis=0)

    def _cold_z(self, xs):
        """Cold-start mean ``[q, m]`` and members' variance, standardised units."""
        encoded = _cold.encode(self.edges_, xs)
        g = self._members_g(encoded)  # [M, q, k + 1]
        if self.config.neighbors > 0:
            g = g + self.config.neighbor_weight * self._neighbor_shift(xs, encoded)
        z = self._members_z(g)
        return z.mean(0), z.var(0)

    def _neighbor_shift(self, xs, encoded):
        """Each member's neighbour mean of latent residuals ``[M, q, k + 1]``."""
        k = self.config.neighbors
        n_members, n, p = self.latent_residual_.shape
        if self.config.neighbor_space == "descriptors":
            residual = self.latent_residual_.transpose(1, 0, 2).reshape(n, -1)
            shift = _cold.neighbor_residual(xs, self.x_train_, residual, k)
            return shift.reshape(-1, n_members, p).transpose(1, 0, 2)
        query = self._members_features(encoded)
        reference = self._reference_features()
        return np.stack(
            [
                _cold.neighbor_residual(
                    query[i], reference[i], self.latent_residual_[i], k
                )
                for i in range(n_members)
            ]
        )

    def _members_features(self, encoded):
        """Each member map's hidden features ``[M, q, h]`` (float32) of encoded rows."""
        mlp = self.joint_.mlp
        return np.asarray(jax.vmap(_cold.mlp_features, in_axes=(0, None))(mlp, encoded))

    def _reference_features(self, chunk: int = 4096):
        """The fitted rows' hidden features ``[M, n, h]``, computed once, in chunks."""
        if getattr(self, "reference_features_", None) is None:
            parts = [
                self._members_features(
                    _cold.encode(self.edges_, self.x_train_[i : i + chunk])
                )
                for i in range(0, self.x_train_.shape[0], chunk)
            ]
            self.reference_features_ = np.concatenate(parts, axis=1)
        return self.reference_features_

    def _members_g(self, encoded):
        """Each member's map output ``[M, q, k + 1]`` (float64) of encoded rows."""
        mlp = self.joint_.mlp
        g = jax.vmap(_cold.mlp_apply, in_axes=(0, None))(mlp, encoded)
        return np.asarray(g, np.float64)

    def _members_z(self, g):
        """Each member's predictions ``[M, q, m]`` from its latent rows ``g``."""
        f = self.joint_.factors
        return (
            np.asarray(f.mu)[:, None, None]
            + g[..., -1:]
            + np.asarray(f.col_bias)[:, None, :]
            + np.einsum("aqk,amk->aqm", g[..., :-1], np.asarray(f.cols))
        )

    # -------------------------------------------------------------- predict
    def _check_fitted(self):
        if not hasattr(self, "factors_"):
            raise RecommenderError("the model is not fitted; call fit(matrix) first")

    def _frame(self, values, index=None, columns=None):
        import pandas as pd

        return pd.DataFrame(
            values,
            index=self.index_ if index is None else index,
            columns=self.columns_ if columns is None else columns,
        )

    def predict(self, return_std: bool = False):
        """The completed matrix ``[n, m]`` in original units (the warm values).

        Args:
            return_std: also return the predictive std in standardised units.

        Returns:
            ``[n, m]`` (DataFrame if fitted on one), and the std ``[n, m]``.
        """
        self._check_fitted()
        out = self.transform_.inverse(self.mean_z_)
        out = self._frame(out) if self.is_frame_ else out
        if not return_std:
            return out
        std = np.sqrt(self.var_z_ + self.noise_var_[None, :])
        return out, self._frame(std) if self.is_frame_ else std

    def impute(self):
        """The input matrix with only its missing entries filled (original units)."""
        self._check_fitted()
        out = np.where(
            self.observed_, self.values_, self.transform_.inverse(self.mean_z_)
        )
        return self._frame(out) if self.is_frame_ else out

    def predict_new(self, formulas, return_std: bool = False):
        """Cold start: every property of materials with no measured entry.

        Args:
            formulas: ``q`` formulas (strings or pymatgen Compositions).
            return_std: also return the predictive std in standardised units.

        Returns:
            ``[q, m]`` in original units (DataFrame indexed by formula if the
            model was fitted on one), and the std ``[q, m]``.

        Raises:
            RecommenderError: the model was fitted without row formulas.
            mldiff.descriptors.CompositionError: unknown element or bad formula.
        """
        self._check_fitted()
        if self.formulas_ is None:
            raise RecommenderError(
                "predict_new needs the descriptor map: fit(matrix, row_formulas) "
                "with one formula per row"
            )
        formulas = [formulas] if isinstance(formulas, str) else list(formulas)
        if not formulas:
            raise RecommenderError("predict_new got no formulas; pass at least one")
        xs = (_cold.descriptors(formulas) - self.x_mean_) / self.x_std_
        z, var = self._cold_z(xs)
        out = self.transform_.inverse(z)
        std = np.sqrt(self.cold_var_[None, :] + var)
        if self.is_frame_:
            names = [str(f) for f in formulas]
            out, std = self._frame(out, index=names), self._frame(std, index=names)
        return (out, std) if return_std else out

    # ------------------------------------------------------------ recommend
    def _windows(self, target_windows):
        if not target_windows:
            raise RecommenderError(
                "give at least one target window, e.g. {'S_p': (200, None)}"
            )
        spec = []
        for name, window in target_windows.items():
            if str(name) not in self.columns_:
                raise RecommenderError(
                    f"unknown target column {name!r}; choose from {self.columns_}"
                )
            j = self.columns_.index(str(name))
            try:
                lo, hi = window
            except (TypeError, ValueError):
                raise RecommenderError(
                    f"window of {name!r} must be (low, high) with None for open, "
                    f"got {window!r}"
                ) from None
            t = self.transform_
            spec.append(
                (j, t.forward_bound(j, lo, False), t.forward_bound(j, hi, True))
            )
        return spec

    def recommend(self, target_windows: dict, candidates=None, top: int = 10):
        """Rank materials by the probability of lying inside target windows.

        Args:
            target_windows: ``{column: (low, high)}`` in original units, None
                for an open side, e.g. ``{"S_p": (200, None),
                "kappa_p": (None, 1e5)}``.
            candidates: None to rank the fitted rows with at least one target
                entry unmeasured (measured target entries count as certain),
                or formulas of new materials (cold start).
            top: rows returned.

        Returns:
            pandas DataFrame sorted by ``probability`` (descending): one row
            per material with ``formula`` (if known), ``probability``, and per
            target column the predicted value and the 1-σ interval
            ``<col>_low`` / ``<col>_high`` (original units).
        """
        import pandas as pd

        self._check_fitted()
        spec = self._windows(target_windows)
        if candidates is None:
            rows = np.flatnonzero(~self.observed_[:, [j for j, _, _ in spec]].all(1))
            mean = self.mean_z_[rows]
            std = np.sqrt(self.var_z_[rows] + self.noise_var_[None, :])
            known = self.observed_[rows]
            measured = self.transform_.forward(
                np.where(self.observed_, self.values_, 1.0)
            )[rows]
            index = [self.index_[i] for i in rows] if self.is_frame_ else rows.tolist()
            formulas = (
                [self.formulas_[i] for i in rows]
                if self.formulas_ is not None
                else None
            )
        else:
            formulas = [str(f) for f in candidates]
            if not formulas:
                raise RecommenderError("candidates is empty; pass formulas or None")
            if self.formulas_ is None:
                raise RecommenderError(
                    "candidate formulas need the descriptor map: fit(matrix, "
                    "row_formulas)"
                )
            xs = (_cold.descriptors(formulas) - self.x_mean_) / self.x_std_
            mean, var = self._cold_z(xs)
            std = np.sqrt(self.cold_var_[None, :] + var)
            known = np.zeros(mean.shape, bool)
            measured = mean
            index = formulas
        prob = np.ones(mean.shape[0])
        table = {}
        for j, lo, hi in spec:
            p = window_probability(mean[:, j], std[:, j], lo, hi)
            inside = (measured[:, j] >= lo) & (measured[:, j] <= hi)
            p = np.where(known[:, j], inside.astype(float), p)
            prob = prob * p
            name = self.columns_[j]
            centre = np.where(known[:, j], measured[:, j], mean[:, j])
            spread = np.where(known[:, j], 0.0, std[:, j])
            table[name] = self._inverse_column(j, centre)
            table[f"{name}_low"] = self._inverse_column(j, centre - spread)
            table[f"{name}_high"] = self._inverse_column(j, centre + spread)
        frame = pd.DataFrame({"probability": prob, **table}, index=index)
        if formulas is not None:
            frame.insert(0, "formula", formulas)
        return frame.sort_values("probability", ascending=False, kind="stable").head(
            int(top)
        )

    def _inverse_column(self, j, z):
        full = np.zeros((len(z), len(self.columns_)))
        full[:, j] = z
        return self.transform_.inverse(full)[:, j]

    # --------------------------------------------------------- save / load
    _ARRAYS = (
        "values_",
        "observed_",
        "mean_z_",
        "var_z_",
        "noise_var_",
        "x_mean_",
        "x_std_",
        "x_train_",
        "edges_",
        "latent_residual_",
        "cold_var_",
    )

    def save(self, path) -> None:
        """Write the fitted model and its config to one ``.npz`` file (atomic)."""
        self._check_fitted()
        header = {
            "config": dataclasses.asdict(self.config),
            "columns": self.columns_,
            "index": [str(i) for i in self.index_] if self.is_frame_ else None,
            "rank": self.rank_,
            "transform": {
                "log10": list(self.transform_.log10),
                "mean": list(self.transform_.mean),
                "std": list(self.transform_.std),
            },
            "formulas": self.formulas_,
            "descriptor_map": _cold.MAP_VERSION if self.formulas_ else None,
        }
        arrays = {k: getattr(self, k) for k in self._ARRAYS if hasattr(self, k)}
        if self.formulas_ is not None:
            leaves, _ = jax.tree_util.tree_flatten(self.joint_)
            arrays.update({f"joint_{i}": np.asarray(v) for i, v in enumerate(leaves)})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, header=np.array(json.dumps(header)), **arrays)
        atomic_write(path, buffer.getvalue())

    @classmethod
    def load(cls, path) -> "MatrixFactorization":
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {k: data[k] for k in data.files if k != "header"}
        c = header["config"]
        if header["formulas"] is not None and (
            header.get("descriptor_map") != _cold.MAP_VERSION
        ):
            raise RecommenderError(
                f"{path} holds a cold-start map of another form "
                f"({header.get('descriptor_map') or 'tanh MLP on raw descriptors'}; "
                f"this version reads {_cold.MAP_VERSION}); fit the model again"
            )
        # a file from before the autoencoder holds the factorisation's values,
        # one from before the hidden-layer neighbours used descriptor space
        c.setdefault("autoencoder_steps", 0)
        c.setdefault("neighbor_space", "descriptors")
        model = cls(**c)
        model.columns_ = header["columns"]
        model.index_ = header["index"]
        model.is_frame_ = model.index_ is not None
        model.rank_ = header["rank"]
        t = header["transform"]
        model.transform_ = ColumnTransform(
            log10=tuple(t["log10"]), mean=tuple(t["mean"]), std=tuple(t["std"])
        )
        model.formulas_ = header["formulas"]
        for k in cls._ARRAYS:
            if k in arrays:
                setattr(model, k, arrays[k])
        model.factors_ = None
        if model.formulas_ is not None:
            d = model.edges_.shape[0] * (model.edges_.shape[1] - 1)
            template = _cold.JointModel(
                factors=_mf.init_factors(
                    jax.random.key(0), 1, len(model.columns_), model.rank_
                ),
                mlp=_cold.mlp_init(
                    jax.random.key(0), (d, *c["hidden"], model.rank_ + 1), jnp.float32
                ),
            )
            treedef = jax.tree_util.tree_structure(template)
            n = treedef.num_leaves
            model.joint_ = jax.tree_util.tree_unflatten(
                treedef, [jnp.asarray(arrays[f"joint_{i}"]) for i in range(n)]
            )
        return model
