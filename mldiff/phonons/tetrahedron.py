"""Linear tetrahedron integration of delta functions on a Γ-centred q-mesh.

The Brillouin zone is cut into tetrahedra whose corners are mesh points, and
a function ``ε(q)`` known on the mesh is interpolated linearly inside each
one. The integral ``(1/N) Σ_q A(q) δ(ω − ε(q))`` then becomes a sum over mesh
points with weights ``w_q(ω)`` (1/THz) that depend only on the values of ``ε``
at the corners of the tetrahedra touching ``q`` (Blöchl, Jepsen and Andersen
1994; the corner weights of Lambin and Vigneron 1984), with no smearing width.

**Tetrahedra.** Each parallelepiped of the mesh, spanned by the mesh steps
``b_i/N_i`` of the reciprocal basis, is cut into six tetrahedra that share
its shortest main diagonal; the 24 tetrahedra touching a mesh point are
:func:`relative_addresses` (phonopy's choice, its ``TetrahedronMethod``).

**Weight of one tetrahedron** with corner values sorted ``e0 ≤ e1 ≤ e2 ≤ e3``
and the mesh point at sorted position ``c``: ``D(ω) I_c(ω)``, where ``D`` is
the tetrahedron's density of states (normalised to 1 over ω) and ``I_c`` the
share of corner ``c``; both are polynomials in ``(ω − e_m)/(e_n − e_m)`` on
each of the intervals ``[e0, e1)``, ``[e1, e2)``, ``[e2, e3)`` and zero outside
``[e0, e3)``. The weight of a mesh point sums its 24 tetrahedra and divides by
6 (each is a sixth of a parallelepiped), so that ``∫ w_q(ω) dω = 1``.

**Three-phonon weights** (:func:`triplet_weights`): for the triplet
``q + q' + q'' = G`` the corners of the tetrahedra around ``q'`` are paired with
the corners around ``q''`` moved the opposite way, so that every pair still
conserves crystal momentum; the corner values are ``ω' + ω''`` for
``δ(ω − ω' − ω'')`` and ``±(ω'' − ω')`` for ``δ(ω ± ω' ∓ ω'')`` (phono3py's
``triplets_integration_weights``, negative frequencies clipped to 0). These
replace the Gaussians ``g_σ`` of :mod:`.interaction`.

**Derivatives.** The weights are JAX functions of the frequencies, smooth
(piecewise rational) except at the kinks where ω crosses a corner value, where
they are continuous with a jump in the derivative, and where two corner
values are closer than ``1e-10`` THz (the guard of a vanishing denominator,
as in phonopy). The sort of the corner values is piecewise linear, so
``jax.grad`` works through them; at a tie of corner values the weights are
continuous.

References:
    P. E. Blöchl, O. Jepsen and O. K. Andersen, Phys. Rev. B 49, 16223 (1994);
    Ph. Lambin and J. P. Vigneron, Phys. Rev. B 29, 3430 (1984); A. Togo, L.
    Chaput and I. Tanaka, Phys. Rev. B 91, 094306 (2015); phonopy 4.10
    ``phonon/tetrahedron_method.py`` and phono3py 4.10
    ``phonon3/triplets.py`` (``c/triplet_iw.c``), read for the conventions.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mldiff._typing import ArrayLike
from mldiff.errors import ConfigError

__all__ = [
    "relative_addresses",
    "mesh_addresses",
    "vertices",
    "integration_weights",
    "triplet_weights",
]

EPSILON_THZ = 1e-10  # corner values closer than this count as equal (phonopy's)

_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))[:, ::-1]  # [8, 3]


def relative_addresses(lattice, numbers) -> np.ndarray:
    """The 24 tetrahedra touching a mesh point, as integer mesh steps (host).

    Args:
        lattice: ``[3, 3]`` primitive cell, rows are lattice vectors, Å.
        numbers: ``[3]`` mesh numbers.

    Returns:
        ``[24, 4, 3]`` int: the corners of each tetrahedron as steps of the
        mesh address from the central point, the central point (``[0, 0, 0]``)
        first. The parallelepipeds are cut along their shortest main diagonal
        ``±b1/N1 ± b2/N2 + b3/N3`` (the first one of equal length).

    Example:
        >>> import numpy as np
        >>> rel = relative_addresses(np.eye(3), [4, 4, 4])
        >>> rel.shape, bool(np.all(rel[:, 0] == 0))
        ((24, 4, 3), True)
    """
    nums = np.asarray(numbers, dtype=int).reshape(-1)
    lat = np.asarray(lattice, np.float64)
    if lat.shape != (3, 3) or nums.shape != (3,) or np.any(nums < 1):
        raise ConfigError(
            f"need a 3×3 lattice and three positive mesh numbers, got "
            f"{lat.shape} and {np.asarray(numbers).tolist()}"
        )
    steps = (np.linalg.inv(lat) / nums).T  # rows: b_i / N_i, 1/Å
    signs = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]])
    diagonal = int(np.argmin(np.sum((signs @ steps) ** 2, axis=1)))
    # the corner where the chosen diagonal starts and the one where it ends
    start = np.array([0, 1, 2, 3])[diagonal]
    end = 7 - start
    neighbours = np.abs(_CORNERS[:, None] - _CORNERS[None]).sum(-1) == 1  # [8, 8]
    six = [
        (start, x, y, end)
        for x in np.flatnonzero(neighbours[start])
        for y in np.flatnonzero(neighbours[end])
        if neighbours[x, y]
    ]
    out = []
    for centre in range(8):
        for tetra in six:
            if centre in tetra:
                order = [centre] + [v for v in tetra if v != centre]
                out.append(_CORNERS[order] - _CORNERS[centre])
    return np.asarray(out, dtype=np.int64)


def mesh_addresses(qpoints, numbers) -> np.ndarray:
    """Integer addresses in ``[0, N_i)`` of reduced q-points on the mesh (host).

    Args:
        qpoints: ``[N, 3]`` reduced coordinates, e.g. ``qmesh.Mesh.qpoints``.
        numbers: ``[3]`` mesh numbers.

    Returns:
        ``[N, 3]`` int.

    Example:
        >>> mesh_addresses([[0.0, -0.25, 0.5]], [4, 4, 4]).tolist()
        [[0, 3, 2]]
    """
    nums = np.asarray(numbers, dtype=int)
    return np.mod(np.rint(np.asarray(qpoints) * nums).astype(np.int64), nums)


def vertices(numbers, addresses, relative) -> Int[Array, "... t 4"]:
    """Mesh indices (spglib's order) of the tetrahedra corners around points.

    Args:
        numbers: ``[3]`` mesh numbers (concrete).
        addresses: ``[..., 3]`` int addresses of the central points.
        relative: ``[t, 4, 3]`` int steps, :func:`relative_addresses` (or its
            negative for the third point of a triplet).

    Returns:
        ``[..., t, 4]`` indices ``a0 + N0 (a1 + N1 a2)`` of ``address + step``.

    Example:
        >>> vertices([4, 4, 4], np.array([3, 0, 0]), np.ones((1, 4, 3), int))
        Array([[20, 20, 20, 20]], dtype=int64)
    """
    n = np.asarray(numbers, dtype=int)
    a = jnp.asarray(addresses)[..., None, None, :] + jnp.asarray(relative)
    a = jnp.mod(a, jnp.asarray(n))
    return a[..., 0] + n[0] * (a[..., 1] + n[1] * a[..., 2])


def _ratio(num, den):
    """``num/den``, 0 where ``|den| < EPSILON_THZ`` (finite derivatives too)."""
    ok = jnp.abs(den) >= EPSILON_THZ
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _sort4(v):
    """Sort the last axis (size 4) with five compare-exchanges (differentiable)."""
    a, b, c, d = (v[..., i] for i in range(4))
    a, b = jnp.minimum(a, b), jnp.maximum(a, b)
    c, d = jnp.minimum(c, d), jnp.maximum(c, d)
    a, c = jnp.minimum(a, c), jnp.maximum(a, c)
    b, d = jnp.minimum(b, d), jnp.maximum(b, d)
    b, c = jnp.minimum(b, c), jnp.maximum(b, c)
    return a, b, c, d


def _corner_weight(omega, e, centre):
    """``D(ω) I_c(ω)`` of one tetrahedron; ``e`` sorted corners, ``c`` = centre.

    Blöchl's density of states of a linearly interpolated tetrahedron times
    the share of the central corner (Lambin and Vigneron), on each interval.
    """
    d = {
        (n, m): _ratio(omega - e[m], e[n] - e[m])
        for n in range(4)
        for m in range(4)
        if n != m
    }
    inv_span = _ratio(1.0, e[3] - e[0])

    def pick(options):
        return sum(jnp.where(centre == k, o, 0.0) for k, o in enumerate(options))

    # ω in [e0, e1): D = 3 d10 d20 / (e3 − e0)
    w1 = (3 * d[1, 0] * d[2, 0] * inv_span) * pick(
        [(d[0, 1] + d[0, 2] + d[0, 3]) / 3, d[1, 0] / 3, d[2, 0] / 3, d[3, 0] / 3]
    )
    # ω in [e1, e2): D = 3 G / (e3 − e0), I_c = (a_c + b_c / G) / 3
    g = d[1, 2] * d[2, 0] + d[2, 1] * d[1, 3]
    w2 = inv_span * pick(
        [
            d[0, 3] * g + d[0, 2] * d[2, 0] * d[1, 2],
            d[1, 2] * g + d[1, 3] ** 2 * d[2, 1],
            d[2, 1] * g + d[2, 0] ** 2 * d[1, 2],
            d[3, 0] * g + d[3, 1] * d[1, 3] * d[2, 1],
        ]
    )
    # ω in [e2, e3): D = 3 d13 d23 / (e3 − e0)
    w3 = (3 * d[1, 3] * d[2, 3] * inv_span) * pick(
        [d[0, 3] / 3, d[1, 3] / 3, d[2, 3] / 3, (d[3, 0] + d[3, 1] + d[3, 2]) / 3]
    )
    below = sum((x <= omega).astype(jnp.int32) for x in e)  # corners at or below ω
    return jnp.where(
        below == 1, w1, jnp.where(below == 2, w2, jnp.where(below == 3, w3, 0.0))
    )


def integration_weights(
    omega: Float[ArrayLike, "..."], corner_values: Float[ArrayLike, "... t 4"]
) -> Float[Array, "..."]:
    """Tetrahedron weight ``w_q(ω)`` of a mesh point from its tetrahedra.

    Args:
        omega: ``[...]`` where the delta function is evaluated, THz
            (broadcast against the leading axes of ``corner_values``).
        corner_values: ``[..., t, 4]`` values ``ε`` at the corners of the
            ``t`` tetrahedra touching the point (``t = 24``, or a multiple of
            24 for sets that are averaged), the point itself first, THz.

    Returns:
        ``[...]`` weights, 1/THz: ``(1/N) Σ_q A_q w_q(ω)`` approximates
        ``(1/N) Σ_q A_q δ(ω − ε_q)``.

    Example:
        >>> import numpy as np
        >>> v = np.array([[0.0, 1.0, 2.0, 3.0]] * 24)  # 24 equal tetrahedra
        >>> float(integration_weights(np.array(1.5), v))  # 24/6 D(ω) I_0(ω)
        0.625
    """
    v = jnp.asarray(corner_values)
    omega = jnp.asarray(omega, v.dtype)[..., None]
    centre = sum((v[..., k] < v[..., 0]).astype(jnp.int32) for k in range(1, 4))
    e = _sort4(v)
    w = _corner_weight(omega, e, centre)
    return w.sum(axis=-1) / (v.shape[-2] / 4)


def triplet_weights(
    f0: Float[ArrayLike, " m"],
    f1_corners: Float[ArrayLike, "k t 4 m"],
    f2_corners: Float[ArrayLike, "k t 4 m"],
) -> tuple[Float[Array, "k m m m"], Float[Array, "k m m m"], Float[Array, "k m m m"]]:
    """Tetrahedron weights of the three delta functions of three-phonon processes.

    Args:
        f0: ``[m]`` frequencies ω at ``q``, THz.
        f1_corners: ``[k, t, 4, m]`` frequencies at the corners of the
            tetrahedra around ``q'`` of each triplet (``vertices`` with
            :func:`relative_addresses`), ``q'`` first, THz.
        f2_corners: ``[k, t, 4, m]`` the same around ``q''``, with the steps
            negated (``vertices`` with ``-relative_addresses(...)``), THz.

    Returns:
        ``(δ(ω − ω' − ω''), δ(ω + ω' − ω''), δ(ω − ω' + ω''))``, each
        ``[k, m, m, m]`` (axes: triplet, band at q, at q', at q''), 1/THz.
        The bands at ``q`` are done one after another; each holds
        ``3·k·m²·t·4`` corner values at once (lower ``k`` for many bands).

    Example:
        >>> import numpy as np
        >>> f = np.ones((1, 24, 4, 1)) * np.array([0.0, 1.0, 2.0, 3.0])[:, None]
        >>> [float(g[0, 0, 0, 0]) for g in triplet_weights(np.array([3.0]), f, f)]
        [0.3125, 0.0, 0.0]
    """
    f1 = jnp.maximum(jnp.asarray(f1_corners), 0.0)[..., :, None]  # [k, t, 4, m, 1]
    f2 = jnp.maximum(jnp.asarray(f2_corners), 0.0)[..., None, :]  # [k, t, 4, 1, m]
    # the three corner values, corner axes last: [3, k, m1, m2, t, 4]
    values = jnp.stack([f1 + f2, f2 - f1, f1 - f2])
    values = jnp.moveaxis(values, (2, 3), (4, 5))
    g = jax.lax.map(lambda w: integration_weights(w, values), jnp.asarray(f0))
    g = jnp.moveaxis(g, 0, 2)  # [3, k, m, m1, m2]
    return g[0], g[1], g[2]
