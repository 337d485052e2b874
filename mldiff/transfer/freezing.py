"""Freezing and per-group learning rates for any parameter pytree.

Every leaf of a parameter pytree has a *path*, its keys joined by ``/``
(``"params/layer_0/radial_mlp/Dense_0/kernel"``). Rules ``(regex, label)``
give each leaf a label (the first rule whose regex ``re.search``-es the path
wins); :func:`partition_optimizer` then gives each label its own learning
rate through ``optax.multi_transform``, with ``optax.set_to_zero()`` for
frozen labels, so frozen leaves receive exactly zero updates and stay
bit-identical.

:data:`MODULE_GROUPS` holds ready-made rules for mldiff's models:

- NequIP / MACE: ``embedding`` (species embedding), ``interaction``
  (``layer_k`` message-passing blocks), ``readout`` (``readout*``);
- SevenNet: ``embedding`` (``/embedding/``), ``interaction`` (``/layers/k/``
  blocks and the Bessel roots), ``readout`` (``readout*`` and the per-species
  ``species_scale``/``species_shift``);
- the composition model: ``embedding`` (element embedding), ``interaction``
  (``encoder`` and ``attention_k`` blocks), ``readout``.

:func:`load_matching` loads a pretrained tree into a model whose head
differs (leaves matched by path and shape) and reports what was loaded and
what kept its fresh initialisation; :func:`reinitialize` resets a head and
:func:`add_subtree` adds a new one.

Example:
    >>> import jax.numpy as jnp
    >>> params = {"embedding": {"w": jnp.ones(2)}, "readout": {"w": jnp.ones(1)}}
    >>> label_params(params, [("embedding", "frozen")], default="trainable")
    {'embedding': {'w': 'frozen'}, 'readout': {'w': 'trainable'}}
"""

import re
from collections.abc import Callable, Mapping, Sequence

import jax
import optax

from mldiff.errors import ConfigError

__all__ = [
    "MODULE_GROUPS",
    "path_string",
    "param_paths",
    "label_params",
    "freeze_labels",
    "partition_optimizer",
    "load_matching",
    "reinitialize",
    "add_subtree",
]

#: rules ``(regex, group)`` labelling the parameters of mldiff's models
MODULE_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "nequip": (
        (r"/embedding/", "embedding"),
        (r"/layer_\d+/", "interaction"),
        (r"/readout", "readout"),
    ),
    # SevenNet (mldiff.potentials.sevennet_model): the Bessel roots and the
    # interaction blocks interact; the per-species scale and shift are the head
    "sevennet": (
        (r"^/embedding/", "embedding"),
        (r"^/(layers/\d+|bessel_roots)/", "interaction"),
        (r"^/(readout|species_)", "readout"),
    ),
    "mace": (
        (r"/embedding/", "embedding"),
        (r"/layer_\d+/", "interaction"),
        (r"/readout", "readout"),
    ),
    "composition": (
        (r"/embedding/", "embedding"),
        (r"/(encoder|attention_\d+)/", "interaction"),
        (r"/readout", "readout"),
    ),
}


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_string(path) -> str:
    """A JAX key path as ``"a/b/c"``.

    Args:
        path: a key path from ``jax.tree_util.tree_flatten_with_path``.

    Returns:
        The keys joined by ``/``.

    Example:
        >>> (path, _), = jax.tree_util.tree_flatten_with_path({"a": {"b": 1}})[0]
        >>> path_string(path)
        'a/b'
    """
    return "/".join(_key_name(k) for k in path)


def param_paths(params) -> list[str]:
    """Paths of all leaves, in ``jax.tree_util`` leaf order.

    Example:
        >>> param_paths({"b": {"w": 1}, "a": [2, 3]})
        ['a/0', 'a/1', 'b/w']
    """
    return [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def label_params(params, rules: Sequence[tuple[str, str]], default: str | None = None):
    """A pytree of labels (strings) with the structure of ``params``.

    Args:
        params: any parameter pytree.
        rules: ``(regex, label)`` pairs, tried in order on each leaf's path
            (``re.search``; paths are keys joined by ``/``).
        default: label of leaves that match no rule; ``None``: such a leaf is
            an error.

    Returns:
        Same structure as ``params``, a label at each leaf.

    Raises:
        ConfigError: a leaf matches no rule and ``default`` is None, or a regex
            does not compile.

    Example:
        >>> label_params({"layer_0": {"w": 0}}, [("layer_[0-9]+", "blocks")])
        {'layer_0': {'w': 'blocks'}}
    """
    try:
        compiled = [(re.compile(rx), label) for rx, label in rules]
    except re.error as err:
        raise ConfigError(f"invalid parameter-path regex in {rules!r}: {err}") from None

    def label_of(path, _):
        text = "/" + path_string(path) + "/"
        for rx, label in compiled:
            if rx.search(text):
                return label
        if default is None:
            raise ConfigError(
                f"parameter {text.strip('/')!r} matches none of the rules "
                f"{[rx for rx, _ in rules]}; add a rule or pass default="
            )
        return default

    return jax.tree_util.tree_map_with_path(label_of, params)


def freeze_labels(params, patterns: Sequence[str]):
    """Label ``"frozen"`` where a path matches any pattern, else ``"trainable"``.

    Patterns are regexes searched in ``"/" + path + "/"``; a pattern that
    matches no leaf is an error (a typo would otherwise freeze nothing).

    Args:
        params: any parameter pytree.
        patterns: regexes, e.g. ``["/embedding/", "/layer_0/"]``.

    Returns:
        A label pytree for :func:`partition_optimizer`.

    Raises:
        ConfigError: a pattern matches no parameter (the paths are listed).

    Example:
        >>> freeze_labels({"embedding": {"w": 0}, "readout": {"w": 0}}, ["embed"])
        {'embedding': {'w': 'frozen'}, 'readout': {'w': 'trainable'}}
    """
    paths = ["/" + p + "/" for p in param_paths(params)]
    for pattern in patterns:
        if not any(re.search(pattern, p) for p in paths):
            raise ConfigError(
                f"freeze pattern {pattern!r} matches no parameter; parameter paths "
                f"are: {', '.join(p.strip('/') for p in paths[:40])}"
            )
    return label_params(params, [(p, "frozen") for p in patterns], default="trainable")


def partition_optimizer(
    labels,
    learning_rates: Mapping[str, float | Callable | None],
    transform: Callable[[float | Callable], optax.GradientTransformation] = optax.adam,
    clip_norm: float | None = None,
) -> optax.GradientTransformation:
    """One optimiser per label group, frozen groups getting zero updates.

    Gradients of frozen groups (learning rate ``None`` or ``0``) are zeroed
    first, so that they count neither in the gradient-norm clip nor in the
    optimiser state; the other groups get ``transform(learning_rate)``.

    Args:
        labels: label pytree with the structure of the parameters
            (:func:`label_params`, :func:`freeze_labels`).
        learning_rates: learning rate (a float or an optax schedule) per label;
            ``None`` or ``0`` freezes the group.
        transform: optimiser builder taking a learning rate (default Adam).
        clip_norm: global gradient-norm clip over the trainable leaves
            (``None``: no clip).

    Returns:
        An ``optax.GradientTransformation``.

    Raises:
        ConfigError: a label of ``labels`` has no learning rate.

    Example:
        >>> import jax.numpy as jnp
        >>> p = {"a": jnp.ones(2), "b": jnp.ones(2)}
        >>> opt = partition_optimizer({"a": "x", "b": "y"}, {"x": None, "y": 0.1},
        ...                           optax.sgd)
        >>> u, _ = opt.update(p, opt.init(p), p)
        >>> u["a"].tolist(), u["b"].tolist()
        ([0.0, 0.0], [-0.1, -0.1])
    """
    used = sorted(set(jax.tree_util.tree_leaves(labels)))
    missing = [label for label in used if label not in learning_rates]
    if missing:
        raise ConfigError(
            f"no learning rate for parameter group(s) {missing}; give one for each "
            f"of {used} (None or 0 freezes a group)"
        )

    def frozen(lr) -> bool:
        return lr is None or (not callable(lr) and float(lr) == 0.0)

    zero_frozen = optax.multi_transform(
        {
            label: optax.set_to_zero() if frozen(lr) else optax.identity()
            for label, lr in learning_rates.items()
        },
        labels,
    )
    per_group = optax.multi_transform(
        {
            label: optax.set_to_zero() if frozen(lr) else transform(lr)
            for label, lr in learning_rates.items()
        },
        labels,
    )
    parts = [zero_frozen]
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    return optax.chain(*parts, per_group)


def load_matching(target, source):
    """Copy leaves of ``source`` into ``target`` where path and shape agree.

    For loading a pretrained model into one with a different head (another
    number of outputs, another species set): matching leaves are loaded, the
    rest keep ``target``'s fresh initialisation.

    Args:
        target: freshly initialised parameters of the new model.
        source: pretrained parameters (any pytree; nested dicts as saved).

    Returns:
        ``(params, report)``: ``params`` has ``target``'s structure; ``report``
        is ``{"loaded": [paths], "reset": [paths of target leaves kept fresh],
        "unused": [paths of source leaves not loaded]}``.

    Example:
        >>> import jax.numpy as jnp
        >>> new = {"body": jnp.zeros(2), "head": jnp.zeros(3)}
        >>> old = {"body": jnp.ones(2), "head": jnp.ones(5)}
        >>> p, report = load_matching(new, old)
        >>> p["body"].tolist(), report["reset"], report["unused"]
        ([1.0, 1.0], ['head'], ['head'])
    """
    found = {
        path_string(p): leaf
        for p, leaf in jax.tree_util.tree_flatten_with_path(source)[0]
    }
    loaded, reset = [], []

    def pick(path, leaf):
        key = path_string(path)
        other = found.get(key)
        if other is not None and tuple(other.shape) == tuple(leaf.shape):
            loaded.append(key)
            return jax.numpy.asarray(other, dtype=leaf.dtype)
        reset.append(key)
        return leaf

    params = jax.tree_util.tree_map_with_path(pick, target)
    unused = sorted(set(found) - set(loaded))
    return params, {"loaded": loaded, "reset": reset, "unused": unused}


def reinitialize(params, fresh, patterns: Sequence[str]):
    """Reset the leaves whose path matches any pattern to ``fresh``'s values.

    Args:
        params: trained parameters.
        fresh: a new initialisation with the same structure.
        patterns: regexes searched in ``"/" + path + "/"``, e.g.
            ``["/readout"]``.

    Returns:
        ``(params, reset_paths)``.

    Raises:
        ConfigError: a pattern matches nothing, or the trees differ.

    Example:
        >>> p, reset = reinitialize({"body": 1.0, "head": 2.0},
        ...                         {"body": 0.0, "head": 0.0}, ["head"])
        >>> p, reset
        ({'body': 1.0, 'head': 0.0}, ['head'])
    """
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(fresh):
        raise ConfigError(
            "reinitialize needs a fresh initialisation of the same model "
            "(the parameter trees differ); call the model's init again"
        )
    labels = freeze_labels(params, patterns)
    reset = [
        p
        for p, lab in zip(
            param_paths(params), jax.tree_util.tree_leaves(labels), strict=True
        )
        if lab == "frozen"
    ]
    new = jax.tree_util.tree_map(
        lambda lab, old, init: init if lab == "frozen" else old, labels, params, fresh
    )
    return new, reset


def add_subtree(params, path: str, subtree):
    """A copy of nested-dict ``params`` with ``subtree`` added at ``path``.

    For adding a new output head next to the existing ones.

    Args:
        params: nested dicts of arrays.
        path: keys joined by ``/``, e.g. ``"params/readout_gap"``; must not
            exist yet.
        subtree: the new parameters.

    Returns:
        The new nested dicts (``params`` is not changed).

    Raises:
        ConfigError: ``path`` exists already or passes through a non-dict.

    Example:
        >>> add_subtree({"params": {"body": 1}}, "params/head", {"w": 2})
        {'params': {'body': 1, 'head': {'w': 2}}}
    """
    *parents, name = path.split("/")
    out = dict(params)
    node = out
    for key in parents:
        child = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(child, Mapping):
            raise ConfigError(
                f"cannot add {path!r}: {key!r} is not a dict of parameters; "
                f"top-level keys are {list(params)}"
            )
        node[key] = dict(child)
        node = node[key]
    if name in node:
        raise ConfigError(f"{path!r} exists already; choose a new head name")
    node[name] = subtree
    return out
