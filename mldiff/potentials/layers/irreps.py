"""Irreducible representations used by the equivariant models.

With ``parity=True`` the models are E(3)-equivariant: features of degree l have
the parity of the spherical harmonics, (−1)^l ("0e + 1o + 2e"), so energies are
invariant under rotations *and* reflections. With ``parity=False`` every degree
is treated as even ("0e + 1e + 2e", jax-md's NequIP convention): the models are
SE(3)-equivariant only and may tell mirror images apart.
"""

from collections.abc import Callable, Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "natural_irreps",
    "spherical_harmonics",
    "linear",
    "mlp",
    "tensor_product_paths",
    "weighted_tensor_product",
    "num_path_weights",
]


def natural_irreps(l_max: int, parity: bool) -> e3nn.Irreps:
    """One copy of each degree ``0..l_max``, with spherical-harmonic parity.

    Example:
        >>> str(natural_irreps(2, True)), str(natural_irreps(1, False))
        ('1x0e+1x1o+1x2e', '1x0e+1x1e')
    """
    return e3nn.Irreps(
        [(1, (deg, (-1) ** deg if parity else 1)) for deg in range(l_max + 1)]
    )


def spherical_harmonics(unit: jax.Array, l_max: int, parity: bool) -> e3nn.IrrepsArray:
    """Real spherical harmonics ``Y_l(r̂)``, l = 0..l_max, component-normalised.

    Args:
        unit: ``[e, 3]`` unit vectors (not renormalised here).
        l_max: highest degree.
        parity: label the harmonics (−1)^l (True) or all even (False).

    Returns:
        ``[e, (l_max + 1)²]`` IrrepsArray with irreps ``natural_irreps(l_max, parity)``.
    """
    vectors = e3nn.IrrepsArray("1o" if parity else "1e", unit)
    return e3nn.spherical_harmonics(
        list(range(l_max + 1)), vectors, normalize=False, normalization="component"
    )


def linear(irreps_out, **kwargs) -> nn.Module:
    """e3nn's equivariant linear with N(0, 1) weights, normalised in the forward.

    Fixes e3nn's global-config choices (``gradient_normalization="path"``,
    ``path_normalization="element"``) so results do not depend on them.
    """
    return e3nn.flax.Linear(
        irreps_out,
        gradient_normalization="path",
        path_normalization="element",
        **kwargs,
    )


def mlp(
    widths: Sequence[int], act: Callable[[jax.Array], jax.Array], *, name: str
) -> nn.Module:
    """Scalar MLP without biases (so f(0) = 0 for act(0) = 0), N(0, 1) weights.

    The last layer is linear; ``act`` is normalised to unit second moment by e3nn.
    """
    return e3nn.flax.MultiLayerPerceptron(
        tuple(widths),
        act,
        gradient_normalization="path",
        output_activation=False,
        name=name,
    )


def tensor_product_paths(
    irreps1: e3nn.Irreps, irreps2: e3nn.Irreps, filter_ir_out: e3nn.Irreps
) -> list[tuple[int, int, e3nn.Irrep]]:
    """Paths ``(i1, i2, ir_out)`` of ``irreps1 ⊗ irreps2`` kept by the filter."""
    keep = {ir for _, ir in e3nn.Irreps(filter_ir_out)}
    return [
        (i1, i2, ir_out)
        for i1, (_, ir1) in enumerate(irreps1)
        for i2, (_, ir2) in enumerate(irreps2)
        for ir_out in ir1 * ir2
        if ir_out in keep
    ]


def weighted_tensor_product(
    x: e3nn.IrrepsArray,
    y: e3nn.IrrepsArray,
    weights: jax.Array,
    filter_ir_out: e3nn.Irreps,
) -> e3nn.IrrepsArray:
    """Per-edge ``uvu`` tensor product with one weight per path and channel.

    ``out[e, path, u] = w[e, path, u] · (x[e, u] ⊗ y[e]) → ir_out`` with
    component-normalised Clebsch–Gordan coefficients — e3nn's
    ``tensor_product(x, y) * weights``, but with the weights folded into each
    path's contraction and without re-sorting the output, so that the large
    edge arrays are written once.

    Args:
        x: ``[e, irreps1]`` features (any multiplicities u).
        y: ``[e, irreps2]`` with multiplicity 1 per irrep (spherical harmonics).
        weights: ``[e, Σ_paths u]`` in the order of :func:`tensor_product_paths`.
        filter_ir_out: output irreps to keep.

    Returns:
        ``[e, Σ_paths u × ir_out]`` IrrepsArray, paths in the order of
        :func:`tensor_product_paths` (not regrouped).
    """
    paths = tensor_product_paths(x.irreps, y.irreps, filter_ir_out)
    irreps_out, chunks, start = [], [], 0
    for i1, i2, ir_out in paths:
        mul, ir1 = x.irreps[i1]
        ir2 = y.irreps[i2].ir
        cg = e3nn.clebsch_gordan(ir1.l, ir2.l, ir_out.l) * ir_out.dim**0.5
        w = weights[:, start : start + mul]  # [e, u]
        start += mul
        x1, y2 = x.chunks[i1], y.chunks[i2]  # [e, u, 2 l1 + 1], [e, 1, 2 l2 + 1]
        chunk = None  # e3nn's marker for a chunk known to be zero
        if x1 is not None and y2 is not None:
            cg = cg.astype(x1.dtype)
            chunk = jnp.einsum("eui,ej,ijk,eu->euk", x1, y2[:, 0, :], cg, w)
        irreps_out.append((mul, ir_out))
        chunks.append(chunk)
    return e3nn.from_chunks(irreps_out, chunks, x.shape[:-1], x.dtype)


def num_path_weights(
    irreps1: e3nn.Irreps, irreps2: e3nn.Irreps, filter_ir_out: e3nn.Irreps
) -> int:
    """Number of weights :func:`weighted_tensor_product` takes per edge."""
    irreps1 = e3nn.Irreps(irreps1)
    return sum(
        irreps1[i1].mul
        for i1, _, _ in tensor_product_paths(irreps1, irreps2, filter_ir_out)
    )
