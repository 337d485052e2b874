"""Type checks for frozen configuration dataclasses, at their construction.

Configs arrive from YAML, TOML, JSON and command lines, where ``epochs: ten``
or ``features: "four"`` are easy to write and would otherwise fail deep inside
a computation (or, worse, not fail). :func:`check_types` compares every field
with its annotation when the config is made and raises a :class:`ConfigError`
that names the field, the value and the type wanted.

Lenient only where the intent is unambiguous: an integer where a float is
wanted; a float with an integral value where an integer is wanted; a numeric
string where a float is wanted (YAML 1.1 reads ``1e-3`` as a string); a list
where a tuple is wanted. Those values are converted in place.
"""

import dataclasses
import math
import types
import typing
from collections.abc import Mapping

from mldiff.errors import ConfigError

__all__ = ["check_types", "checked_values"]


class _Mismatch(Exception):
    pass


def _convert(value, annotation, where: str):
    """``value`` as ``annotation`` wants it, or :class:`_Mismatch`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any or isinstance(annotation, typing.TypeVar):
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(value, option, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Mismatch
    if annotation is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is tuple or annotation is tuple:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise _Mismatch
        return tuple(_convert(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is list or annotation is list:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return [_convert(v, args[0], where) for v in value] if args else list(value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
        raise _Mismatch
    return value  # callables, arrays and other rich types are not checked here


def _describe(annotation) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (tuple, list) or annotation in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "a mapping (key: value)"
    return getattr(annotation, "__name__", str(annotation))


def checked_values(cls, values: Mapping, where: str | None = None) -> dict:
    """``values`` for ``cls(**values)``, checked and converted field by field.

    For constructors that arrive from files: runs before the dataclass is
    made, so it also works where a runtime type checker guards ``__init__``.
    Keys that are not fields are left for the constructor to refuse.

    Raises:
        ConfigError: as :func:`check_types`.
    """
    where = where or cls.__name__
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for field in dataclasses.fields(cls):
        if field.name in out and field.name in hints:
            try:
                out[field.name] = _convert(out[field.name], hints[field.name], where)
            except _Mismatch:
                raise ConfigError(
                    f"{where}: {field.name} must be {_describe(hints[field.name])}, "
                    f"got {out[field.name]!r}"
                ) from None
    return out


def check_types(config, where: str | None = None) -> None:
    """Check (and where unambiguous convert) every field of a dataclass.

    Call from ``__post_init__`` of a frozen dataclass; converted values are
    written back with ``object.__setattr__``.

    Args:
        config: the dataclass instance.
        where: name for messages (default the class name).

    Raises:
        ConfigError: a value that does not match its field's annotation,
            naming the field, the value and what is wanted.
    """
    where = where or type(config).__name__
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        annotation = hints.get(field.name)
        if annotation is None:
            continue
        value = getattr(config, field.name)
        try:
            converted = _convert(value, annotation, where)
        except _Mismatch:
            raise ConfigError(
                f"{where}: {field.name} must be {_describe(annotation)}, got {value!r}"
            ) from None
        if converted is not value:
            object.__setattr__(config, field.name, converted)
