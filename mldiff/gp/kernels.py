"""Covariance functions as pure functions of (hyperparameters, x1, x2).

A :class:`Kernel` bundles four pure functions built by a lowercase builder
(:func:`rbf`, :func:`matern`, :func:`rational_quadratic`, :func:`linear`,
:func:`constant`, :func:`white`) and composed with ``+`` and ``*`` (or
:func:`add`, :func:`multiply`):

- ``kernel.init() -> hyper``: initial hyperparameters, a pytree of arrays in
  **unconstrained** form;
- ``kernel(hyper, x1, x2=None) -> [n, m]``: the covariance matrix;
- ``kernel.diag(hyper, x, x2=None) -> [n]``: its diagonal (``x2`` paired row by
  row with ``x``), without building the matrix;
- ``kernel.natural(hyper)``: the same pytree in natural units.

Parameterisation: every hyperparameter is positive and stored as its natural
logarithm under a key that says so (``log_length_scale``, ``log_variance``,
``log_alpha``, ``log_bias``); the natural value is ``exp(raw)``
(:func:`to_natural`, inverse :func:`to_unconstrained`). The hyperparameters of a
sum or product are the tuple ``(hyper_1, hyper_2)`` of its terms', so each term
holds its own sub-tree.

Units: inputs ``x`` carry whatever unit the descriptors have; length scales
carry the same unit (one per input dimension for ARD: pass a vector); variances
carry the unit of the target squared.

White noise follows scikit-learn's ``WhiteKernel`` and GPflow's ``White``:
``kernel(hyper, x)`` (one input set) adds ``variance · I``, while
``kernel(hyper, x1, x2)`` (two input sets, even if equal in value) is zero. The
noise part of a kernel at ``x`` is therefore ``diag(hyper, x) - diag(hyper, x, x)``.

Distances use ``|a|² + |b|² - 2 a·b`` on inputs divided by the length scales and
centred on the mean of ``x1`` (memory ``[n, m]``, not ``[n, m, d]``), clipped at
zero, with exact zeros on the diagonal of ``kernel(hyper, x)``; square roots use
the double-``where`` guard so gradients are finite at zero distance.

References:
    C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine
    Learning* (MIT Press, 2006), ch. 4 (eqs. 4.9, 4.14, 4.17, 4.19).
    scikit-learn 1.x ``sklearn.gaussian_process.kernels``, read for conventions.

Example:
    >>> import jax.numpy as jnp
    >>> k = constant(2.0) * rbf(length_scale=[1.0, 2.0]) + white(0.1)
    >>> hyper = k.init()
    >>> x = jnp.zeros((3, 2))
    >>> k(hyper, x).shape, float(k.diag(hyper, x)[0])
    ((3, 3), 2.1)
"""

import dataclasses
import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from mldiff.errors import ConfigError
from mldiff.space import safe_sqrt

__all__ = [
    "Kernel",
    "rbf",
    "matern",
    "rational_quadratic",
    "linear",
    "constant",
    "white",
    "add",
    "multiply",
    "bounded",
    "to_natural",
    "to_unconstrained",
]

Hyper = Any  # a pytree of unconstrained hyperparameter arrays


def to_natural(raw: Float[Array, "*s"]) -> Float[Array, "*s"]:
    """Natural value of a positive hyperparameter: ``exp(raw)``.

    Args:
        raw: unconstrained value(s), any shape; log of the natural unit.

    Returns:
        positive value(s), same shape, natural unit.

    Example:
        >>> float(to_natural(to_unconstrained(0.5)))
        0.5
    """
    return jnp.exp(raw)


def to_unconstrained(value) -> Float[Array, "*s"]:
    """Unconstrained form of a positive hyperparameter: ``log(value)``.

    Args:
        value: positive number or array, natural unit.

    Returns:
        its natural logarithm, same shape, as a float array of the default dtype.

    Example:
        >>> float(to_unconstrained(1.0))
        0.0
    """
    v = jnp.asarray(value, dtype=jnp.result_type(float))
    return jnp.log(v)


@dataclasses.dataclass(frozen=True, eq=False)
class Kernel:
    """A covariance function: pure functions of unconstrained hyperparameters.

    Instances compare and hash by ``structure`` (which functions, combined how;
    not the initial values), so they are static arguments of ``jax.jit`` and two
    kernels built alike share one compiled program. They are not pytrees (the
    hyperparameters are).

    Attributes:
        init: ``() -> hyper``, initial unconstrained hyperparameters.
        apply: ``(hyper, x1 [n, d], x2 [m, d] | None) -> [n, m]``, covariance in
            the target unit squared; ``x2=None`` means ``x2 = x1`` with white
            noise included.
        diag: ``(hyper, x [n, d], x2 [n, d] | None) -> [n]``, the pointwise
            covariance ``k(x_i, x2_i)``; ``x2=None`` gives the diagonal of
            ``apply(hyper, x)`` (white noise included).
        natural: ``hyper -> pytree`` of the hyperparameters in natural units.
        name: readable description, initial values included.
        structure: what determines ``apply``, ``diag`` and ``natural`` given the
            hyperparameters, e.g. ``"(rbf + white)"``; equality and hash use it.
            ``None`` (the default, for hand-written kernels) compares by
            identity, so two different custom kernels can never share a program.
    """

    init: Callable[[], Hyper]
    apply: Callable[..., jax.Array]
    diag: Callable[..., jax.Array]
    natural: Callable[[Hyper], Any]
    name: str
    structure: str | None = None

    def __eq__(self, other) -> bool:
        """Same structure (initial values may differ), or the same object."""
        if self.structure is None or getattr(other, "structure", None) is None:
            return self is other
        return isinstance(other, Kernel) and self.structure == other.structure

    def __hash__(self) -> int:
        """Hash of the structure, so equal kernels hit one jit cache entry."""
        return id(self) if self.structure is None else hash(self.structure)

    def __call__(self, hyper, x1, x2=None):
        """Covariance matrix ``[n, m]`` (see ``apply``)."""
        return self.apply(hyper, x1, x2)

    def __add__(self, other: "Kernel") -> "Kernel":
        """Sum kernel ``k1 + k2``."""
        return add(self, other)

    def __mul__(self, other: "Kernel") -> "Kernel":
        """Product kernel ``k1 · k2``."""
        return multiply(self, other)

    def __repr__(self) -> str:
        """The kernel's description."""
        return f"Kernel({self.name})"


def _positive(value, what: str) -> jax.Array:
    v = jnp.asarray(value, dtype=jnp.result_type(float))
    if not bool(jnp.all(v > 0)) or not bool(jnp.all(jnp.isfinite(v))):
        raise ConfigError(f"{what} must be positive and finite, got {value!r}")
    return v


def _scaled_sq_dist(x1: jax.Array, x2, length_scale: jax.Array) -> jax.Array:
    """``[n, m]`` squared distances of ``x1 / ℓ`` and ``x2 / ℓ`` (dimensionless)."""
    a = x1 / length_scale
    symmetric = x2 is None or x2 is x1
    b = a if symmetric else x2 / length_scale
    centre = jax.lax.stop_gradient(jnp.mean(a, axis=0))  # r² does not depend on it
    a = a - centre
    b = b - centre
    r2 = jnp.sum(a * a, axis=-1)[:, None] + jnp.sum(b * b, axis=-1)[None, :]
    r2 = jnp.maximum(r2 - 2.0 * (a @ b.T), 0.0)
    if symmetric:
        r2 = jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, r2)
    return r2


def _pointwise_sq_dist(x: jax.Array, x2, length_scale: jax.Array) -> jax.Array:
    if x2 is None or x2 is x:
        return jnp.zeros(x.shape[0], x.dtype)
    return jnp.sum(((x - x2) / length_scale) ** 2, axis=-1)


def _stationary(name, profile, extra, length_scale, variance):
    ls0 = _positive(length_scale, "length_scale")
    var0 = _positive(variance, "variance")
    extra0 = {k: _positive(v, k.removeprefix("log_")) for k, v in extra.items()}

    def init():
        h = {"log_length_scale": jnp.log(ls0), "log_variance": jnp.log(var0)}
        h.update({k: jnp.log(v) for k, v in extra0.items()})
        return h

    def apply(hyper, x1, x2=None):
        ls = jnp.exp(hyper["log_length_scale"])
        r2 = _scaled_sq_dist(x1, x2, ls)
        return jnp.exp(hyper["log_variance"]) * profile(r2, hyper)

    def diag(hyper, x, x2=None):
        ls = jnp.exp(hyper["log_length_scale"])
        r2 = _pointwise_sq_dist(x, x2, ls)
        return jnp.exp(hyper["log_variance"]) * profile(r2, hyper)

    def natural(hyper):
        return {k.removeprefix("log_"): jnp.exp(v) for k, v in hyper.items()}

    ard = "ARD, " if ls0.ndim else ""
    return Kernel(init, apply, diag, natural, f"{name}({ard}ℓ={ls0}, σ²={var0})", name)


def rbf(length_scale=1.0, variance=1.0) -> Kernel:
    """Squared-exponential kernel ``σ² exp(-r²/2)``, ``r = |x - x'| / ℓ``.

    Args:
        length_scale: ℓ, scalar or ``[d]`` (ARD), unit of ``x``.
        variance: σ², unit of the target squared.

    Returns:
        the kernel; hyperparameters ``{"log_length_scale", "log_variance"}``.

    References:
        Rasmussen & Williams (2006), eq. 4.9; sklearn ``ConstantKernel * RBF``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = rbf(2.0)
        >>> round(float(k(k.init(), jnp.zeros((1, 1)), jnp.full((1, 1), 2.0))[0, 0]), 6)
        0.606531
    """
    return _stationary(
        "rbf", lambda r2, h: jnp.exp(-0.5 * r2), {}, length_scale, variance
    )


def matern(nu: float = 1.5, length_scale=1.0, variance=1.0) -> Kernel:
    """Matérn kernel for ν = ½, 3⁄2 or 5⁄2, ``r = |x - x'| / ℓ``.

    ``ν=½: σ² e^{-r}``; ``ν=3⁄2: σ² (1 + √3 r) e^{-√3 r}``;
    ``ν=5⁄2: σ² (1 + √5 r + 5r²/3) e^{-√5 r}``.

    Args:
        nu: smoothness ν, one of 0.5, 1.5, 2.5.
        length_scale: ℓ, scalar or ``[d]`` (ARD), unit of ``x``.
        variance: σ², unit of the target squared.

    Returns:
        the kernel; hyperparameters ``{"log_length_scale", "log_variance"}``.

    References:
        Rasmussen & Williams (2006), eqs. 4.14 and 4.17; sklearn ``Matern``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = matern(0.5)
        >>> round(float(k(k.init(), jnp.zeros((1, 1)), jnp.ones((1, 1)))[0, 0]), 6)
        0.367879
    """
    if nu == 0.5:

        def profile(r2, h):
            return jnp.exp(-safe_sqrt(r2))

    elif nu == 1.5:

        def profile(r2, h):
            r = math.sqrt(3.0) * safe_sqrt(r2)
            return (1.0 + r) * jnp.exp(-r)

    elif nu == 2.5:

        def profile(r2, h):
            r = math.sqrt(5.0) * safe_sqrt(r2)
            return (1.0 + r + r * r / 3.0) * jnp.exp(-r)

    else:
        raise ConfigError(f"Matérn nu must be 0.5, 1.5 or 2.5, got {nu!r}")
    return _stationary(f"matern{nu}", profile, {}, length_scale, variance)


def rational_quadratic(length_scale=1.0, alpha=1.0, variance=1.0) -> Kernel:
    """Rational quadratic kernel ``σ² (1 + r²/(2α))^{-α}``, ``r = |x - x'| / ℓ``.

    Args:
        length_scale: ℓ, scalar or ``[d]`` (ARD), unit of ``x``.
        alpha: α > 0, scale mixture parameter, dimensionless.
        variance: σ², unit of the target squared.

    Returns:
        the kernel; hyperparameters ``{"log_length_scale", "log_variance",
        "log_alpha"}``.

    References:
        Rasmussen & Williams (2006), eq. 4.19; sklearn ``RationalQuadratic``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = rational_quadratic(alpha=0.5)
        >>> round(float(k(k.init(), jnp.zeros((1, 1)), jnp.ones((1, 1)))[0, 0]), 6)
        0.707107
    """

    def profile(r2, h):
        a = jnp.exp(h["log_alpha"])
        return (1.0 + r2 / (2.0 * a)) ** (-a)

    return _stationary(
        "rational_quadratic", profile, {"log_alpha": alpha}, length_scale, variance
    )


def linear(variance=1.0, bias=None) -> Kernel:
    """Linear (dot-product) kernel ``b + Σ_k σ²_k x_k x'_k``.

    Args:
        variance: σ², scalar or ``[d]`` (per-dimension weights), target unit
            squared per input unit squared.
        bias: b > 0, or ``None`` for no bias term; target unit squared.
            sklearn's ``DotProduct(sigma_0)`` is ``linear(1.0, sigma_0**2)``.

    Returns:
        the kernel; hyperparameters ``{"log_variance"}`` (+ ``"log_bias"``).

    Example:
        >>> import jax.numpy as jnp
        >>> k = linear(2.0, bias=1.0)
        >>> float(k(k.init(), jnp.ones((1, 2)), jnp.ones((1, 2)))[0, 0])
        5.0
    """
    var0 = _positive(variance, "variance")
    bias0 = None if bias is None else _positive(bias, "bias")

    def init():
        h = {"log_variance": jnp.log(var0)}
        if bias0 is not None:
            h["log_bias"] = jnp.log(bias0)
        return h

    def _b(hyper):
        return jnp.exp(hyper["log_bias"]) if "log_bias" in hyper else 0.0

    def apply(hyper, x1, x2=None):
        x2 = x1 if x2 is None else x2
        return (x1 * jnp.exp(hyper["log_variance"])) @ x2.T + _b(hyper)

    def diag(hyper, x, x2=None):
        x2 = x if x2 is None else x2
        return jnp.sum(x * jnp.exp(hyper["log_variance"]) * x2, axis=-1) + _b(hyper)

    def natural(hyper):
        return {k.removeprefix("log_"): jnp.exp(v) for k, v in hyper.items()}

    return Kernel(init, apply, diag, natural, f"linear(σ²={var0}, b={bias0})", "linear")


def constant(variance=1.0) -> Kernel:
    """Constant kernel ``c`` (sklearn ``ConstantKernel``); scales products.

    Args:
        variance: c > 0, target unit squared (or dimensionless as a factor).

    Returns:
        the kernel; hyperparameters ``{"log_variance"}``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = constant(3.0)
        >>> k(k.init(), jnp.zeros((2, 1))).tolist()
        [[3.0, 3.0], [3.0, 3.0]]
    """
    var0 = _positive(variance, "variance")

    def init():
        return {"log_variance": jnp.log(var0)}

    def apply(hyper, x1, x2=None):
        m = x1.shape[0] if x2 is None else x2.shape[0]
        c = jnp.exp(hyper["log_variance"])
        return jnp.full((x1.shape[0], m), 1.0, x1.dtype) * c

    def diag(hyper, x, x2=None):
        return jnp.full((x.shape[0],), 1.0, x.dtype) * jnp.exp(hyper["log_variance"])

    def natural(hyper):
        return {"variance": jnp.exp(hyper["log_variance"])}

    return Kernel(init, apply, diag, natural, f"constant({var0})", "constant")


def white(variance=1.0) -> Kernel:
    """White noise ``σ² δ``: ``σ² I`` on one input set, zero between two sets.

    Args:
        variance: σ², noise variance in the target unit squared.

    Returns:
        the kernel; hyperparameters ``{"log_variance"}``.

    References:
        sklearn ``WhiteKernel``; GPflow ``White``.

    Example:
        >>> import jax.numpy as jnp
        >>> k, x = white(0.5), jnp.zeros((2, 1))
        >>> k(k.init(), x).tolist(), k(k.init(), x, x).tolist()
        ([[0.5, 0.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]])
    """
    var0 = _positive(variance, "variance")

    def init():
        return {"log_variance": jnp.log(var0)}

    def apply(hyper, x1, x2=None):
        v = jnp.exp(hyper["log_variance"])
        if x2 is None:
            return jnp.eye(x1.shape[0], dtype=x1.dtype) * v
        return jnp.zeros((x1.shape[0], x2.shape[0]), x1.dtype) * v

    def diag(hyper, x, x2=None):
        v = jnp.exp(hyper["log_variance"])
        return jnp.full((x.shape[0],), 1.0 if x2 is None else 0.0, x.dtype) * v

    def natural(hyper):
        return {"variance": jnp.exp(hyper["log_variance"])}

    return Kernel(init, apply, diag, natural, f"white({var0})", "white")


def _combine(k1: Kernel, k2: Kernel, op, name: str, symbol: str) -> Kernel:
    """``op(k1, k2)`` elementwise; hyperparameters ``(hyper_1, hyper_2)``."""

    def init():
        return (k1.init(), k2.init())

    def apply(hyper, x1, x2=None):
        return op(k1.apply(hyper[0], x1, x2), k2.apply(hyper[1], x1, x2))

    def diag(hyper, x, x2=None):
        return op(k1.diag(hyper[0], x, x2), k2.diag(hyper[1], x, x2))

    def natural(hyper):
        return (k1.natural(hyper[0]), k2.natural(hyper[1]))

    return Kernel(
        init, apply, diag, natural, name, f"({k1.structure} {symbol} {k2.structure})"
    )


def add(k1: Kernel, k2: Kernel) -> Kernel:
    """Sum kernel ``k1 + k2``; hyperparameters ``(hyper_1, hyper_2)``.

    Args:
        k1: first term.
        k2: second term.

    Returns:
        the sum, in the units of the terms (which must agree).

    Example:
        >>> import jax.numpy as jnp
        >>> k = add(constant(1.0), constant(2.0))
        >>> float(k(k.init(), jnp.zeros((1, 1)))[0, 0])
        3.0
    """
    return _combine(k1, k2, operator.add, f"{k1.name} + {k2.name}", "+")


def multiply(k1: Kernel, k2: Kernel) -> Kernel:
    """Product kernel ``k1 · k2``; hyperparameters ``(hyper_1, hyper_2)``.

    Args:
        k1: first factor.
        k2: second factor.

    Returns:
        the product (units multiply).

    Example:
        >>> import jax.numpy as jnp
        >>> k = multiply(constant(2.0), constant(3.0))
        >>> float(k(k.init(), jnp.zeros((1, 1)))[0, 0])
        6.0
    """
    return _combine(k1, k2, operator.mul, f"({k1.name}) * ({k2.name})", "*")


def bounded(kernel: Kernel, name: str, lower, upper) -> Kernel:
    """``kernel`` with one positive hyperparameter confined to ``[lower, upper]``.

    The hyperparameter ``log_<name>`` of a stationary or white kernel is
    replaced by an unconstrained ``bounded_<name>`` = u with
    ``log value = log lower + (log upper - log lower) · sigmoid(u)``, so any
    optimiser of the unconstrained parameters (:func:`mldiff.gp.fit_hyperparameters`)
    respects the bounds, as scikit-learn's ``*_bounds``. ``natural`` reports
    the value under its own name.

    Args:
        kernel: a kernel whose hyperparameters are a dict holding ``log_<name>``
            (rbf, matern, rational_quadratic, constant, white, linear).
        name: ``"length_scale"``, ``"variance"``, ...
        lower: lower bound (a scalar for every entry), natural unit.
        upper: upper bound, same; ``lower < initial value < upper``.

    Returns:
        the bounded kernel (structure ``bounded[name,lower,upper](...)``).

    Raises:
        ConfigError: bounds not positive, not ordered, or not enclosing the
            kernel's initial value.

    Example:
        >>> k = bounded(rbf(length_scale=1.0), "length_scale", 0.1, 10.0)
        >>> float(k.natural(k.init())["length_scale"])
        1.0
        >>> h = {**k.init(), "bounded_length_scale": jnp.asarray(50.0)}
        >>> round(float(k.natural(h)["length_scale"]), 6)  # saturates at upper
        10.0
    """
    raw, key = f"log_{name}", f"bounded_{name}"
    if not isinstance(kernel.init(), dict) or raw not in kernel.init():
        raise ConfigError(
            f"bounded needs a kernel with hyperparameter {raw!r}; got {kernel.name} "
            "(bound the terms of a sum or product before combining them)"
        )
    # scalars: the bounds are constants of the compiled program, so the
    # structure (the jit cache key) must name them exactly
    lower, upper = float(lower), float(upper)
    lo = jnp.log(_positive(lower, "lower bound"))
    hi = jnp.log(_positive(upper, "upper bound"))
    v0 = kernel.init()[raw]
    if not bool(jnp.all(lo < v0)) or not bool(jnp.all(v0 < hi)):
        raise ConfigError(
            f"bounds ({lower}, {upper}) of {name} must enclose its initial value "
            f"{jnp.exp(v0)} strictly"
        )

    def to_raw(hyper):
        h = dict(hyper)
        h[raw] = lo + (hi - lo) * jax.nn.sigmoid(h.pop(key))
        return h

    def init():
        h = dict(kernel.init())
        t = (h.pop(raw) - lo) / (hi - lo)
        return {**h, key: jnp.log(t) - jnp.log1p(-t)}

    def apply(hyper, x1, x2=None):
        return kernel.apply(to_raw(hyper), x1, x2)

    def diag(hyper, x, x2=None):
        return kernel.diag(to_raw(hyper), x, x2)

    def natural(hyper):
        return kernel.natural(to_raw(hyper))

    text = f"{name},{lower!r},{upper!r}"
    structure = (
        None if kernel.structure is None else f"bounded[{text}]({kernel.structure})"
    )
    return Kernel(
        init, apply, diag, natural, f"bounded[{text}]({kernel.name})", structure
    )
