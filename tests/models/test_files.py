"""The one atomic write (store, registry, checkpoints) and the device choice shared by training and inference."""

import pytest
import torch

from models.device import cpu_threads, resolve_device
from models.files import atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    atomic_write(target, lambda tmp: tmp.write_text("one"))
    atomic_write(target, lambda tmp: tmp.write_text("two"))
    assert target.read_text() == "two" and sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    seen = []

    def half_written(tmp):
        seen.append(tmp)
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_written)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert seen[0].parent == tmp_path and seen[0].name.startswith(".file.txt.") and seen[0].suffix == ".tmp"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for wrong in ("mps", "gpu"):
        with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
            resolve_device(wrong)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_cpu_threads_holds_torch_to_the_threads_given_inside_the_block_and_restores_them():
    import os

    before = torch.get_num_threads()
    with cpu_threads():
        assert torch.get_num_threads() == 1  # a worker beside others
    with cpu_threads(torch.device("cpu"), 64):
        assert torch.get_num_threads() == os.cpu_count()  # never more than the machine's cores
    assert torch.get_num_threads() == before
