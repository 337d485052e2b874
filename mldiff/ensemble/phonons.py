"""Phonons of every member: one vmapped force-constant program.

The parameter-dependent part of the phonon pipeline (Hessian rows → symmetry
→ sum rule → ``D(q)`` → eigenvalues) is vmapped over stacked members; the
host-side geometry is built once.
"""

import jax
import jax.numpy as jnp

from mldiff import calibration as calib
from mldiff import phonons
from mldiff.ensemble.prediction import mean_std
from mldiff.phonons import Phonons, dynamical_matrix
from mldiff.phonons import force_constants as _fc
from mldiff.potentials import Potential
from mldiff.structure import Structure

__all__ = [
    "ensemble_phonons",
    "committee_frequencies",
    "phonon_frequencies_with_uncertainty",
]


def ensemble_phonons(
    potential: Potential,
    stacked_params,
    structure: Structure,
    supercell_matrix=(2, 2, 2),
    *,
    primitive_matrix=None,
    masses=None,
    use_symmetry: bool = True,
    enforce_sum_rule: bool = True,
    chunk_size: int = _fc.DEFAULT_CHUNK_SIZE,
    symprec: float = 1e-5,
) -> Phonons:
    """Phonons of every member, the force constants from one vmapped program.

    :func:`mldiff.phonons.setup` builds the host-side geometry (supercell,
    primitive cell, neighbor graph, spglib site symmetry, supercell images)
    once; :func:`mldiff.phonons.force_constants_fn`, the pure
    parameter-dependent part of :func:`mldiff.phonons.run`, is
    ``jit(vmap(...))`` over members. Arguments are those of
    :func:`mldiff.phonons.run`. Float64 only.

    Returns:
        :class:`~mldiff.phonons.Phonons` whose ``force_constants`` are
        ``[K, n, 3, n, 3]`` eV/Å² (one per member); the rest is shared. Take
        ``K`` members apart with ``ph._replace(force_constants=fc[k])``.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> from mldiff.ensemble import stack
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> p = stack([pot.init(None, cu)] * 2)
        >>> ensemble_phonons(pot, p, cu, [2, 2, 2]).force_constants.shape
        (2, 8, 3, 8, 3)
    """
    st = phonons.setup(
        potential,
        structure,
        supercell_matrix,
        primitive_matrix=primitive_matrix,
        masses=masses,
        use_symmetry=use_symmetry,
        symprec=symprec,
    )
    fc_fn = phonons.force_constants_fn(
        potential, st, enforce_sum_rule=enforce_sum_rule, chunk_size=chunk_size
    )
    fcs = jax.jit(jax.vmap(fc_fn))(stacked_params)  # [K, n, 3, n, 3] eV/Å²
    return Phonons(fcs, st.masses, st.supercell, st.primitive, st.images)


@jax.jit
def committee_frequencies(phonons: Phonons, qpoints):
    """Frequencies of every member at q-points, one vmapped eigen-solve.

    Args:
        phonons: from :func:`ensemble_phonons` (force constants ``[K, ...]``).
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.

    Returns:
        ``[K, k, 3p]`` frequencies, THz, ascending per member; imaginary modes
        negative.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> from mldiff.ensemble import stack
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> ph = ensemble_phonons(pot, stack([pot.init(None, cu)] * 2), cu)
        >>> committee_frequencies(ph, [[0.5, 0.5, 0.0]]).shape
        (2, 1, 3)
    """
    return jax.vmap(dynamical_matrix.frequencies_at, in_axes=(0, None, None, None))(
        phonons.force_constants, phonons.masses, phonons.images, qpoints
    )


def phonon_frequencies_with_uncertainty(
    potential: Potential,
    stacked_params,
    structure: Structure,
    supercell_matrix,
    qpoints,
    *,
    ddof: int = 0,
    calibration: calib.Calibration | None = None,
    calibrated: bool = True,
    **phonon_options,
) -> dict:
    """Committee phonon frequencies with error bars at q-points.

    :func:`ensemble_phonons` then :func:`committee_frequencies`: one vmapped
    program over members for the force constants and one for ``D(q)`` and its
    eigenvalues. The mean and std are per band index (frequencies sorted
    ascending per member), so band crossings mix branches, as for any
    band-by-band error bar.

    Args:
        potential: the shared potential.
        stacked_params: stacked parameters ``[K, ...]``.
        structure: periodic unit cell (float64), Å.
        supercell_matrix: ``[3]`` or ``[3, 3]`` integers, phonopy's convention.
        qpoints: ``[k, 3]`` reduced coordinates of the primitive reciprocal
            lattice.
        ddof: delta degrees of freedom of the spread.
        calibration: spread scales (:mod:`mldiff.calibration`); with
            ``calibrated``, ``frequencies_std_thz`` is the raw spread times
            ``forces_scale`` and the raw one is ``frequencies_std_uncalibrated_thz``.
        calibrated: apply ``calibration``.
        **phonon_options: ``primitive_matrix``, ``masses``, ``use_symmetry``,
            ``enforce_sum_rule``, ``chunk_size``, ``symprec`` as for
            :func:`mldiff.phonons.run`.

    Returns:
        ``frequencies_thz`` ``[K, k, 3p]`` (members), ``frequencies_mean_thz``
        and ``frequencies_std_thz`` ``[k, 3p]``, THz.

    Example:
        >>> import jax
        >>> jax.config.update("jax_enable_x64", True)
        >>> from ase.build import bulk
        >>> from mldiff import potentials
        >>> from mldiff.ensemble import stack
        >>> cu = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> pot = potentials.get("morse", epsilon=0.3, rho0=4.0, r0=2.6)
        >>> p = stack([pot.init(None, cu)] * 2)
        >>> out = phonon_frequencies_with_uncertainty(pot, p, cu, [2, 2, 2],
        ...                                           [[0.5, 0.5, 0.0]])
        >>> float(out["frequencies_std_thz"].max())
        0.0
    """
    ph = ensemble_phonons(
        potential, stacked_params, structure, supercell_matrix, **phonon_options
    )
    freqs = committee_frequencies(ph, jnp.asarray(qpoints, jnp.float64))
    mean, std = mean_std(freqs, ddof)
    out = {
        "frequencies_thz": freqs,
        "frequencies_mean_thz": mean,
        "frequencies_std_thz": std,
    }
    return calib.apply(calibration, out, calibrated=calibrated)
