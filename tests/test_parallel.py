"""Meshes, sharded batches, data-parallel training and jax.distributed wiring.

Tests that need several devices run in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the flag must be set
before JAX is imported; this pytest process has imported it already). The
subprocess trains the same tiny NequIP on one device and on a 4-device mesh and
saves both parameter sets; the reference is the single-device run.
"""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from host_devices import host_devices_env

from mldiff import parallel
from mldiff.errors import ConfigError

_SETUP = """
import dataclasses, json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from mldiff import ensemble, parallel
from mldiff.data import label
from mldiff.errors import ConfigError
from mldiff.training import TrainConfig, loop

assert jax.device_count() == 4, jax.devices()
out = sys.argv[1]
TINY = {"num_layers": 1, "features": 4, "l_max": 1, "radial_mlp": [8],
        "cutoff": 3.0, "num_basis": 4}
rng = np.random.default_rng(0)
structures = []
for k in range(10):
    atoms = bulk("Cu", "fcc", a=3.6 + 0.05 * rng.standard_normal(), cubic=True)
    if k % 3 == 1:
        atoms.numbers[0] = 79
    atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
    structures.append(atoms)
items = label(structures, EMT(), progress=False)
config = TrainConfig(model="nequip", model_config=TINY, epochs=2, batch_size=4,
                     learning_rate=5e-2, warmup_epochs=1, patience=0, n_buckets=1,
                     dtype="float64", seed=5)

def save(name, params):
    leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
    np.savez(f"{out}/{name}.npz", *leaves)
"""

_TRAIN = """
mesh = parallel.make_mesh(4)
try:
    loop.train(dataclasses.replace(config, batch_size=6), items[:8], items[8:],
               f"{out}/bad", progress=False, mesh=mesh)
    bad = "no error"
except ConfigError as err:
    bad = str(err)
single = loop.train(config, items[:8], items[8:], f"{out}/single", progress=False)
sharded = loop.train(config, items[:8], items[8:], f"{out}/sharded", progress=False,
                     mesh=mesh)
save("single", single.model.params)
save("sharded", sharded.model.params)
shardings = {str(x.sharding.spec) for x in jax.tree.leaves(sharded.model.params)}
json.dump({"bad": bad, "shardings": sorted(shardings),
           "train_loss": [h["train_loss"] for h in single.history],
           "val": [single.history[-1]["val_loss"], sharded.history[-1]["val_loss"]]},
          open(f"{out}/info.json", "w"))
"""

_ENSEMBLE = """
mesh = parallel.make_mesh(4, axes=("member", "batch"), shape=(2, 2))
single = ensemble.train_ensemble(config, 2, items[:8], items[8:], f"{out}/e1",
                                 bootstrap=True)
sharded = ensemble.train_ensemble(config, 2, items[:8], items[8:], f"{out}/e2",
                                  bootstrap=True, mesh=mesh)
save("single", single.ensemble.params)
save("sharded", sharded.ensemble.params)
shardings = {str(x.sharding.spec) for x in jax.tree.leaves(sharded.ensemble.params)}
json.dump({"shardings": sorted(shardings)}, open(f"{out}/info.json", "w"))
"""


def run_on_four_devices(code: str, out_dir) -> None:
    """Run ``code`` in a fresh Python with 4 CPU devices; ``sys.argv[1]`` = out."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(out_dir)],
        env=host_devices_env(4),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _leaves(path):
    with np.load(path) as z:
        return [z[f"arr_{k}"] for k in range(len(z.files))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel_train")
    run_on_four_devices(_SETUP + _TRAIN, out)
    import json

    return out, json.loads((out / "info.json").read_text())


def test_sharded_training_matches_single_device(trained):
    # reference: the same training on one device; float64, the only difference
    # is the order of the gradient all-reduce (issue 12: 1e-5)
    out, info = trained
    single, sharded = _leaves(out / "single.npz"), _leaves(out / "sharded.npz")
    assert len(single) == len(sharded) > 0
    worst = max(
        float(np.max(np.abs(a - b))) for a, b in zip(single, sharded, strict=True)
    )
    assert worst < 1e-5
    # 2 epochs of 2 steps moved the parameters: the loss changed between epochs
    first, second = info["train_loss"]
    assert abs(first - second) > 1e-3 * abs(first)
    np.testing.assert_allclose(info["val"][0], info["val"][1], rtol=1e-8)
    # parameters come back replicated over the mesh
    assert info["shardings"] == ["PartitionSpec()"] or info["shardings"] == ["P()"]


def test_batch_size_not_divisible_by_devices_is_rejected(trained):
    _, info = trained
    assert "batch_size = 6" in info["bad"] and "multiple of 4" in info["bad"]


@pytest.mark.slow
def test_member_sharded_ensemble_matches_single_device(tmp_path):
    # reference: train_ensemble on one device (bootstrap weights sharded too)
    run_on_four_devices(_SETUP + _ENSEMBLE, tmp_path)
    single = _leaves(tmp_path / "single.npz")
    sharded = _leaves(tmp_path / "sharded.npz")
    worst = max(
        float(np.max(np.abs(a - b))) for a, b in zip(single, sharded, strict=True)
    )
    assert worst < 1e-5


_TWO_HOSTS = (
    """
import sys
pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from mldiff import parallel
info = parallel.initialize_distributed(f"localhost:{port}", num_processes=2,
                                       process_id=pid)
assert (info.process_count, info.n_devices, info.n_local_devices) == (2, 4, 2)
"""
    + _SETUP.replace("assert jax.device_count() == 4, jax.devices()", "").replace(
        "out = sys.argv[1]", "out = sys.argv[3]"
    )
    + """
result = loop.train(config, items[:8], items[8:], f"{out}/host{pid}",
                    progress=False, mesh=parallel.make_mesh())
save(f"host{pid}", result.model.params)
"""
)


@pytest.mark.slow
def test_two_processes_train_like_one_device(tmp_path):
    # reference: single-device training in this process. Two processes with two
    # CPU devices each form one 4-device mesh through jax.distributed (gloo)
    import json
    import socket

    from mldiff.training import loop

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = str(sock.getsockname()[1])
    env = host_devices_env(2)
    code = textwrap.dedent(_TWO_HOSTS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(pid), port, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-4000:]
    # the same data and configuration as _SETUP, on one device
    namespace = {}
    exec(
        textwrap.dedent(_SETUP)
        .replace("assert jax.device_count() == 4, jax.devices()", "")
        .replace("out = sys.argv[1]", f"out = {json.dumps(str(tmp_path))}"),
        namespace,
    )
    ref = loop.train(
        namespace["config"],
        namespace["items"][:8],
        namespace["items"][8:],
        tmp_path / "ref",
        progress=False,
    )
    expected = [np.asarray(x) for x in jax.tree.leaves(ref.model.params)]
    for pid in (0, 1):
        got = _leaves(tmp_path / f"host{pid}.npz")
        worst = max(
            float(np.max(np.abs(a - b))) for a, b in zip(got, expected, strict=True)
        )
        assert worst < 1e-5


# ---------------------------------------------------------------- one device


def test_mesh_on_one_device_and_its_errors():
    mesh = parallel.make_mesh(1)
    assert dict(mesh.shape) == {"batch": 1}
    n = jax.device_count()
    with pytest.raises(ConfigError, match="XLA_FLAGS"):
        parallel.make_mesh(n + 1)
    with pytest.raises(ConfigError, match="needs shape"):
        parallel.make_mesh(1, axes=("member", "batch"))
    with pytest.raises(ConfigError, match="multiply"):
        parallel.make_mesh(1, axes=("member", "batch"), shape=(2, 1))
    with pytest.raises(ConfigError, match="AXIS=SIZE"):
        parallel.parse_mesh("batch:4")
    assert parallel.parse_mesh("batch=4") == (("batch",), (4,))


def test_shard_members_keeps_values_on_one_device():
    # reference: the unsharded array (placement must not change values)
    w = jnp.arange(6.0).reshape(3, 2)
    placed = parallel.shard_members({"w": w}, parallel.make_mesh(1))["w"]
    np.testing.assert_array_equal(np.asarray(placed), np.asarray(w))
    assert placed.sharding.is_fully_replicated  # the mesh has no member axis


def test_data_parallel_step_equals_jit_on_one_device():
    # reference: the plain jitted step (same arithmetic on a 1-device mesh)
    def step(params, ema, opt_state, batch):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((batch["x"] * p) ** 2))(params)
        return params - 0.1 * g, ema, opt_state, loss

    batch = {"x": jnp.arange(8.0)}
    ref = jax.jit(step)(1.0, 0.0, 0.0, batch)
    got = parallel.data_parallel(step, parallel.make_mesh(1))(1.0, 0.0, 0.0, batch)
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(ref[0]), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(got[3]), np.asarray(ref[3]), rtol=1e-14)


@pytest.mark.parametrize("n", [0, 1, 7, 10, 201])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_host_shards_cover_the_items_once_in_order(n, count):
    # reference: numpy.array_split (contiguous, larger parts first)
    items = list(range(n))
    shards = [parallel.host_shard(items, i, count) for i in range(count)]
    expected = [list(a) for a in np.array_split(np.arange(n), count)]
    assert shards == expected


def test_host_slice_rejects_a_bad_process_index():
    with pytest.raises(ConfigError, match="process_index"):
        parallel.host_slice(10, 3, 3)


def test_distributed_settings_from_arguments_and_environment():
    # reference: jax.distributed.initialize's own arguments and cluster detection
    mode, kw = parallel.distributed_settings(
        {}, coordinator_address="10.0.0.1:1234", num_processes=4, process_id=2
    )
    assert mode == "explicit"
    assert kw == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 2,
    }
    env = {
        "MLDIFF_COORDINATOR_ADDRESS": "h0:99",
        "MLDIFF_NUM_PROCESSES": "2",
        "MLDIFF_PROCESS_ID": "1",
    }
    assert parallel.distributed_settings(env) == (
        "env",
        {"coordinator_address": "h0:99", "num_processes": 2, "process_id": 1},
    )
    with pytest.raises(ConfigError, match="MLDIFF_PROCESS_ID"):
        parallel.distributed_settings({"MLDIFF_COORDINATOR_ADDRESS": "h0:99"})
    assert parallel.distributed_settings(
        {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}
    ) == ("slurm", {})
    # a single-task SLURM job is a single process
    assert parallel.distributed_settings(
        {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}
    ) == ("single", {})
    assert parallel.distributed_settings({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}) == (
        "tpu",
        {},
    )
    info = parallel.initialize_distributed(env={})
    assert (info.mode, info.process_index, info.process_count) == ("single", 0, 1)
    assert info.n_devices == jax.device_count()
