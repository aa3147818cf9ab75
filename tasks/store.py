"""The store: Parquet schemas, atomic writes and the catalog.

Layout under one root (a local folder)::

    <store>/catalog/videos.parquet    one row per video_id (content hash): probe, extraction summary, manifest
    <store>/catalog/files.parquet     one row per path seen: size, mtime, video_id (so unchanged files are not rehashed)
    <store>/catalog/failures.parquet  one row per run × video × stage that failed: reason, message
    <store>/catalog/runs.parquet      one row per run: parameters and counts
    <store>/frames/video_id=<id>/part-0.parquet   one row per video × sampled frame × face track
    <store>/body/video_id=<id>/part-0.parquet     one row per video × body-sampled frame × person
    <store>/work/<video_id>/<params>/             chunk fragments of a video being extracted (deleted when done)

Every file is written under a temporary name in its final folder and renamed into place, so a crash
never leaves a half-written file where a reader (DuckDB) looks. Partition files do not repeat the
``video_id`` column: it is the hive partition key (``hive_partitioning`` in DuckDB and pyarrow).
"""

import fcntl
import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.files import atomic_write
from models.layout import KEYPOINT_NAMES, N_LANDMARKS
from tasks.action_units import AU_NAMES

PARQUET_OPTIONS = {"compression": "zstd"}

FRAME_SCHEMA = pa.schema(
    [
        ("frame", pa.int32()),  # index of the decoded frame in the video (display order)
        ("timestamp", pa.float64()),  # presentation time of that frame, seconds
        ("face_id", pa.int32()),  # stable per person within one video
        ("confidence", pa.float32()),  # detector score
        ("success", pa.bool_()),  # OpenFace: landmarks fitted
        ("bbox_x", pa.float32()),
        ("bbox_y", pa.float32()),
        ("bbox_w", pa.float32()),
        ("bbox_h", pa.float32()),
        *[(f"x_{i}", pa.float32()) for i in range(N_LANDMARKS)],
        *[(f"y_{i}", pa.float32()) for i in range(N_LANDMARKS)],
        ("pose_Rx", pa.float32()),
        ("pose_Ry", pa.float32()),
        ("pose_Rz", pa.float32()),
        *[(f"{au}_r", pa.float32()) for au in AU_NAMES],
        *[(f"{au}_c", pa.int8()) for au in AU_NAMES],
    ]
)

BODY_SCHEMA = pa.schema(
    [
        ("frame", pa.int32()),
        ("timestamp", pa.float64()),
        ("person_id", pa.int32()),
        ("confidence", pa.float32()),
        *[(f"{name}_{axis}", pa.float32()) for name in KEYPOINT_NAMES for axis in ("x", "y", "v")],
    ]
)

VIDEO_COLUMNS = {
    "video_id": "string",
    "path": "string",
    "size_bytes": "Int64",
    "duration_s": "float64",
    "fps": "float64",
    "n_frames": "Int64",
    "width": "Int32",
    "height": "Int32",
    "sampled_frames": "Int64",
    "face_rows": "Int64",
    "face_tracks": "Int32",
    "frames_with_face": "Int64",
    "body_rows": "Int64",
    "status": "string",  # ok | failed
    "params": "string",  # JSON of the extraction parameters the rows were made with
    "run_id": "string",
    "extracted_at": "datetime64[us, UTC]",
    "course": "string",
    "session": "string",
    "teacher": "string",
    "role": "string",
    "lesson_type": "string",
}
FILE_COLUMNS = {"path": "string", "size_bytes": "Int64", "mtime_ns": "Int64", "video_id": "string"}
FAILURE_COLUMNS = {
    "run_id": "string",
    "video_id": "string",
    "path": "string",
    "stage": "string",  # discover | probe | decode | extract | finalize
    "reason": "string",  # empty_file | not_a_video | decode_error | ...
    "message": "string",
    "failed_at": "datetime64[us, UTC]",
}
RUN_COLUMNS = {
    "run_id": "string",
    "flow_run_id": "string",
    "corpus": "string",
    "started_at": "datetime64[us, UTC]",
    "finished_at": "datetime64[us, UTC]",
    "params": "string",
    "videos_found": "Int64",
    "videos_skipped": "Int64",
    "videos_extracted": "Int64",
    "videos_failed": "Int64",
    "frames_analysed": "Int64",
}
CATALOG_TABLES = {
    "videos": VIDEO_COLUMNS,
    "files": FILE_COLUMNS,
    "failures": FAILURE_COLUMNS,
    "runs": RUN_COLUMNS,
}


class StoreBusy(RuntimeError):
    """Another run is writing the same store."""


class Store:
    """A LessonLens store rooted at a local folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def ensure(self) -> "Store":
        """Create the folders, or raise an error naming the store when it cannot be written."""
        try:
            for sub in ("catalog", "frames", "body", "work"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise PermissionError(f"store {self.root} is not writable: {exc}") from exc
        return self

    @contextmanager
    def writer_lock(self, owner: str) -> Iterator[None]:
        """Hold the store's single-writer lock for the duration of a run, or raise StoreBusy.

        An exclusive ``flock`` on ``<store>/.lock``: the operating system releases it when the holding
        process ends, even by ``kill -9``, so a crashed run never leaves a stale lock. (flock is reliable on
        local disks; on network file systems use one store per writer.)
        """
        path = self.root / ".lock"
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise StoreBusy(
                    f"store {self.root} is being written by {holder}; wait for that run to finish or use another store"
                ) from None
            fh.seek(0)
            fh.truncate()
            since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            fh.write(f"{owner} (pid {os.getpid()} on {socket.gethostname()}, since {since})")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def remove_temporary_files(self) -> int:
        """Delete temporary files left by a writer that died before its rename; call under the writer lock."""
        leftovers = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    # partitions -------------------------------------------------------------------------------
    def partition(self, table: str, video_id: str) -> Path:
        return self.root / table / f"video_id={video_id}" / "part-0.parquet"

    def has_partition(self, table: str, video_id: str) -> bool:
        return self.partition(table, video_id).is_file()

    def work_dir(self, video_id: str, params_key: str) -> Path:
        return self.root / "work" / video_id / params_key

    # catalog ----------------------------------------------------------------------------------
    def catalog_path(self, table: str) -> Path:
        return self.root / "catalog" / f"{table}.parquet"

    def read_catalog(self, table: str) -> pd.DataFrame:
        path = self.catalog_path(table)
        if not path.is_file():
            return empty_frame(CATALOG_TABLES[table])
        return conform(pd.read_parquet(path), CATALOG_TABLES[table])

    def write_catalog(self, table: str, df: pd.DataFrame) -> None:
        df = conform(df, CATALOG_TABLES[table])
        write_table_atomic(pa.Table.from_pandas(df, preserve_index=False), self.catalog_path(table))

    def upsert_catalog(self, table: str, rows: pd.DataFrame, key: str | list[str]) -> None:
        """Replace rows of catalog ``table`` whose ``key`` matches ``rows``; append the others."""
        if rows.empty:
            return
        old = self.read_catalog(table)
        keys = [key] if isinstance(key, str) else key
        if not old.empty:
            old_idx = pd.MultiIndex.from_frame(old[keys])
            new_idx = pd.MultiIndex.from_frame(rows[keys])
            old = old[~old_idx.isin(new_idx)]
        self.write_catalog(table, concat([old, conform(rows, CATALOG_TABLES[table])]))

    def append_catalog(self, table: str, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        self.write_catalog(table, concat([self.read_catalog(table), rows]))


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def conform(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The columns of a catalog table, in order and with their dtypes; missing ones are null.

    Integer columns are pandas' nullable ``Int64``/``Int32``: a failed video has no frame count.
    """
    out = pd.DataFrame(index=df.index)
    for name, dtype in columns.items():
        out[name] = df[name].astype(dtype) if name in df else pd.Series(index=df.index, dtype=dtype)
    return out.reset_index(drop=True)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary name in the same folder and an atomic rename."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS))


def table_from_columns(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from a dict of column arrays (missing columns are an error)."""
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise KeyError(f"columns missing for schema: {missing}")
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)
