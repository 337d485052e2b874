"""Recommender for the missing-materials map: sparse materials × properties.

Materials are users, properties are items: the known values form a sparse
matrix, and a low-rank model with row / column biases fills the blanks.

* :mod:`mldiff.recommender.data` — real matrices (matminer's transport
  database joined with experimental formation enthalpies; mendeleev's element
  table), validation, and the per-column log / standardisation transform.
* :mod:`mldiff.recommender.factorization` — pure JAX masked factorisation:
  ALS in closed form and full-batch Adam (optax), bootstrap ensembles under
  ``vmap``, rank selection by validation.
* :mod:`mldiff.recommender.cold_start` — composition descriptors (in a
  piecewise-linear encoding) → latent row factors through a ReLU MLP, fitted
  jointly with the factorisation.
* :class:`MatrixFactorization` — fit / predict / impute / predict_new /
  recommend, save / load.
"""

from mldiff.recommender.api import (
    FactorizationConfig,
    MatrixFactorization,
    window_probability,
)
from mldiff.recommender.data import (
    TRANSPORT_UNITS,
    ColumnTransform,
    RecommenderError,
    element_property_matrix,
    fit_column_transform,
    transport_matrix,
)

__all__ = [
    "FactorizationConfig",
    "MatrixFactorization",
    "RecommenderError",
    "ColumnTransform",
    "TRANSPORT_UNITS",
    "element_property_matrix",
    "fit_column_transform",
    "transport_matrix",
    "window_probability",
]
