"""Scale-out on JAX's own machinery: device meshes, sharded batches, multi-host.

Data parallelism is GSPMD: a padded :class:`~mldiff.data.batching.Batch` is
placed with its leading batch axis split over the ``"batch"`` axis of a
:class:`jax.sharding.Mesh`, the parameters are replicated, and the unchanged
``jax.jit`` step runs on every device; XLA inserts the all-reduce of the
gradients. Results equal single-device ones up to the order of floating-point
reductions. Stacked ensemble parameters can instead be split over a
``"member"`` axis (each device trains ``K / n`` members).

* :func:`make_mesh`, :func:`parse_mesh`, :func:`axis_size`: meshes from a
  device count or a ``"member=2,batch=2"`` spec.
* :func:`batch_sharding`, :func:`member_sharding`, :func:`replicated`:
  :class:`jax.sharding.NamedSharding` s; :func:`shard_batch`,
  :func:`shard_members`, :func:`replicate` place pytrees with them.
* :func:`data_parallel`: a jitted train step whose batch argument is sharded
  and whose outputs (parameters, optimiser state, loss) are replicated.
* :func:`initialize_distributed`, :func:`distributed_settings`: the
  ``jax.distributed.initialize`` wiring; :func:`host_shard`,
  :func:`host_slice`: the part of the data each host reads.
* :func:`to_host`, :func:`process_values`: global values on the host (what a
  checkpoint writes, what a log prints) and one small value from every
  process; collectives in a multi-process run.

Multi-host launch recipe
------------------------
One Python process per host (per node), each seeing its local accelerators.
Every process runs the same script; call :func:`initialize_distributed` before
any other JAX call, then ``jax.devices()`` lists the devices of all hosts and
``jax.local_devices()`` those of this host.

SLURM (one task per node, e.g. 4 nodes with 4 GPUs each)::

    #SBATCH --nodes=4
    #SBATCH --ntasks-per-node=1
    #SBATCH --gpus-per-node=4
    srun python my_job.py            # or: srun mldiff screen ... --distributed

    # my_job.py
    from mldiff import parallel
    info = parallel.initialize_distributed()   # JAX reads SLURM_* itself
    mesh = parallel.make_mesh()                # all 16 GPUs, axis "batch"

TPU pod slice (e.g. v4-32, 4 hosts): run the same command on every worker::

    gcloud compute tpus tpu-vm ssh NAME --worker=all --command="python my_job.py"

JAX finds the coordinator from the TPU metadata. Elsewhere (plain SSH, Kubernetes)
pass the coordinator explicitly, or set ``MLDIFF_COORDINATOR_ADDRESS``
(``host:port``), ``MLDIFF_NUM_PROCESSES`` and ``MLDIFF_PROCESS_ID`` on each
process::

    parallel.initialize_distributed("10.0.0.1:1234", num_processes=4, process_id=k)

Data. For screening each host takes its own contiguous part of the input,
``parallel.host_shard(items)`` (or :func:`mldiff.screening.screen`, which
assigns whole chunks to hosts and evaluates them on the host's local devices).
For training every host builds the same global batch order from the same
(small) file list; :func:`shard_batch` then hands each device only its rows
(``jax.make_array_from_callback``), so no host materialises another's device
buffers.

Checkpoints. The output directory must be on a file system every host sees.
:func:`mldiff.training.checkpoint.save` gathers the arrays (:func:`to_host`),
process 0 alone writes, and every process returns only once the file is in
place; a killed job, restarted on all hosts, resumes from that one file
(:func:`mldiff.training.checkpoint.resume_point` checks that every process
reads the same bytes).

Testing on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set
before JAX is imported gives four CPU devices.

Example:
    >>> import jax.numpy as jnp
    >>> mesh = make_mesh(1)
    >>> mesh.axis_names, axis_size(mesh, "batch"), axis_size(mesh, "member")
    (('batch',), 1, 1)
    >>> x = shard_batch({"e": jnp.zeros(4)}, mesh)
    >>> x["e"].sharding.spec
    P('batch',)
"""

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mldiff.errors import ConfigError

__all__ = [
    "BATCH",
    "MEMBER",
    "DistributedInfo",
    "make_mesh",
    "parse_mesh",
    "axis_size",
    "batch_sharding",
    "member_sharding",
    "replicated",
    "named_sharding",
    "place",
    "check_divisible",
    "shard_batch",
    "shard_members",
    "replicate",
    "data_parallel",
    "distributed_settings",
    "initialize_distributed",
    "host_slice",
    "host_shard",
    "to_host",
    "process_values",
]

BATCH = "batch"  # mesh axis over structures of a batch (data parallelism)
MEMBER = "member"  # mesh axis over ensemble members

_HINT = (
    "on a CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before "
    "JAX is imported to get N devices"
)


# ---------------------------------------------------------------- meshes


def _devices(devices) -> list:
    available = jax.devices()
    if devices is None:
        return list(available)
    if isinstance(devices, int | np.integer):
        n = int(devices)
        if n < 1 or n > len(available):
            raise ConfigError(
                f"asked for {n} devices but {len(available)} are available "
                f"({available[0].platform}); ask for 1 to {len(available)}, or " + _HINT
            )
        return list(available[:n])
    devices = list(devices)
    if not devices:
        raise ConfigError("make_mesh needs at least one device, got an empty list")
    return devices


def make_mesh(
    devices: int | Sequence | None = None,
    axes: Sequence[str] = (BATCH,),
    shape: Sequence[int] | None = None,
) -> Mesh:
    """A device mesh with named axes.

    Args:
        devices: ``None`` (all devices of all hosts), a count ``n`` (the first
            ``n`` of ``jax.devices()``) or a list of devices.
        axes: axis names, e.g. ``("batch",)`` or ``("member", "batch")``.
        shape: devices along each axis; one entry may be ``-1`` (inferred).
            Default: all devices on the one axis (required for several axes).

    Returns:
        The :class:`jax.sharding.Mesh`.

    Raises:
        ConfigError: more devices than available, or a shape that does not
            multiply to the device count.

    Example:
        >>> dict(make_mesh(1, axes=("member", "batch"), shape=(1, -1)).shape)
        {'member': 1, 'batch': 1}
    """
    devs = _devices(devices)
    axes = tuple(str(a) for a in axes)
    if len(set(axes)) != len(axes) or not axes:
        raise ConfigError(f"mesh axes must be distinct names, got {axes!r}")
    if shape is None:
        if len(axes) > 1:
            raise ConfigError(
                f"a mesh with axes {axes} needs shape=, e.g. (2, -1); -1 takes "
                "the remaining devices"
            )
        shape = (len(devs),)
    shape = [int(s) for s in shape]
    if len(shape) != len(axes):
        raise ConfigError(f"mesh shape {shape} does not match axes {axes}")
    if shape.count(-1) > 1:
        raise ConfigError(f"at most one mesh dimension may be -1, got {shape}")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest < 1 or len(devs) % rest:
            raise ConfigError(
                f"cannot spread {len(devs)} devices over mesh shape {shape}; "
                "choose sizes that divide the device count"
            )
        shape[shape.index(-1)] = len(devs) // rest
    if any(s < 1 for s in shape) or math.prod(shape) != len(devs):
        raise ConfigError(
            f"mesh shape {dict(zip(axes, shape, strict=True))} needs "
            f"{math.prod(shape)} devices but {len(devs)} were given; make the "
            "sizes multiply to the device count (or pass devices=N)"
        )
    return Mesh(np.asarray(devs, dtype=object).reshape(shape), axes)


def parse_mesh(spec: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Axis names and sizes from a command-line spec like ``"member=2,batch=2"``.

    Args:
        spec: comma-separated ``AXIS=SIZE``; one size may be ``-1``.

    Returns:
        ``(axes, shape)`` for :func:`make_mesh`.

    Example:
        >>> parse_mesh("member=2, batch=-1")
        (('member', 'batch'), (2, -1))
    """
    axes, shape = [], []
    for part in str(spec).split(","):
        name, sep, size = part.strip().partition("=")
        try:
            value = int(size)
        except ValueError:
            value = None
        if not sep or not name.strip() or value is None:
            raise ConfigError(
                f"mesh spec {spec!r} is not AXIS=SIZE[,AXIS=SIZE]; write e.g. "
                "'batch=4' or 'member=2,batch=2'"
            )
        axes.append(name.strip())
        shape.append(value)
    return tuple(axes), tuple(shape)


def axis_size(mesh: Mesh, axis: str) -> int:
    """Number of devices along ``axis`` (1 when the mesh has no such axis)."""
    return int(dict(mesh.shape).get(axis, 1))


# ---------------------------------------------------------------- shardings


def named_sharding(mesh: Mesh, *axes: str | None) -> NamedSharding:
    """Array axis ``k`` split over mesh axis ``axes[k]``; absent names replicate.

    Example:
        >>> named_sharding(make_mesh(1), "member", "batch").spec
        P(None, 'batch')
    """
    names = mesh.axis_names
    return NamedSharding(
        mesh, PartitionSpec(*(a if a in names else None for a in axes))
    )


def batch_sharding(mesh: Mesh, axis: str = BATCH) -> NamedSharding:
    """Leading axis split over ``axis`` (replicated when the mesh lacks it)."""
    return named_sharding(mesh, axis)


def member_sharding(mesh: Mesh, axis: str = MEMBER) -> NamedSharding:
    """Leading (member) axis of stacked parameters split over ``axis``."""
    return named_sharding(mesh, axis)


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def check_divisible(n: int, mesh: Mesh, axis: str, what: str) -> None:
    """Raise a :class:`ConfigError` unless ``n`` splits evenly over ``axis``.

    Example:
        >>> check_divisible(8, make_mesh(1), "batch", "batch_size")
    """
    d = axis_size(mesh, axis)
    if int(n) % d:
        lower, upper = (int(n) // d) * d, -(-int(n) // d) * d
        raise ConfigError(
            f"{what} = {n} does not divide over the {d} devices of mesh axis "
            f"{axis!r}; use a multiple of {d} (e.g. {lower or upper} or {upper}) "
            "or fewer devices"
        )


def _put(x, sharding: NamedSharding):
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x  # already placed (e.g. parameters returned by the last step)
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    # multi-host: every process holds the same global value; each gives its own
    # devices their slices
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def place(tree, sharding: NamedSharding):
    """Every leaf of ``tree`` as a global array with ``sharding``.

    Single process: ``jax.device_put``. Several processes: each holds the same
    global value and fills its own devices (``jax.make_array_from_callback``).
    """
    return jax.tree.map(lambda x: _put(x, sharding), tree)


def shard_batch(batch, mesh: Mesh, axis: str = BATCH):
    """Every leaf's leading (structure) axis split over ``axis`` of ``mesh``.

    Args:
        batch: a :class:`~mldiff.data.batching.Batch` or any pytree whose
            leaves share a leading axis ``B``.
        mesh: the device mesh.
        axis: the data-parallel mesh axis.

    Returns:
        The same pytree of sharded global arrays (device ``d`` holds rows
        ``d·B/n … (d+1)·B/n − 1``).

    Raises:
        ConfigError: ``B`` is not a multiple of the devices on ``axis``.
    """
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(batch)}
    for b in sizes:
        check_divisible(b, mesh, axis, "batch size")
    return place(batch, batch_sharding(mesh, axis))


def shard_members(stacked_params, mesh: Mesh, axis: str = MEMBER):
    """Stacked ensemble parameters ``[K, ...]`` with ``K`` split over ``axis``.

    Raises:
        ConfigError: ``K`` is not a multiple of the devices on ``axis``.

    Example:
        >>> import jax.numpy as jnp
        >>> p = shard_members({"w": jnp.zeros((3, 2))}, make_mesh(1))
        >>> p["w"].shape
        (3, 2)
    """
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(stacked_params)}
    for k in sizes:
        check_divisible(k, mesh, axis, "number of ensemble members")
    return place(stacked_params, member_sharding(mesh, axis))


def replicate(tree, mesh: Mesh):
    """A full copy of every leaf on every device of ``mesh``."""
    return place(tree, replicated(mesh))


def data_parallel(
    step: Callable, mesh: Mesh, *, batch_argnum: int = 3, axis: str = BATCH
) -> Callable:
    """A jitted step with its batch argument sharded and its outputs replicated.

    GSPMD: ``jax.jit`` compiles ``step`` once for the sharded batch and the
    replicated parameters and inserts the gradient all-reduce itself. The other
    arguments are replicated; every output (parameters, EMA, optimiser state,
    loss) comes back replicated, so it can be checkpointed as is.

    Args:
        step: pure ``step(params, ema, opt_state, batch) -> outputs``, e.g.
            :func:`mldiff.training.loop.train_step`.
        mesh: the device mesh.
        batch_argnum: position of the batch argument.
        axis: the data-parallel mesh axis.

    Returns:
        ``step_fn(*args)`` with the same signature and results equal to
        ``jax.jit(step)`` up to reduction order.

    Raises:
        ConfigError: (when called) a batch size not divisible by the devices.
    """
    jitted = jax.jit(step, out_shardings=replicated(mesh))

    def step_fn(*args):
        args = list(args)
        for k, a in enumerate(args):
            if k == batch_argnum % len(args):
                args[k] = shard_batch(a, mesh, axis)
            else:
                args[k] = replicate(a, mesh)
        return jitted(*args)

    return step_fn


# ---------------------------------------------------------------- multi-host


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributedInfo:
    """Where this process sits in a (possibly multi-host) run.

    Attributes:
        mode: ``"explicit"``, ``"env"``, ``"slurm"``, ``"tpu"`` or ``"single"``.
        process_index: this process, ``0 … process_count − 1``.
        process_count: number of processes (hosts).
        n_devices: devices of all processes.
        n_local_devices: devices of this process.
    """

    mode: str
    process_index: int
    process_count: int
    n_devices: int
    n_local_devices: int


def distributed_settings(
    env: Mapping[str, str] | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """How to call ``jax.distributed.initialize`` here (pure; reads ``env``).

    In order: explicit arguments; ``MLDIFF_COORDINATOR_ADDRESS``,
    ``MLDIFF_NUM_PROCESSES``, ``MLDIFF_PROCESS_ID``; a SLURM job step with
    more than one task (JAX's SLURM detection reads ``SLURM_*``); a TPU pod
    slice with more than one worker (``TPU_WORKER_HOSTNAMES``); otherwise a
    single process, which needs no initialisation.

    Args:
        env: environment variables (default ``os.environ``).
        coordinator_address: ``host:port`` of process 0.
        num_processes: number of processes.
        process_id: this process's index.

    Returns:
        ``(mode, kwargs)`` for ``jax.distributed.initialize(**kwargs)``;
        mode ``"single"`` means do not call it.

    Example:
        >>> distributed_settings({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"})
        ('slurm', {})
        >>> distributed_settings({})
        ('single', {})
    """
    env = os.environ if env is None else env
    explicit = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    if any(v is not None for v in explicit.values()):
        return "explicit", {k: v for k, v in explicit.items() if v is not None}
    if env.get("MLDIFF_COORDINATOR_ADDRESS"):
        try:
            kwargs = {
                "coordinator_address": env["MLDIFF_COORDINATOR_ADDRESS"],
                "num_processes": int(env["MLDIFF_NUM_PROCESSES"]),
                "process_id": int(env["MLDIFF_PROCESS_ID"]),
            }
        except (KeyError, ValueError) as err:
            raise ConfigError(
                "MLDIFF_COORDINATOR_ADDRESS is set, so MLDIFF_NUM_PROCESSES and "
                f"MLDIFF_PROCESS_ID must be integers too ({err}); set all three"
            ) from err
        return "env", kwargs
    if env.get("SLURM_JOB_ID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return "slurm", {}
    workers = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    if len(workers) > 1:
        return "tpu", {}
    return "single", {}


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
) -> DistributedInfo:
    """Call ``jax.distributed.initialize`` when this is a multi-host run.

    Call it once, before any other JAX computation. Settings come from
    :func:`distributed_settings`; a single process is left alone.

    Args:
        coordinator_address: ``host:port`` of process 0 (else from the
            environment).
        num_processes: number of processes.
        process_id: this process's index.
        local_device_ids: restrict this process to these local devices.
        env: environment variables (default ``os.environ``).

    Returns:
        :class:`DistributedInfo`.

    Example:
        >>> initialize_distributed(env={}).process_count
        1
    """
    mode, kwargs = distributed_settings(
        env,
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    if mode != "single" and not jax.distributed.is_initialized():
        if local_device_ids is not None:
            kwargs["local_device_ids"] = local_device_ids
        jax.distributed.initialize(**kwargs)
    return DistributedInfo(
        mode=mode,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        n_devices=jax.device_count(),
        n_local_devices=jax.local_device_count(),
    )


def host_slice(
    n: int, process_index: int | None = None, process_count: int | None = None
) -> slice:
    """The contiguous part of ``n`` items that this host reads.

    The first ``n % count`` hosts get one item more; together the slices
    cover ``0 … n − 1`` once, in order.

    Args:
        n: number of items.
        process_index: this host (default ``jax.process_index()``).
        process_count: number of hosts (default ``jax.process_count()``).

    Returns:
        A ``slice`` into the items.

    Example:
        >>> [host_slice(10, i, 3) for i in range(3)]
        [slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)]
    """
    i = jax.process_index() if process_index is None else int(process_index)
    c = jax.process_count() if process_count is None else int(process_count)
    if c < 1 or not 0 <= i < c:
        raise ConfigError(
            f"process_index {i} must lie in [0, process_count = {c}); pass the "
            "values of jax.process_index() and jax.process_count()"
        )
    base, extra = divmod(int(n), c)
    start = i * base + min(i, extra)
    return slice(start, start + base + (i < extra))


def host_shard(
    items: Sequence, process_index: int | None = None, process_count: int | None = None
) -> list:
    """This host's contiguous shard of ``items`` (:func:`host_slice`).

    Example:
        >>> host_shard(list("abcde"), 1, 2)
        ['d', 'e']
    """
    return list(items[host_slice(len(items), process_index, process_count)])


def _spans_processes(x) -> bool:
    """Whether ``x``'s value is split over devices of several processes."""
    return (
        isinstance(x, jax.Array)
        and not x.is_fully_addressable
        and not x.sharding.is_fully_replicated
    )


def to_host(tree):
    """Every leaf as a NumPy array holding its global value, on every process.

    A leaf sharded over the devices of several processes (stacked ensemble
    parameters split over a ``"member"`` axis that spans hosts, a per-member
    loss) cannot be read by ``np.asarray`` in one process; such leaves are
    all-gathered (``multihost_utils.process_allgather``). Replicated, local and
    NumPy leaves are copied from this process.

    Collective when some leaf spans other processes' devices: then every
    process must call it at the same point with the same tree (structure,
    shapes, shardings), as for any computation on those arrays. In a single
    process it is ``np.asarray`` on every leaf.

    Args:
        tree: a pytree of arrays (jax or NumPy) or scalars.

    Returns:
        The same pytree of ``np.ndarray`` with the arrays' global shapes.

    Example:
        >>> import jax.numpy as jnp
        >>> to_host({"w": jnp.arange(2.0)})
        {'w': array([0., 1.])}
    """
    leaves, treedef = jax.tree.flatten(tree)
    spread = [k for k, x in enumerate(leaves) if _spans_processes(x)]
    if spread:
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(
            [leaves[k] for k in spread], tiled=True
        )
        for k, value in zip(spread, gathered, strict=True):
            leaves[k] = value
    return jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])


def process_values(value) -> np.ndarray:
    """A small host value of every process, stacked: ``[process_count, ...]``.

    Used to check that processes agree (the checkpoint they resume from) and,
    being a collective, as a barrier that carries a result (whether process 0
    wrote a file). Every process must call it at the same point with a value of
    the same shape and dtype.

    Args:
        value: a NumPy array or scalar (int32 / float32 travel unchanged
            whether or not ``jax_enable_x64`` is on).

    Returns:
        ``[P, *value.shape]``, row ``p`` from process ``p``.

    Example:
        >>> process_values(np.int32(7))
        array([7], dtype=int32)
    """
    value = np.asarray(value)
    if jax.process_count() == 1:
        return value[None]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=False))
