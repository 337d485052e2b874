"""Read a SevenNet checkpoint (``*.pth``) with torch and sevenn, into NumPy.

Only this module imports torch. It lets sevenn build its own model from the
checkpoint (so sevenn's backward-compatibility patches apply), then reads the
architecture off the built modules and the weights off its state dict, and
reorders the species rows from sevenn's type map to ascending atomic number.
"""

import os

import numpy as np

from mldiff.errors import ConfigError
from mldiff.potentials.sevennet_model import SevenNetConfig, parameter_shapes

__all__ = ["read_sevennet_checkpoint"]

EXTRA_HINT = (
    "reading a SevenNet checkpoint needs torch and sevenn: "
    "pip install 'mldiff[universal]' (converted models are cached, so later "
    "loads need neither)"
)


def _import_sevenn():
    try:
        import sevenn  # noqa: F401
        import torch  # noqa: F401
        from sevenn.checkpoint import SevenNetCheckpoint
    except ImportError as err:
        raise ConfigError(f"{EXTRA_HINT} ({err})") from err
    return SevenNetCheckpoint


def _split(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Cut e3nn's flat weight vector into its per-path matrices."""
    sizes = [a * b for a, b in shapes]
    if flat.size != sum(sizes):
        raise ConfigError(
            f"checkpoint weight has {flat.size} numbers, the architecture needs "
            f"{sum(sizes)}; the checkpoint does not match its own config"
        )
    out, start = [], 0
    for (a, b), size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(a, b))
        start += size
    return out


def read_sevennet_checkpoint(path: str | os.PathLike) -> tuple[dict, tuple, dict]:
    """Architecture, species and parameters of a SevenNet checkpoint.

    Args:
        path: a sevenn ``checkpoint_*.pth`` file.

    Returns:
        ``(config, species, params)``: the keyword arguments of
        :class:`~mldiff.potentials.sevennet.SevenNetConfig` (without
        ``modality``), the atomic numbers in ascending order, and the parameter
        pytree of NumPy float32 arrays.

    Raises:
        ConfigError: torch or sevenn missing (names the extra), or an
            architecture option this port does not implement.
    """
    SevenNetCheckpoint = _import_sevenn()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"SevenNet checkpoint {path!r} does not exist")
    cp = SevenNetCheckpoint(path)
    cfg = cp.config
    unsupported = {
        "interaction_type": (cfg.get("interaction_type"), "nequip"),
        "self_connection_type": (cfg.get("self_connection_type"), "linear"),
        "is_parity": (cfg.get("is_parity"), False),
        "use_bias_in_linear": (cfg.get("use_bias_in_linear"), False),
        "readout_as_fcn": (cfg.get("readout_as_fcn"), False),
        "train_denominator": (bool(cfg.get("train_denominator")), False),
        "use_modal_node_embedding": (
            bool(cfg.get("use_modal_node_embedding", False)),
            False,
        ),
        "use_modal_wise_scale": (bool(cfg.get("use_modal_wise_scale", False)), False),
    }
    for key, (value, wanted) in unsupported.items():
        ok = value in wanted if isinstance(wanted, tuple) else value == wanted
        if not ok:
            raise ConfigError(
                f"SevenNet checkpoint {path!r} has {key}={value!r}; mldiff's port "
                f"implements {key}={wanted!r} (as in SevenNet-0, l3i5 and MF-0)"
            )
    act_names = {cfg["act_radial"], cfg["act_scalar"]["e"], cfg["act_gate"]["e"]}
    if act_names != {"silu"}:
        raise ConfigError(
            f"SevenNet checkpoint {path!r} uses activations {sorted(act_names)}; "
            "mldiff's port implements SiLU"
        )
    model = cp.build_model()
    model.eval()
    sd = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    mods = model._modules
    num_layers = int(cfg["num_convolution_layer"])

    # normalize2mom constants of every SiLU in the model: one value
    csts = set()
    for _, module in model.named_modules():
        if type(module).__name__ == "normalize2mom":
            csts.add(1.0 if module._is_id else float(module.cst))
    if len(csts) != 1:
        raise ConfigError(f"expected one activation normalisation, found {csts}")

    emb = mods["edge_embedding"]
    cutoff_module = emb.cutoff_function
    kind = type(cutoff_module).__name__
    if kind == "XPLORCutoff":
        cut = {"cutoff_function": "xplor", "cutoff_on": float(cutoff_module.r_on)}
    elif kind == "PolynomialCutoff":
        cut = {"cutoff_function": "poly_cut", "poly_cut_p": int(cutoff_module.p)}
    else:
        raise ConfigError(f"SevenNet cutoff function {kind} is not implemented")

    irreps = [str(mods["onehot_to_feature_x"].irreps_out)]
    irreps += [
        str(mods[f"{t}_equivariant_gate"].gate.irreps_out) for t in range(num_layers)
    ]
    modal_map = cfg.get("_modal_map") or {}
    modalities = (
        tuple(sorted(modal_map, key=modal_map.get))
        if cfg.get("use_modality", False)
        else ()
    )
    flags = {
        "self_interaction_1": "use_modal_self_inter_intro",
        "self_interaction_2": "use_modal_self_inter_outro",
        "readout": "use_modal_output_block",
    }
    config = {
        "cutoff": float(cfg["cutoff"]),
        "num_basis": int(emb.basis_function.num_basis),
        **cut,
        "lmax_sh": int(emb.spherical.lmax),
        "normalize_sph": bool(cfg["_normalize_sph"]),
        "irreps": tuple(irreps),
        "radial_mlp": tuple(int(w) for w in cfg["weight_nn_hidden_neurons"]),
        "denominators": tuple(
            float(sd[f"{t}_convolution.denominator"][0]) for t in range(num_layers)
        ),
        "activation": "silu",
        "activation_normalization": csts.pop(),
        "modalities": modalities,
        "modal_linears": tuple(
            name for name, flag in flags.items() if modalities and cfg.get(flag)
        ),
    }
    SevenNetConfig(**config, modality=modalities[0] if modalities else None)

    type_map = {int(z): int(i) for z, i in cfg["_type_map"].items()}
    species = tuple(sorted(type_map))
    perm = np.array([type_map[z] for z in species])  # our row a <- sevenn's row
    k = len(species)
    shapes = parameter_shapes(
        SevenNetConfig(**config, modality=modalities[0] if modalities else None), k
    )

    def linear(name, shp):
        return _split(sd[f"{name}.linear.weight"], shp)

    embedding = linear("onehot_to_feature_x", shapes["embedding"])
    embedding = [embedding[0][perm]]
    layers = []
    for t, lshape in enumerate(shapes["layers"]):
        layers.append(
            {
                "self_connection": linear(
                    f"{t}_self_connection_intro", lshape["self_connection"]
                ),
                "self_interaction_1": linear(
                    f"{t}_self_interaction_1", lshape["self_interaction_1"]
                ),
                "radial": [
                    sd[f"{t}_convolution.weight_nn.layer{i}.weight"]
                    for i in range(len(lshape["radial"]))
                ],
                "self_interaction_2": linear(
                    f"{t}_self_interaction_2", lshape["self_interaction_2"]
                ),
            }
        )
        for (a, b), w in zip(lshape["radial"], layers[-1]["radial"], strict=True):
            if w.shape != (a, b):
                raise ConfigError(f"radial MLP weight {w.shape}, expected {(a, b)}")
    scale = sd["rescale_atomic_energy.scale"].reshape(-1)[perm]
    shift = sd["rescale_atomic_energy.shift"].reshape(max(len(modalities), 1), -1)
    if modalities and not cfg.get("use_modal_wise_shift", False):
        shift = np.repeat(shift[:1], len(modalities), axis=0)
    params = {
        "bessel_roots": sd["edge_embedding.basis_function.coeffs"],
        "embedding": embedding,
        "layers": layers,
        "readout_hidden": linear("reduce_input_to_hidden", shapes["readout_hidden"]),
        "readout": linear("reduce_hidden_to_energy", shapes["readout"]),
        "species_scale": scale,
        "species_shift": shift[:, perm],
    }
    return config, species, _as_float32(params)


def _as_float32(tree):
    if isinstance(tree, dict):
        return {k: _as_float32(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_as_float32(v) for v in tree]
    return np.asarray(tree, np.float32)
