"""Atomic file writes: the one way the store, the registry and training checkpoints put a file in place.

A file is written under a temporary name in its final folder (``.<name>.<random>.tmp``, the pattern
``tasks.store.Store.remove_temporary_files`` cleans up), flushed to disk and renamed over the target, so a
reader sees the old file or the complete new one, never a half-written one, and a crash leaves at most a
hidden temporary file.
"""

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Put the file that ``write(tmp)`` creates at ``tmp`` in place at ``path`` (folders are created).

    ``tmp`` is in ``path``'s folder, so the final ``os.replace`` is an atomic rename; it is fsynced first.
    On any error the temporary file is removed and the error propagates; ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
