"""Active learning: let the model ask for the labels that teach it most.

* :mod:`mldiff.active.acquisition` — acquisition scores (max variance, upper
  confidence bound, expected improvement, random) and diverse batch selection.
* :mod:`mldiff.active.pool` — pool-based active learning of any regressor with
  ``fit`` / ``predict -> (mean, std)`` (e.g. :class:`mldiff.gp.GaussianProcess`),
  returning learning curves.
* :mod:`mldiff.active.oracle` — oracles from ASE calculators or callables;
  failures recorded, not fatal.
* :mod:`mldiff.active.committee` — batched committee predictions and
  disagreement scores of an ensemble over many structures.
* :mod:`mldiff.active.loop` — query by committee for potentials: train,
  explore with committee-mean MD, select, label, retrain; atomic state on disk
  and exact resume.

References:
    H. S. Seung, M. Opper and H. Sompolinsky, "Query by committee", COLT (1992).
    L. Zhang, D.-Y. Lin, H. Wang, R. Car and W. E, "Active learning of uniformly
    accurate interatomic potentials for materials simulation", Phys. Rev. Mater.
    3, 023804 (2019).
    B. Settles, "Active Learning Literature Survey", U. Wisconsin TR 1648 (2009).
"""

from mldiff.active.acquisition import (
    ACQUISITIONS,
    expected_improvement,
    max_variance,
    random_scores,
    scores,
    select_batch,
    upper_confidence_bound,
)
from mldiff.active.committee import (
    committee_errors,
    committee_mean,
    committee_predictions,
    disagreement,
)
from mldiff.active.loop import (
    ActiveConfig,
    ActiveResult,
    read_log,
    round_epochs,
    run_active_learning,
)
from mldiff.active.oracle import ase_oracle, label_all
from mldiff.active.pool import regression_metrics, run_pool

__all__ = [
    "ACQUISITIONS",
    "ActiveConfig",
    "ActiveResult",
    "ase_oracle",
    "committee_errors",
    "committee_mean",
    "committee_predictions",
    "disagreement",
    "expected_improvement",
    "label_all",
    "max_variance",
    "random_scores",
    "read_log",
    "regression_metrics",
    "round_epochs",
    "run_active_learning",
    "run_pool",
    "scores",
    "select_batch",
    "upper_confidence_bound",
]
