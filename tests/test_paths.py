"""The one atomic-write helper every writer of a file others read uses."""

from pathlib import Path

import numpy as np
import pytest

from vhs.paths import atomic_path, write_atomically


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    write_atomically(target, b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as partial:
        partial.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_a_writer_that_adds_the_suffix_writes_the_temporary_it_was_given(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "labels.npy"
    with atomic_path(target) as partial:
        assert partial.parent == target.parent and partial.suffix == ".npy" and partial != target
        np.save(partial, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2] and [p.name for p in target.parent.iterdir()] == ["labels.npy"]
