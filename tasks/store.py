"""The store: the one owner of the layout, the Parquet schemas, the records and the atomic writes.

Nothing else builds a path under the store root: flows and tasks ask a :class:`Store` (made once, at the
flow or CLI boundary, and passed as is to workers). Layout under one root (a local folder)::

    <store>/catalog/videos.parquet    one row per video_id (content hash): probe, extraction summary, manifest
    <store>/catalog/files.parquet     one row per path seen: size, mtime, video_id (so unchanged files are not rehashed)
    <store>/catalog/failures.parquet  one row per run × video × stage that failed: reason, message
    <store>/catalog/runs.parquet      one row per run: parameters and counts
    <store>/frames/video_id=<id>/part-0.parquet   one row per video × sampled frame × face track
    <store>/body/video_id=<id>/part-0.parquet     one row per video × body-sampled frame × person
    <store>/crops/video_id=<id>/part-0.parquet    one row per video × sampled frame × face: aligned JPEG crop
    <store>/predictions/task=<t>/model_version=<v>/video_id=<id>/part-0.parquet   one row per track × window
    <store>/models/<name>/<version>/              registry (``models.registry``)
    <store>/reports/<run id>/                     analysis reports
    <store>/work/<video_id>/<params>/             chunk fragments of a video being extracted (deleted when done)

Every file is written under a temporary name in its final folder and renamed into place, so a crash
never leaves a half-written file where a reader (DuckDB) looks. Partition files do not repeat the
``video_id`` column: it is the hive partition key (``hive_partitioning`` in DuckDB and pyarrow).

Steps hand each other one record, :class:`StepResult` (what one step did to one video); the catalog's
``videos`` and ``failures`` rows are made from it here, and ``runs`` rows by :meth:`Store.append_run`.
"""

import contextlib
import fcntl
import os
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.files import atomic_write
from models.layout import KEYPOINT_NAMES, N_LANDMARKS
from models.rules import check_task
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

CROP_SCHEMA = pa.schema(
    [
        ("frame", pa.int32()),  # index of the decoded frame in the video (as in ``frames``)
        ("timestamp", pa.float64()),  # presentation time of that frame, seconds
        ("face_index", pa.int32()),  # position of the face in the backend's output for that frame
        ("bbox_x", pa.float32()),  # face box in frame pixels, same values as the ``frames`` row
        ("bbox_y", pa.float32()),
        ("bbox_w", pa.float32()),
        ("bbox_h", pa.float32()),
        ("jpeg", pa.binary()),  # the aligned 112 × 112 RGB crop (``tasks.crops``), JPEG
    ]
)


def prediction_schema(task: str) -> pa.Schema:
    """Columns of a predictions file of ``task``: window keys, model, label and one ``p_<class>`` per class."""
    classes = check_task(task)
    return pa.schema(
        [
            ("face_id", pa.int32()),
            ("window_index", pa.int32()),  # index of the window within its face track
            ("start_time", pa.float64()),  # timestamp of the window's first sample, seconds
            ("end_time", pa.float64()),  # timestamp of the window's last sample, seconds
            ("n_frames", pa.int32()),  # samples in the window (< window only for a short track)
            ("model_name", pa.string()),
            ("label", pa.string()),  # most probable class; null when the inputs were unusable
            ("confidence", pa.float32()),  # probability of ``label``
            *[(f"p_{c}", pa.float32()) for c in classes],
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
    "decoder": "string",  # decord | pyav | decord+pyav (some chunks needed the PyAV fallback)
    "status": "string",  # ok | failed
    "params": "string",  # JSON of the extraction parameters the rows were made with (or the attempt failed with)
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
    "stage": "string",  # probe | decode | extract | finalize | infer
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
    "videos_known_failed": "Int64",  # failed before with the same content and extractor version: not retried
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


@dataclass
class StepResult:
    """What one step (``extract``, or ``infer`` of one task) did to one video: the record between steps.

    ``status`` is ok | failed | skipped; a failure names the ``stage`` where it happened (probe, decode,
    finalize, infer) and a ``reason`` (``not_a_video``, ``missing_file`` ...), as the ``failures`` table
    does. ``counts`` holds what the step produced (rows, tracks, windows ...), ``info`` what describes it
    (the probe of the video, the model name and version).
    """

    video_id: str
    path: str
    step: str  # extract | infer
    status: str = "failed"
    stage: str | None = None
    reason: str | None = None
    message: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, stage: str, reason: str, message: str) -> "StepResult":
        self.status, self.stage, self.reason, self.message = "failed", stage, reason, message
        return self


class Store:
    """A LessonLens store rooted at a local folder."""

    def __init__(self, root: "str | os.PathLike | Store"):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def __fspath__(self) -> str:  # a Store is accepted wherever a path to its root is
        return str(self.root)

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
        with open(self.root / ".lock", "a+") as fh:
            self._lock(fh)
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

    def check_not_busy(self) -> None:
        """Raise StoreBusy now when another run holds the writer lock (to fail before starting anything)."""
        if (self.root / ".lock").is_file():
            with open(self.root / ".lock", "a+") as fh:
                self._lock(fh)
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _lock(self, fh) -> None:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StoreBusy(
                f"store {self.root} is being written by {holder}; wait for that run to finish or use another store"
            ) from None

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

    def video_ids(self, table: str = "frames") -> list[str]:
        """Videos with a partition of ``table``, sorted."""
        folders = sorted((self.root / table).glob("video_id=*"))
        return [f.name.split("=", 1)[1] for f in folders if (f / "part-0.parquet").is_file()]

    def work_dir(self, video_id: str, params_key: str | None = None) -> Path:
        """Chunk fragments of a video being extracted with the parameters ``params_key`` (all of them: None)."""
        folder = self.root / "work" / video_id
        return folder / params_key if params_key else folder

    def reports_dir(self) -> Path:
        return self.root / "reports"

    # predictions ------------------------------------------------------------------------------
    def prediction_path(self, task: str, version: str, video_id: str) -> Path:
        folder = self.root / "predictions" / f"task={task}" / f"model_version={version}"
        return folder / f"video_id={video_id}" / "part-0.parquet"

    def write_predictions(self, table: pa.Table, task: str, version: str, video_id: str) -> None:
        """Write a video's predictions of ``task`` by ``version``, then delete those of any other version.

        Between the two steps a reader of the raw ``predictions`` view may see both versions of this one
        video; the marts always read one model version per video (``sql/marts/expression_windows.sql``).
        """
        path = self.prediction_path(task, version, video_id)
        write_table_atomic(table, path)
        for folder in self.root.glob(f"predictions/task={task}/model_version=*/video_id={video_id}"):
            if folder != path.parent:
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(OSError):  # the version's folder, once its last video is gone
                    folder.parent.rmdir()

    def stale_videos(self, task: str, version: str) -> list[str]:
        """Videos with a frames partition but no predictions of ``task`` by ``version``, or predictions
        older than their frames (the video was re-extracted)."""
        stale = []
        for video_id in self.video_ids("frames"):
            frames = self.partition("frames", video_id)
            out = self.prediction_path(task, version, video_id)
            if not out.is_file() or out.stat().st_mtime_ns < frames.stat().st_mtime_ns:
                stale.append(video_id)
        return stale

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

    # records ----------------------------------------------------------------------------------
    def record_video(self, result: StepResult, meta: dict, params_json: str, run_id: str) -> None:
        """The catalog row of one extracted (or failed) video, replacing its earlier row."""
        row = {
            "video_id": result.video_id,
            "path": result.path,
            **meta,
            **result.counts,
            **(result.info.get("probe") or {}),
            "decoder": result.info.get("decoder"),
            "status": result.status,
            "params": params_json,
            "run_id": run_id,
            "extracted_at": datetime.now(UTC),
        }
        self.upsert_catalog("videos", pd.DataFrame([row]), key="video_id")

    def record_failures(self, results: Iterable[StepResult], run_id: str) -> list[dict]:
        """Append a ``failures`` row per failed result and per warning (``info["warnings"]``: stage, reason,
        message; e.g. ``partly_undecodable`` of a video extracted without some time range); returns the rows."""
        rows = [
            {"run_id": run_id, "video_id": r.video_id, "path": r.path, **problem, "failed_at": datetime.now(UTC)}
            for r in results
            for problem in (
                [{"stage": r.stage, "reason": r.reason, "message": r.message}] if r.status == "failed" else []
            )
            + list(r.info.get("warnings") or [])
        ]
        self.append_catalog("failures", pd.DataFrame(rows))
        return rows

    def append_run(
        self, run_id: str, started_at: datetime, params_json: str, counts: dict, corpus: str | None = None,
        flow_run_id: str | None = None,
    ) -> None:  # fmt: skip
        """One ``runs`` row: what a run was given and what it counted (keys of ``counts`` as in the flows)."""
        run = {
            "run_id": run_id,
            "flow_run_id": flow_run_id,
            "corpus": corpus,
            "started_at": started_at,
            "finished_at": datetime.now(UTC),
            "params": params_json,
            "videos_found": counts.get("found", 0),
            "videos_skipped": counts.get("skipped", 0),
            "videos_extracted": counts.get("extracted", 0),
            "videos_failed": counts.get("failed", 0),
            "videos_known_failed": counts.get("known_failed", 0),
            "frames_analysed": counts.get("frames", 0),
        }
        self.append_catalog("runs", pd.DataFrame([run]))


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
