"""NequIP-style E(3)-equivariant message-passing potential.

Each atom carries features ``h_i`` of degrees l = 0..l_max. A layer

1. mixes channels, ``h̃ = W h`` (equivariant linear);
2. sends messages ``m_ij = R(r_ij) · (h̃_j ⊗ Y(r̂_ij))`` — the tensor product of
   the neighbor's features with the spherical harmonics of the edge direction,
   one learned radial weight per path and channel from an MLP of the enveloped
   Bessel basis of ``r_ij``;
3. sums them, ``Σ_j m_ij / √N_avg``, mixes channels again and adds the species
   self-connection ``W_{Z_i} h_i``;
4. applies the gated nonlinearity (scalars through φ, l > 0 features scaled by
   φ of extra gate scalars) and, when shapes allow, a residual ``+ h_i``.

After the last layer two linears map the scalars to a raw per-atom number
``e_i``, and ``E = Σ_i [scale·e_i + shift + E0(Z_i)]`` over real atoms.

Ghost atoms (Z = 0) are padding: they contribute exactly 0 and take part in no
edge, so appending them changes nothing. Edges beyond the cutoff (graphs with a
Verlet skin) are masked, and the polynomial envelope makes the energy C² as
atoms cross the cutoff.

References:
    S. Batzner et al., "E(3)-equivariant graph neural networks for data-efficient
    and accurate interatomic potentials", Nat. Commun. 13, 2453 (2022).
    mir-group/nequip (layer layout, √N_avg normalisation); jax-md 0.2.29
    ``jax_md/_nn/nequip.py``; M. Geiger and T. Smidt, "e3nn: Euclidean neural
    networks", arXiv:2207.09453.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax.numpy as jnp

from mldiff._config import check_types
from mldiff.errors import ConfigError
from mldiff.potentials._base import Potential
from mldiff.potentials.layers.assemble import graph_potential
from mldiff.potentials.layers.irreps import (
    linear,
    mlp,
    natural_irreps,
    num_path_weights,
    spherical_harmonics,
    weighted_tensor_product,
)
from mldiff.potentials.layers.scaling import (
    activation,
    atomic_energy_table,
    default_num_neighbors,
)
from mldiff.potentials.layers.species import species_table

__all__ = ["NequIPConfig", "nequip", "nequip_atomic_energies"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class NequIPConfig:
    """Hyperparameters of :func:`nequip` (stored in checkpoints).

    Attributes:
        cutoff: radial cutoff r_c, Å.
        num_layers: interaction (convolution) layers.
        features: channels per irrep degree (multiplicity).
        l_max: highest degree of features and spherical harmonics.
        parity: E(3) (True: "0e + 1o + 2e") or SE(3) only (False: all even,
            jax-md's convention).
        num_basis: Bessel radial basis functions.
        radial_mlp: hidden widths of the radial MLP (no biases, so R(0) = 0).
        envelope_p: order p of the polynomial cutoff envelope u_p.
        avg_num_neighbors: N_avg for the message normalisation ``1/√N_avg``;
            set it from training data (:func:`~mldiff.potentials.layers.
            average_num_neighbors`). ``None``: ``(4π/3) r_c³ · 0.06 Å⁻³``.
        resnet: add ``h_i`` to a layer's output when the irreps match.
        activation: even-scalar nonlinearity (NequIP: "silu").
        odd_activation: odd-scalar nonlinearity (NequIP: "tanh").
        gate_activation: nonlinearity of the gates of l > 0 features.
        radial_activation: radial-MLP nonlinearity; must vanish at 0.
    """

    cutoff: float = 5.0
    num_layers: int = 3
    features: int = 32
    l_max: int = 2
    parity: bool = True
    num_basis: int = 8
    radial_mlp: tuple[int, ...] = (64, 64)
    envelope_p: int = 6
    avg_num_neighbors: float | None = None
    resnet: bool = True
    activation: str = "silu"
    odd_activation: str = "tanh"
    gate_activation: str = "silu"
    radial_activation: str = "silu"

    def __post_init__(self):
        """Reject values the model cannot use."""
        check_types(self)
        checks = {
            "cutoff": self.cutoff > 0,
            "num_layers": self.num_layers >= 1,
            "features": self.features >= 2,
            "l_max": self.l_max >= 0,
            "num_basis": self.num_basis >= 1,
            "envelope_p": self.envelope_p >= 2,
            "avg_num_neighbors": self.avg_num_neighbors is None
            or self.avg_num_neighbors > 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"NequIPConfig.{field}={getattr(self, field)!r} is out of range; "
                    "cutoff, avg_num_neighbors > 0, num_layers, num_basis >= 1, "
                    "features, envelope_p >= 2, l_max >= 0"
                )
        object.__setattr__(self, "radial_mlp", tuple(int(w) for w in self.radial_mlp))
        object.__setattr__(self, "cutoff", float(self.cutoff))
        if self.avg_num_neighbors is not None:
            object.__setattr__(self, "avg_num_neighbors", float(self.avg_num_neighbors))
        for name in ("activation", "odd_activation", "gate_activation"):
            activation(getattr(self, name))
        if abs(float(activation(self.radial_activation)(0.0))) > 1e-12:
            raise ConfigError(
                f"radial_activation={self.radial_activation!r} is not 0 at 0, so "
                "masked edges would carry messages; use 'silu' or 'tanh'"
            )


class _Convolution(nn.Module):
    """One NequIP interaction layer on ``[n]`` atoms and ``[e]`` edges."""

    config: NequIPConfig
    num_species: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, h, species, sh, radial, valid, senders, receivers):
        cfg = self.config
        n = h.shape[0]
        hidden = (cfg.features * natural_irreps(cfg.l_max, cfg.parity)).regroup()
        # gated output: scalars, one gate scalar per l > 0 irrep, then l > 0
        num_gated = hidden.filter(drop="0e + 0o").num_irreps
        pre_gate = (
            hidden.filter(keep="0e") + e3nn.Irreps(f"{num_gated}x0e")
        ).simplify()
        pre_gate = pre_gate + hidden.filter(drop="0e + 0o")

        h_up = linear(h.irreps, name="linear_up")(h)
        weights = mlp(
            cfg.radial_mlp + (num_path_weights(h_up.irreps, sh.irreps, hidden),),
            activation(cfg.radial_activation),
            name="radial_mlp",
        )(radial)  # [e, paths × channels]
        weights = jnp.where(valid[:, None], weights, 0.0)
        messages = weighted_tensor_product(h_up[receivers], sh, weights, hidden)
        node = e3nn.scatter_sum(messages, dst=senders, output_size=n)
        node = node / jnp.sqrt(jnp.asarray(self.avg_num_neighbors, node.dtype))

        out = linear(pre_gate, name="linear_down")(node)
        # species self-connection W_{Z_i} h_i: weights mixed by the one-hot
        out = out + linear(pre_gate, force_irreps_out=True, name="self_connection")(
            species, h
        )
        out = e3nn.gate(
            out,
            even_act=activation(cfg.activation),
            odd_act=activation(cfg.odd_activation),
            even_gate_act=activation(cfg.gate_activation),
            odd_gate_act=activation(cfg.odd_activation),
        )
        if cfg.resnet and out.irreps == h.irreps:
            out = out + h
        return out


class _NequIPNet(nn.Module):
    """Embedding, ``num_layers`` convolutions and a scalar readout."""

    config: NequIPConfig
    num_species: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, one_hot, rows, unit, radial, valid, senders, receivers):
        cfg = self.config
        del rows  # species enter through the one-hot (zero for ghosts)
        k = self.num_species
        sh = spherical_harmonics(unit, cfg.l_max, cfg.parity)  # [e, (l_max+1)²]
        h = e3nn.IrrepsArray(f"{k}x0e", one_hot)
        h = linear(f"{cfg.features}x0e", name="embedding")(h)
        for t in range(cfg.num_layers):
            h = _Convolution(cfg, k, self.avg_num_neighbors, name=f"layer_{t}")(
                h, one_hot, sh, radial, valid, senders, receivers
            )
        h = linear(f"{cfg.features // 2}x0e", name="readout_hidden")(h)
        h = linear("0e", name="readout")(h)
        return h.array[:, 0]  # [n]


def _build(config, species, atomic_energies, scale, shift):
    config = NequIPConfig() if config is None else config
    if not isinstance(config, NequIPConfig):
        raise ConfigError(f"expected a NequIPConfig, got {type(config).__name__}")
    table = species_table(species)
    avg = config.avg_num_neighbors
    avg = default_num_neighbors(config.cutoff) if avg is None else float(avg)
    net = _NequIPNet(config, table.num_species, avg)
    return graph_potential(
        net,
        table=table,
        cutoff=config.cutoff,
        num_basis=config.num_basis,
        envelope_p=config.envelope_p,
        e0=atomic_energy_table(table.species, atomic_energies),
        scale=float(scale),
        shift=float(shift),
        name="nequip",
    )


def nequip(
    config: NequIPConfig | None = None,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
) -> Potential:
    """Build a NequIP-style equivariant potential.

    Args:
        config: hyperparameters; default ``NequIPConfig()``.
        species: atomic numbers the model has embeddings for; atomic number 0
            (ghost padding) is always accepted.
        atomic_energies: reference energy E0 per element, eV (missing: 0).
        scale: per-atom energy scale, eV (e.g. force RMS of the data).
        shift: per-atom energy shift, eV.

    Returns:
        A :class:`Potential` named ``"nequip"`` with ``cutoff = config.cutoff``
        and ``species`` sorted. ``init(key, structure)`` returns flax variables
        ``{"params": ...}`` in the structure's float dtype and raises
        :class:`~mldiff.errors.SpeciesError` for unsupported elements;
        ``energy(params, structure, graph)`` is the total energy, eV, computed
        in the dtype of ``structure.positions`` (NaN if an atom's element is not
        in ``species``).

    Raises:
        ConfigError: for a bad ``config`` or ``species``.

    Example:
        >>> import jax
        >>> from mldiff import neighbors
        >>> from mldiff.structure import Structure
        >>> cfg = NequIPConfig(num_layers=1, features=4, l_max=1, radial_mlp=(8,))
        >>> pot = nequip(cfg, species=(14,), atomic_energies={14: -1.0})
        >>> s = Structure.create([[0, 0, 0], [1.4] * 3], None, [14, 14], pbc=False)
        >>> params = pot.init(jax.random.key(0), s)
        >>> e = jax.jit(pot.energy)(params, s, neighbors.allocate(s, pot.cutoff))
        >>> e.shape, pot.species
        ((), (14,))
    """
    return _build(config, species, atomic_energies, scale, shift)[0]


def nequip_atomic_energies(
    config: NequIPConfig | None = None,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
):
    """Per-atom energies of :func:`nequip` with the same arguments and params.

    Returns:
        ``atomic_energies(params, structure, graph) -> [n]`` eV, 0 for ghosts;
        it sums to ``nequip(...).energy`` (e.g. for per-atom committee spread).
    """
    return _build(config, species, atomic_energies, scale, shift)[1]
