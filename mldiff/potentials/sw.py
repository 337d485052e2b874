"""Stillinger-Weber potential for silicon, with an O(edges) three-body term.

The energy is a sum of two- and three-body terms (Stillinger & Weber 1985):

``E = ½ Σ_i Σ_j φ2(r_ij) + Σ_i Σ_{j<k} φ3(r_ij, r_ik, θ_jik)``

``φ2(r) = A ε [B (σ/r)^p − (σ/r)^q] exp(σ / (r − aσ))``

``φ3 = λ ε exp(γσ/(r_ij − aσ)) exp(γσ/(r_ik − aσ)) (cos θ_jik − cos θ0)²``

with both exponentials set to zero for ``r ≥ aσ`` (they vanish there with all
their derivatives, so the energy is C^∞ at the cutoff).

Three-body term without a triplet list
--------------------------------------
The angular factor is a quadratic polynomial in ``cos θ = u_ij · u_ik`` (unit
edge vectors), so the sum over pairs of edges that share the central atom
factorises exactly into per-atom moments of the edge weights
``h_e = exp(γσ / (r_e − aσ))``::

    G_i = Σ_e h_e           v_i = Σ_e h_e u_e         (vector)
    T_i = Σ_e h_e u_e ⊗ u_e (3x3 matrix)              D_i = Σ_e h_e²

    Σ_{e≠e'} h_e h_e' (u_e·u_e' − c0)²
        = |T_i|_F² − 2 c0 |v_i|² + c0² G_i² − (1 − c0)² D_i

where the sums run over the graph's edges ``e = (i → j, S)`` with sender ``i``
and the last term removes the ``e = e'`` diagonal (``u·u = 1``). Each moment is
one ``segment_sum`` over the edges, so the three-body energy costs O(e) time
and memory, needs no static per-atom neighbour bound ``K``, and so can never
drop a triplet, however unevenly neighbours are distributed (surfaces,
clusters, compressed or amorphous cells). Periodic images are distinct edges,
so cells smaller than twice the cutoff (where ``j`` and ``k`` are images of
the same atom, or of ``i`` itself) are handled exactly. The only capacity is
the neighbour graph's own, whose overflow :mod:`mldiff.neighbors` flags.

The price is a cancellation: in a perfect tetrahedron the per-atom bracket is
zero, made of terms of order ``(Σ h)² ≈ 0.5``. In float64 this costs about
1e-14 eV per atom; in float32 about 1e-6 eV per atom.

References:
    F. H. Stillinger and T. A. Weber, "Computer simulation of local order in
    condensed phases of silicon", Phys. Rev. B 31, 5262 (1985).
"""

import jax
import jax.numpy as jnp

from mldiff import space
from mldiff.potentials._base import Potential

__all__ = ["stillinger_weber"]

# exp(length / (r − rc)) is set to 0 once its exponent drops below −_EXP_FLOOR:
# the value there is < 1e-260, and keeping the exponent bounded keeps the
# derivatives (∝ length / (r − rc)² · exp(...)) free of 0·∞ near the cutoff.
_EXP_FLOOR = 600.0


def _cutoff_exp(
    r: jax.Array, length: jax.Array, rc: jax.Array, inside: jax.Array
) -> jax.Array:
    """``exp(length / (r − rc))`` inside the cutoff, else 0; safe for 2 derivatives.

    Args:
        r: ``[e]`` distances, Å.
        length: decay length (σ or γσ), Å; must be positive.
        rc: cutoff radius aσ, Å.
        inside: ``[e]`` bool, edges that may contribute (real and ``r < rc``).

    Returns:
        ``[e]`` dimensionless factors in ``[0, 1)``; exactly 0, with zero
        derivatives, outside ``inside`` and where the exponent is below −600.
    """
    d = r - rc  # < 0 inside, Å
    ok = inside & (d * _EXP_FLOOR < -length)  # exponent length/d > −600
    d = jnp.where(ok, d, -1.0)  # double-where: no 1/0 in the unused branch
    return jnp.where(ok, jnp.exp(length / d), 0.0)


def _pair_energy(r: jax.Array, cut: jax.Array, params: dict) -> jax.Array:
    """Two-body term ``φ2(r) = A ε [B (σ/r)^p − (σ/r)^q] exp(σ/(r − aσ))``.

    Args:
        r: ``[e]`` distances, Å; strictly positive (masked edges set to aσ).
        cut: ``[e]`` ``exp(σ/(r − aσ))``, from :func:`_cutoff_exp`.
        params: SW parameters (see :func:`stillinger_weber`).

    Returns:
        ``[e]`` pair energies, eV (0 where ``cut`` is 0).
    """
    x = params["sigma"] / r
    radial = params["B"] * x ** params["p"] - x ** params["q"]
    return params["A"] * params["epsilon"] * radial * cut


def _three_body_energy(
    u: jax.Array, h: jax.Array, senders: jax.Array, n_atoms: int, params: dict
) -> jax.Array:
    """Three-body energy from per-atom moments of the edge weights.

    ``Σ_i Σ_{j<k} λ ε h_ij h_ik (cos θ_jik − cos θ0)²``, evaluated as
    ``½ λ ε Σ_i (|T_i|² − 2 c0 |v_i|² + c0² G_i² − (1 − c0)² D_i)``; see the
    module docstring.

    Args:
        u: ``[e, 3]`` unit edge vectors (anything finite where ``h`` is 0).
        h: ``[e]`` weights ``exp(γσ/(r − aσ))``, 0 for padded/outer edges.
        senders: ``[e]`` central atom of each edge.
        n_atoms: number of atoms (static).
        params: SW parameters (see :func:`stillinger_weber`).

    Returns:
        ``[]`` three-body energy, eV.
    """
    c0 = params["cos_theta0"]
    hu = h[:, None] * u  # [e, 3]
    moments = jnp.concatenate(
        [
            h[:, None],  # G
            hu,  # v
            (hu[:, :, None] * u[:, None, :]).reshape(-1, 9),  # T, row-major
            (h * h)[:, None],  # D
        ],
        axis=1,
    )  # [e, 14]
    m = jax.ops.segment_sum(moments, senders, num_segments=n_atoms)  # [n, 14]
    g, v, t, d = m[:, 0], m[:, 1:4], m[:, 4:13], m[:, 13]
    pairs = (
        jnp.sum(t * t, axis=1)
        - 2.0 * c0 * jnp.sum(v * v, axis=1)
        + c0 * c0 * g * g
        - (1.0 - c0) ** 2 * d
    )  # [n]: Σ over ordered pairs e ≠ e' of h h' (cos − c0)²
    return 0.5 * params["lambda_"] * params["epsilon"] * jnp.sum(pairs)


def stillinger_weber(
    *,
    epsilon: float = 2.1683,
    sigma: float = 2.0951,
    A: float = 7.049556277,
    B: float = 0.6022245584,
    p: float = 4.0,
    q: float = 0.0,
    a: float = 1.80,
    lambda_: float = 21.0,
    gamma: float = 1.20,
    cos_theta0: float = -1.0 / 3.0,
    cutoff: float | None = None,
) -> Potential:
    """Build the Stillinger-Weber potential; defaults are the 1985 Si values.

    Every parameter is trainable: all ten live in ``params`` (as float
    scalars; ``p`` and ``q`` enter as real powers of ``σ/r > 0``, so they
    may be fitted too). The graph cutoff is fixed when the potential is built.

    Args:
        epsilon: energy unit ε, eV.
        sigma: length unit σ, Å.
        A: two-body strength A, dimensionless.
        B: two-body repulsion B, dimensionless.
        p: repulsive power p, dimensionless.
        q: attractive power q, dimensionless.
        a: reduced cutoff a (cutoff = aσ), dimensionless.
        lambda_: three-body strength λ, dimensionless.
        gamma: three-body decay γ, dimensionless.
        cos_theta0: preferred bond-angle cosine cos θ0 (−1/3: tetrahedral).
        cutoff: neighbour-graph cutoff, Å; default ``a * sigma``. Give a
            larger value if ``a`` or ``sigma`` may grow during fitting: edges
            beyond the graph cutoff are not seen by the energy.

    Returns:
        A :class:`Potential` named ``"sw"`` for Si (Z = 14) with params
        ``{"epsilon", "sigma", "A", "B", "p", "q", "a", "lambda_", "gamma",
        "cos_theta0"}``. ``energy(params, structure, graph)`` is pure,
        jit-compatible, vmappable and twice differentiable (eV).

    References:
        F. H. Stillinger and T. A. Weber, Phys. Rev. B 31, 5262 (1985).

    Example:
        >>> pot = stillinger_weber()
        >>> pot.name, pot.species, round(pot.cutoff, 5)
        ('sw', (14,), 3.77118)
    """
    values = {
        "epsilon": epsilon,
        "sigma": sigma,
        "A": A,
        "B": B,
        "p": p,
        "q": q,
        "a": a,
        "lambda_": lambda_,
        "gamma": gamma,
        "cos_theta0": cos_theta0,
    }
    rc_graph = float(a) * float(sigma) if cutoff is None else float(cutoff)

    def init(key, structure):
        """SW parameters as float scalars of the structure's dtype."""
        del key
        if structure is None:
            dtype = jnp.result_type(float)
        else:
            dtype = structure.positions.dtype
        return {k: jnp.asarray(v, dtype=dtype) for k, v in values.items()}

    def energy(params, structure, graph):
        """Total SW energy, eV (see :func:`stillinger_weber`)."""
        vec = space.edge_vectors(structure, graph)  # [e, 3], Å; 0 for padding
        r = space.safe_norm(vec)  # [e], Å
        sigma_ = params["sigma"]
        rc = params["a"] * sigma_  # Å
        inside = graph.mask & (r < rc) & (r > 0.0)
        r = jnp.where(inside, r, rc)  # padded/outer edges: finite, positive
        u = vec / r[:, None]  # [e, 3] unit vectors (finite everywhere)
        cut2 = _cutoff_exp(r, sigma_, rc, inside)
        cut3 = _cutoff_exp(r, params["gamma"] * sigma_, rc, inside)
        e2 = 0.5 * jnp.sum(_pair_energy(r, cut2, params))
        e3 = _three_body_energy(
            u, cut3, graph.senders, structure.positions.shape[0], params
        )
        return e2 + e3

    return Potential(init, energy, rc_graph, (14,), "sw")
