"""Root pytest setup: the package's doctests run in float64, like the tests."""

import jax

jax.config.update("jax_enable_x64", True)
