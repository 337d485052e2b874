"""Count JAX compilations through its public monitoring events.

``jax.monitoring`` reports a ``/jax/core/compile/jaxpr_trace_duration`` event,
with the function's name, each time ``jit`` traces a function for a new
signature (a cache miss); a call served by the in-memory cache reports
nothing. Tests use it instead of the private ``_cache_size``.
"""

import collections
import contextlib

import jax.monitoring

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@contextlib.contextmanager
def count_traces():
    """``Counter`` of traces by function name, filled while the block runs.

    Example:
        with count_traces() as traces:
            f(x)
        assert traces["f"] == 0  # served by the compiled program
    """
    counts = collections.Counter()

    def listener(event, duration, **kwargs):
        if event == TRACE_EVENT:
            counts[kwargs.get("fun_name")] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
