"""Potentials as pure ``(init, energy)`` pairs, and a registry of reference ones.

Every potential — classical reference or learned — is a :class:`Potential`:
``init(key, structure) -> params`` and ``energy(params, structure, graph) -> eV``.
Derived quantities (forces, stress, Hessians) come from :mod:`mldiff.quantities`.

Example:
    >>> from mldiff import potentials
    >>> pot = potentials.get("morse", r0=2.5)
    >>> pot.name, pot.cutoff
    ('morse', 6.75)
"""

from collections.abc import Callable

from mldiff.errors import ConfigError
from mldiff.potentials._base import Potential, check_potential, check_species
from mldiff.potentials.emt import emt
from mldiff.potentials.lj import lennard_jones
from mldiff.potentials.mace import MACEConfig, mace
from mldiff.potentials.morse import morse
from mldiff.potentials.nequip import NequIPConfig, nequip
from mldiff.potentials.sevennet_model import SevenNetConfig, sevennet_model
from mldiff.potentials.sw import stillinger_weber
from mldiff.potentials.universal import PRETRAINED, canonical_name, sevennet

__all__ = [
    "Potential",
    "check_potential",
    "check_species",
    "get",
    "available",
    "lennard_jones",
    "morse",
    "stillinger_weber",
    "emt",
    "nequip",
    "NequIPConfig",
    "mace",
    "MACEConfig",
    "sevennet",
    "sevennet_model",
    "SevenNetConfig",
]

_BUILDERS: dict[str, Callable[..., Potential]] = {
    "lj": lennard_jones,
    "morse": morse,
    "sw": stillinger_weber,
    "emt": emt,
    "nequip": nequip,
    "mace": mace,
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`: reference, learned and pretrained models."""
    return tuple(sorted(_BUILDERS)) + tuple(sorted(PRETRAINED))


def get(name: str, **kwargs) -> Potential:
    """Build a potential by name.

    Reference potentials: ``"lj"``, ``"morse"``, ``"sw"``, ``"emt"``. Learned
    models: ``"nequip"``, ``"mace"`` (these need ``species=`` and start
    untrained; trained ones come from ``mldiff.load``). Pretrained universal
    models: ``"sevennet-0"``, ``"sevennet-0-22may2024"``, ``"sevennet-l3i5"``,
    ``"sevennet-mf-0"`` (with ``modality="PBE"`` or ``"R2SCAN"``); see
    :func:`sevennet`. A modality may follow the name after a colon
    (``"sevennet-mf-0:PBE"``), for command lines.

    Args:
        name: registry name (case-insensitive).
        **kwargs: passed to the builder (e.g. ``sigma=`` for LJ).

    Returns:
        The :class:`Potential`.
    """
    model, _, modality = name.partition(":")  # "sevennet-mf-0:PBE"
    if canonical_name(model) is not None:
        if modality:
            kwargs = {"modality": modality, **kwargs}
        return sevennet(canonical_name(model), **kwargs)
    key = name.lower().replace("-", "_")
    aliases = {"lennard_jones": "lj", "stillinger_weber": "sw"}
    key = aliases.get(key, key)
    if key not in _BUILDERS:
        raise ConfigError(
            f"unknown potential {name!r}; choose one of {', '.join(available())}"
        )
    if key in ("nequip", "mace") and "species" not in kwargs:
        raise ConfigError(
            f"potential {name!r} is a learned architecture: pass species=[atomic "
            "numbers] to build an untrained one, or load a trained model with "
            "mldiff.load(checkpoint)"
        )
    return _BUILDERS[key](**kwargs)
