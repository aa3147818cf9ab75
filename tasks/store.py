"""The store: the one owner of the layout, the Parquet schemas, the records and the atomic writes.

Nothing else builds a path under the store root: flows and tasks ask a :class:`Store` (made once, at the
flow or CLI boundary, and passed as is to workers). Layout under one root (a local folder, or a prefix on
object storage: ``s3://bucket/prefix``, ``gs://…``, ``az://…``, see "Object storage" below)::

    <store>/catalog/videos.parquet    one row per video_id (content hash): probe, extraction summary, manifest
    <store>/catalog/videos-<seq>.parquet  rows recorded since videos.parquet was last written (see below)
    <store>/catalog/files.parquet     one row per path seen: size, mtime, video_id (so unchanged files are not rehashed)
    <store>/catalog/failures.parquet  one row per run × video × stage that failed: reason, message (+ fragments)
    <store>/catalog/runs.parquet      one row per run: parameters and counts (+ fragments)
    <store>/catalog/erasures.parquet  append-only: one row per erasure or undo (video_id, scope, face_id, time)
    <store>/frames/video_id=<id>/part-0.parquet   one row per video × sampled frame × face track
    <store>/body/video_id=<id>/part-0.parquet     one row per video × body-sampled frame × person
    <store>/crops/video_id=<id>/part-0.parquet    one row per video × sampled frame × face: aligned JPEG crop
    <store>/predictions/task=<t>/model_version=<v>/video_id=<id>/part-0.parquet   one row per track × window
    <store>/models/<name>/<version>/              registry (``models.registry``)
    <store>/reports/<run id>/                     analysis reports
    <store>/work/<video_id>/<params>/             chunk fragments of a video being extracted (deleted when done)
    <store>/store.json                            store settings (``group_readable``)

Every file is written under a temporary name in its final folder and renamed into place, so a crash
never leaves a half-written file where a reader (DuckDB) looks. Partition files do not repeat the
``video_id`` column: it is the hive partition key (``hive_partitioning`` in DuckDB and pyarrow).

Permissions: the store root is 0o700 and every folder under it 0o700, every file 0o600 (owner only), or
0o750 / 0o640 when the store is made group-readable (``Store.ensure(group_readable=True)``, remembered in
``store.json``; the group is the folders' group, e.g. set with ``chgrp`` and the setgid bit). New folders
and files take their modes from the folder they are made in (:func:`make_dirs`, :func:`write_table_atomic`),
so Dask workers on other machines follow the policy too; :meth:`Store.ensure` re-applies it to the whole
tree (files written by others, e.g. the model registry) at the start of every writer.

Personal data: :meth:`Store.forget_video` and :meth:`Store.forget_face` remove everything derived from a
video or from one face track and record the erasure in ``erasures`` (no path: the content hash only);
:meth:`Store.expire_crops` applies the crops' retention.

Catalog fragments: a run records each video's row as a small fragment (``videos-<seq>.parquet``, one
atomic write, O(1) in the catalog's size) instead of rewriting ``videos.parquet``, and so its ``failures``
and ``runs`` rows; readers (:meth:`Store.read_catalog`, the DuckDB views of ``sql/staging``) see the union,
a key's row in the newest fragment winning over older fragments and the file (``failures`` has no key: a
row is its own, so a row found twice is one row). :meth:`Store.compact_catalog` (at the end
of a run, and before any whole rewrite) writes the union into ``videos.parquet`` and then deletes the
fragments it holds: a crash in between leaves fragments whose rows equal the file's, so no reader sees a
difference, and a crash at any other moment loses nothing already recorded.

Object storage: a store URL (and a corpus URL, :func:`location`) is opened through fsspec and
universal_pathlib, so the store's paths are ``UPath`` objects with the same methods as local ``Path`` ones;
credentials and endpoints come from each backend's own environment and configuration (``AWS_*`` variables,
``AWS_ENDPOINT_URL``, ``~/.aws``), and non-secret options (an endpoint URL) from ``storage_options``
(``--storage-option KEY=VALUE``), which refuses credentials. There are no folders, no permission modes and no
rename there: a file is one PUT (or a multipart upload completed at the end) of a file written to local
disk first, so it appears whole or not at all (:func:`models.files.atomic_write`), and the single-writer lock
is a lease object (:class:`Lease`) made with a conditional create, renewed while the run lives and taken
over only once it has expired.

Steps hand each other one record, :class:`StepResult` (what one step did to one video); the catalog's
``videos`` and ``failures`` rows are made from it here, and ``runs`` rows by :meth:`Store.append_run`.
"""

import contextlib
import fcntl
import importlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from models.files import atomic_write
from models.layout import BLENDSHAPE_NAMES, KEYPOINT_NAMES, N_LANDMARKS
from models.rules import BODY_TASKS, check_task
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
        # MediaPipe Face Landmarker blendshapes in [0, 1] (NaN from backends without them, e.g. insightface)
        *[(f"bs_{name}", pa.float32()) for name in BLENDSHAPE_NAMES[1:]],
        # infraorbital cheek height below the eye corners, IOD units (tasks.faces.infraorbital_height; NaN
        # from backends without a dense mesh)
        ("infraorbital", pa.float32()),
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
    """Columns of a predictions file of ``task``: window keys, model, label and one ``p_<class>`` per class.

    ``face_id`` is the face track for the face tasks (emotion, learner_state) and the body ``person_id`` for
    ``gesture``, whose windows run over the ``body`` samples."""
    classes = check_task(task)
    return pa.schema(
        [
            ("face_id", pa.int32()),  # face track; body person_id for gesture
            ("window_index", pa.int32()),  # index of the window within its face track
            ("start_time", pa.float64()),  # timestamp of the window's first sample, seconds
            ("end_time", pa.float64()),  # timestamp of the window's last sample, seconds
            ("n_frames", pa.int32()),  # samples in the window (< window only for a short track)
            ("n_owned", pa.int32()),  # samples whose label this window gives (tasks.inference.plan_windows)
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
FILE_COLUMNS = {
    "path": "string",
    "size_bytes": "Int64",
    "mtime_ns": "Int64",
    "video_id": "string",
    "version": "string",  # object storage: the object's version id or ETag (the hash cache's key); local: null
}
FAILURE_COLUMNS = {
    "run_id": "string",
    "video_id": "string",
    "path": "string",
    "stage": "string",  # discover | probe | decode | extract | finalize | infer
    "reason": "string",  # empty_file | not_a_video | decode_error | unreadable | truncated | ...
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
ERASURE_COLUMNS = {
    "video_id": "string",  # content hash of the video (the only identifier kept: never its path)
    "scope": "string",  # video | face_track
    "face_id": "Int32",  # the face track (scope face_track); null for a whole video
    "action": "string",  # erase | undo (an undo lets later runs extract the video again)
    "recorded_at": "datetime64[us, UTC]",
}
CATALOG_TABLES = {
    "videos": VIDEO_COLUMNS,
    "files": FILE_COLUMNS,
    "failures": FAILURE_COLUMNS,
    "runs": RUN_COLUMNS,
    "erasures": ERASURE_COLUMNS,
}
OWNER_ONLY_MODES = (0o700, 0o600)  # (folders, files)
GROUP_READABLE_MODES = (0o750, 0o640)
# catalog tables whose rows are recorded as fragments (see the docstring), by key (None: the whole row)
CATALOG_KEYS = {"videos": "video_id", "failures": None, "runs": "run_id"}
SETTINGS_FILE = "store.json"
REPORT_INDEX = "video_ids.json"  # in each report folder under the store: the videos the report may show


class StoreBusy(RuntimeError):
    """Another run is writing the same store."""


# where a store (or a corpus) lives: a local folder, or a prefix on object storage -------------------------
OBJECT_STORES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}  # scheme → package
SECRET_OPTION = re.compile(r"secret|token|password|passwd|credential|account_key|sas|private|^key$", re.IGNORECASE)
LEASE_FILE = ".lease.json"
LEASE_SECONDS = 60.0  # how long a writer's lease on an object-storage store lasts without renewal
log = logging.getLogger(__name__)


def lease_seconds() -> float:
    """How long a writer's lease on object storage lasts unrenewed: ``LESSONLENS_STORE_LEASE_SECONDS``, else 60."""
    return float(os.environ.get("LESSONLENS_STORE_LEASE_SECONDS", LEASE_SECONDS))


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


def precondition_failed(exc: OSError) -> bool:
    """Whether the object store refused a conditional write (S3's 412 PreconditionFailed, which s3fs raises as
    FileExistsError for If-None-Match and as a plain OSError for If-Match)."""
    response = getattr(exc.__cause__, "response", None) or {}
    return isinstance(exc, FileExistsError) or response.get("Error", {}).get("Code") == "PreconditionFailed"


class Lease:
    """The single-writer lock of a store on object storage, where no OS lock reaches every writer: the object
    ``<store>/.lease.json`` names its owner and when it expires.

    Taken with a conditional create (S3 ``If-None-Match: *``), so of two writers one gets it; renewed by a
    thread every third of ``seconds`` with an overwrite conditional on the ETag it wrote last (``If-Match``);
    another writer takes it over only once it has expired (a writer killed without releasing it), with an
    overwrite conditional on the expired lease's ETag, so that of two takers one wins; deleted at the end.
    Expiry is judged by the clocks of the writers' machines (keep them in sync, e.g. NTP). ``If-Match`` is
    S3's: on gs:// and az:// renewal and takeover overwrite without the condition.
    """

    def __init__(self, path: UPath, owner: str, seconds: float):
        self.path, self.owner, self.seconds = path, owner, seconds
        self.fs = path.fs
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        expires = time.time() + self.seconds
        return json.dumps({"owner": self.owner, "pid": os.getpid(), "host": socket.gethostname(),
                           "expires_at": expires}).encode()  # fmt: skip

    def _put(self, **condition) -> None:
        if condition.get("IfMatch") and self.fs.protocol[0] != "s3":
            condition = {}
        out = self.fs.pipe_file(self.path.path, self._body(), **condition)
        self.etag = (out or {}).get("ETag") or self.fs.info(self.path.path).get("ETag")

    def holder(self) -> tuple[dict, str] | None:
        """(the lease's content, its ETag), or None when there is none."""
        try:
            etag = self.fs.info(self.path.path).get("ETag")
            return json.loads(self.fs.cat_file(self.path.path)), etag
        except FileNotFoundError:
            return None

    def busy_error(self, holder: dict) -> StoreBusy:
        until = datetime.fromtimestamp(holder["expires_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return StoreBusy(
            f"store {self.path.parent} is being written by {holder['owner']} (pid {holder['pid']} on "
            f"{holder['host']}; its lease runs until {until} unless renewed); wait for that run to finish, or for "
            "its lease to expire if it died, or use another store"
        )

    def check(self) -> None:
        """Raise StoreBusy when a lease is held and has not expired."""
        held = self.holder()
        if held is not None and held[0]["expires_at"] > time.time():
            raise self.busy_error(held[0])

    def acquire(self) -> None:
        try:
            self._put(mode="create")
        except FileExistsError:
            held = self.holder()
            if held is None:  # released meanwhile
                return self.acquire()
            if held[0]["expires_at"] > time.time():
                raise self.busy_error(held[0]) from None
            try:
                self._put(IfMatch=held[1])
            except OSError as exc:
                if not precondition_failed(exc):
                    raise
                raise StoreBusy(f"store {self.path.parent}: another run took over the expired lease first") from None
            log.warning("store lease of %s (expired) taken over by %s", held[0]["owner"], self.owner)
        self._renewer = threading.Thread(target=self._renew, name="store-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self._put(IfMatch=self.etag)
            except OSError as exc:
                if precondition_failed(exc):  # it expired and another run took it over
                    self.lost = str(exc)
                    log.error("store lease of %s lost: %s", self.owner, self.lost)
                    return
                log.warning("store lease of %s not renewed this time (tried again later): %s", self.owner, exc)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        held = self.holder()
        if held is not None and held[1] == self.etag:
            self.fs.rm_file(self.path.path)
        elif not self.lost:  # taken over before the renewer noticed (e.g. the process was paused meanwhile)
            self.lost = f"now held by {held[0]['owner']}" if held else "the lease object is gone"
        if self.lost:
            raise StoreBusy(f"store {self.path.parent}: the writer's lease was lost during the run ({self.lost})")


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
    """A LessonLens store rooted at a local folder or at a prefix on object storage (:func:`location`).

    ``storage_options``: fsspec options of an object store (an endpoint URL; never credentials).
    """

    def __init__(self, root: "str | os.PathLike | Store", storage_options: dict | None = None):
        self.root = root.root if isinstance(root, Store) else location(root, storage_options)
        self._fragment_seq: dict[str, int] = {}  # last fragment number written by this object, by table

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __fspath__(self) -> str:  # a local Store is accepted wherever a path to its root is
        if self.is_remote:
            raise TypeError(f"store {self.url} is on object storage: it has no local path")
        return str(self.root)

    @property
    def url(self) -> str:
        """The store's location as text: a local folder, or a URL such as ``s3://bucket/prefix``."""
        return str(self.root)

    @property
    def is_remote(self) -> bool:
        return is_remote(self.root)

    def reader_filesystem(self):
        """A filesystem of the store on object storage for a short-lived reader (a DuckDB connection): a new
        instance that caches the listings it makes, so that opening a file answers its size and ETag from the
        listing instead of asking the object store once more per file."""
        options = {**self.storage_options, "use_listings_cache": True, "skip_instance_cache": True}
        return fsspec.filesystem(self.root.protocol, **options)

    @property
    def storage_options(self) -> dict:
        """The fsspec options the store was opened with (none for a local folder)."""
        return dict(self.root.storage_options) if self.is_remote else {}

    def ensure(self, group_readable: bool | None = None) -> "Store":
        """Create the folders and apply the permission policy to the whole store (see the module docstring),
        or raise an error naming the store when it cannot be written.

        ``group_readable``: True / False sets the store's policy (remembered in ``store.json``); None keeps
        the store's current one (owner only for a new store).
        """
        try:
            if self.is_remote:
                bucket = self.root.path.split("/", 1)[0]
                if not self.root.fs.exists(bucket):
                    raise FileNotFoundError(f"bucket {bucket} does not exist")
            else:
                self.root.mkdir(parents=True, exist_ok=True)
            if group_readable is not None and group_readable != self.group_readable:
                self._write_settings({**self._settings(), "group_readable": bool(group_readable)})
            self.apply_permissions()
            for sub in ("catalog", "frames", "body", "work"):
                make_dirs(self.root / sub)
            probe = self.root / f".write-test-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise PermissionError(f"store {self.url} is not writable: {exc}") from exc
        return self

    # settings and permissions ----------------------------------------------------------------
    def _settings(self) -> dict:
        path = self.root / SETTINGS_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_settings(self, settings: dict) -> None:
        write_bytes_atomic(self.root / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True).encode())

    @property
    def group_readable(self) -> bool:
        """Whether the store's files are readable by the folders' group (else by the owner only)."""
        return bool(self._settings().get("group_readable", False))

    @property
    def modes(self) -> tuple[int, int]:
        """(folder mode, file mode) of the store's policy."""
        return GROUP_READABLE_MODES if self.group_readable else OWNER_ONLY_MODES

    def apply_permissions(self, top: Path | None = None) -> int:
        """Give every folder and file under ``top`` (default: the whole store) the policy's modes; a folder's
        setgid bit is kept. Returns how many modes were changed. Symbolic links are left alone. Object storage has
        no modes (its access is the bucket's policy): nothing to do there."""
        if self.is_remote:
            return 0
        folder_mode, file_mode = self.modes
        changed = 0

        def fix(path: str, mode: int) -> None:
            nonlocal changed
            current = os.lstat(path).st_mode
            if stat.S_ISLNK(current):
                return
            wanted = mode | (current & stat.S_ISGID if stat.S_ISDIR(current) else 0)
            if stat.S_IMODE(current) != wanted:
                os.chmod(path, wanted)
                changed += 1

        top = Path(top) if top is not None else self.root
        if top.is_file():
            fix(str(top), file_mode)
            return changed
        fix(str(top), folder_mode)
        for folder, dirs, names in os.walk(top):
            for name in dirs:
                fix(os.path.join(folder, name), folder_mode)
            for name in names:
                fix(os.path.join(folder, name), file_mode)
        return changed

    def umask(self) -> int:
        """The umask that gives new files of this process no more than the policy's modes."""
        return 0o777 & ~self.modes[0]

    @contextmanager
    def writer_lock(self, owner: str) -> Iterator[None]:
        """Hold the store's single-writer lock for the duration of a run, or raise StoreBusy.

        An exclusive ``flock`` on ``<store>/.lock``: the operating system releases it when the holding
        process ends, even by ``kill -9``, so a crashed run never leaves a stale lock. (flock is reliable on
        local disks; on network file systems use one store per writer.) On object storage: a :class:`Lease`.
        """
        if self.is_remote:
            lease = Lease(self.root / LEASE_FILE, owner, lease_seconds())
            lease.acquire()
            try:
                yield
            finally:
                lease.release()
            return
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, self.modes[1])
        with open(fd, "a+") as fh:
            self._lock(fh)
            fh.seek(0)
            fh.truncate()
            since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            fh.write(f"{owner} (pid {os.getpid()} on {socket.gethostname()}, since {since})")
            fh.flush()
            # files made by this process and the local workers it starts meanwhile follow the store's policy
            previous_umask = os.umask(self.umask())
            try:
                yield
            finally:
                os.umask(previous_umask)
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def check_not_busy(self) -> None:
        """Raise StoreBusy now when another run holds the writer lock (to fail before starting anything)."""
        if self.is_remote:
            Lease(self.root / LEASE_FILE, "", lease_seconds()).check()
            return
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
        """Delete temporary files left by a writer that died before its rename; call under the writer lock.
        (Object storage gets no temporary files: each file is one upload, :func:`models.files.atomic_write`.)"""
        if self.is_remote:
            return 0
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
        files = sorted((self.root / table).glob("video_id=*/part-0.parquet"))
        return [f.parent.name.split("=", 1)[1] for f in files]

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
                remove_tree(folder)
                remove_empty_folder(folder.parent)  # the version's folder, once its last video is gone

    def stale_videos(self, task: str, version: str, table: str = "frames") -> list[str]:
        """Videos with a ``table`` partition (``frames``; ``body`` for gesture) but no predictions of ``task``
        by ``version``, or predictions older than that partition (the video was re-extracted), or written before
        windows carried ``n_owned`` (the marts' time accounting reads it; recomputed once)."""
        stale = []
        erased = self.erased_videos()  # never predicted again, even if a partition were left behind
        for video_id in self.video_ids(table):
            if video_id in erased:
                continue
            frames = self.partition(table, video_id)
            out = self.prediction_path(task, version, video_id)
            if (
                not out.is_file()
                or out.stat().st_mtime_ns < frames.stat().st_mtime_ns
                or "n_owned" not in read_schema(out).names
            ):
                stale.append(video_id)
        return stale

    # personal data: erasure, retention -------------------------------------------------------
    def _active_erasures(self) -> pd.DataFrame:
        """The erasures in force: for each (video, scope, face track), its last row when that is an erase."""
        rows = self.read_catalog("erasures")
        if rows.empty:
            return rows
        keys = rows[["video_id", "scope"]].assign(face_id=rows["face_id"].fillna(-1).astype("int64"))
        last = rows.loc[~keys.duplicated(keep="last")]
        return last[last["action"] == "erase"].reset_index(drop=True)

    def erased_videos(self) -> set[str]:
        """Videos erased as a whole: never extracted or predicted again (until an undo)."""
        active = self._active_erasures()
        return set(active.loc[active["scope"] == "video", "video_id"]) if not active.empty else set()

    def erased_face_tracks(self) -> dict[str, set[int]]:
        """Face tracks erased, by video: those videos are kept as they are, never re-extracted (a new
        extraction would assign new track ids and bring the person back)."""
        active = self._active_erasures()
        out: dict[str, set[int]] = {}
        if not active.empty:
            for row in active[active["scope"] == "face_track"].itertuples(index=False):
                out.setdefault(row.video_id, set()).add(int(row.face_id))
        return out

    def record_erasure(self, video_id: str, scope: str, face_id: int | None = None, action: str = "erase") -> bool:
        """Append an ``erasures`` row unless the erasure is already in that state; True when one was added."""
        if scope not in ("video", "face_track") or action not in ("erase", "undo"):
            raise ValueError(f"scope must be video or face_track and action erase or undo, got {scope}, {action}")
        if scope == "video":
            active = video_id in self.erased_videos()
        else:
            active = face_id in self.erased_face_tracks().get(video_id, set())
        if active == (action == "erase"):
            return False
        row = {"video_id": video_id, "scope": scope, "face_id": face_id, "action": action,
               "recorded_at": datetime.now(UTC)}  # fmt: skip
        self.append_catalog("erasures", pd.DataFrame([row]))
        return True

    def report_folders_showing(self, video_id: str) -> list[Path]:
        """Report folders under the store that may show ``video_id``: those whose index lists it, and those
        without an index (made before reports kept one)."""
        found = []
        for folder in sorted(p for p in self.reports_dir().glob("*") if p.is_dir()):
            index = folder / REPORT_INDEX
            if not index.is_file() or video_id in json.loads(index.read_text()):
                found.append(folder)
        return found

    def write_report_index(self, folder: Path, video_ids: Iterable[str]) -> None:
        """Record which videos a report folder may show, so that erasing one of them removes the report."""
        write_bytes_atomic(folder / REPORT_INDEX, json.dumps(sorted(set(video_ids))).encode())

    def upload_report(self, folder: Path) -> UPath:
        """Upload a report written in the local ``folder`` (with its index) to ``<store>/reports/<folder name>/`` on
        object storage, one whole-or-nothing upload per file, index first; return the report's folder there."""
        target = self.reports_dir() / folder.name
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name != REPORT_INDEX)
        for file in files:
            target.fs.put_file(str(file), (target / file.relative_to(folder).as_posix()).path)
        return target

    def _drop_catalog_rows(self, table: str, video_id: str) -> int:
        rows = self.read_catalog(table)
        keep = rows["video_id"] != video_id
        if keep.all():
            return 0
        self.write_catalog(table, rows[keep.fillna(True)])
        return int((~keep.fillna(True)).sum())

    def remove_results(self, video_id: str) -> dict[str, int]:
        """Remove what was derived from ``video_id``: its frames, body and crops partitions, its predictions of
        every task and model version, its work fragments and training-cache entry, and its ``videos`` row.
        Idempotent: returns what this call removed."""
        removed = {}
        for table in ("frames", "body", "crops"):
            removed[table] = int(remove_tree(self.partition(table, video_id).parent))
        removed["predictions"] = 0
        for folder in self.root.glob(f"predictions/task=*/model_version=*/video_id={video_id}"):
            remove_tree(folder)
            removed["predictions"] += 1
            remove_empty_folder(folder.parent)  # the version's folder, once its last video is gone
        removed["work"] = int(remove_tree(self.work_dir(video_id)))
        removed["training_cache"] = int(remove_tree(self.training_cache() / video_id))
        removed["videos_rows"] = self._drop_catalog_rows("videos", video_id)
        return removed

    def superseded_videos(self) -> set[str]:
        """Videos whose file now holds other content (a lesson re-exported or replaced in place): the path of
        their ``videos`` row is held by another id in the ``files`` catalog, and no file holds them any more.
        A file that only left the corpus keeps its results (its ``files`` row stays)."""
        files, videos = self.read_catalog("files"), self.read_catalog("videos")
        if files.empty or videos.empty:
            return set()
        now = dict(zip(files["path"], files["video_id"], strict=True))
        held = set(now.values())
        return {
            v for v, p in zip(videos["video_id"], videos["path"], strict=True) if v not in held and now.get(p, v) != v
        }

    def forget_video(self, video_id: str) -> dict[str, int]:
        """Remove everything derived from ``video_id`` and record the erasure (call under the writer lock).

        Removed: its results (:meth:`remove_results`), its ``files`` and ``failures`` rows, and the report
        folders that may show it. The erasure is recorded first, so an interrupted call leaves the video erased
        for later runs, and calling again finishes the removal. Idempotent: returns what this call removed.
        """
        removed = {"erasure_recorded": int(self.record_erasure(video_id, "video")), **self.remove_results(video_id)}
        for table in ("files", "failures"):
            removed[f"{table}_rows"] = self._drop_catalog_rows(table, video_id)
        reports = self.report_folders_showing(video_id)
        for folder in reports:
            remove_tree(folder)
        removed["reports"] = len(reports)
        return removed

    def face_ids(self, video_id: str) -> list[int]:
        """The face tracks in the video's frames partition (empty when it has none)."""
        path = self.partition("frames", video_id)
        if not path.is_file():
            return []
        return sorted({int(v) for v in read_table(path, columns=["face_id"])["face_id"].to_pylist()})

    def forget_face(self, video_id: str, face_id: int) -> dict[str, int]:
        """Remove one face track's rows (frames, crops, predictions of every face task and version) and record the
        erasure; the other faces' rows stay. Body keypoints and gesture predictions are not linked to face tracks
        and stay (forget the video to remove them). Reports that may show the video, and its training clips
        (cached crops), are removed. Call under the writer lock.

        Raises ValueError when the video has no such face track and it was not erased before.
        """
        tracks = self.face_ids(video_id)
        already = face_id in self.erased_face_tracks().get(video_id, set())
        if face_id not in tracks and not already:
            raise ValueError(
                f"parameter face_id: video {video_id} has no face track {face_id} "
                f"(its tracks: {', '.join(map(str, tracks)) or 'none'})"
            )
        removed = {"erasure_recorded": int(self.record_erasure(video_id, "face_track", face_id))}
        frames_path = self.partition("frames", video_id)
        # file times are kept: the rows left mean what they meant, so predictions stay current and crops age on
        removed["frames_rows"] = _filter_face(frames_path, face_id, keep_times=True)
        removed["crops_rows"] = _filter_face(self.partition("crops", video_id), face_id, keep_times=True)
        removed["predictions_rows"] = sum(  # body tasks' rows are per body person, not linked to face tracks
            _filter_face(path, face_id)
            for path in self.root.glob(f"predictions/task=*/model_version=*/video_id={video_id}/part-0.parquet")
            if path.parts[-4].removeprefix("task=") not in BODY_TASKS
        )
        if removed["frames_rows"]:
            frames = read_table(frames_path, columns=["frame", "face_id"])
            videos = self.read_catalog("videos")
            at = videos["video_id"] == video_id
            videos.loc[at, "face_rows"] = frames.num_rows
            videos.loc[at, "face_tracks"] = len(set(frames["face_id"].to_pylist()))
            videos.loc[at, "frames_with_face"] = len(set(frames["frame"].to_pylist()))
            self.write_catalog("videos", videos)
        removed["work"] = int(remove_tree(self.work_dir(video_id)))
        # training clips of the video hold its faces' crops; training skips the video from now on
        removed["training_cache"] = int(remove_tree(self.training_cache() / video_id))
        reports = self.report_folders_showing(video_id)
        for folder in reports:
            remove_tree(folder)
        removed["reports"] = len(reports)
        return removed

    def extract_again(self, video_id: str) -> None:
        """Make the next run extract ``video_id`` again (its rows are replaced then): its ``videos`` row loses
        the extraction parameters, which a run compares with its own to tell that a video is done."""
        videos = self.read_catalog("videos")
        at = videos["video_id"] == video_id
        if at.any():
            videos.loc[at, "params"] = None
            self.write_catalog("videos", videos)

    def training_cache(self) -> Path:
        """``<store>/cache/clips``: training's extraction cache, one folder per video (content id)."""
        return self.root / "cache" / "clips"

    def training_exclusions(self) -> set[str]:
        """Videos training must not read from this store's corpus: erased ones, and those with an erased face
        track (a training clip is cut around one face, and would bring that person's crops back)."""
        return self.erased_videos() | set(self.erased_face_tracks())

    def crop_files(self) -> dict[str, os.stat_result]:  # on object storage: universal_pathlib's stat result
        """The crops partitions by video, with their ``stat`` (size, and mtime = when they were written)."""
        return {v: self.partition("crops", v).stat() for v in self.video_ids("crops")}

    def expire_crops(self, max_age_days: float, versions: dict[str, str], now: datetime | None = None) -> list[str]:
        """Delete the crops partitions older than ``max_age_days`` whose video has current predictions of every
        task by the version inference uses now (``versions``: task → version). Returns the videos whose crops
        were deleted. Crops whose predictions are missing or stale are kept: they are still needed."""
        if max_age_days < 0:
            raise ValueError(f"crops retention must be >= 0 days, got {max_age_days}")
        limit = (now or datetime.now(UTC)).timestamp() - max_age_days * 86400
        stale = {v for task, version in versions.items() for v in self.stale_videos(task, version)}
        expired = []
        for video_id, info in self.crop_files().items():
            if info.st_mtime < limit and video_id not in stale and self.has_partition("frames", video_id):
                remove_tree(self.partition("crops", video_id).parent)
                expired.append(video_id)
        return expired

    # catalog ----------------------------------------------------------------------------------
    def catalog_path(self, table: str) -> Path:
        return self.root / "catalog" / f"{table}.parquet"

    def catalog_fragments(self, table: str) -> list[Path]:
        """Fragments of catalog ``table`` not yet compacted into its file, oldest first."""
        if table not in CATALOG_KEYS:
            return []
        return sorted(self.catalog_path(table).parent.glob(f"{table}-*.parquet"))

    def read_catalog(self, table: str) -> pd.DataFrame:
        """Catalog ``table``: its file and its fragments, the newest row of each key winning (placed where
        that row was recorded, as a whole rewrite after each record would have placed it)."""
        for attempt in range(3):
            path = self.catalog_path(table)
            parts = ([path] if path.is_file() else []) + self.catalog_fragments(table)
            try:
                frames = [read_frame(p) for p in parts]
                break
            except FileNotFoundError:  # compacted meanwhile by the writer: list again
                if attempt == 2:
                    raise
        if not parts:
            return empty_frame(CATALOG_TABLES[table])
        df = conform(concat(frames) if len(frames) > 1 else frames[0], CATALOG_TABLES[table])
        if len(frames) > 1:
            df = df.drop_duplicates(CATALOG_KEYS[table], keep="last", ignore_index=True)
        return df

    def write_catalog(self, table: str, df: pd.DataFrame) -> None:
        """Replace catalog ``table`` by ``df`` (its fragments are compacted first, so that a crash meanwhile
        cannot bring back rows ``df`` left out)."""
        self.compact_catalog(table)
        df = conform(df, CATALOG_TABLES[table])
        write_table_atomic(pa.Table.from_pandas(df, preserve_index=False), self.catalog_path(table))

    def compact_catalog(self, table: str) -> int:
        """Write the union of ``table``'s file and fragments into its file, then delete those fragments;
        returns how many there were. Call under the writer lock."""
        fragments = self.catalog_fragments(table)
        if not fragments:
            return 0
        union = self.read_catalog(table)
        write_table_atomic(pa.Table.from_pandas(union, preserve_index=False), self.catalog_path(table))
        for fragment in fragments:
            fragment.unlink(missing_ok=True)
        self._fragment_seq.pop(table, None)
        return len(fragments)

    def compact_catalogs(self) -> int:
        """:meth:`compact_catalog` of every table recorded as fragments (at the end of a run)."""
        return sum(self.compact_catalog(table) for table in CATALOG_KEYS)

    def record_catalog(self, table: str, rows: pd.DataFrame) -> None:
        """Replace the rows of ``table`` with the keys of ``rows`` (unique) and append the others (all of them
        in a table without a key), in O(1): one new fragment (the table's file itself while it does not exist
        yet). Call under the writer lock."""
        if rows.empty:
            return
        key = CATALOG_KEYS[table]
        if key is not None and rows[key].duplicated().any():
            raise ValueError(f"catalog {table}: rows to record repeat a {key}")
        data = pa.Table.from_pandas(conform(rows, CATALOG_TABLES[table]), preserve_index=False)
        path = self.catalog_path(table)
        if table not in self._fragment_seq:
            if not path.is_file() and not self.catalog_fragments(table):
                write_table_atomic(data, path)
                return
            last = self.catalog_fragments(table)
            self._fragment_seq[table] = int(last[-1].stem.rsplit("-", 1)[1]) if last else 0
        self._fragment_seq[table] += 1
        target = path.with_name(f"{table}-{self._fragment_seq[table]:012d}.parquet")
        while target.exists():  # written meanwhile through another Store object of this store
            self._fragment_seq[table] += 1
            target = path.with_name(f"{table}-{self._fragment_seq[table]:012d}.parquet")
        write_table_atomic(data, target)

    def upsert_catalog(self, table: str, rows: pd.DataFrame, key: str | list[str]) -> None:
        """Replace rows of catalog ``table`` whose ``key`` matches ``rows``; append the others (a whole
        rewrite: :meth:`record_catalog` does the same in O(1) for the tables of ``CATALOG_KEYS``)."""
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
        """Append ``rows`` to catalog ``table``: one fragment for the tables of ``CATALOG_KEYS``, else a whole
        rewrite."""
        if table in CATALOG_KEYS:
            self.record_catalog(table, rows)
        elif not rows.empty:
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
        self.record_catalog("videos", pd.DataFrame([row]))

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
    if is_remote(path):
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS))
        return
    path = Path(path)
    make_dirs(path.parent)
    mode = file_mode(path.parent)

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)
        os.chmod(tmp, mode)

    atomic_write(path, write)


def _filter_face(path: Path, face_id: int, keep_times: bool = False) -> int:
    """Rewrite the Parquet file at ``path`` (if any) without the rows of ``face_id``; returns how many were
    removed. The schema and its metadata are kept; ``keep_times`` keeps the file's access and modification
    times (the crops' age counts from their extraction)."""
    if not path.is_file():
        return 0
    table = parquet_file(path).read()
    keep = pc.not_equal(table["face_id"], pa.scalar(face_id, table.schema.field("face_id").type))
    kept = table.filter(keep)
    if kept.num_rows == table.num_rows:
        return 0
    before = path.stat()
    write_table_atomic(kept, path)
    if keep_times and not is_remote(path):  # an object's time is its upload's: crops age from their rewrite there
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return table.num_rows - kept.num_rows


def table_from_columns(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from a dict of column arrays (missing columns are an error)."""
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise KeyError(f"columns missing for schema: {missing}")
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)
