"""Two-process training, killed and resumed, ends where an unbroken run ends.

Users run multi-host training as one process per host joined by
``jax.distributed``. Here two CPU processes on localhost (coordinator at a free
port, two host devices each, gloo collectives) form one 4-device mesh:

* an ensemble of 2 members on a ``member=2, batch=2`` mesh whose member axis
  spans the processes, so each member's parameters live on one process only
  (what ``np.asarray`` in every process could not save);
* a single model on a 4-device ``batch`` mesh that spans both processes.

Each is trained 3 epochs without a break, and again with both processes killed
(``SIGKILL``, as a scheduler's time limit does) while they wait after the
second epoch's checkpoint, then relaunched. Reference: the unbroken
two-process run; the resumed run must end with the same parameters, EMA,
optimiser state and history, bit for bit up to 1e-12. Three launches of two
processes; the programs compile in the first and come from the persistent
compilation cache (set by ``tests/conftest.py``) in the others.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from host_devices import host_devices_env

from mldiff.training import checkpoint

_WORKER = """
import json, os, sys, time
pid, port, out, phase = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, sys.argv[5])  # tests/, for tiny_models
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from mldiff import parallel
info = parallel.initialize_distributed(f"localhost:{port}", num_processes=2,
                                       process_id=pid)
assert (info.process_count, info.n_devices, info.n_local_devices) == (2, 4, 2)
import numpy as np
from tiny_models import TINY_NEQUIP, emt_items
from mldiff import ensemble
from mldiff.training import TrainConfig, checkpoint, loop

writes = []  # checkpoint files this process wrote
_write = checkpoint.write_checkpoint_file
def counted(path, *args, **kwargs):
    writes.append(os.path.basename(path))
    return _write(path, *args, **kwargs)
checkpoint.write_checkpoint_file = counted

items = emt_items(10)
config = TrainConfig(model="nequip", model_config=TINY_NEQUIP, epochs=3,
                     batch_size=4, learning_rate=5e-2, warmup_epochs=1,
                     patience=0, n_buckets=1, dtype="float64", seed=5)
members = parallel.make_mesh(4, axes=("member", "batch"), shape=(2, 2))
data = parallel.make_mesh()  # "batch" over all 4 devices of both processes
trained = {}  # run -> epochs trained in this launch

def run(kind, name, stop=False):
    def on_epoch_end(record):
        trained.setdefault(name, []).append(record["epoch"])
        if stop and record["epoch"] == 1:  # after the 2nd epoch's checkpoint
            open(f"{out}/{name}-stopped-p{pid}", "w").close()
            time.sleep(3600)  # killed here by the test
    if kind == "ensemble":
        result = ensemble.train_ensemble(
            config, 2, items[:8], items[8:], f"{out}/{name}", bootstrap=True,
            mesh=members, on_epoch_end=on_epoch_end)
        params = result.ensemble.params
        # each member on one process: not readable without a gather
        assert not any(x.is_fully_addressable for x in jax.tree.leaves(params))
    else:
        result = loop.train(config, items[:8], items[8:], f"{out}/{name}",
                            progress=False, mesh=data, on_epoch_end=on_epoch_end)
        params = result.model.params
    leaves = jax.tree.leaves(parallel.to_host(params))
    np.savez(f"{out}/{name}-result-p{pid}.npz", *leaves)

if phase == "1":
    run("ensemble", "ens-full")
    run("single", "one-full")
    json.dump({"writes": writes, "trained": trained},
              open(f"{out}/log-{phase}-p{pid}.json", "w"))
    run("ensemble", "ens-part", stop=True)
elif phase == "2":
    run("ensemble", "ens-part")
    json.dump({"writes": writes, "trained": trained},
              open(f"{out}/log-{phase}-p{pid}.json", "w"))
    run("single", "one-part", stop=True)
else:
    run("single", "one-part")
    json.dump({"writes": writes, "trained": trained},
              open(f"{out}/log-{phase}-p{pid}.json", "w"))
"""

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return str(sock.getsockname()[1])


def _launch(out, phase: str, stop: str | None = None, timeout: float = 400.0):
    """Run the worker as processes 0 and 1; kill both once ``stop`` is reached.

    Args:
        out: output directory shared by both processes.
        phase: which runs the worker does ("1", "2", "3").
        stop: run name whose processes wait after epoch 1 to be killed; None:
            both must exit with status 0.
        timeout: seconds for the launch.
    """
    port, code = _free_port(), textwrap.dedent(_WORKER)
    logs = [open(out / f"stderr-{phase}-p{pid}.txt", "w") for pid in (0, 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(pid), port, str(out), phase, _TESTS],
            env=host_devices_env(2),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for pid, log in zip((0, 1), logs, strict=True)
    ]

    def tails():
        return "\n".join(
            (out / f"stderr-{phase}-p{p}.txt").read_text()[-3000:] for p in (0, 1)
        )

    deadline = time.monotonic() + timeout
    try:
        if stop is None:
            for proc in procs:
                proc.wait(timeout=max(deadline - time.monotonic(), 1))
            assert [p.returncode for p in procs] == [0, 0], tails()
            return
        markers = [out / f"{stop}-stopped-p{pid}" for pid in (0, 1)]
        while not all(m.exists() for m in markers):
            assert time.monotonic() < deadline, "no stop marker in time\n" + tails()
            assert all(p.poll() is None for p in procs), tails()
            time.sleep(0.2)
        for proc in procs:  # the job is killed, as by a scheduler
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def _arrays(path):
    """Every array of a checkpoint file, by its path in the payload."""
    _, payload = checkpoint.read(path)
    flat = jax.tree_util.tree_flatten_with_path(
        {"params": payload["params"], "arrays": payload["arrays"]}
    )[0]
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def _npz(path):
    with np.load(path) as z:
        return [z[f"arr_{k}"] for k in range(len(z.files))]


def _worst(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


@pytest.mark.slow
def test_killed_two_process_training_resumes_to_the_unbroken_result(tmp_path):
    _launch(tmp_path, "1", stop="ens-part")
    # killed after the 2nd epoch: the checkpoint on disk says 2 epochs done
    meta, _ = checkpoint.read(tmp_path / "ens-part" / "ensemble_checkpoint.msgpack")
    assert meta["state"]["epoch"] == 2
    _launch(tmp_path, "2", stop="one-part")
    meta, _ = checkpoint.read(tmp_path / "one-part" / "checkpoint.msgpack")
    assert meta["state"]["epoch"] == 2
    _launch(tmp_path, "3")

    logs = {
        (phase, pid): json.loads((tmp_path / f"log-{phase}-p{pid}.json").read_text())
        for phase in "123"
        for pid in (0, 1)
    }
    # the resumed launches trained only the missing third epoch (index 2)
    for pid in (0, 1):
        assert logs["1", pid]["trained"] == {
            "ens-full": [0, 1, 2],
            "one-full": [0, 1, 2],
        }
        assert logs["2", pid]["trained"] == {"ens-part": [2]}
        assert logs["3", pid]["trained"] == {"one-part": [2]}
    # process 0 alone wrote every checkpoint; process 1 wrote nothing
    assert all(not logs[phase, 1]["writes"] for phase in "123")
    assert "ensemble_checkpoint.msgpack" in logs["1", 0]["writes"]
    assert "checkpoint.msgpack" in logs["3", 0]["writes"]

    report = {}
    for name, file in (
        ("ens", "ensemble_checkpoint.msgpack"),
        ("one", "checkpoint.msgpack"),
    ):
        full = _arrays(tmp_path / f"{name}-full" / file)
        part = _arrays(tmp_path / f"{name}-part" / file)
        # parameters, EMA, best parameters and optimiser state
        report[name] = _worst(full, part)
        assert report[name] <= 1e-12, report
        meta_full, _ = checkpoint.read(tmp_path / f"{name}-full" / file)
        meta_part, _ = checkpoint.read(tmp_path / f"{name}-part" / file)
        for a, b in zip(
            meta_full["state"]["history"], meta_part["state"]["history"], strict=True
        ):
            assert {k: v for k, v in a.items() if k != "seconds"} == {
                k: v for k, v in b.items() if k != "seconds"
            }
        # the result every process returns equals the checkpoint's best params
        results = [_npz(tmp_path / f"{name}-part-result-p{pid}.npz") for pid in (0, 1)]
        for got in results:
            want = jax.tree.leaves(
                checkpoint.read(tmp_path / f"{name}-full" / file)[1]["params"]
            )
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, np.asarray(w))
    print("max |resumed - unbroken|:", report)

    # nothing torn or temporary is left, and files are readable as open() makes
    umask = os.umask(0o022)
    os.umask(umask)
    for run in ("ens-full", "ens-part", "one-full", "one-part"):
        for entry in (tmp_path / run).iterdir():
            assert not entry.name.startswith(".tmp-"), entry
            assert stat.S_IMODE(entry.stat().st_mode) == 0o666 & ~umask, entry
