"""Effective-medium theory (EMT), reproducing ``ase.calculators.emt.EMT``.

The energy of atom i in EMT is that of an atom in a reference fcc crystal of its
own element, at the neighbor-sphere radius ``s_i`` that reproduces the electron
density it sees, plus an atomic-sphere pair correction:

* ``σ1_i = Σ_j χ_ij w(r_ij) exp(−η2_j (r_ij − β s0_j))``, with
  ``χ_ij = n0_j / n0_i`` and the logistic cutoff
  ``w(r) = 1 / (1 + exp(a (r − rc)))``;
* ``s_i − s0_i = −ln(σ1_i / (12 γ1_i)) / (β η2_i)``;
* cohesive part ``E_c,i = E0_i (1 + λ_i Δs_i) exp(−λ_i Δs_i)
  + 6 V0_i exp(−κ_i Δs_i)``;
* pair part ``−(V0_i / 2γ2_i) Σ_j χ_ij w(r_ij) exp(−κ_j (r_ij / β − s0_j))``,
  shared half and half between i and j as in ASE;
* the total energy is ``Σ_i (E_c,i + pair_i − E0_i)`` (ASAP's convention: a
  perfect equilibrium crystal has zero energy).

``γ1``, ``γ2`` normalise the sums to the first three fcc shells, and the cutoff
``rc``/``a`` is placed between the third and fourth shells of the largest atom of
the parameter table, exactly as ASE does by default (``asap_cutoff=False``). Like
ASE, neighbors are cut hard at ``rc_list = rc + 0.5`` Å, where the logistic is
below 1e-5 (a jump of order 1e-9 eV when a pair crosses it).

The seven element parameters are stored in ``params`` in Å/eV units (trainable);
``γ1``, ``γ2`` and ``χ`` are derived from them inside ``energy`` so that they stay
consistent while fitting. The cutoff constants ``rc``, ``a`` and ``rc_list`` are
fixed hyperparameters, as in ASE.

References:
    K. W. Jacobsen, P. Stoltze and J. K. Nørskov, "A semi-empirical effective
    medium theory for metals and alloys", Surf. Sci. 366, 394 (1996).
    ASE 3.29, ``ase/calculators/emt.py`` (parameter table and cutoff recipe).
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from mldiff import space, units
from mldiff.errors import ConfigError, SpeciesError
from mldiff.potentials._base import Potential, check_species

__all__ = ["emt", "PARAMETERS", "BOHR", "BETA"]

BOHR = units.Bohr  # Å; ase.units.Bohr (CODATA 2014), as ASE's EMT uses
BETA = 1.809  # (16π/3)^(1/3) / √2 with ASE's historical rounding; dimensionless

# Jacobsen, Stoltze & Nørskov (1996) as tabulated in ASE, keyed by atomic number:
#       E0     s0    V0     eta2    kappa   lambda  n0
#       eV     bohr  eV     bohr⁻¹  bohr⁻¹  bohr⁻¹  bohr⁻³
PARAMETERS: dict[int, tuple[float, float, float, float, float, float, float]] = {
    13: (-3.28, 3.00, 1.493, 1.240, 2.000, 1.169, 0.00700),  # Al
    29: (-3.51, 2.67, 2.476, 1.652, 2.740, 1.906, 0.00910),  # Cu
    47: (-2.96, 3.01, 2.132, 1.652, 2.790, 1.892, 0.00547),  # Ag
    79: (-3.80, 3.00, 2.321, 1.674, 2.873, 2.182, 0.00703),  # Au
    28: (-4.44, 2.60, 3.673, 1.669, 2.757, 1.948, 0.01030),  # Ni
    46: (-3.90, 2.87, 2.773, 1.818, 3.107, 2.155, 0.00688),  # Pd
    78: (-5.85, 2.90, 4.067, 1.812, 3.145, 2.192, 0.00802),  # Pt
    # ASE's "just for fun" parameters: not for serious use
    1: (-3.21, 1.31, 0.132, 2.652, 2.790, 3.892, 0.00547),  # H
    6: (-3.50, 1.81, 0.332, 1.652, 2.790, 1.892, 0.01322),  # C
    7: (-5.10, 1.88, 0.132, 1.652, 2.790, 1.892, 0.01222),  # N
    8: (-4.60, 1.95, 0.332, 1.652, 2.790, 1.892, 0.00850),  # O
}

_SYMBOLS = {
    13: "Al",
    29: "Cu",
    47: "Ag",
    79: "Au",
    28: "Ni",
    46: "Pd",
    78: "Pt",
    1: "H",
    6: "C",
    7: "N",
    8: "O",
}
_PerElement = Float[Array, "k"]  # one value per element of the table
_PerAtom = Float[Array, "n"]  # one value per atom
_NAMES = ("E0", "s0", "V0", "eta2", "kappa", "lambda", "n0")
_FCC_SHELLS = ((12, 1.0), (6, 2.0), (24, 3.0))  # (sites, (r / r_1nn)²) of 3 shells


def _cutoff_constants(s0_max_bohr: float, asap_cutoff: bool) -> tuple[float, ...]:
    """ASE's logistic-cutoff constants for the largest atom considered.

    Args:
        s0_max_bohr: largest neighbor-sphere radius s0 considered, bohr.
        asap_cutoff: use ASAP's neighbor cutoff ``1.045 rc`` instead of
            ``rc + 0.5`` Å.

    Returns:
        ``(rc, acut, rc_list)``: the logistic midpoint (mean of the 3rd and 4th
        fcc neighbor distances), Å; its slope (w = 1e-4 at the 4th), 1/Å; the
        hard neighbor cutoff, Å.
    """
    r1nn = BETA * (s0_max_bohr * BOHR)  # first-neighbor distance in fcc, Å
    rc = r1nn * 0.5 * (math.sqrt(3.0) + 2.0)
    r4nn = r1nn * 2.0
    eps = 1e-4
    acut = math.log(1.0 / eps - 1.0) / (r4nn - rc)
    rc_list = rc * 1.045 if asap_cutoff else rc + 0.5
    return rc, acut, rc_list


def _table(species: Sequence[int]) -> dict[str, np.ndarray]:
    """Element parameters of ``species`` in Å/eV units, ``[k]`` float64 each.

    Keys ``E0`` (eV), ``s0`` (Å), ``V0`` (eV), ``eta2``, ``kappa``, ``lambda``
    (1/Å) and ``n0`` (1/Å³), converted with ASE's formulas.
    """
    p = np.array([PARAMETERS[z] for z in species], dtype=np.float64)  # [k, 7]
    return {
        "E0": p[:, 0],
        "s0": p[:, 1] * BOHR,
        "V0": p[:, 2],
        "eta2": p[:, 3] / BOHR,
        "kappa": p[:, 4] / BOHR,
        "lambda": p[:, 5] / BOHR,
        "n0": p[:, 6] / BOHR**3,
    }


def _gammas(
    s0: _PerElement,
    eta2: _PerElement,
    kappa: _PerElement,
    rc: float,
    acut: float,
) -> tuple[_PerElement, _PerElement]:
    """EMT's normalisations γ1, γ2 over the first three fcc shells.

    Args:
        s0: neighbor-sphere radii, Å.
        eta2: density decay constants η2, 1/Å.
        kappa: pair decay constants κ, 1/Å.
        rc: logistic-cutoff midpoint, Å.
        acut: logistic-cutoff slope, 1/Å.

    Returns:
        ``(γ1, γ2)``, dimensionless, one per element; 1 for an uncut crystal.
    """
    gamma1 = gamma2 = jnp.zeros_like(s0)
    for n, m in _FCC_SHELLS:
        r = BETA * s0 * math.sqrt(m)  # shell distance, Å
        x = n * (1.0 / (1.0 + jnp.exp(acut * (r - rc)))) / 12.0
        gamma1 = gamma1 + x * jnp.exp(-eta2 * (r - BETA * s0))
        gamma2 = gamma2 + x * jnp.exp(-kappa / BETA * (r - BETA * s0))
    return gamma1, gamma2


def _cohesive(
    sigma1: _PerAtom,
    inv12gamma1: _PerAtom,
    e0: _PerAtom,
    v0: _PerAtom,
    eta2: _PerAtom,
    lam: _PerAtom,
    kappa: _PerAtom,
) -> _PerAtom:
    """Cohesive energy E_c plus the on-site pair term of each atom, eV.

    Args:
        sigma1: weighted neighbor densities σ1, dimensionless (≥ 0).
        inv12gamma1: ``1 / (12 γ1)`` of each atom's element.
        e0: cohesive energies E0, eV.
        v0: pair strengths V0, eV.
        eta2: density decay constants η2, 1/Å.
        lam: λ, 1/Å.
        kappa: κ, 1/Å.

    Returns:
        ``E0 (1 + λΔs) e^{−λΔs} + 6 V0 e^{−κΔs}``; exactly 0 (with zero, finite
        derivatives) for atoms without neighbors (σ1 = 0), its limit as σ1 → 0.
    """
    has = sigma1 > 0
    ds = -jnp.log(jnp.where(has, sigma1 * inv12gamma1, 1.0)) / (BETA * eta2)  # Å
    lds = lam * ds
    e_c = e0 * (1.0 + lds) * jnp.exp(-lds) + 6.0 * v0 * jnp.exp(-kappa * ds)
    return jnp.where(has, e_c, 0.0)


def _species_numbers(species) -> tuple[int, ...]:
    """Atomic numbers for ``species`` (numbers or symbols), checked."""
    if species is None:
        return tuple(sorted(PARAMETERS))
    if isinstance(species, str | int | np.integer):
        species = (species,)
    by_symbol = {v: k for k, v in _SYMBOLS.items()}
    numbers, unknown = [], []
    for x in species:
        z = by_symbol.get(x) if isinstance(x, str) else int(x)
        if z in PARAMETERS:
            numbers.append(z)
        else:
            unknown.append(x)
    if unknown:
        from ase.data import chemical_symbols

        names = ", ".join(
            f"{chemical_symbols[x]} (Z={x})"
            if isinstance(x, int | np.integer) and 0 < x < len(chemical_symbols)
            else repr(x)
            for x in unknown
        )
        raise SpeciesError(
            f"EMT has no parameters for {names}; it supports "
            f"{', '.join(_SYMBOLS[z] for z in sorted(PARAMETERS))}. Request a "
            "subset of these (symbols or atomic numbers) or use another potential"
        )
    if not numbers:
        raise ConfigError("species=() requests no elements; pass None for all")
    return tuple(sorted(set(numbers)))


def emt(
    species: Sequence[int | str] | None = None,
    *,
    asap_cutoff: bool = False,
) -> Potential:
    """Build the EMT potential of ``ase.calculators.emt.EMT``.

    The energy equals ASE's to rounding (~1e-12 eV/atom in float64), including
    ASE's hard neighbor cut at ``rc_list``. Forces, stress and Hessians come from
    :mod:`mldiff.quantities`; the energy is twice differentiable everywhere away
    from that cut (logs guarded, padded edges masked with double ``where``).

    Args:
        species: elements to carry parameters for, as atomic numbers or symbols
            (Al, Cu, Ag, Au, Ni, Pd, Pt and ASE's toy H, C, N, O); default all.
            Atoms of other elements give a NaN energy inside ``jit``; check
            structures first with :func:`mldiff.potentials.check_species` (``init``
            does so when given a structure). Ghost atoms (Z = 0, the padding
            of batched structures) contribute exactly nothing.
        asap_cutoff: ASE's ``asap_cutoff`` option: take the cutoff from the
            largest of ``species`` (ASE: of the elements present) and cut the
            neighbor list at ``1.045 rc``. Default ``False``, ASE's default: the
            cutoff comes from the largest atom of the whole table (Ag).

    Returns:
        A :class:`Potential` named ``"emt"``. ``init(key, structure)`` returns
        ``{"E0", "s0", "V0", "eta2", "kappa", "lambda", "n0"}``, each ``[k]`` over
        ``pot.species`` (sorted atomic numbers) in eV, Å, eV, 1/Å, 1/Å, 1/Å and
        1/Å³, in the structure's float dtype. ``pot.cutoff`` is ``rc_list``, Å.

    Raises:
        SpeciesError: if ``species`` names an element without EMT parameters.

    References:
        Jacobsen, Stoltze & Nørskov, Surf. Sci. 366, 394 (1996); ASE 3.29.

    Example:
        >>> pot = emt(species=("Cu", "Au"))
        >>> pot.name, pot.species, round(pot.cutoff, 6)
        ('emt', (29, 79), 5.876798)
    """
    numbers = _species_numbers(species)
    considered = numbers if asap_cutoff else tuple(PARAMETERS)
    rc, acut, rc_list = _cutoff_constants(
        max(PARAMETERS[z][1] for z in considered), asap_cutoff
    )
    k = len(numbers)
    index = np.full(119, k, dtype=np.int32)  # Z -> row; k (out of range) = absent
    index[list(numbers)] = np.arange(k, dtype=np.int32)
    table = _table(numbers)

    def init(key, structure):
        del key
        dtype = jnp.result_type(float)
        if structure is not None:
            dtype = structure.positions.dtype
            if not isinstance(structure.numbers, jax.core.Tracer):
                check_species(pot, np.asarray(structure.numbers).tolist())
        return {name: jnp.asarray(table[name], dtype=dtype) for name in _NAMES}

    def energy(params, structure, graph):
        params = jax.tree.map(jnp.asarray, params)
        # per element: derived normalisations, [k]
        gamma1, gamma2 = _gammas(
            params["s0"], params["eta2"], params["kappa"], rc, acut
        )
        per_element = dict(params)
        per_element["inv12gamma1"] = 1.0 / (12.0 * gamma1)
        per_element["neghalfv0overgamma2"] = -0.5 * params["V0"] / gamma2
        # per atom, [n]; unsupported elements read NaN; ghost atoms (Z = 0,
        # padding) read the first element's values and are masked out below
        ghost = structure.numbers == 0
        row = jnp.asarray(index).at[structure.numbers].get(mode="fill", fill_value=k)
        row = jnp.where(ghost, 0, row)
        p = {
            name: v.at[row].get(mode="fill", fill_value=jnp.nan)
            for name, v in per_element.items()
        }
        # per edge i -> j, [e]; self = sender i, other = receiver j
        i, j = graph.senders, graph.receivers
        d = space.edge_vectors(structure, graph)  # [e, 3], Å
        r2 = jnp.sum(d * d, axis=-1)
        ok = graph.mask & (r2 > 0)
        r = space.safe_sqrt(r2)
        inside = ok & (r < rc_list)  # ASE's hard neighbor-list cut
        inside = inside & ~ghost[i] & ~ghost[j]
        r = jnp.where(inside, r, rc_list)  # outside: finite, masked below
        w = 1.0 / (1.0 + jnp.exp(acut * (r - rc)))
        chi = p["n0"][j] / p["n0"][i]
        dsigma1 = jnp.exp(-p["eta2"][j] * (r - BETA * p["s0"][j])) * chi * w
        dsigma2 = jnp.exp(-p["kappa"][j] * (r / BETA - p["s0"][j])) * chi * w
        sigma1 = jax.ops.segment_sum(
            jnp.where(inside, dsigma1, 0.0), i, num_segments=structure.numbers.shape[0]
        )
        e_c = _cohesive(
            sigma1,
            p["inv12gamma1"],
            p["E0"],
            p["V0"],
            p["eta2"],
            p["lambda"],
            p["kappa"],
        )
        # ASE gives atom i half of (i's term on edge i->j + j's term on edge j->i);
        # over a two-way graph the total is the sum of i's terms on all edges.
        pair = jnp.where(inside, p["neghalfv0overgamma2"][i] * dsigma2, 0.0)
        return jnp.sum(jnp.where(ghost, 0.0, e_c - p["E0"])) + jnp.sum(pair)

    pot = Potential(init, energy, rc_list, numbers, "emt")
    return pot
