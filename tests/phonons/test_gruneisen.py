"""Mode Grüneisen parameters from the autodiff volume derivative of Φ.

References: central finite differences of our frequencies in volume
(``γ = −d ln f / d ln V``, generic q); phonopy 4.10's ``GruneisenBase`` (three
volumes, degenerate perturbation theory) given our force constants at
``V(1 ± 3h)``; Si-SW's positive optical γ ~ 0.8 and negative TA(X) (a known
property of tetrahedral semiconductors).
"""

import numpy as np
import pytest
from ase.build import bulk
from phonopy_reference import A_SI, phonopy_object

from mldiff import phonons, units
from mldiff.phonons import gruneisen
from mldiff.structure import Structure, apply_strain

CUBE = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # 8-atom supercell of fcc
GENERIC = [[0.1, 0.2, 0.3], [0.37, 0.11, -0.23]]
H = 1e-4  # isotropic strain step


@pytest.fixture(scope="module")
def si_three_volumes(si_sw):
    """Our Si-SW phonons at V₀ and V₀(1 ± H)³, and ∂Φ/∂η at V₀."""
    pot, params, _ = si_sw
    s = Structure.from_ase(bulk("Si", "diamond", a=A_SI))
    runs = [
        phonons.run(pot, params, apply_strain(s, x * np.eye(3)), CUBE)
        for x in (0.0, H, -H)
    ]
    return runs, gruneisen.volume_derivative(runs[0], pot, params)


def test_gruneisen_equals_finite_differences_of_frequencies(si_three_volumes):
    # reference: γ = −Δln f / Δln V, central differences with η = ±1e-4
    (ph0, ph_p, ph_m), dfc = si_three_volumes
    f, g = gruneisen.mode_gruneisen(ph0, dfc, GENERIC)
    fp, fm = (np.asarray(phonons.frequencies(p, GENERIC)) for p in (ph_p, ph_m))
    ref = -(np.log(fp) - np.log(fm)) / (3 * np.log((1 + H) / (1 - H)))
    np.testing.assert_allclose(g, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(f, phonons.frequencies(ph0, GENERIC), atol=1e-8)


def test_gruneisen_equals_phonopy_including_degenerate_points(si_sw, si_three_volumes):
    # reference: phonopy's GruneisenBase on three volumes holding our force
    # constants; central-difference error O(H²)
    import jax
    from phonopy.gruneisen.core import GruneisenBase
    from phonopy_reference import graph_for, structure_of

    from mldiff.phonons import force_constants as fcm

    (ph0, ph_p, ph_m), dfc = si_three_volumes
    pot = si_sw[0]
    fc_fn = jax.jit(lambda *a: fcm.symmetrize(fcm.force_constants(pot.energy)(*a)))
    objs = []
    for p in (ph0, ph_p, ph_m):
        obj = phonopy_object(
            p.primitive.to_ase(), CUBE, masses=units.masses_amu([14, 14])
        )
        s = structure_of(obj.supercell)  # phonopy's own atom order
        fc = fc_fn(si_sw[1], s, graph_for(pot, s))
        obj.force_constants = np.ascontiguousarray(np.transpose(fc, (0, 2, 1, 3)))
        objs.append(obj)
    q = np.array(GENERIC + [[0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.05, 0.05, 0.0]])
    ref = GruneisenBase(*(o.dynamical_matrix for o in objs), qpoints=q)
    _, g = gruneisen.mode_gruneisen(ph0, dfc, q)
    np.testing.assert_allclose(g, ref.get_gruneisen(), rtol=0, atol=1e-6)
    assert np.all(g[:, 3:] > 0.5)  # optical modes stiffen under compression
    assert g[2, 0] < 0  # TA(X) softens: negative γ, as in real Si
