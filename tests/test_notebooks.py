"""Every notebook in notebooks/ runs top to bottom, and its asserts hold.

The notebooks of one test process share one kernel, so jax, flax, e3nn-jax,
pymatgen and mldiff are imported once (about 9 s a kernel on one core); the
run's persistent compilation cache on disk serves programs across notebooks
and workers. Each notebook starts from a clean namespace (``%reset -f``) in
its own working folder with its figures closed; every notebook sets
``jax_enable_x64`` itself, so no JAX setting leaks from one into another.
In-memory compiled programs are dropped between notebooks
(``jax.clear_caches``), a kernel grown past :data:`MAX_KERNEL_RSS_GB` is
restarted (kernels and test workers share a 2-core, 24 GB machine), and a
kernel that died is replaced before the next notebook, so one failure does not
cascade.
"""

import pathlib

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from nbclient.util import run_sync

NOTEBOOKS = sorted(
    (pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")
)


MAX_KERNEL_RSS_GB = 3.0


class _SharedKernel:
    """One Jupyter kernel reused by the notebooks of this test process."""

    def __init__(self):
        self.km = None

    def manager(self):
        """The running kernel's manager, or None when a new one must be started."""
        if self.km is not None and not run_sync(self.km.is_alive)():
            self.close()
        if self.km is not None and self._rss_gb() > MAX_KERNEL_RSS_GB:
            self.close()  # a fresh kernel costs one import, not an OOM kill
        return self.km

    def _rss_gb(self) -> float:
        pid = self.km.provisioner.process.pid
        try:
            return psutil.Process(pid).memory_info().rss / 1e9
        except psutil.Error:
            return 0.0

    def close(self):
        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)
            self.km = None


@pytest.fixture(scope="module")
def shared_kernel():
    kernel = _SharedKernel()
    yield kernel
    kernel.close()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, shared_kernel):
    nb = nbformat.read(path, as_version=4)
    setup = (
        "%reset -f\n"
        "import gc as _gc, os as _os, jax as _jax, matplotlib.pyplot as _plt\n"
        f"_os.chdir({str(tmp_path)!r}); _plt.close('all'); _jax.clear_caches()\n"
        "_gc.collect(); del _gc, _os, _jax, _plt"
    )
    nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    client = NotebookClient(
        nb,
        km=shared_kernel.manager(),
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute(cleanup_kc=False)  # raises CellExecutionError on a failing cell
    finally:
        shared_kernel.km = client.km
        if client.kc is not None:
            client.kc.stop_channels()
