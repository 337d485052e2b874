"""MACE-style higher-body-order equivariant potential.

Each layer builds, for every atom i and channel c, the *atomic basis*

    A_i = (1/N_avg) Σ_j R(r_ij) · (W h_j ⊗ Y(r̂_ij))       (2-body, degrees ≤ l_max)

and then its *symmetric contraction* to correlation order ν:

    B_i,c = Σ_{n=1..ν} Σ_k w_{Z_i,n,k,c} · U_n,k : A_i,c^{⊗n}

where ``U_n`` is the basis of symmetric, equivariant n-fold products of the
irreps of A (so an ν = 3 layer sees (ν + 1)-body correlations in one step). The
new features are ``h_i = W B_i + W_{Z_i} h_i^{old}``, and every layer adds a
readout: a linear of the scalars for inner layers, a small MLP for the last.
``E = Σ_i [scale·Σ_t e_i^t + shift + E0(Z_i)]`` over real atoms.

Ghost atoms (Z = 0) contribute exactly 0 and take part in no edge; edges at or
beyond the cutoff are masked, and the polynomial envelope makes the energy C².

References:
    I. Batatia, D. P. Kovács, G. N. C. Simm, C. Ortner and G. Csányi, "MACE:
    Higher order equivariant message passing neural networks for fast and
    accurate force fields", NeurIPS 2022.
    ACEsuit/mace-jax (symmetric contraction with e3nn's reduced symmetric tensor
    product basis); jax-md 0.2.29 ``jax_md/_nn/mace``.
"""

import dataclasses
import math
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

__all__ = ["MACEConfig", "mace", "mace_atomic_energies"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MACEConfig:
    """Hyperparameters of :func:`mace` (stored in checkpoints).

    Attributes:
        cutoff: radial cutoff r_c, Å.
        num_layers: interaction layers (MACE: 2).
        features: channels per irrep degree.
        l_max: highest degree of the spherical harmonics and of A.
        hidden_l_max: highest degree of the features passed between layers
            (the last layer keeps scalars only).
        correlation: order ν of the symmetric contraction (body order ν + 1).
        parity: E(3) (True) or SE(3) only (False); see
            :mod:`mldiff.potentials.layers.irreps`.
        num_basis: Bessel radial basis functions.
        radial_mlp: hidden widths of the radial MLP (no biases).
        envelope_p: order p of the polynomial cutoff envelope (MACE: 5).
        avg_num_neighbors: N_avg for ``A / N_avg``; set it from data
            (:func:`~mldiff.potentials.layers.average_num_neighbors`).
            ``None``: ``(4π/3) r_c³ · 0.06 Å⁻³``.
        readout_mlp: hidden width of the last layer's readout MLP.
        activation: readout-MLP nonlinearity.
        radial_activation: radial-MLP nonlinearity; must vanish at 0.
    """

    cutoff: float = 5.0
    num_layers: int = 2
    features: int = 32
    l_max: int = 2
    hidden_l_max: int = 1
    correlation: int = 3
    parity: bool = True
    num_basis: int = 8
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    envelope_p: int = 5
    avg_num_neighbors: float | None = None
    readout_mlp: int = 16
    activation: str = "silu"
    radial_activation: str = "silu"

    def __post_init__(self):
        """Reject values the model cannot use."""
        check_types(self)
        checks = {
            "cutoff": self.cutoff > 0,
            "num_layers": self.num_layers >= 1,
            "features": self.features >= 1,
            "l_max": self.l_max >= 0,
            "hidden_l_max": 0 <= self.hidden_l_max <= self.l_max,
            "correlation": self.correlation >= 1,
            "num_basis": self.num_basis >= 1,
            "envelope_p": self.envelope_p >= 2,
            "avg_num_neighbors": self.avg_num_neighbors is None
            or self.avg_num_neighbors > 0,
            "readout_mlp": self.readout_mlp >= 1,
        }
        for field, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"MACEConfig.{field}={getattr(self, field)!r} is out of range; "
                    "cutoff, avg_num_neighbors > 0, num_layers, features, "
                    "correlation, num_basis, readout_mlp >= 1, envelope_p >= 2, "
                    "0 <= hidden_l_max <= l_max"
                )
        object.__setattr__(self, "radial_mlp", tuple(int(w) for w in self.radial_mlp))
        object.__setattr__(self, "cutoff", float(self.cutoff))
        if self.avg_num_neighbors is not None:
            object.__setattr__(self, "avg_num_neighbors", float(self.avg_num_neighbors))
        activation(self.activation)
        if abs(float(activation(self.radial_activation)(0.0))) > 1e-12:
            raise ConfigError(
                f"radial_activation={self.radial_activation!r} is not 0 at 0, so "
                "masked edges would carry messages; use 'silu' or 'tanh'"
            )


def _channels(f: int, irreps: e3nn.Irreps) -> e3nn.Irreps:
    """``f`` channels of each irrep: "0e + 1o" → "f×0e + f×1o"."""
    return e3nn.Irreps([(f * mul, ir) for mul, ir in irreps])


class _SymmetricContraction(nn.Module):
    """``B_c = Σ_n Σ_k w_{Z,n,k,c} U_n,k : A_c^{⊗n}``, channel by channel.

    Input ``[n, c, irreps_A]`` and species one-hot ``[n, k]``; output
    ``[n, c, irreps_out]``.
    """

    irreps_out: str  # per channel, e.g. "1x0e+1x1o"
    correlation: int
    num_species: int

    @nn.compact
    def __call__(self, a: e3nn.IrrepsArray, species):
        n, c = a.shape[:2]
        x = a.array  # [n, c, d]
        irreps_out = e3nn.Irreps(self.irreps_out)
        out = {ir: None for _, ir in irreps_out}  # ir -> [n, c, 2l + 1]
        for order in range(1, self.correlation + 1):
            # U: [d]*order + [paths, 2l + 1], symmetric in its first `order` axes
            basis = e3nn.reduced_symmetric_tensor_product_basis(
                a.irreps, order, keep_ir=irreps_out
            )
            for (paths, ir), u in zip(basis.irreps, basis.chunks, strict=True):
                t = jnp.tensordot(x, jnp.asarray(u, x.dtype), axes=(2, 0))
                for _ in range(order - 1):  # contract the remaining copies of A
                    t = jnp.einsum("ncd...,ncd->nc...", t, x)  # -> [n, c, paths, 2l+1]
                w = self.param(
                    f"w{order}_{ir}",
                    nn.initializers.normal(stddev=1.0),
                    (self.num_species, paths, c),
                    x.dtype,
                )
                w = jnp.einsum("nk,kpc->npc", species, w)  # [n, paths, c]
                term = jnp.einsum("ncpm,npc->ncm", t, w) / math.sqrt(paths)
                out[ir] = term if out[ir] is None else out[ir] + term
        chunks = [
            None if out[ir] is None else out[ir][:, :, None, :] for _, ir in irreps_out
        ]
        return e3nn.from_chunks(irreps_out, chunks, (n, c), x.dtype)


class _Interaction(nn.Module):
    """One MACE layer: atomic basis, symmetric contraction, update."""

    config: MACEConfig
    num_species: int
    avg_num_neighbors: float
    irreps_out: str  # per channel, e.g. "1x0e+1x1o"

    @nn.compact
    def __call__(self, h, species, sh, radial, valid, senders, receivers):
        cfg = self.config
        n, f = h.shape[0], cfg.features
        irreps_out = e3nn.Irreps(self.irreps_out)
        a_irreps = natural_irreps(cfg.l_max, cfg.parity)

        h_up = linear(h.irreps, name="linear_up")(h)
        weights = mlp(
            cfg.radial_mlp + (num_path_weights(h_up.irreps, sh.irreps, a_irreps),),
            activation(cfg.radial_activation),
            name="radial_mlp",
        )(radial)  # [e, paths × channels]
        weights = jnp.where(valid[:, None], weights, 0.0)
        messages = weighted_tensor_product(h_up[receivers], sh, weights, a_irreps)
        a = e3nn.scatter_sum(messages, dst=senders, output_size=n)
        a = a / jnp.asarray(self.avg_num_neighbors, a.dtype)
        a = linear(_channels(f, a_irreps), force_irreps_out=True, name="linear_a")(
            a
        )  # [n, f·dim A], every degree present so that channels can split off
        a = a.mul_to_axis(f)  # [n, f, dim A]

        b = _SymmetricContraction(
            self.irreps_out, cfg.correlation, self.num_species, name="contraction"
        )(a, species)
        b = b.axis_to_mul()  # [n, f·dim out]
        out = linear(_channels(f, irreps_out), name="linear_out")(b)
        # species self-connection W_{Z_i} h_i: weights mixed by the one-hot
        return out + linear(
            _channels(f, irreps_out), force_irreps_out=True, name="self_connection"
        )(species, h)


class _MACENet(nn.Module):
    """Embedding, ``num_layers`` interactions, readouts summed over layers."""

    config: MACEConfig
    num_species: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, one_hot, rows, unit, radial, valid, senders, receivers):
        cfg = self.config
        del rows  # species enter through the one-hot (zero for ghosts)
        k = self.num_species
        sh = spherical_harmonics(unit, cfg.l_max, cfg.parity)
        h = e3nn.IrrepsArray(f"{k}x0e", one_hot)
        h = linear(f"{cfg.features}x0e", name="embedding")(h)
        energy = jnp.zeros(one_hot.shape[0], one_hot.dtype)
        for t in range(cfg.num_layers):
            last = t == cfg.num_layers - 1
            irreps_out = str(
                natural_irreps(0 if last else cfg.hidden_l_max, cfg.parity)
            )
            h = _Interaction(
                cfg, k, self.avg_num_neighbors, irreps_out, name=f"layer_{t}"
            )(h, one_hot, sh, radial, valid, senders, receivers)
            if last:
                e = mlp(
                    (cfg.readout_mlp, 1),
                    activation(cfg.activation),
                    name=f"readout_{t}",
                )(h.filter(keep="0e"))
            else:
                e = linear("0e", name=f"readout_{t}")(h)
            energy = energy + e.array[:, 0]
        return energy  # [n]


def _build(config, species, atomic_energies, scale, shift):
    config = MACEConfig() if config is None else config
    if not isinstance(config, MACEConfig):
        raise ConfigError(f"expected a MACEConfig, got {type(config).__name__}")
    table = species_table(species)
    avg = config.avg_num_neighbors
    avg = default_num_neighbors(config.cutoff) if avg is None else float(avg)
    net = _MACENet(config, table.num_species, avg)
    return graph_potential(
        net,
        table=table,
        cutoff=config.cutoff,
        num_basis=config.num_basis,
        envelope_p=config.envelope_p,
        e0=atomic_energy_table(table.species, atomic_energies),
        scale=float(scale),
        shift=float(shift),
        name="mace",
    )


def mace(
    config: MACEConfig | None = None,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
) -> Potential:
    """Build a MACE-style equivariant potential of body order ``correlation + 1``.

    Args:
        config: hyperparameters; default ``MACEConfig()``.
        species: atomic numbers the model has embeddings for; atomic number 0
            (ghost padding) is always accepted.
        atomic_energies: reference energy E0 per element, eV (missing: 0).
        scale: per-atom energy scale, eV.
        shift: per-atom energy shift, eV.

    Returns:
        A :class:`Potential` named ``"mace"``; ``init``/``energy`` as for
        :func:`~mldiff.potentials.nequip.nequip`.

    Raises:
        ConfigError: for a bad ``config`` or ``species``.

    Example:
        >>> import jax
        >>> from mldiff import neighbors
        >>> from mldiff.structure import Structure
        >>> cfg = MACEConfig(num_layers=1, features=4, l_max=1, radial_mlp=(8,))
        >>> pot = mace(cfg, species=(14,))
        >>> s = Structure.create([[0, 0, 0], [1.4] * 3], None, [14, 14], pbc=False)
        >>> params = pot.init(jax.random.key(0), s)
        >>> jax.jit(pot.energy)(params, s, neighbors.allocate(s, pot.cutoff)).shape
        ()
    """
    return _build(config, species, atomic_energies, scale, shift)[0]


def mace_atomic_energies(
    config: MACEConfig | None = None,
    *,
    species: Sequence[int],
    atomic_energies: Mapping[int, float] | None = None,
    scale: float = 1.0,
    shift: float = 0.0,
):
    """Per-atom energies of :func:`mace` with the same arguments and params.

    Returns:
        ``atomic_energies(params, structure, graph) -> [n]`` eV, 0 for ghosts,
        summing to ``mace(...).energy``.
    """
    return _build(config, species, atomic_energies, scale, shift)[1]
