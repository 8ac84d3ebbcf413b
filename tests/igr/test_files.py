"""igr.files: a file or folder is replaced whole, or left as it was."""
import numpy as np
import pytest

from igr.files import atomic_file, atomic_folder


def test_atomic_file_replaces_whole_and_keeps_the_old_file_on_error(tmp_path):
    dest = tmp_path / "sub" / "log.jsonl"
    with atomic_file(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".log.jsonl.")
        tmp.write_text("first\n")
        assert not dest.exists()                       # nothing at the destination until the writer is done
    assert dest.read_text() == "first\n"
    with pytest.raises(RuntimeError):
        with atomic_file(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert dest.read_text() == "first\n" and [p.name for p in dest.parent.iterdir()] == ["log.jsonl"]


def test_atomic_file_suffix_serves_writers_that_go_by_it(tmp_path):
    dest = tmp_path / "set.npz"
    with atomic_file(dest, ".npz") as tmp:
        assert tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))                  # np.savez adds .npz to a path without it
    assert np.load(dest)["a"].tolist() == [0, 1, 2] and [p.name for p in tmp_path.iterdir()] == ["set.npz"]


def test_atomic_folder_replaces_whole_and_keeps_the_old_folder_on_error(tmp_path):
    dest = tmp_path / "model"
    with atomic_folder(dest) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(dest) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("writer failed")
    assert [p.name for p in dest.iterdir()] == ["a.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    with atomic_folder(dest) as tmp:
        (tmp / "b.txt").write_text("2")
    assert [p.name for p in dest.iterdir()] == ["b.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
