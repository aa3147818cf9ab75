"""Where a store lives and how its files are read and written: local folders or object storage (fsspec,
universal_pathlib), Parquet readers of store paths, atomic writes and the folders' permission modes.

Every file appears whole or not at all: a temporary name in its final folder and a rename, or one upload
on object storage (:func:`models.files.atomic_write`). New folders and files take their modes from the
folder they are made in, so every writer follows the store's permission policy.
"""

import contextlib
import importlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from models.files import atomic_write
from tasks.store.schemas import PARQUET_OPTIONS

# where a store (or a corpus) lives: a local folder, or a prefix on object storage -------------------------
OBJECT_STORES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}  # scheme → package

SECRET_OPTION = re.compile(r"secret|token|password|passwd|credential|account_key|sas|private|^key$", re.IGNORECASE)


def location(url: "str | os.PathLike | UPath", storage_options: dict | None = None, what: str = "store"):
    """Where ``url`` points: a resolved local ``Path`` for a folder or a ``file://`` URL, else a ``UPath`` on the
    object store its scheme names (``s3://bucket/prefix``, ``gs://``, ``az://``), opened with
    ``storage_options``. ValueError naming ``what`` for an unknown scheme, a URL without a bucket, a backend
    package that is not installed, or credentials among the options."""
    if isinstance(url, UPath):
        return url
    text = os.fspath(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text).expanduser().resolve()
    if scheme == "file":
        return Path(rest).expanduser().resolve()
    if scheme not in OBJECT_STORES:
        schemes = ", ".join(f"{s}://" for s in OBJECT_STORES)
        raise ValueError(f"{what} {text}: unknown URL scheme {scheme}://; give a folder, file://, or one of {schemes}")
    if not rest.split("/", 1)[0]:
        raise ValueError(f"{what} {text}: the URL names no bucket ({scheme}://BUCKET/PREFIX)")
    options = check_storage_options(storage_options)
    if scheme == "s3":  # other processes (Dask workers) write the store: never answer from a stale listing
        options.setdefault("use_listings_cache", False)
    package = OBJECT_STORES[scheme]
    try:
        importlib.import_module(package)
    except ImportError:
        raise ValueError(f"{what} {text}: {scheme}:// needs the {package} package (pip install {package})") from None
    return UPath(text.rstrip("/"), **options)


def check_storage_options(options: dict | None) -> dict:
    """``options`` (fsspec storage options, e.g. ``endpoint_url``) when none is a credential; ValueError otherwise:
    credentials come from the backend's environment and configuration, never from parameters or a command line."""
    options = dict(options or {})
    secret = sorted(k for k in options if SECRET_OPTION.search(k))
    if secret:
        raise ValueError(
            f"--storage-option {', '.join(secret)}: credentials are not taken as options (they would end up in "
            "the shell history and in flow parameters); set them in the environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)"
        )
    return options


def parse_storage_options(items: Iterable[str] | None) -> dict:
    """``["KEY=VALUE", ...]`` (the CLI's ``--storage-option``) as a dict; a VALUE that is JSON (true, 3, {...})
    is decoded, any other is a string. ValueError naming a bad item or a credential (:func:`check_storage_options`)."""
    options: dict = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--storage-option {item!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return check_storage_options(options)


def is_remote(path) -> bool:
    """Whether ``path`` (a store path, :func:`location`) is on object storage rather than a local disk (a ``str``
    or ``Path``)."""
    return isinstance(path, UPath)


def _on_store_path(reader):
    """``reader`` (a pyarrow or pandas Parquet reader taking ``filesystem=``) for a store path, local or on object
    storage."""

    def read(path, **kwargs):
        source, filesystem = (path.path, path.fs) if is_remote(path) else (path, None)
        return reader(source, filesystem=filesystem, **kwargs)

    read.__doc__ = f"``{reader.__module__}.{reader.__qualname__}`` of a store path, local or on object storage."
    return read


read_table = _on_store_path(pq.read_table)

read_schema = _on_store_path(pq.read_schema)

read_metadata = _on_store_path(pq.read_metadata)

parquet_file = _on_store_path(pq.ParquetFile)

read_frame = _on_store_path(pd.read_parquet)


def remove_tree(path) -> bool:
    """Delete the folder (or, on object storage, every object under the prefix) ``path``; False if absent."""
    if not path.exists():
        return False
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)
    return True


def remove_empty_folder(path) -> None:
    """Remove the local folder ``path`` if it is empty (object storage has no folders: nothing to do)."""
    if not is_remote(path):
        with contextlib.suppress(OSError):
            path.rmdir()


def write_bytes_atomic(path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole or not at all (:func:`models.files.atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def make_dirs(path: Path) -> None:
    """``mkdir -p`` where each new folder gets the mode of the folder it is made in (never group-write or world
    bits), so folders under a store follow its permission policy whichever process or machine makes them.
    Object storage has no folders: nothing to do there."""
    if is_remote(path):
        return
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    mode = stat.S_IMODE(path.stat().st_mode) & (0o750 | stat.S_ISGID)
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # made meanwhile by another worker
            continue
        os.chmod(folder, mode)


def file_mode(folder: Path) -> int:
    """The mode of a new file in ``folder``: its folder's read/write bits, never group-write or world bits."""
    return stat.S_IMODE(Path(folder).stat().st_mode) & 0o640


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary name in the same folder and an atomic rename.

    The file gets the mode :func:`file_mode` of its folder (0o600 under an owner-only store). On object storage:
    one upload (:func:`models.files.atomic_write`)."""
    write_parts_atomic([table], table.schema, path)


def write_parts_atomic(parts: Iterable[pa.Table], schema: pa.Schema, path: Path) -> None:
    """Write the tables ``parts`` (each of ``schema``), one row group each and one at a time, as one Parquet file at
    ``path``, atomically as :func:`write_table_atomic`: a writer holds one part at a time, not the whole file."""

    def write_parts(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema, **PARQUET_OPTIONS) as writer:
            for part in parts:
                writer.write_table(part)

    if is_remote(path):
        atomic_write(path, write_parts)
        return
    path = Path(path)
    make_dirs(path.parent)
    mode = file_mode(path.parent)

    def write(tmp: Path) -> None:
        write_parts(tmp)
        os.chmod(tmp, mode)

    atomic_write(path, write)


def filter_face(path: Path, face_id: int, keep_times: bool = False, column: str = "face_id") -> int:
    """Rewrite the Parquet file at ``path`` (if any) without the rows whose ``column`` is ``face_id``; returns
    how many were removed. The schema and its metadata are kept; ``keep_times`` keeps the file's access and
    modification times (the crops' age counts from their extraction)."""
    if not path.is_file():
        return 0
    table = parquet_file(path).read()
    keep = pc.not_equal(table[column], pa.scalar(face_id, table.schema.field(column).type))
    kept = table.filter(keep)
    if kept.num_rows == table.num_rows:
        return 0
    before = path.stat()
    write_table_atomic(kept, path)
    if keep_times and not is_remote(path):  # an object's time is its upload's: crops age from their rewrite there
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return table.num_rows - kept.num_rows
