"""Where models run: the device a ``--device`` choice means, and the precision used there.

``resolve_device``: ``auto`` is cuda when a GPU is visible, else cpu; ``cpu``, ``cuda`` and ``cuda:N`` are
taken as given, but a cuda device without a GPU is a ValueError, as is any other device. ``autocast``: bf16
autocast on CUDA, plain fp32 on CPU (training and inference use the same, so they see the same numbers).
``cpu_threads``: torch on a given number of CPU threads inside a block (the pipeline's workers are one process per
core: one thread each, unless the others are idle).
"""

import contextlib
import os

import torch


def resolve_device(device: str) -> torch.device:
    """The ``torch.device`` of ``device`` (auto, cpu, cuda or cuda:N); ValueError for cuda without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda (or cuda:N), got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available (use 'auto' or 'cpu')")
    return resolved


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a CUDA ``device``, else a context that changes nothing."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(device: torch.device | None = None, n: int = 1):
    """On a CPU ``device`` (default: the CPU), torch's intra-op threads set to ``n`` (at most the machine's cores)
    inside the block and restored after: Dask runs one single-threaded worker process per core, and torch's own
    threads would make two workers fight for the cores; a caller that knows the other workers idle (one batch of
    inference for two workers) gives it their cores. On CUDA nothing changes."""
    threads = torch.get_num_threads()
    if device is None or device.type == "cpu":
        torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
