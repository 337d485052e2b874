"""Multi-start minimisation of a smooth objective over a parameter pytree (optax).

All starts run in one compiled program, one after another (``lax.map``: under
``vmap`` the line search's ``lax.cond`` branches would both be evaluated, three
times the work): L-BFGS with
optax's zoom line search (stopping, like scipy's L-BFGS-B, when the largest
gradient component or the relative decrease of the loss is small, or after
``max_steps``) or Adam for a fixed number of steps.
"""

import jax
import jax.numpy as jnp
import optax

from mldiff.errors import ConfigError

__all__ = ["random_starts", "minimize"]


def random_starts(key, params0, n_restarts: int, spread: float = 3.0):
    """Stack ``params0`` and ``n_restarts`` perturbed copies along a new axis 0.

    Each leaf of the restarts is ``params0 + U(-spread, spread)`` elementwise; for
    log-parameterised hyperparameters that is a factor of up to ``e^spread``.

    Returns:
        the pytree with leaves ``[1 + n_restarts, *leaf.shape]``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params0)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for k, leaf in zip(keys, leaves, strict=False):
        leaf = jnp.asarray(leaf)
        u = jax.random.uniform(
            k, (n_restarts, *leaf.shape), leaf.dtype, -spread, spread
        )
        out.append(jnp.concatenate([leaf[None], leaf[None] + u], axis=0))
    return jax.tree_util.tree_unflatten(treedef, out)


def _lbfgs(loss, p0, max_steps, gtol, ftol):
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def cond(c):
        _, _, i, gmax, f_prev, f = c
        small_change = f_prev - f <= ftol * jnp.maximum(
            jnp.maximum(jnp.abs(f_prev), jnp.abs(f)), 1.0
        )
        return (i < max_steps) & (gmax > gtol) & ~((i > 1) & small_change)

    def body(c):
        p, s, i, _, _, f_prev = c
        v, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=loss)
        gmax = optax.tree_utils.tree_max(jax.tree_util.tree_map(jnp.abs, g))
        gmax = jnp.where(jnp.isfinite(gmax) & jnp.isfinite(v), gmax, 0.0)  # failed
        return optax.apply_updates(p, u), s, i + 1, gmax, f_prev, v

    inf = jnp.asarray(jnp.inf, jax.tree_util.tree_leaves(p0)[0].dtype)
    init = (p0, opt.init(p0), jnp.asarray(0), inf, inf, inf)
    p, s, i, gmax, f_prev, f = jax.lax.while_loop(cond, body, init)
    return p


def _adam(loss, p0, max_steps, learning_rate):
    opt = optax.adam(learning_rate)

    def step(c, _):
        p, s = c
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    return jax.lax.scan(step, (p0, opt.init(p0)), None, length=max_steps)[0][0]


def minimize(
    loss,
    starts,
    *,
    optimizer: str = "lbfgs",
    max_steps: int = 200,
    gtol: float = 1e-5,
    ftol: float = 2.2e-9,
    learning_rate: float = 0.05,
):
    """Minimise ``loss`` from every start (leading axis of ``starts``) at once.

    Args:
        loss: ``params -> scalar``, smooth; non-finite values mark failed starts.
        starts: pytree with a leading restart axis, e.g. from :func:`random_starts`.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        max_steps: iteration cap per start.
        gtol: L-BFGS stops when the largest gradient component is below this.
        ftol: L-BFGS stops when one step lowers the loss by less than
            ``ftol · max(|loss|, 1)`` (scipy L-BFGS-B's default ``factr · eps``).
        learning_rate: Adam step size (unconstrained units).

    Returns:
        ``(best_params, best_loss [], losses [r])``; failed starts have loss +inf.
    """
    if optimizer == "lbfgs":

        def run(p0):
            return _lbfgs(loss, p0, max_steps, gtol, ftol)

    elif optimizer == "adam":

        def run(p0):
            return _adam(loss, p0, max_steps, learning_rate)

    else:
        raise ConfigError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    finals = jax.lax.map(run, starts)
    values = jax.vmap(loss)(finals)
    values = jnp.where(jnp.isfinite(values), values, jnp.inf)
    best = jnp.argmin(values)
    best_params = jax.tree_util.tree_map(lambda a: a[best], finals)
    return best_params, values[best], values
