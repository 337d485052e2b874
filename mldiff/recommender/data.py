"""Sparse materials × properties matrices, their checks and column transforms.

Two real matrices come from files that installed packages ship (no network):

* :func:`transport_matrix`: matminer's BoltzTraP transport database
  (``matminer/utils/data_files/mp_transport/transport_database.tar.xz``,
  Ricci et al. 2017; 47,737 Materials Project compounds, 300 K, carrier
  concentration 10¹⁸ cm⁻³, constant relaxation time τ = 10⁻¹⁴ s) with ten
  columns, joined with pymatgen's experimental formation enthalpies
  (:func:`mldiff.data.experimental_formation_enthalpies`) first by Materials
  Project id, then by reduced formula; enthalpies without a transport row
  become rows of their own. The transport block is dense, the enthalpy column
  is ~2 % filled.
* :func:`element_property_matrix`: mendeleev's element table, numeric columns
  only, with its natural gaps (NaN).

:class:`ColumnTransform` maps each column to standardised units: ``log10``
first for columns whose observed values are all positive and span more than
three decades (conductivity, thermal conductivity, power factor and effective
masses of the transport matrix), then ``(v - mean) / std``. The Seebeck
coefficients are signed (p-type mostly positive, n-type mostly negative, both
cross zero in the data) and span under two decades, so they are only
standardised; so is the formation enthalpy. The transform is monotone
increasing per column, so windows map exactly.

References:
    F. Ricci et al., "An ab initio electronic transport database for
    inorganic materials", Sci. Data 4, 170085 (2017).

Example:
    >>> import numpy as np
    >>> m = np.array([[1.0, -2.0], [10.0, np.nan], [1e4, 3.0]])
    >>> t = fit_column_transform(m)
    >>> t.log10
    (True, False)
    >>> bool(np.allclose(t.inverse(t.forward(m)), m, equal_nan=True))
    True
"""

import dataclasses

import numpy as np

from mldiff.data.transport import transport_database
from mldiff.errors import RecommenderError

__all__ = [
    "RecommenderError",
    "TRANSPORT_UNITS",
    "ColumnTransform",
    "fit_column_transform",
    "as_matrix",
    "transport_matrix",
    "element_property_matrix",
]

#: transport matrix columns and their units (matminer's metadata, τ = 1e-14 s)
TRANSPORT_UNITS = {
    "sigma_p": "1/(Ω·m), p-type conductivity",
    "sigma_n": "1/(Ω·m), n-type conductivity",
    "S_p": "µV/K, p-type Seebeck coefficient",
    "S_n": "µV/K, n-type Seebeck coefficient",
    "kappa_p": "W/(m·K), p-type electronic thermal conductivity",
    "kappa_n": "W/(m·K), n-type electronic thermal conductivity",
    "PF_p": "µW/(cm·K²), p-type power factor",
    "PF_n": "µW/(cm·K²), n-type power factor",
    "m_p": "mₑ, p-type conductivity effective mass",
    "m_n": "mₑ, n-type conductivity effective mass",
    "enthalpy_ev_per_atom": "eV/atom, experimental formation enthalpy",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnTransform:
    """Per-column ``log10`` (optional) then standardisation, and its inverse.

    Attributes:
        log10: per column, whether ``log10`` is applied first.
        mean: per column mean of the (logged) observed values.
        std: per column standard deviation of the (logged) observed values
            (1 where it is zero).
    """

    log10: tuple[bool, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Original units ``[n, m]`` → standardised units ``[n, m]`` (NaN kept).

        Raises:
            RecommenderError: a non-positive value in a ``log10`` column.
        """
        v = np.array(values, dtype=np.float64)
        logged = np.asarray(self.log10)
        bad = logged[None, :] & (v <= 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise RecommenderError(
                f"column {j} is log-transformed but holds {v[i, j]!r} (row {i}); "
                "its values must be positive: drop the entry or refit the transform"
            )
        v[:, logged] = np.log10(v[:, logged])
        return (v - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardised units ``[..., m]`` → original units ``[..., m]``."""
        v = np.asarray(z, dtype=np.float64) * np.asarray(self.std) + np.asarray(
            self.mean
        )
        logged = np.asarray(self.log10)
        v[..., logged] = 10.0 ** v[..., logged]
        return v

    def forward_bound(self, column: int, value: float | None, upper: bool) -> float:
        """A window bound in original units → standardised units (±inf if None)."""
        if value is None:
            return np.inf if upper else -np.inf
        v = float(value)
        if self.log10[column]:
            if v <= 0:  # values are positive: a bound at or below 0
                return -np.inf
            v = np.log10(v)
        return (v - self.mean[column]) / self.std[column]


def fit_column_transform(
    matrix: np.ndarray, log10="auto", min_decades: float = 3.0
) -> ColumnTransform:
    """Choose and fit the per-column transform on the observed entries.

    Args:
        matrix: ``[n, m]`` float values in original units, NaN where missing.
        log10: ``"auto"`` (log a column when all its observed values are
            positive and ``max / min > 10**min_decades``) or a sequence of
            ``m`` booleans.
        min_decades: decades a positive column must span to be logged (auto).

    Returns:
        the fitted :class:`ColumnTransform`.

    Raises:
        RecommenderError: a column without observed values, or ``log10``
            requested for a column with non-positive values.

    Example:
        >>> t = fit_column_transform(np.array([[1.0], [3.0]]), log10=[False])
        >>> t.mean, t.std
        ((2.0,), (1.0,))
    """
    m = np.asarray(matrix, dtype=np.float64)
    observed = ~np.isnan(m)
    empty = np.flatnonzero(~observed.any(axis=0))
    if empty.size:
        raise RecommenderError(
            f"columns {empty.tolist()} have no observed values; drop them"
        )
    if isinstance(log10, str) and log10 == "auto":
        flags = []
        for j in range(m.shape[1]):
            col = m[observed[:, j], j]
            positive = bool((col > 0).all())
            flags.append(positive and bool(col.max() / col.min() > 10.0**min_decades))
    else:
        flags = [bool(f) for f in log10]
        if len(flags) != m.shape[1]:
            raise RecommenderError(
                f"log10 has {len(flags)} flags for {m.shape[1]} columns; give one "
                "per column or 'auto'"
            )
    means, stds = [], []
    for j, flag in enumerate(flags):
        col = m[observed[:, j], j]
        if flag:
            if (col <= 0).any():
                raise RecommenderError(
                    f"column {j} holds non-positive values and cannot be logged; "
                    "set its log10 flag to False"
                )
            col = np.log10(col)
        means.append(float(col.mean()))
        std = float(col.std())
        stds.append(std if std > 0 else 1.0)
    return ColumnTransform(log10=tuple(flags), mean=tuple(means), std=tuple(stds))


def as_matrix(matrix) -> tuple[np.ndarray, list, list | None]:
    """Validate a materials × properties matrix and return it as float64.

    Args:
        matrix: pandas DataFrame or array-like ``[n, m]``, NaN (or None) where
            an entry is missing.

    Returns:
        ``(values [n, m] float64, column names, row index or None)``; names
        are the DataFrame's columns or ``"0" … "m-1"``.

    Raises:
        RecommenderError: not 2-D, empty, non-numeric entries, infinite values,
            columns or rows without any observed value.

    Example:
        >>> v, cols, idx = as_matrix([[1.0, None], [2.0, 3.0]])
        >>> v.shape, cols, idx
        ((2, 2), ['0', '1'], None)
    """
    import pandas as pd

    if isinstance(matrix, pd.DataFrame):
        columns, index = [str(c) for c in matrix.columns], list(matrix.index)
        non_numeric = [
            str(c)
            for c in matrix.columns
            if not (pd.api.types.is_numeric_dtype(matrix[c]) or matrix[c].isna().all())
            or pd.api.types.is_bool_dtype(matrix[c])
        ]
        if non_numeric:
            raise RecommenderError(
                f"columns {non_numeric} are not numeric; convert them with "
                "pd.to_numeric(..., errors='coerce') or drop them"
            )
        values = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            values = np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise RecommenderError(
                f"the matrix holds non-numeric values ({err}); pass numbers with "
                "NaN for missing entries"
            ) from None
        columns, index = None, None
    if values.ndim != 2 or values.size == 0:
        raise RecommenderError(
            f"expected a non-empty 2-D matrix (materials × properties), got shape "
            f"{values.shape}"
        )
    if columns is None:
        columns = [str(j) for j in range(values.shape[1])]
    if np.isinf(values).any():
        raise RecommenderError(
            "the matrix holds infinite values; replace them with NaN (missing)"
        )
    observed = ~np.isnan(values)
    empty = np.flatnonzero(~observed.any(axis=0))
    if empty.size:
        raise RecommenderError(
            f"columns {[columns[j] for j in empty]} have no observed values; drop "
            "them (nothing can be learned about them)"
        )
    rows = np.flatnonzero(~observed.any(axis=1))
    if rows.size:
        raise RecommenderError(
            f"{rows.size} rows have no observed values (first: {rows[:5].tolist()}); "
            "drop them and predict them with predict_new(formulas) instead"
        )
    return values, columns, index


def transport_matrix(with_enthalpy: bool = True):
    """The materials × transport properties (+ formation enthalpy) matrix.

    Args:
        with_enthalpy: join pymatgen's experimental formation enthalpies as an
            eleventh, sparse column (and rows for compounds without transport
            data).

    Returns:
        ``(matrix, info)``: ``matrix`` a pandas DataFrame ``[n, m]`` indexed
        by Materials Project id (``"exp-<k>"`` for enthalpy-only compounds
        without one), columns as :data:`TRANSPORT_UNITS`, NaN where missing;
        ``info`` a DataFrame with ``formula`` (reduced formula) per row, same
        index.

    Example:
        >>> m, info = transport_matrix()
        >>> m.shape[1], list(m.columns[:3]), m.shape[0] > 47737
        (11, ['sigma_p', 'sigma_n', 'S_p'], True)
        >>> bool(m.iloc[:47737, :10].notna().all().all())  # enthalpy-only rows last
        True
    """
    import pandas as pd

    raw = transport_database()  # cached by mldiff.data (a copy each call)
    columns = [c for c in TRANSPORT_UNITS if c in raw.columns]
    matrix = raw.set_index("mp_id")[columns].astype(np.float64)
    info = pd.DataFrame({"formula": raw["pretty_formula"].to_numpy()}, index=raw.mp_id)
    if not with_enthalpy:
        return matrix, info
    from mldiff.data import experimental_formation_enthalpies

    exp = experimental_formation_enthalpies()
    row_of_id = {mpid: i for i, mpid in enumerate(matrix.index)}
    row_of_formula = {}
    for i, formula in enumerate(info["formula"]):
        row_of_formula.setdefault(formula, i)  # first polymorph in file order
    enthalpy = np.full(len(matrix), np.nan)
    extra_rows, extra_formulas, extra_values = [], [], []
    for k, (mpid, formula, value) in enumerate(
        zip(exp["mpid"], exp["formula"], exp["enthalpy_ev_per_atom"], strict=True)
    ):
        i = row_of_id.get(mpid, row_of_formula.get(formula))
        if i is not None and np.isnan(enthalpy[i]):
            enthalpy[i] = value
        elif i is None:
            extra_rows.append(mpid if isinstance(mpid, str) else f"exp-{k}")
            extra_formulas.append(formula)
            extra_values.append(value)
    extra = pd.DataFrame(np.nan, index=extra_rows, columns=columns)
    matrix = pd.concat([matrix, extra])
    matrix["enthalpy_ev_per_atom"] = np.concatenate([enthalpy, extra_values])
    info = pd.concat(
        [info, pd.DataFrame({"formula": extra_formulas}, index=extra_rows)]
    )
    matrix.index.name = info.index.name = "mp_id"
    return matrix, info


def element_property_matrix():
    """Elements × numeric properties from mendeleev, gaps left as NaN.

    Flag columns (``is_*``) and the identifier ``atomic_number`` are dropped; columns
    without any value are dropped too.

    Returns:
        pandas DataFrame ``[118, p]`` indexed by element symbol, float64, in
        mendeleev's units (e.g. ``density`` g/cm³, ``atomic_radius`` pm).

    Example:
        >>> m = element_property_matrix()
        >>> m.shape[0], round(float(m.loc["Fe", "density"]), 3)
        (118, 7.87)
        >>> 0.1 < float(m.isna().mean().mean()) < 0.6
        True
    """
    from mendeleev.fetch import fetch_table

    table = fetch_table("elements").set_index("symbol")
    numeric = table.select_dtypes("number")
    flags = [c for c in numeric.columns if c.startswith("is_")]
    numeric = numeric.drop(columns=flags + ["atomic_number"])
    numeric = numeric.astype(np.float64).dropna(axis=1, how="all")
    return numeric
