"""Group velocities from the autodiff derivative of the dynamical matrix.

References: central finite differences of our band frequencies (generic q,
non-degenerate), and phonopy 4.10's ``run_qpoints(with_group_velocities=True)``
given our force constants, including degenerate high-symmetry points.
"""

import jax
import numpy as np
from ase.build import bulk
from phonopy_reference import A_SI, graph_for, phonopy_object, structure_of

from mldiff import phonons, units
from mldiff.phonons import force_constants as fcm
from mldiff.phonons import velocities
from mldiff.structure import Structure

CUBE = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # 8-atom supercell of fcc
GENERIC = np.array([[0.1, 0.2, 0.3], [0.37, 0.11, -0.23]])


def test_group_velocities_equal_finite_differences(si_sw):
    # reference: central differences of the frequencies, h = 1e-5 1/Å
    pot, params, _ = si_sw
    ph = phonons.run(
        pot, params, Structure.from_ase(bulk("Si", "diamond", a=A_SI)), CUBE
    )
    lat = np.asarray(ph.primitive.cell)
    v = velocities.group_velocities(ph, GENERIC)
    h = 1e-5
    for k, q in enumerate(GENERIC):
        qc = np.linalg.solve(lat, q)
        shifted = [qc + s * h * np.eye(3)[a] for a in range(3) for s in (1, -1)]
        f = np.asarray(phonons.frequencies(ph, [lat @ x for x in shifted]))
        fd = (f[0::2] - f[1::2]).T / (2 * h)  # [m, 3]
        np.testing.assert_allclose(v[k], fd, rtol=0, atol=1e-5)


def test_group_velocities_equal_phonopy_including_degenerate_points(si_sw):
    # reference: phonopy's group velocities (analytic dD/dq, degenerate
    # perturbation along (1, 2, 3), little-group average) with our fc
    pot, params, _ = si_sw
    prim = bulk("Si", "diamond", a=A_SI)
    ref_ph = phonopy_object(prim, CUBE, masses=units.masses_amu(prim.numbers))
    s = structure_of(ref_ph.supercell)
    fc_fn = fcm.force_constants(pot.energy, symmetry=fcm.site_symmetry(s))
    fc = jax.jit(lambda *a: fcm.symmetrize(fc_fn(*a)))(params, s, graph_for(pot, s))
    ref_ph.force_constants = np.ascontiguousarray(np.transpose(fc, (0, 2, 1, 3)))
    q = np.concatenate(
        [GENERIC, [[0, 0, 0], [0.5, 0, 0.5], [0.5, 0.5, 0.5], [0.05, 0.05, 0.0]]]
    )
    ref_ph.run_qpoints(q, with_group_velocities=True)
    ref = ref_ph.get_qpoints_dict()["group_velocities"]
    ours = phonons.run(pot, params, Structure.from_ase(prim), CUBE)
    np.testing.assert_allclose(
        velocities.group_velocities(ours, q), ref, rtol=0, atol=1e-8
    )
