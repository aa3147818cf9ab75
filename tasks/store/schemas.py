"""The store's Parquet schemas and catalog columns, and the small frame helpers that conform rows to them.

``FRAME_SCHEMA``, ``BODY_SCHEMA``, ``CROP_SCHEMA``, ``DESCRIPTOR_SCHEMA`` and :func:`prediction_schema` are the
partition files' schemas; ``CATALOG_TABLES`` the catalog tables' columns with their pandas dtypes,
``CATALOG_KEYS`` the key that makes a newer catalog row replace an older one. Column names follow OpenFace where
they overlap.
"""

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from models.layout import AU_NAMES, BLENDSHAPE_NAMES, DESCRIPTOR_SIZE, KEYPOINT_NAMES, N_LANDMARKS
from models.rules import check_task

PARQUET_OPTIONS = {"compression": "zstd"}

FRAME_SCHEMA = pa.schema(
    [
        ("frame", pa.int32()),  # index of the decoded frame in the video (display order)
        ("timestamp", pa.float64()),  # presentation time of that frame, seconds
        ("face_id", pa.int32()),  # face track: one person, cut where the person changes (tasks.extract.identity)
        ("person_id", pa.int32()),  # the person of the track: tracks linked by face descriptors and time
        ("tile", pa.int8()),  # gallery tile (row-major) of the face; -1 when the video is not a gallery
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
        # infraorbital cheek height below the eye corners, IOD units (tasks.extract.faces.infraorbital_height; NaN
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
        ("jpeg", pa.binary()),  # the aligned 112 × 112 RGB crop (``tasks.extract.crops``), JPEG
    ]
)

# Face descriptors of a video's persons, kept only with ``--link-people`` (biometric data: README, Personal data).
DESCRIPTOR_SCHEMA = pa.schema(
    [
        ("person_id", pa.int32()),  # as in ``frames``
        ("frame", pa.int32()),  # the frame the face was described in
        ("descriptor", pa.list_(pa.float32(), DESCRIPTOR_SIZE)),  # tasks.extract.identity.describe
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
            ("person_id", pa.int32()),  # the person of the track (frames.person_id); body person_id for gesture
            ("window_index", pa.int32()),  # index of the window within its face track
            ("start_time", pa.float64()),  # timestamp of the window's first sample, seconds
            ("end_time", pa.float64()),  # timestamp of the window's last sample, seconds
            ("n_frames", pa.int32()),  # samples in the window (< window only for a short track)
            ("n_owned", pa.int32()),  # samples whose label this window gives (tasks.predict.inference.plan_windows)
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
    "persons": "Int32",  # distinct person_id
    "layout": "string",  # single | room (several people in view at once) | gallery (a video call's tiles)
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

PEOPLE_COLUMNS = {  # written whole by each linking (tasks.extract.linking), never as fragments
    "video_id": "string",
    "person_id": "Int32",  # as in ``frames``
    "person_key": "string",  # the same person across the videos of one course: "<video_id>:<person_id>" of their
    # first appearance in the course (first by extraction time)
    "course": "string",  # the manifest's course ("" when the video has none: those videos are one course)
    "linked_at": "datetime64[us, UTC]",
}

CATALOG_TABLES = {
    "videos": VIDEO_COLUMNS,
    "files": FILE_COLUMNS,
    "failures": FAILURE_COLUMNS,
    "runs": RUN_COLUMNS,
    "erasures": ERASURE_COLUMNS,
    "people": PEOPLE_COLUMNS,
}

OWNER_ONLY_MODES = (0o700, 0o600)  # (folders, files)

GROUP_READABLE_MODES = (0o750, 0o640)

# catalog tables whose rows are recorded as fragments (see the docstring), by key (None: the whole row)
CATALOG_KEYS = {"videos": "video_id", "failures": None, "runs": "run_id"}

SETTINGS_FILE = "store.json"

REPORT_INDEX = "video_ids.json"  # in each report folder under the store: the videos the report may show


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


def table_from_columns(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from a dict of column arrays (missing columns are an error)."""
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise KeyError(f"columns missing for schema: {missing}")
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)
