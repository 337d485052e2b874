"""Deep ensembles: stacked parameters, one ``vmap``, committee mean and spread.

Modules: :mod:`~mldiff.ensemble.members` (stacked parameters),
:mod:`~mldiff.ensemble.prediction` (committee), :mod:`~mldiff.ensemble.training`
(training, loading), :mod:`~mldiff.ensemble.phonons` (phonons); every public
name is importable from ``mldiff.ensemble``.

An ensemble of ``K`` members of one :class:`~mldiff.potentials.Potential` is a
single parameter pytree whose every leaf has a leading member axis ``[K, ...]``
("stacked params"). Everything else is composition of JAX transforms over the
same pure ``energy``::

    committee_energy = jax.vmap(pot.energy, in_axes=(0, None, None))   # [K] eV

* :func:`init_ensemble`, :func:`stack`, :func:`unstack`: make and take apart
  stacked parameters.
* :func:`committee`: energy, forces and stress mean / std from one ``vmap`` of
  :func:`mldiff.quantities.energy_forces_stress` over members, with
  committee-disagreement scores per structure and per atom.
* :func:`train_ensemble`: the single-model training loop
  (:func:`mldiff.training.loop.fit`) over stacked members, whose step is the
  single-model step vmapped over the member axis, on shared batches
  (optionally bootstrap-resampled through per-member weights on the batch
  slots): the same optimiser, EMA, loss stages, validation, checkpoints and
  exact resume; :func:`load_ensemble` rebuilds ``(potential, stacked_params)``.
* :func:`ensemble_phonons`, :func:`phonon_frequencies_with_uncertainty`:
  phonon frequencies with error bars by vmapping the parameter-dependent part
  of the phonon pipeline (Hessian rows → symmetry → sum rule → ``D(q)`` →
  eigenvalues) over members.

Spreads are the standard deviation over members with ``ddof = 0`` by default:
the spread of the equally weighted mixture of the members' predictions (deep
ensembles), not an unbiased estimate of a population variance.

Other derived quantities compose the same way. A pure ``fn(params) -> array``
is vmapped; e.g. the clamped-ion elastic tensor from the strain Hessian::

    g = neighbors.allocate(structure, pot.cutoff)
    a_fn = lambda p: strain_derivatives(pot.energy)(p, structure, g)[0]  # [6, 6] eV
    c0 = jax.vmap(a_fn)(stacked_params) / volume * units.eV_per_A3_to_GPa  # [K,6,6]
    mean, std = mean_std(c0)

A pipeline with host-side checks (``mldiff.phonons.elastic.run`` raises on
unrelaxed ions) is looped over members instead::

    cs = np.stack([elastic.run(pot, p, structure).relaxed_ion_gpa
                   for p in unstack(stacked_params)])                    # [K, 6, 6]

References:
    B. Lakshminarayanan, A. Pritzel and C. Blundell, "Simple and scalable
    predictive uncertainty estimation using deep ensembles", NeurIPS (2017).
    L. Zhang et al., "Active learning of uniformly accurate interatomic
    potentials for materials simulation" (DP-GEN), Phys. Rev. Mater. 3, 023804
    (2019): the per-atom force deviation ``max_i ‖σ_F,i‖`` used as a score.
    H. S. Seung, M. Opper and H. Sompolinsky, "Query by committee", COLT (1992).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from mldiff import neighbors, potentials
    >>> from mldiff.structure import Structure
    >>> pot = potentials.get("lj", sigma=2.0, epsilon=0.01)
    >>> s = Structure.create([[0, 0, 0], [2.3, 0, 0]], None, [18, 18], pbc=False)
    >>> g = neighbors.allocate(s, pot.cutoff)
    >>> members = [{"sigma": jnp.asarray(x), "epsilon": jnp.asarray(0.01)}
    ...            for x in (1.9, 2.0, 2.1)]
    >>> out = jax.jit(committee(pot.energy))(stack(members), s, g)
    >>> out["forces_std_ev_per_angstrom"].shape, bool(out["energy_std_ev"] > 0)
    ((2, 3), True)
"""

from mldiff.ensemble.members import (
    Ensemble,
    init_ensemble,
    n_members,
    stack,
    unstack,
)
from mldiff.ensemble.phonons import (
    committee_frequencies,
    ensemble_phonons,
    phonon_frequencies_with_uncertainty,
)
from mldiff.ensemble.prediction import committee, mean_std
from mldiff.ensemble.training import (
    CHECKPOINT,
    MODEL,
    EnsembleResult,
    bootstrap_counts,
    ensemble_train_step,
    load_ensemble,
    train_ensemble,
    weighted_loss_fn,
)

__all__ = [
    "Ensemble",
    "EnsembleResult",
    "init_ensemble",
    "stack",
    "unstack",
    "n_members",
    "mean_std",
    "committee",
    "bootstrap_counts",
    "weighted_loss_fn",
    "ensemble_train_step",
    "train_ensemble",
    "load_ensemble",
    "ensemble_phonons",
    "committee_frequencies",
    "phonon_frequencies_with_uncertainty",
    "CHECKPOINT",
    "MODEL",
]
