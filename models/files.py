"""Atomic file writes: the one way the store, the registry and training checkpoints put a file in place; and
:func:`cache_dir`, the per-user folder of what setup and runs keep between runs (weights, an empty database).

A file is written under a temporary name in its final folder (``.<name>.<random>.tmp``, the pattern
``tasks.store.Store.remove_temporary_files`` cleans up), flushed to disk and renamed over the target, so a
reader sees the old file or the complete new one, never a half-written one, and a crash leaves at most a
hidden temporary file.

Object storage (a ``UPath`` of universal_pathlib, e.g. ``s3://bucket/store/...``) has no rename: there the file
is written to local disk and uploaded in one PUT, or one multipart upload completed at the end, so the
object too appears whole or not at all, and a crash leaves nothing under the store (an unfinished multipart
upload is invisible; a bucket lifecycle rule removes its parts).
"""

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    """LessonLens's per-user cache: ``$XDG_CACHE_HOME/lessonlens``, by default ``~/.cache/lessonlens``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lessonlens"


def atomic_write(path, write: Callable[[Path], None]) -> None:
    """Put the file that ``write(tmp)`` creates at ``tmp`` in place at ``path`` (folders are created).

    ``tmp`` is in ``path``'s folder, so the final ``os.replace`` is an atomic rename; it is fsynced first.
    On any error the temporary file is removed and the error propagates; ``path`` is left as it was.
    """
    if not isinstance(path, str | os.PathLike):  # a path on object storage
        with tempfile.TemporaryDirectory(prefix="lessonlens-upload-") as folder:
            tmp = Path(folder) / path.name
            write(tmp)
            path.fs.put_file(str(tmp), path.path)
        return
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
