"""Shared test setup: float64, one BLAS thread, fast XLA compiles, reference systems."""

import atexit
import itertools
import os
import shutil
import tempfile

# One BLAS thread per process. ``pytest -n 2`` already fills both cores, and
# OpenBLAS threads competing with XLA's made ASE's small scipy solves (its cell
# filter in notebook 01) 10-30x slower. The variable reaches the subprocesses
# (notebook kernels, CLI runs); threadpoolctl limits this, already loaded, one.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# One persistent XLA compilation cache per test run, shared through the
# environment by the xdist workers, notebook kernels and CLI subprocesses, so a
# program they all build compiles once (the TTSP fits run in tests, CLI and
# notebook; the potentials' programs in tests and notebooks). Measured on
# the notebook, TTSP, MD and active-loop tests with 2 workers: 314 s -> 279 s.
# Programs under 0.1 s of compile are not cached: caching every one (jax-md's
# ~120 import-time programs take 0.03 s each) made a full run no faster
# (1,856 -> 1,940 CPU-s, within this VM's noise).
# A fresh directory each run, removed at exit.
if (
    "PYTEST_XDIST_WORKER" not in os.environ
    and "JAX_COMPILATION_CACHE_DIR" not in os.environ
):
    _xla_cache = tempfile.mkdtemp(prefix="mldiff-xla-cache-")
    atexit.register(shutil.rmtree, _xla_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

# Converted SevenNet checkpoints go to a per-run cache, not the user's
# ~/.cache/mldiff: each run converts the real checkpoints afresh (a second load
# in the same run reads the cache, as a user's would).
if "PYTEST_XDIST_WORKER" not in os.environ and "MLDIFF_CACHE_DIR" not in os.environ:
    _mldiff_cache = tempfile.mkdtemp(prefix="mldiff-cache-")
    atexit.register(shutil.rmtree, _mldiff_cache, ignore_errors=True)
    os.environ["MLDIFF_CACHE_DIR"] = _mldiff_cache

# Tests compile hundreds of small programs and run each briefly, so XLA's
# compile time is most of a test run (85 % of the CPU time of tests/phonons +
# tests/potentials + test_ensemble.py, measured with jax.monitoring's compile
# events). Two settings make XLA's CPU backend compile faster than it loses in
# run time:
# - LLVM optimisation level 0 (tests/potentials + tests/phonons, 2 workers:
#   409 -> 319 CPU-s);
# - the classic elemental emitters instead of the MLIR fusion emitters
#   (``--xla_cpu_use_fusion_emitters=false``: backend compile time of
#   test_nequip + test_force_constants + test_gp_exact 60 -> 27 s, wall time
#   106 -> 77 s).
# The numerics are IEEE either way (no fast-math), and every test compares
# with a tolerance or with another run under the same flags. Inherited by the
# workers, notebook kernels and subprocesses; to test the code as users run
# it, set XLA_FLAGS yourself (any value containing
# ``xla_backend_optimization_level`` replaces these), e.g.
# XLA_FLAGS=--xla_backend_optimization_level=3 pytest ...
_FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
)
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), _FAST_COMPILE]
    ).strip()

import jax  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")

# (a pytest plugin may have imported JAX before the variables were set)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1.0")),
)
jax.config.update("jax_enable_x64", True)
# NaN debugging is opt-in (``MLDIFF_DEBUG_NANS=1 pytest ...``): it locates
# where a NaN first appears, but every numerical assertion already fails on a
# NaN, and the check after every jitted call and eager op cost ~10 % of the
# run (tests/potentials + tests/phonons, 2 workers: 451 -> 409 CPU-s).
jax.config.update("jax_debug_nans", os.environ.get("MLDIFF_DEBUG_NANS", "") == "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def keys():
    """``next(keys)`` gives a fresh PRNG key."""
    return (jax.random.key(i) for i in itertools.count())


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(20261125)


def rattled_bulk(symbol, crystal, a, repeat, stdev, seed, cubic=False):
    """An ASE bulk crystal repeated and rattled (reference-system helper)."""
    from ase.build import bulk

    atoms = bulk(symbol, crystal, a=a, cubic=cubic).repeat(repeat)
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


# Tests that take half a minute or more each (measured with --durations),
# started first so that `pytest -n 2` does not finish on one of them while the
# other worker idles: longest-first scheduling.
_LONG_FIRST = ("test_notebooks.py", "test_quickstart.py", "active/test_loop.py")


def pytest_collection_modifyitems(config, items):
    """Move the long tests to the front (a stable sort: order otherwise kept)."""
    items.sort(key=lambda item: not item.nodeid.split("::")[0].endswith(_LONG_FIRST))
