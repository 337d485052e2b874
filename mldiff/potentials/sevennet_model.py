"""SevenNet: the NequIP-family universal potentials of the ``sevenn`` package, in JAX.

SevenNet-0 (Park et al. 2024) is a NequIP architecture trained on the Materials
Project's PBE(+U) relaxation trajectories (MPtrj) for 89 elements. This module is
its forward pass written with e3nn-jax, so that mldiff's autodiff phonons,
elastic constants, QHA, third-order constants and κ run on it as on any other
:class:`~mldiff.potentials.Potential`. Parameters come from a SevenNet
checkpoint through :mod:`mldiff.potentials.universal` (torch is needed only
to read the checkpoint, once).

One interaction block t maps node features ``h`` (irreps ``irreps[t]``) to
``irreps[t + 1]``:

1. self-connection ``s = W_sc h`` (equivariant linear to the gate's input);
2. self-interaction ``x = W_1 h``;
3. convolution ``x_i = (1/d_t) Σ_j R(r_ij) · (x_j ⊗ Y(r̂_ij))``, the "uvu"
   tensor product of each neighbor feature channel with the spherical
   harmonics of the edge, one weight per path and channel from an MLP of the
   radial embedding (Bessel functions ``(2/r_c) sin(c_n r)/r`` with trainable
   ``c_n``, times the XPLOR or polynomial cutoff), paths to l > l_max dropped;
   the XPLOR switch of SevenNet-0 (4.5 to 5 Å) is only C¹ at its start, so
   second derivatives (force constants) jump where a neighbour distance
   crosses 4.5 Å: exact on either side, but finite displacements that
   straddle it are not;
4. ``x = W_2 x + s``, then the equivariant gate (scalars through SiLU, l > 0
   features scaled by SiLU of extra gate scalars).

Every linear is e3nn's "element" path normalisation ``1/√fan_in``; the tensor
product has e3nn's component normalisation ``√(2l_out+1)``; activations are
e3nn's ``normalize2mom`` (a constant making ⟨φ(z)²⟩ = 1 for z ~ N(0, 1)), whose
values the checkpoint converter reads from e3nn and stores in the config.
After the last block two linears give one number ``e_i`` per atom, and
``E = Σ_i (σ_{Z_i} e_i + μ_{Z_i})`` with per-species scale σ and shift μ.

A multi-fidelity model (7net-MF-0) appends a one-hot of the chosen
modality (e.g. PBE or r²SCAN) as extra scalar inputs to the marked linears
and has a shift per modality; the modality is fixed when the potential is
built.

Ghost atoms (Z = 0) carry no energy and take part in no edge; an element the
model has no parameters for gives NaN inside ``jit`` and a
:class:`~mldiff.errors.SpeciesError` in ``init``.

References:
    Y. Park, J. Kim, S. Hwang, S. Han, "Scalable parallel algorithm for graph
    neural network interatomic potentials in molecular dynamics simulations",
    J. Chem. Theory Comput. 20, 4857 (2024) (SevenNet; MDIL-SNU/SevenNet).
    S. Batzner et al., Nat. Commun. 13, 2453 (2022) (NequIP).
    M. Geiger and T. Smidt, "e3nn: Euclidean neural networks",
    arXiv:2207.09453 (normalisations).
"""

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp

from mldiff.errors import ConfigError
from mldiff.potentials._base import Potential
from mldiff.potentials.layers.edges import edge_geometry
from mldiff.potentials.layers.radial import polynomial_envelope
from mldiff.potentials.layers.scaling import (
    atomic_energy_table,
    total_atomic_energies,
)
from mldiff.potentials.layers.species import check_init_species, species_table

__all__ = ["SevenNetConfig", "sevennet_model", "sevennet_atomic_energies"]

_ACTIVATIONS = {"silu": jax.nn.silu, "tanh": jnp.tanh}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SevenNetConfig:
    """Architecture of a SevenNet model (stored in mldiff checkpoints).

    Attributes:
        cutoff: radial cutoff r_c, Å.
        num_basis: Bessel radial functions.
        cutoff_function: ``"xplor"`` (smooth switch from ``cutoff_on`` to r_c)
            or ``"poly_cut"`` (NequIP's polynomial envelope of order
            ``poly_cut_p``).
        cutoff_on: XPLOR switch start, Å.
        poly_cut_p: order p of the polynomial envelope.
        lmax_sh: highest degree of the edge spherical harmonics.
        normalize_sph: spherical harmonics of r̂ (True) or of the raw vector r
            (False: SevenNet-0 of 22 May 2024), Å^l.
        irreps: node-feature irreps before the first block and after each
            block (``num_layers + 1`` e3nn strings, all even parity).
        radial_mlp: hidden widths of the radial MLPs.
        denominators: per-block message normalisation d_t (≈ neighbor count).
        activation: SiLU for scalars, gates and the radial MLP.
        activation_normalization: e3nn's ``normalize2mom`` constant of
            ``activation``.
        modalities: names of a multi-fidelity model's modalities, in their
            one-hot order; empty for a single-fidelity model.
        modality: the modality this potential evaluates (one of
            ``modalities``; ``None`` for a single-fidelity model).
        modal_linears: which linears take the modality one-hot:
            ``"self_interaction_1"``, ``"self_interaction_2"``, ``"readout"``.
    """

    cutoff: float
    num_basis: int = 8
    cutoff_function: str = "xplor"
    cutoff_on: float = 4.5
    poly_cut_p: int = 6
    lmax_sh: int = 2
    normalize_sph: bool = True
    irreps: tuple[str, ...]
    radial_mlp: tuple[int, ...] = (64, 64)
    denominators: tuple[float, ...]
    activation: str = "silu"
    activation_normalization: float = 1.0
    modalities: tuple[str, ...] = ()
    modality: str | None = None
    modal_linears: tuple[str, ...] = ()

    def __post_init__(self):
        """Normalise sequences to tuples and reject what the model cannot run."""
        for name in ("irreps", "radial_mlp", "denominators", "modalities"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "modal_linears", tuple(self.modal_linears))
        object.__setattr__(self, "cutoff", float(self.cutoff))
        if self.cutoff_function not in ("xplor", "poly_cut"):
            raise ConfigError(
                f"SevenNetConfig.cutoff_function={self.cutoff_function!r}; "
                "use 'xplor' or 'poly_cut'"
            )
        if len(self.denominators) != len(self.irreps) - 1:
            raise ConfigError(
                f"SevenNetConfig has {len(self.irreps)} irreps but "
                f"{len(self.denominators)} denominators; it needs one per block "
                "(len(irreps) - 1)"
            )
        for text in self.irreps:
            if any(ir.p != 1 for _, ir in e3nn.Irreps(text)):
                raise ConfigError(
                    f"SevenNetConfig.irreps {text!r} has odd-parity features; only "
                    "SE(3) (is_parity: false) SevenNet models are supported"
                )
        if e3nn.Irreps(self.irreps[-1]).lmax != 0:
            raise ConfigError("the last SevenNet block must output scalars only")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(
                f"SevenNetConfig.activation={self.activation!r}; use "
                f"{' or '.join(_ACTIVATIONS)}"
            )
        if self.modalities:
            if self.modality not in self.modalities:
                raise ConfigError(
                    f"this multi-fidelity SevenNet model needs modality= one of "
                    f"{', '.join(self.modalities)} (got {self.modality!r}); e.g. "
                    f"potentials.get('sevennet-mf-0', modality="
                    f"{self.modalities[0]!r})"
                )
        elif self.modality is not None:
            raise ConfigError(
                f"modality={self.modality!r} given, but this SevenNet model has "
                "a single fidelity; leave modality out"
            )

    @property
    def num_layers(self) -> int:
        """Number of interaction blocks."""
        return len(self.irreps) - 1


# --------------------------------------------------------------------------- #
# irreps bookkeeping (host side, static)
# --------------------------------------------------------------------------- #


def _blocks(irreps: str | e3nn.Irreps) -> tuple[tuple[int, int], ...]:
    """``(mul, l)`` of each block of an even-parity irreps string."""
    return tuple((mul, ir.l) for mul, ir in e3nn.Irreps(irreps))


@functools.lru_cache(maxsize=64)
def _convolution_paths(irreps_x: str, lmax_sh: int, lmax_out: int):
    """SevenNet's "uvu" tensor-product paths, in its weight order.

    sevenn builds one output block per (input block, harmonic, output degree)
    with l_out ≤ ``lmax_out``, sorts the output blocks by degree (stably) and
    orders the weights by the sorted output position.

    Returns:
        ``(paths, out_blocks)``: ``paths`` is a tuple of ``(i_x, l_sh, l_out,
        mul)`` in weight order; ``out_blocks`` the ``(mul, l)`` of the simplified
        output (one block per degree, channels in path order).
    """
    made = []
    for i, (mul, l1) in enumerate(_blocks(irreps_x)):
        for l2 in range(lmax_sh + 1):
            for lo in range(abs(l1 - l2), l1 + l2 + 1):
                if lo <= lmax_out:
                    made.append((i, l2, lo, mul))
    order = sorted(range(len(made)), key=lambda k: (made[k][2], k))
    paths = tuple(made[k] for k in order)
    out = {}
    for _, _, lo, mul in paths:
        out[lo] = out.get(lo, 0) + mul
    return paths, tuple((m, lo) for lo, m in sorted(out.items()))


def _gate_blocks(irreps_out: str) -> tuple[tuple[int, int], ...]:
    """Gate input blocks: scalars and one gate per gated channel, then l > 0."""
    blocks = _blocks(irreps_out)
    scalars = sum(m for m, deg in blocks if deg == 0)
    gated = [(m, deg) for m, deg in blocks if deg > 0]
    return ((scalars + sum(m for m, _ in gated), 0),) + tuple(gated)


def _linear_shapes(blocks_in, blocks_out) -> list[tuple[int, int]]:
    """e3nn ``Linear`` weight shapes in its order (input block outer)."""
    return [(mi, mo) for mi, li in blocks_in for mo, lo in blocks_out if li == lo]


def _shapes(config: SevenNetConfig, num_species: int) -> dict:
    """Parameter shapes of a model (a pytree of shape tuples)."""
    m = len(config.modalities)
    modal = (m, 0) if m else None

    def with_modal(blocks, name):
        return blocks + ((modal,) if modal and name in config.modal_linears else ())

    layers = []
    for t in range(config.num_layers):
        x, out = _blocks(config.irreps[t]), config.irreps[t + 1]
        lmax_out = e3nn.Irreps(out).lmax
        paths, tp_out = _convolution_paths(config.irreps[t], config.lmax_sh, lmax_out)
        gate_in = _gate_blocks(out)
        widths = (config.num_basis,) + config.radial_mlp + (sum(p[3] for p in paths),)
        layers.append(
            {
                "self_connection": _linear_shapes(x, gate_in),
                "self_interaction_1": _linear_shapes(
                    with_modal(x, "self_interaction_1"), x
                ),
                "radial": list(zip(widths[:-1], widths[1:], strict=True)),
                "self_interaction_2": _linear_shapes(
                    with_modal(tp_out, "self_interaction_2"), gate_in
                ),
            }
        )
    last = _blocks(config.irreps[-1])
    hidden = ((e3nn.Irreps(config.irreps[-1]).dim // 2, 0),)
    return {
        "bessel_roots": (config.num_basis,),
        "embedding": [(num_species, _blocks(config.irreps[0])[0][0])],
        "layers": layers,
        "readout_hidden": _linear_shapes(with_modal(last, "readout"), hidden),
        "readout": _linear_shapes(hidden, ((1, 0),)),
        "species_scale": (num_species,),
        "species_shift": (max(m, 1), num_species),
    }


# --------------------------------------------------------------------------- #
# the forward pass: features are lists of blocks [n, mul, 2l+1]
# --------------------------------------------------------------------------- #


def _linear(weights, blocks_in, x, out_blocks):
    """e3nn ``Linear`` (no bias) on block features.

    Args:
        weights: list of ``[mul_in, mul_out]`` matrices in e3nn's order.
        blocks_in: ``(mul, l)`` of each input block.
        x: list of ``[n, mul, 2l+1]`` input arrays.
        out_blocks: ``(mul, l)`` of each output block.

    Returns:
        List of ``[n, mul_out, 2l+1]`` arrays.
    """
    out = [None] * len(out_blocks)
    fan_in = [sum(mi for mi, li in blocks_in if li == lo) for _, lo in out_blocks]
    k = 0
    for (_, li), xi in zip(blocks_in, x, strict=True):
        for o, (_, lo) in enumerate(out_blocks):
            if li != lo:
                continue
            y = jnp.einsum("nui,uw->nwi", xi, weights[k])
            out[o] = y if out[o] is None else out[o] + y
            k += 1
    n, dtype = x[0].shape[0], x[0].dtype
    return [  # an output degree no input reaches is zero, as in e3nn
        jnp.zeros((n, m, 2 * lo + 1), dtype) if y is None else y / math.sqrt(f)
        for y, f, (m, lo) in zip(out, fan_in, out_blocks, strict=True)
    ]


def _mlp(weights, x, act):
    """e3nn ``FullyConnectedNet``: ``x W / √fan_in``, activation between layers."""
    for i, w in enumerate(weights):
        x = x @ w / math.sqrt(w.shape[0])
        if i < len(weights) - 1:
            x = act(x)
    return x


def _build(config, species, atomic_energies, scale, shift, params_init):
    if not isinstance(config, SevenNetConfig):
        raise ConfigError(f"expected a SevenNetConfig, got {type(config).__name__}")
    table = species_table(species)
    k = table.num_species
    e0 = atomic_energy_table(table.species, atomic_energies)
    rc = config.cutoff
    norm = config.activation_normalization
    raw_act = _ACTIVATIONS[config.activation]

    def act(x):
        return raw_act(x) * jnp.asarray(norm, x.dtype)

    modal_index = config.modalities.index(config.modality) if config.modalities else 0
    shapes = _shapes(config, k)

    def modal_block(n, dtype, name):
        """The modality one-hot as an extra scalar block, where ``name`` takes it."""
        if not config.modalities or name not in config.modal_linears:
            return [], ()
        hot = jax.nn.one_hot(modal_index, len(config.modalities), dtype=dtype)
        block = jnp.broadcast_to(hot[None, :, None], (n, len(config.modalities), 1))
        return [block], ((len(config.modalities), 0),)

    def cutoff_fn(r):
        if config.cutoff_function == "poly_cut":
            return polynomial_envelope(r, rc, config.poly_cut_p)
        r_on = config.cutoff_on
        sq, on, cut = r * r, r_on * r_on, rc * rc
        switch = (cut - sq) ** 2 * (cut + 2 * sq - 3 * on) / (cut - on) ** 3
        return jnp.where(r < r_on, 1.0, switch)

    def atomic_energies_fn(params, structure, graph):
        dtype = structure.positions.dtype
        params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
        n = structure.positions.shape[0]
        rows, real, unknown = table.lookup(structure.numbers)
        geo = edge_geometry(structure, graph, rc, real)
        r = geo.length[:, None]  # [e, 1], 1 on invalid edges
        basis = (2.0 / rc) * jnp.sin(params["bessel_roots"] * r) / r
        radial = jnp.where(geo.valid[:, None], basis * cutoff_fn(r), 0.0)
        vec = geo.unit if config.normalize_sph else geo.unit * r
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(config.lmax_sh, p=1),
            vec,
            normalize=False,
            normalization="component",
        )
        sh_l = [sh.array[:, d * d : (d + 1) ** 2] for d in range(config.lmax_sh + 1)]
        senders, receivers = graph.senders, graph.receivers

        one_hot = table.one_hot(structure.numbers, dtype)[:, :, None]  # [n, k, 1]
        h_blocks = _blocks(config.irreps[0])
        h = _linear(params["embedding"], ((k, 0),), [one_hot], h_blocks)

        for t, lp in enumerate(params["layers"]):
            out_irreps = config.irreps[t + 1]
            gate_in = _gate_blocks(out_irreps)
            sc = _linear(lp["self_connection"], h_blocks, h, gate_in)
            extra, extra_blocks = modal_block(n, dtype, "self_interaction_1")
            x = _linear(
                lp["self_interaction_1"], h_blocks + extra_blocks, h + extra, h_blocks
            )
            paths, tp_out = _convolution_paths(
                config.irreps[t], config.lmax_sh, e3nn.Irreps(out_irreps).lmax
            )
            w = _mlp(lp["radial"], radial, act)  # [e, Σ mul]
            w = jnp.where(geo.valid[:, None], w, 0.0)
            by_degree = {lo: [] for _, lo in tp_out}
            x_j = [xb[receivers] for xb in x]  # [e, mul, 2l+1], one gather a block
            start = 0
            for i, l2, lo, mul in paths:
                l1 = h_blocks[i][1]
                cg = jnp.asarray(e3nn.clebsch_gordan(l1, l2, lo), dtype)
                y = jnp.einsum("ej,ijk->eik", sh_l[l2], cg * math.sqrt(2 * lo + 1))
                msg = jnp.einsum("eui,eik->euk", x_j[i], y)
                msg = msg * w[:, start : start + mul, None]
                start += mul
                by_degree[lo].append(msg)
            d = jnp.asarray(config.denominators[t], dtype)
            x = [
                jax.ops.segment_sum(jnp.concatenate(by_degree[lo], 1), senders, n) / d
                for _, lo in tp_out
            ]
            extra, extra_blocks = modal_block(n, dtype, "self_interaction_2")
            x = _linear(
                lp["self_interaction_2"], tp_out + extra_blocks, x + extra, gate_in
            )
            x = [a + b for a, b in zip(x, sc, strict=True)]
            # gate: scalars, then one gate scalar per gated channel
            out_blocks = _blocks(out_irreps)
            n_scalar = sum(m for m, deg in out_blocks if deg == 0)
            scalars, gates = x[0][:, :n_scalar], act(x[0][:, n_scalar:])
            h, g0 = [act(scalars)], 0
            for (m, _), xl in zip(gate_in[1:], x[1:], strict=True):
                h.append(xl * gates[:, g0 : g0 + m])
                g0 += m
            h_blocks = out_blocks

        extra, extra_blocks = modal_block(n, dtype, "readout")
        hidden = ((e3nn.Irreps(config.irreps[-1]).dim // 2, 0),)
        h = _linear(
            params["readout_hidden"], h_blocks + extra_blocks, h + extra, hidden
        )
        e = _linear(params["readout"], hidden, h, ((1, 0),))[0][:, 0, 0]  # [n]
        shift_z = params["species_shift"][modal_index][rows]
        e = e * params["species_scale"][rows] + shift_z
        return total_atomic_energies(e, rows, real, unknown, e0, scale, shift)

    def energy(params, structure, graph):
        return jnp.sum(atomic_energies_fn(params, structure, graph))

    def init(key, structure):
        check_init_species(potential, structure)
        dtype = (
            jnp.result_type(float) if structure is None else structure.positions.dtype
        )
        if params_init is not None:
            return jax.tree.map(lambda x: jnp.asarray(x, dtype), params_init)
        is_shape = lambda s: isinstance(s, tuple) and all(isinstance(v, int) for v in s)  # noqa: E731
        leaves, treedef = jax.tree.flatten(shapes, is_leaf=is_shape)
        keys = jax.random.split(key, len(leaves))
        drawn = [
            jax.random.normal(kk, s, dtype) for kk, s in zip(keys, leaves, strict=True)
        ]
        params = jax.tree.unflatten(treedef, drawn)
        # a fresh model starts from the textbook roots nπ/r_c, unit scale, no shift
        params["bessel_roots"] = jnp.arange(1, config.num_basis + 1, dtype=dtype) * (
            math.pi / rc
        )
        params["species_scale"] = jnp.ones((k,), dtype)
        params["species_shift"] = jnp.zeros_like(params["species_shift"])
        return params

    potential = Potential(init, energy, float(rc), table.species, "sevennet")
    return potential, atomic_energies_fn


def sevennet_model(
    config: SevenNetConfig,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
    params: dict | None = None,
) -> Potential:
    """Build a SevenNet potential from its architecture.

    Pretrained models come ready from ``mldiff.potentials.get("sevennet-0")``
    or :func:`mldiff.potentials.sevennet`; this builder serves checkpoints
    (``mldiff.load``) and fine-tuning.

    Args:
        config: the architecture.
        species: atomic numbers of the one-hot table, sorted (89 for SevenNet-0).
        atomic_energies: extra per-element reference energy E0, eV (default 0);
            ``scale`` and ``shift`` act on the model's per-atom energy as
            ``scale·E_i + shift + E0``. The defaults leave SevenNet unchanged.
        scale: dimensionless.
        shift: eV/atom.
        params: the converted parameters, returned by ``init`` (cast to the
            structure's dtype); ``None``: ``init`` draws N(0, 1) weights.

    Returns:
        A :class:`Potential` named ``"sevennet"``; ``energy(params, structure,
        graph)`` is the total energy in eV, computed in the dtype of
        ``structure.positions`` (SevenNet itself runs in float32).

    Example:
        >>> import jax
        >>> from mldiff import neighbors
        >>> from mldiff.structure import Structure
        >>> cfg = SevenNetConfig(cutoff=4.0, irreps=("4x0e", "4x0e+2x1e", "4x0e"),
        ...                      radial_mlp=(8,), denominators=(5.0, 5.0))
        >>> pot = sevennet_model(cfg, species=(8, 14))
        >>> s = Structure.create([[0, 0, 0], [1.6, 0, 0]], None, [14, 8], pbc=False)
        >>> params = pot.init(jax.random.key(0), s)
        >>> e = jax.jit(pot.energy)(params, s, neighbors.allocate(s, pot.cutoff))
        >>> e.shape, pot.species
        ((), (8, 14))
    """
    return _build(config, species, atomic_energies, scale, shift, params)[0]


def sevennet_atomic_energies(
    config: SevenNetConfig,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
):
    """Per-atom energies of :func:`sevennet_model`, eV.

    Returns:
        ``atomic_energies(params, structure, graph) -> [n]``, 0 for ghosts.
    """
    return _build(config, species, atomic_energies, scale, shift, None)[1]


def parameter_shapes(config: SevenNetConfig, num_species: int) -> dict:
    """Shapes of the parameter pytree (what a checkpoint converter must fill)."""
    return _shapes(config, num_species)
