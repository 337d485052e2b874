"""phono3py's fc3.hdf5: round trips against phono3py 4.10's own reader and writer."""

import numpy as np
import pytest
from phono3py.file_IO import read_fc3_from_hdf5, write_fc3_to_hdf5

from mldiff.errors import DataError
from mldiff.io import phono3py as io3


def random_fc3(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, n, 3, n, 3))


def test_written_file_reads_back_with_phono3py(tmp_path):
    fc3 = random_fc3(4)
    io3.write_fc3(tmp_path / "fc3.hdf5", fc3)
    theirs = read_fc3_from_hdf5(tmp_path / "fc3.hdf5")
    assert theirs.shape == (4, 4, 4, 3, 3, 3)
    # element (i a, j b, k c) lands at phono3py's [i, j, k, a, b, c]
    assert theirs[1, 2, 3, 0, 1, 2] == fc3[1, 0, 2, 1, 3, 2]
    np.testing.assert_array_equal(io3.from_phono3py_layout(theirs), fc3)


def test_phono3py_file_reads_back_here(tmp_path):
    fc3 = random_fc3(3, seed=1)
    write_fc3_to_hdf5(io3.to_phono3py_layout(fc3), filename=str(tmp_path / "f.hdf5"))
    np.testing.assert_array_equal(io3.read_fc3(tmp_path / "f.hdf5"), fc3)


def test_order_and_compact_rows(tmp_path):
    fc3 = random_fc3(3, seed=2)
    perm = np.array([2, 0, 1])
    io3.write_fc3(tmp_path / "a.hdf5", fc3, order=perm)
    theirs = read_fc3_from_hdf5(tmp_path / "a.hdf5")
    assert (
        theirs[0, 1, 2, 0, 0, 0] == fc3[2, 0, 0, 0, 1, 0]
    )  # written atom k = ours perm[k]
    np.testing.assert_array_equal(io3.read_fc3(tmp_path / "a.hdf5", order=perm), fc3)
    io3.write_fc3(tmp_path / "c.hdf5", fc3, p2s_map=[0], compact=True)
    compact = read_fc3_from_hdf5(tmp_path / "c.hdf5")
    assert compact.shape == (1, 3, 3, 3, 3, 3)
    with pytest.raises(DataError, match="compact"):
        io3.read_fc3(tmp_path / "c.hdf5")


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="shape"):
        io3.write_fc3(tmp_path / "x.hdf5", np.zeros((2, 2, 2, 3, 3, 3)))
    with pytest.raises(DataError, match="no such file"):
        io3.read_fc3(tmp_path / "missing.hdf5")
