from __future__ import annotations

import os

import numpy as np
import pytest

from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import (atomic_path, file_digest, npz_bytes, sha256_array, staged_outputs, write_json,
                                   write_npz, write_text)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("keep_failed", [False, True])
def test_a_failed_staged_folder_leaves_the_previous_one_and_is_kept_only_when_asked(tmp_path, keep_failed):
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.txt").write_text("previous")
    with pytest.raises(RuntimeError):
        with staged_outputs(out, ("result.txt",), keep_failed=keep_failed) as staged:
            (staged.folder / "result.txt").write_text("rejected")
            raise RuntimeError("the check failed")
    assert (out / "result.txt").read_text() == "previous"
    assert sorted(os.listdir(tmp_path)) == (["run", "run.failed"] if keep_failed else ["run"])
    if keep_failed:
        assert (tmp_path / "run.failed" / "result.txt").read_text() == "rejected"


def test_npz_bytes_are_deterministic_and_loadable(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.float32), "a": np.array("text")}
    assert npz_bytes(arrays) == npz_bytes(dict(reversed(list(arrays.items()))))
    write_npz(tmp_path / "x.npz", arrays)
    with np.load(tmp_path / "x.npz", allow_pickle=False) as loaded:
        np.testing.assert_array_equal(loaded["b"], arrays["b"])
        assert str(loaded["a"]) == "text"


def test_object_arrays_are_never_written():
    with pytest.raises(PtychoError, match="object arrays"):
        npz_bytes({"x": np.array([None, 1], dtype=object)})


def test_unwritable_destination_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PtychoError, match="cannot write output folder"):
        write_json(blocker / "sub" / "out.json", {})
    with pytest.raises(PtychoError, match="is a directory"):
        write_text(tmp_path, "x")


def test_outputs_get_normal_permissions(tmp_path):
    write_text(tmp_path / "p.txt", "x")
    assert (tmp_path / "p.txt").stat().st_mode & 0o044  # readable by group/others under a usual umask


def test_array_hash_covers_dtype_and_shape():
    a = np.zeros(4, dtype=np.float32)
    assert sha256_array(a) != sha256_array(a.reshape(2, 2)) != sha256_array(a.astype(np.float64))


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    dead = tmp_path / ".out.txt.999999999.abc.tmp"  # no such pid
    alive = tmp_path / f".out.txt.{os.getpid()}.abc.tmp"  # a writer still running
    dead.write_text("partial")
    alive.write_text("partial")
    write_text(tmp_path / "out.txt", "new")
    assert not dead.exists() and alive.exists()


def test_file_digest(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert file_digest(tmp_path / "x", "md5") == "900150983cd24fb0d6963f7d28e17f72"
    assert file_digest(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
