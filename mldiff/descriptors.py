"""Composition descriptors: fraction-weighted statistics of element properties.

A composition is a row of atomic fractions over the elements ``Z = 1 … 103``
(H to Lr), ``[n, 103]``, each row summing to 1. For every element property
``p`` in :data:`PROPERTIES` (taken from pymatgen's ``Element`` data) the
descriptor holds, with fractions ``f_e`` of the elements present:

- ``mean``: ``Σ_e f_e p_e``;
- ``mad``: mean absolute deviation ``Σ_e f_e |p_e - mean|``;
- ``min``, ``max``: over the elements present (``f_e > 0``);
- ``range``: ``max - min``;

followed by two stoichiometric attributes, the ``L2`` and ``L3`` norms of the
fraction vector (Ward et al.). :func:`features_from_fractions` is a pure JAX
function of the fraction matrix (``jit`` / ``vmap`` / ``grad``; ``min``,
``max`` and ``range`` are piecewise constant in the fractions, so their
gradient is zero). :func:`composition_features` parses formula strings or
pymatgen ``Composition`` s first. Fe2O3 and Fe4O6 give the same row.

Missing element data: pymatgen lacks a few values (Pauling electronegativity of
He, Ne and Ar; atomic radius of He, Ne, Kr, Xe, At, Rn, Fr, Cm–Lr; molar volume
of At, Fr, Fm–Lr). Each is filled with the mean of that property over the
elements of the same pymatgen ``group`` (lanthanides and actinides are group
3) that have a value; the filled entries are listed by
:func:`element_property_table`. The table never holds NaN.

Features are in the units of the properties (amu, K, eV, Å, cm³/mol, counts):
standardise them before a distance-based model such as a GP.

References:
    L. Ward, A. Agrawal, A. Choudhary and C. Wolverton, "A general-purpose
    machine learning framework for predicting properties of inorganic
    materials", npj Comput. Mater. 2, 16028 (2016) (Magpie attributes).

Example:
    >>> x = composition_features(["Fe2O3", "NaCl"])
    >>> x.shape == (2, len(feature_names()))
    True
    >>> names = feature_names()
    >>> round(float(x[0, names.index("Z_mean")]), 12)  # (2 · 26 + 3 · 8) / 5
    15.2
"""

import functools
import re
import warnings

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff.errors import CompositionError, MldiffError, check_float64

__all__ = [
    "PROPERTIES",
    "STATISTICS",
    "N_ELEMENTS",
    "CompositionError",
    "element_property_table",
    "feature_names",
    "fractions_from_formulas",
    "features_from_fractions",
    "composition_features",
]

#: number of elements in the fraction matrix (Z = 1 … 103, H to Lr)
N_ELEMENTS = 103

#: element properties (name: unit) in column order of the property table
PROPERTIES = {
    "Z": "atomic number",
    "atomic_mass": "amu",
    "row": "period",
    "group": "group 1-18 (lanthanides, actinides: 3)",
    "mendeleev_no": "Pettifor's Mendeleev number",
    "X": "Pauling electronegativity",
    "atomic_radius": "Å (empirical)",
    "melting_point": "K",
    "molar_volume": "cm³/mol",
    "ionization_energy": "eV (first)",
    "electron_affinity": "eV",
    "n_s_valence": "electrons in s shells outside the noble-gas core",
    "n_p_valence": "electrons in p shells outside the noble-gas core",
    "n_d_valence": "electrons in d shells outside the noble-gas core",
    "n_f_valence": "electrons in f shells outside the noble-gas core",
}

#: statistics per property, in column order within a property
STATISTICS = ("mean", "mad", "min", "max", "range")

_STOICHIOMETRY = ("stoichiometry_l2", "stoichiometry_l3")


def _valence_counts(electronic_structure: str) -> dict[str, float]:
    """Electrons per orbital type outside the ``[core]`` of e.g. ``[Ar].3d6.4s2``."""
    counts = {"s": 0.0, "p": 0.0, "d": 0.0, "f": 0.0}
    for part in electronic_structure.split("."):
        m = re.fullmatch(r"(\d+)([spdf])(\d+)", part)
        if m:
            counts[m.group(2)] += float(m.group(3))
    return counts


def _raw_value(element, name: str) -> float:
    if name.startswith("n_") and name.endswith("_valence"):
        return _valence_counts(element.electronic_structure)[name[2]]
    try:
        value = getattr(element, name)
    except (AttributeError, KeyError, ValueError):
        return float("nan")
    return float("nan") if value is None else float(value)


@functools.lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, tuple[tuple[str, str], ...]]:
    from pymatgen.core.periodic_table import Element

    elements = [Element.from_Z(z) for z in range(1, N_ELEMENTS + 1)]
    with warnings.catch_warnings():  # pymatgen warns on each missing value
        warnings.simplefilter("ignore")
        table = np.array(
            [[_raw_value(e, p) for p in PROPERTIES] for e in elements],
            dtype=np.float64,
        )
    groups = np.array([e.group for e in elements])
    filled = []
    for j, name in enumerate(PROPERTIES):
        for i in np.flatnonzero(np.isnan(table[:, j])):
            same = (groups == groups[i]) & ~np.isnan(table[:, j])
            table[i, j] = table[same, j].mean()
            filled.append((elements[i].symbol, name))
    if np.isnan(table).any():  # pragma: no cover - pymatgen data changed
        raise MldiffError("element property table has values that cannot be filled")
    table.setflags(write=False)
    return table, tuple(filled)


def element_property_table() -> tuple[np.ndarray, tuple[tuple[str, str], ...]]:
    """The element × property table (built once from pymatgen, then cached).

    Returns:
        ``(table [103, p], filled)``: float64 values of :data:`PROPERTIES`
        (columns, in their units) for Z = 1 … 103 (rows, row ``Z - 1``), and
        the ``(element, property)`` pairs filled with a same-group mean.

    Example:
        >>> table, filled = element_property_table()
        >>> table.shape, float(table[25, list(PROPERTIES).index("n_d_valence")])
        ((103, 15), 6.0)
        >>> ("He", "X") in filled
        True
    """
    return _table()


def feature_names() -> list[str]:
    """Names of the descriptor columns, ``"<property>_<statistic>"`` then stoichiometry.

    Example:
        >>> feature_names()[:3], len(feature_names())
        (['Z_mean', 'Z_mad', 'Z_min'], 77)
    """
    names = [f"{p}_{s}" for p in PROPERTIES for s in STATISTICS]
    return names + list(_STOICHIOMETRY)


def features_from_fractions(
    fractions: Float[Array, "n 103"],
) -> Float[Array, "n d"]:
    """Descriptor rows from atomic-fraction rows; pure JAX, differentiable.

    Args:
        fractions: atomic fractions ``[n, 103]`` over Z = 1 … 103, each row
            non-negative and summing to 1 (not checked here: this runs under
            ``jit``; :func:`fractions_from_formulas` builds valid rows). The
            computation runs in the dtype of ``fractions``.

    Returns:
        ``[n, d]`` features in the order of :func:`feature_names`, in the units
        of :data:`PROPERTIES` (statistics) or dimensionless (norms).

    Example:
        >>> import jax.numpy as jnp
        >>> f = jnp.zeros((1, 103)).at[0, 0].set(1.0)  # pure hydrogen
        >>> x = features_from_fractions(f)
        >>> [float(v) for v in x[0, :5]]  # Z: mean, mad, min, max, range
        [1.0, 0.0, 1.0, 1.0, 0.0]
    """
    table = jnp.asarray(_table()[0], dtype=fractions.dtype)  # [e, p]
    present = fractions > 0  # [n, e]
    mean = fractions @ table  # [n, p]
    dev = jnp.abs(table[None, :, :] - mean[:, None, :])  # [n, e, p]
    mad = jnp.einsum("ne,nep->np", fractions, dev)
    big = jnp.asarray(np.abs(_table()[0]).max() + 1.0, fractions.dtype)
    lo = jnp.min(jnp.where(present[:, :, None], table[None], big), axis=1)
    hi = jnp.max(jnp.where(present[:, :, None], table[None], -big), axis=1)
    stats = jnp.stack([mean, mad, lo, hi, hi - lo], axis=-1)  # [n, p, 5]
    stats = stats.reshape(fractions.shape[0], -1)
    l2 = jnp.sum(fractions**2, axis=1) ** (1.0 / 2.0)
    l3 = jnp.sum(fractions**3, axis=1) ** (1.0 / 3.0)
    return jnp.concatenate([stats, l2[:, None], l3[:, None]], axis=1)


def _composition(item):
    from pymatgen.core import Composition

    if isinstance(item, Composition):
        return item
    if not isinstance(item, str):
        raise CompositionError(
            f"a composition must be a formula string or a pymatgen Composition, "
            f"got {type(item).__name__} {item!r}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Composition(item)
    except Exception as err:  # pymatgen raises ValueError, KeyError, ...
        raise CompositionError(
            f"cannot parse formula {item!r} ({err}); write it like 'Fe2O3' with "
            "element symbols H to Lr"
        ) from None


def fractions_from_formulas(formulas) -> np.ndarray:
    """Atomic-fraction matrix of formulas or pymatgen ``Composition`` s.

    Args:
        formulas: one formula / ``Composition``, or a sequence of them.

    Returns:
        ``[n, 103]`` float64 NumPy array; row ``i`` holds the atomic fractions
        of composition ``i`` at column ``Z - 1``.

    Raises:
        CompositionError: an unparsable formula, an empty composition, negative
            amounts, or an element beyond Lr (Z > 103); the formula is named.

    Example:
        >>> f = fractions_from_formulas("Fe4O6")
        >>> round(float(f[0, 25]), 12), round(float(f[0, 7]), 12)  # Fe, O
        (0.4, 0.6)
    """
    from pymatgen.core import Composition

    if isinstance(formulas, str | Composition) or not hasattr(formulas, "__iter__"):
        formulas = [formulas]
    formulas = list(formulas)  # lists, tuples, arrays, pandas Series
    out = np.zeros((len(formulas), N_ELEMENTS), dtype=np.float64)
    for i, item in enumerate(formulas):
        comp = _composition(item)
        total = comp.num_atoms
        if not total > 0 or any(v < 0 for v in comp.values()):
            raise CompositionError(
                f"composition {item!r} is empty or has negative amounts; give at "
                "least one element with a positive amount"
            )
        for el, amount in comp.items():
            z = getattr(el, "Z", None)
            if z is None or not 1 <= z <= N_ELEMENTS:
                raise CompositionError(
                    f"{item!r} contains {el}, which has no data here (elements H "
                    f"to Lr, Z = 1 … {N_ELEMENTS}); remove it or drop the formula"
                )
            out[i, z - 1] += amount / total
    return out


def composition_features(formulas) -> np.ndarray:
    """Composition descriptors of formulas or pymatgen ``Composition`` s.

    Args:
        formulas: one formula string / ``Composition``, or a sequence of them.

    Returns:
        ``[n, d]`` float64 NumPy array, columns as in :func:`feature_names`.

    Raises:
        CompositionError: as :func:`fractions_from_formulas`.
        PrecisionError: ``jax_enable_x64`` is off.

    Example:
        >>> from pymatgen.core import Composition
        >>> a = composition_features([Composition("Fe2O3"), "Fe4O6"])
        >>> bool(np.array_equal(a[0], a[1]))
        True
    """
    check_float64("composition descriptors")
    return np.asarray(
        features_from_fractions(jnp.asarray(fractions_from_formulas(formulas)))
    )
