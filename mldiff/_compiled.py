"""Keep a long-lived process under the kernel's limit on memory mappings.

Every compiled XLA CPU program holds a few memory mappings (about 3 measured:
400 small jitted functions took a process from 438 to 1,703 mappings, and
``jax.clear_caches()`` brought it back to 524). Linux refuses new mappings past
``vm.max_map_count`` (65,530 by default), and XLA then dies in LLVM with
"Cannot allocate memory". A loop whose data bring new padded shapes every
iteration (active learning: a growing labeled set, new MD frames) compiles new
programs each time and reaches the limit after hours; it calls
:func:`release_if_near_map_limit` once per iteration.
"""

import jax

__all__ = ["memory_mappings", "release_if_near_map_limit"]

_MAPS = "/proc/self/maps"
_LIMIT = "/proc/sys/vm/max_map_count"


def memory_mappings() -> tuple[int, int] | None:
    """``(mappings in use, kernel limit)`` of this process; ``None`` off Linux."""
    try:
        with open(_LIMIT) as f:
            limit = int(f.read())
        with open(_MAPS) as f:
            used = sum(1 for _ in f)
    except (OSError, ValueError):
        return None
    return used, limit


def release_if_near_map_limit(fraction: float = 0.5) -> bool:
    """Drop JAX's compiled programs if mappings exceed ``fraction`` of the limit.

    The next call of each jitted function compiles it again; nothing else
    changes. Off Linux (no such limit to read) nothing is done.

    Args:
        fraction: share of ``vm.max_map_count`` above which caches are cleared.

    Returns:
        whether the caches were cleared.
    """
    counts = memory_mappings()
    if counts is None or counts[0] <= fraction * counts[1]:
        return False
    jax.clear_caches()
    return True
