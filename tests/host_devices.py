"""The environment of a test subprocess that sees several CPU devices.

Importable from any test module, as ``tiny_models``. The device count must be
set before JAX starts, hence a subprocess; the environment keeps the
``XLA_FLAGS`` that ``tests/conftest.py`` set (the compile settings) and adds
the device count.
"""

import os


def host_devices_env(n: int) -> dict[str, str]:
    """``os.environ`` plus ``n`` host CPU devices and the CPU platform."""
    flags = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"
    )
    return {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
