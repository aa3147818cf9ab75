"""Extraction of one video: chunks of sampled frames → faces, landmarks, pose, body → per-video finalize.

``extract_chunk`` is the unit of parallel work (one Dask task): it opens the video itself (paths in,
paths out: no pixels travel between tasks), decodes its sampled frames with decord, runs the face and
body backends and writes one Parquet fragment under ``<store>/work/<video_id>/<params>/``. A fragment
that exists is complete (it was renamed into place), so a rerun after a crash skips it.

``finalize_video`` needs the whole video: it assigns stable ``face_id`` tracks, computes action units
relative to each track's own neutral baseline, writes the ``frames`` and ``body`` partitions atomically
and removes the fragments.
"""

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models.faceapi_package import recognition_chip
from models.layout import BLENDSHAPE_NAMES, KEYPOINT_NAMES, N_LANDMARKS
from tasks.extract.body import load_body_backend
from tasks.extract.crops import append_crop, crop_columns
from tasks.extract.decode import (
    Chunk,
    ChunkDecode,
    Probe,
    VideoError,
    decode_chunk,
    frame_times,
    keyframe_times,
    open_video,
    plan_chunks,
    probe,
    truncation_warnings,
    video_decoding,
)
from tasks.extract.discover import VideoRef, local_video
from tasks.extract.faces import load_face_backend
from tasks.extract.gallery import detect_grid, grid_metadata, layout_of, tile_of, video_grid
from tasks.extract.identity import (
    DESCRIPTOR_SIZE,
    DescriptorSampler,
    assign_person_ids,
    describe_at,
    descriptor_column,
    descriptor_matrix,
    face_quality,
    link_bodies,
    undescribed_tracks,
)
from tasks.store import (
    BODY_SCHEMA,
    CROP_SCHEMA,
    FRAME_SCHEMA,
    StepResult,
    Store,
    make_dirs,
    read_metadata,
    read_schema,
    read_table,
    remove_tree,
    table_from_columns,
    write_parts_atomic,
    write_table_atomic,
)

CATALOG_COUNTS = ("sampled_frames", "face_rows", "face_tracks", "persons", "frames_with_face", "body_rows")
EXTRACTOR_VERSION = "5"  # bump when what the rows mean changes (detector, landmarks, tracking, AUs): stores re-extract


@dataclass(frozen=True)
class ExtractParams:
    """What the extracted rows depend on; a change of any field re-extracts the video.

    Args:
        fps: face sampling rate, frames per second of video.
        chunk_seconds: whole seconds of video per Dask task.
        face_backend: face backend name (see ``tasks.extract.faces.FACE_BACKENDS``).
        face_options: backend options as sorted (name, value) pairs, e.g. (("model_dir", "/packs/x"),).
        body_fps: body keypoint sampling rate (0 turns body keypoints off); a subset of the face samples.
        au_model_dir: a user-supplied AU model directory; None uses the geometric AUs.
        keep_crops: also store aligned 112×112 face crops (``crops`` table) so that predictions can be
            recomputed after retraining without decoding the video again.
        descriptor_seconds: face descriptors for ``person_id`` on one frame per this many seconds of each
            chunk (``tasks.extract.identity``); 0 turns them off (each track is then its own person).
    """

    fps: float = 5.0
    chunk_seconds: int = 10
    face_backend: str = "mediapipe"
    face_options: tuple[tuple[str, str], ...] = ()
    body_fps: float = 1.0
    au_model_dir: str | None = None
    keep_crops: bool = True
    descriptor_seconds: float = 3.0
    version: str = field(default=EXTRACTOR_VERSION)

    def __post_init__(self):
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.body_fps < 0 or self.body_fps > self.fps:
            raise ValueError(f"body_fps must be between 0 and fps ({self.fps}), got {self.body_fps}")
        if self.chunk_seconds < 1:
            raise ValueError(f"chunk_seconds must be >= 1, got {self.chunk_seconds}")
        if self.descriptor_seconds < 0:
            raise ValueError(f"descriptor_seconds must be >= 0, got {self.descriptor_seconds}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def key(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def work_key(self) -> str:
        """The folder of a video's chunk fragments (``Store.work_dir``): :meth:`key` and the chunking rule, so that a
        run never reuses the fragments a crashed run left from chunks planned otherwise (before they started at
        keyframes, ``tasks.extract.decode.plan_chunks``)."""
        return f"{self.key()}-keyframe-chunks"

    @property
    def descriptor_every(self) -> int:
        """Face descriptors on one frame per this many face samples (0: never)."""
        return 0 if self.descriptor_seconds == 0 else max(1, round(self.fps * self.descriptor_seconds))

    @property
    def body_every(self) -> int:
        """Body keypoints on every n-th face sample (0: never)."""
        return 0 if self.body_fps == 0 else max(1, round(self.fps / self.body_fps))


@dataclass(frozen=True)
class ChunkJob:
    """One chunk of a video to extract: its fragments go to ``work_dir`` (``Store.work_dir``, local or on object
    storage); ``storage_options`` open the video when it is on object storage
    (``tasks.extract.discover.local_video``)."""

    video_id: str
    path: str
    chunk: Chunk
    params: ExtractParams
    work_dir: Path  # or a UPath on object storage
    storage_options: tuple[tuple[str, object], ...] = ()

    @property
    def faces_path(self) -> Path:
        return self.work_dir / f"faces-{self.chunk.index:05d}.parquet"

    @property
    def body_path(self) -> Path:
        return self.work_dir / f"body-{self.chunk.index:05d}.parquet"

    @property
    def crops_path(self) -> Path:
        return self.work_dir / f"crops-{self.chunk.index:05d}.parquet"

    def is_done(self) -> bool:
        """All fragments of this chunk are in place (the faces fragment is renamed into place last)."""
        return self.faces_path.is_file()

    @property
    def key(self) -> str:
        """This chunk's Dask key, the same wherever it is planned (its fragments' folder and chunk): a chunk that
        ``lessonlens run`` started ahead of the flow (``flows.engine.head_start``) and is still running is joined
        by the flow's own submission of it, never computed twice."""
        digest = hashlib.sha256(f"{self.work_dir}|{self.chunk.index}|{self.chunk.frames}".encode()).hexdigest()
        return f"extract_chunk-{self.video_id[:12]}-{self.chunk.index}-{digest[:16]}"


@dataclass(frozen=True)
class ChunkResult:
    chunk: int
    sampled: int
    faces: int
    bodies: int
    seconds: float  # wall time spent, 0 when the fragment already existed


_QUIET = False


def quiet_native_logs() -> None:
    """In a Dask worker process, send what native libraries write to stderr (MediaPipe / TFLite / absl, and
    FFmpeg through decord) to /dev/null, once; Python's own stderr (logging, tracebacks) keeps the real one.

    Those lines repeat per worker and per model ("Created TensorFlow Lite XNNPACK delegate", "moov atom not
    found"): noise, not information, since every failure is recorded with its reason. Outside a worker (the
    CLI process, tests calling these functions directly) nothing changes.
    """
    global _QUIET
    if _QUIET:
        return
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    _QUIET = True
    old = sys.stderr
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)  # the real stderr, for Python
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # fd 2, where native code writes, goes nowhere
    os.close(devnull)
    for ref in logging._handlerList:  # handlers made before now wrote to the old object (fd 2)
        handler = ref()
        if isinstance(handler, logging.StreamHandler) and handler.stream is old:
            handler.setStream(sys.stderr)


# worker-side model pool: backends are loaded once per worker process and never shared by two threads
_POOL: dict[tuple, list] = {}
_POOL_LOCK = threading.Lock()


@contextmanager
def pooled(kind: str, name: str, options: tuple[tuple[str, str], ...]) -> Iterator[object]:
    key = (kind, name, options)
    with _POOL_LOCK:
        free = _POOL.setdefault(key, [])
        backend = free.pop() if free else None
    if backend is None:
        backend = load_face_backend(name, **dict(options)) if kind == "face" else load_body_backend(name)
    try:
        backend.reset()
        yield backend
    finally:
        with _POOL_LOCK:
            _POOL[key].append(backend)


def preload_backends(params: ExtractParams) -> None:
    """Load the face and body backends of ``params`` into this worker's pool and run each once on a blank frame,
    so that the run's first chunk finds them ready (imports, model files, graphs: seconds per worker).
    ``lessonlens run`` calls it on every local worker while the Prefect API starts (``flows.engine.run_services``)."""
    quiet_native_logs()
    blank = np.zeros((64, 64, 3), np.uint8)
    with pooled("face", params.face_backend, params.face_options) as face_backend:
        face_backend.detect(blank)
    if params.body_every:
        with pooled("body", "mediapipe", ()) as body_backend:
            body_backend.detect(blank)


FACE_FRAGMENT_COLUMNS = [
    f.name
    for f in FRAME_SCHEMA
    if f.name not in {"face_id", "person_id", "tile", "success"} and not f.name.startswith("AU")
]
DESCRIPTOR_TYPE = pa.list_(pa.float32(), DESCRIPTOR_SIZE)  # the faces fragment's ``descriptor`` column


# An open decord reader keeps decoding ahead in its own thread (0.15-0.3 CPU-seconds a second while idle, measured
# while profiling bench/limit.py): while the face models run it competes with them for the cores, and two
# workers side by side ran each chunk ~1.4x slower. So a chunk's frames are decoded ahead, up to this many
# bytes of pixels (all of a 10 s chunk at 5 fps up to 720p), and the reader closed before the models run.
READ_AHEAD_BYTES = 192 * 2**20


def read_ahead(frames: Iterator[tuple[int, np.ndarray]], max_bytes: int) -> Iterator[tuple[int, np.ndarray]]:
    """The items of ``frames`` in order, pulled in groups of up to ``max_bytes`` of pixels before any is
    yielded (at least one per group), so that the source is exhausted, and freed, as early as memory allows."""
    while True:
        group, size = [], 0
        for item in frames:
            group.append(item)
            size += item[1].nbytes
            if size >= max_bytes:
                break
        if not group:
            return
        yield from group


def extract_chunk(job: ChunkJob) -> ChunkResult:
    """Decode one chunk's sampled frames, detect faces (and bodies), write its fragments."""
    quiet_native_logs()
    if job.is_done():
        meta = read_schema(job.faces_path).metadata or {}
        sampled = int(meta.get(b"sampled_frames", b"0"))
        return ChunkResult(job.chunk.index, sampled, read_metadata(job.faces_path).num_rows, 0, 0.0)
    start = time.perf_counter()
    faces: dict[str, list] = {name: [] for name in FACE_FRAGMENT_COLUMNS}
    bodies: dict[str, list] = {f.name: [] for f in BODY_SCHEMA}
    crops = crop_columns()  # row i of the crops fragment is row i of the faces fragment
    stamps = dict(zip(job.chunk.frames, job.chunk.timestamps, strict=True))
    body_every = job.params.body_every
    sampler = DescriptorSampler(job.params.descriptor_every) if job.params.descriptor_every else None
    grid = None
    decoded = ChunkDecode()  # decord, or PyAV where decord fails; frames neither decodes are skipped
    with (
        local_video(job.path, job.video_id, dict(job.storage_options)) as path,
        pooled("face", job.params.face_backend, job.params.face_options) as face_backend,
        pooled("body", "mediapipe", ()) if body_every else nullcontext() as body_backend,
    ):
        reader = open_video(path)
        frames = decode_chunk(path, reader, job.chunk, decoded)
        del reader  # the generator holds it: it is closed as soon as the chunk's last frame is decoded
        for i, (frame, pixels) in enumerate(read_ahead(frames, READ_AHEAD_BYTES)):
            if i == 0:
                grid = detect_grid(pixels)
            found = face_backend.detect(pixels)
            if sampler and found:
                first = len(faces["frame"])
                chips = [recognition_chip(pixels, face.landmarks) for face in found]
                qualities = [face_quality(pixels, face.landmarks, face.pose) for face in found]
                sampler.offer(i, list(range(first, first + len(found))), chips, qualities)
            for index, face in enumerate(found):
                _append_face(faces, frame, stamps[frame], face)
                if job.params.keep_crops:
                    append_crop(crops, frame, stamps[frame], index, face, pixels)
            if body_every and i % body_every == 0:
                for body in body_backend.detect_in_view(pixels, [f.bbox for f in found]):
                    _append_body(bodies, frame, stamps[frame], -1, body)  # person: set by finalize_video
    n_decoded = len(job.chunk.frames) - len(decoded.missing)
    sampled = {b"sampled_frames": str(n_decoded).encode(), b"grid": grid_metadata(grid), **decoded.metadata()}
    if body_every:
        write_table_atomic(table_from_columns(bodies, BODY_SCHEMA), job.body_path)
    if job.params.keep_crops:
        write_table_atomic(table_from_columns(crops, CROP_SCHEMA), job.crops_path)
    n_faces = len(faces["frame"])
    descriptors = sampler.descriptors(n_faces) if sampler else np.full((n_faces, DESCRIPTOR_SIZE), np.nan, np.float32)
    faces["descriptor"] = descriptor_column(descriptors)
    fields = [FRAME_SCHEMA.field(n) for n in FACE_FRAGMENT_COLUMNS] + [pa.field("descriptor", DESCRIPTOR_TYPE)]
    write_table_atomic(table_from_columns(faces, pa.schema(fields, metadata=sampled)), job.faces_path)
    return ChunkResult(
        job.chunk.index,
        n_decoded,
        len(faces["frame"]),
        len(bodies["frame"]),
        time.perf_counter() - start,
    )


def _append_face(cols: dict[str, list], frame: int, timestamp: float, face) -> None:
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    cols["frame"].append(frame)
    cols["timestamp"].append(timestamp)
    cols["confidence"].append(float(face.score))
    cols["bbox_x"].append(x1)
    cols["bbox_y"].append(y1)
    cols["bbox_w"].append(x2 - x1)
    cols["bbox_h"].append(y2 - y1)
    for i in range(N_LANDMARKS):
        cols[f"x_{i}"].append(float(face.landmarks[i, 0]))
        cols[f"y_{i}"].append(float(face.landmarks[i, 1]))
    for axis, value in zip(("pose_Rx", "pose_Ry", "pose_Rz"), face.pose, strict=True):
        cols[axis].append(float(value))
    shapes = face.blendshapes if face.blendshapes is not None else np.full(len(BLENDSHAPE_NAMES), np.nan)
    for name, value in zip(BLENDSHAPE_NAMES[1:], shapes[1:], strict=True):
        cols[f"bs_{name}"].append(float(value))
    cols["infraorbital"].append(float(face.infraorbital))


def _append_body(cols: dict[str, list], frame: int, timestamp: float, person: int, body) -> None:
    cols["frame"].append(frame)
    cols["timestamp"].append(timestamp)
    cols["person_id"].append(person)
    cols["confidence"].append(float(body.score))
    for k, name in enumerate(KEYPOINT_NAMES):
        for j, axis in enumerate(("x", "y", "v")):
            cols[f"{name}_{axis}"].append(float(body.keypoints[k, j]))


def plan_video(
    ref: VideoRef, params: ExtractParams, storage_options: dict | None = None
) -> tuple[Probe, list[Chunk], list[dict[str, str]]]:
    """The video's probe, its chunks, and the warnings the probe raises (a ``truncated`` file)."""
    with local_video(ref.path, ref.video_id, storage_options) as path:
        reader = open_video(path)
        times = frame_times(reader)
        probed = probe(reader, times, path)
        return (
            probed,
            plan_chunks(times, params.fps, params.chunk_seconds, keyframe_times(reader, times)),
            truncation_warnings(path, probed, params.fps),
        )


def chunk_jobs(
    ref: VideoRef, params: ExtractParams, store: Store
) -> tuple[Probe, list[ChunkJob], list[dict[str, str]]]:
    """The video's probe, the jobs of its chunks (:func:`plan_video`) and the probe's warnings."""
    quiet_native_logs()
    probed, chunks, warnings = plan_video(ref, params, store.storage_options)
    work = store.work_dir(ref.video_id, params.work_key())
    options = tuple(sorted(store.storage_options.items()))
    return probed, [ChunkJob(ref.video_id, ref.path, chunk, params, work, options) for chunk in chunks], warnings


def chunks_ahead(to_extract: list[tuple[VideoRef, ExtractParams]], st: Store, n: int) -> list[ChunkJob]:
    """The first ``n`` chunk jobs of the videos ``to_extract`` (in the order the flow submits them), planned as
    :func:`extract_video` plans them, for ``lessonlens run`` to start while the Prefect API starts
    (``flows.engine.head_start``). A video that cannot be planned is left out: the flow plans it again and says why."""
    jobs: list[ChunkJob] = []
    for ref, params in to_extract:
        if len(jobs) >= n:
            break
        try:
            jobs += chunk_jobs(ref, params, st)[1]
        except (VideoError, OSError):
            continue
    return jobs[:n]


def extract_video(
    ref: VideoRef,
    params: ExtractParams,
    store: Store,
    run_chunks: Callable[[list[ChunkJob]], Sequence[ChunkResult]],
) -> StepResult:
    """Probe, plan, extract all chunks (through ``run_chunks``, e.g. a Dask ``client.map``) and finalize.

    Problems with the video itself (missing, empty, not a video, undecodable) come back as a failed
    ``StepResult`` naming the stage and reason; they never raise. ``counts`` are the video's catalog
    counts (``sampled_frames``, ``face_rows``, ``face_tracks``, ``frames_with_face``, ``body_rows``,
    ``chunks_reused``), ``info["probe"]`` its probe.
    """
    quiet_native_logs()
    start = time.perf_counter()
    result = StepResult(ref.video_id, ref.path, "extract", counts=dict.fromkeys(CATALOG_COUNTS, 0))
    work = store.work_dir(ref.video_id, params.work_key())
    stage = "probe"
    try:
        probed, jobs, warnings = chunk_jobs(ref, params, store)
        result.info["probe"] = asdict(probed)
        stage = "decode"
        make_dirs(work)  # with the store's permissions
        chunk_results = list(run_chunks(jobs))
        result.info.update(video_decoding([(j.chunk, read_schema(j.faces_path).metadata) for j in jobs]))
        result.info["warnings"] = warnings + result.info["warnings"]
        stage = "finalize"
        finalize_video(ref.video_id, jobs, params, store, result)
    except VideoError as exc:
        remove_tree(work)
        return result.fail(stage, exc.reason, str(exc))
    result.status = "ok"
    result.counts["chunks_reused"] = sum(r.seconds == 0 for r in chunk_results)
    result.seconds = time.perf_counter() - start
    return result


def finalize_video(
    video_id: str, jobs: list[ChunkJob], params: ExtractParams, store: Store, result: StepResult
) -> None:
    """Tracks, action units, and the atomic writes of the video's partitions.

    ``body`` and ``crops`` are written before ``frames``: a video counts as done only once its ``frames``
    partition and catalog row exist, so a crash in between just redoes the video. The crops are written in row
    groups, a chunk's fragment at a time (:func:`in_order`): at ~4.5 kB a face a frame they are the bulk of a
    video's rows, and holding them all made a worker's peak memory grow with the video's length (bench/scaling.py).
    """
    frames, order = _frames_table(jobs, params, result)
    if params.body_every:
        body = pa.concat_tables([read_table(job.body_path) for job in jobs]).sort_by("frame")
        body = body.set_column(
            body.schema.get_field_index("person_id"), "person_id", pa.array(_body_persons(body, frames), pa.int32())
        )
        result.counts["body_rows"] = body.num_rows
        write_table_atomic(body, store.partition("body", video_id))
    else:
        store.partition("body", video_id).unlink(missing_ok=True)
    if params.keep_crops:
        ids = {name: (frames[name].to_numpy(), FRAME_SCHEMA.field(name)) for name in ("face_id", "person_id")}
        parts = (
            part.append_column(
                ids["face_id"][1], pa.array(ids["face_id"][0][rows], ids["face_id"][1].type)
            ).append_column(ids["person_id"][1], pa.array(ids["person_id"][0][rows], ids["person_id"][1].type))
            for rows, part in in_order([job.crops_path for job in jobs], order.to_numpy())
        )
        schema = CROP_SCHEMA.append(ids["face_id"][1]).append(ids["person_id"][1])
        write_parts_atomic(parts, schema, store.partition("crops", video_id))
    else:
        store.partition("crops", video_id).unlink(missing_ok=True)
    write_table_atomic(frames, store.partition("frames", video_id))
    remove_tree(store.work_dir(video_id))


def _body_persons(body: pa.Table, frames: pa.Table) -> np.ndarray:
    """The person of each body row: whose face box holds the body's nose in the same frame (-1: nobody's)."""
    x, y, w, h = (frames[f"bbox_{k}"].to_numpy() for k in "xywh")
    boxes = np.stack([x, y, x + w, y + h], axis=1)
    nose = np.stack([body["nose_x"].to_numpy(), body["nose_y"].to_numpy()], axis=1)
    return link_bodies(
        body["frame"].to_numpy(), nose, frames["frame"].to_numpy(), boxes, frames["person_id"].to_numpy()
    )


def _describe_rows(job: ChunkJob, rows: list[int], columns: dict, landmarks: np.ndarray, out: np.ndarray) -> None:
    """Descriptors of the faces at ``rows`` (of the sorted face table) into ``out``, from their frames decoded
    again (a few frames: one per track that no chunk window described)."""
    if not rows:
        return
    try:
        out[rows] = describe_at(
            job.path, job.video_id, dict(job.storage_options), columns["frame"][rows], columns["timestamp"][rows],
            landmarks[rows],
        )  # fmt: skip
    except VideoError:  # the video cannot be opened again: those tracks stay without a descriptor
        return


def in_order(paths: Sequence, order: np.ndarray) -> Iterator[tuple[np.ndarray, pa.Table]]:
    """The rows of the Parquet files at ``paths``, concatenated, in the order ``order`` (indices into that
    concatenation), as (positions in ``order``, table) pairs read one file at a time: each run of ``order`` within
    one file is one table (one per file when the files hold consecutive stretches of the order, as a video's chunks
    do)."""
    order = np.asarray(order, dtype=np.int64)  # pyarrow's sort indices are uint64
    starts = np.cumsum([0, *(read_metadata(p).num_rows for p in paths)])
    source = np.searchsorted(starts, order, side="right") - 1  # the file of each row
    current, table = -1, None
    for rows in np.split(np.arange(len(order)), np.flatnonzero(np.diff(source)) + 1):
        if not len(rows):
            continue
        if source[rows[0]] != current:
            current = source[rows[0]]
            table = read_table(paths[current]).replace_schema_metadata(None)
        part = table.take(order[rows] - starts[current])
        yield rows, part


def _frames_table(jobs: list[ChunkJob], params: ExtractParams, result: StepResult) -> tuple[pa.Table, pa.Array]:
    """All face rows of the video with face tracks and AUs, and the order taken from the fragments."""
    from tasks.extract.action_units import load_au_estimator
    from tasks.extract.tracking import assign_face_ids

    fragments = [read_table(job.faces_path) for job in jobs]
    metadata = [t.schema.metadata or {} for t in fragments]
    result.counts["sampled_frames"] = sum(int(m[b"sampled_frames"]) for m in metadata)
    faces = pa.concat_tables([t.replace_schema_metadata(None) for t in fragments])
    order = pc.sort_indices(faces, [("frame", "ascending"), ("bbox_x", "ascending")])
    faces = faces.take(order)
    descriptors = descriptor_matrix(faces["descriptor"])
    faces = faces.drop_columns(["descriptor"])
    columns = {name: faces[name].to_numpy() for name in faces.column_names}
    xy = [np.stack([columns[f"{axis}_{i}"] for i in range(N_LANDMARKS)], axis=1) for axis in ("x", "y")]
    landmarks = np.stack(xy, axis=2).astype(np.float32)  # (N, 68, 2)
    x, y, w, h = (columns[f"bbox_{k}"] for k in "xywh")
    bboxes = np.stack([x, y, x + w, y + h], axis=1)  # (N, 4)
    pose = np.stack([columns["pose_Rx"], columns["pose_Ry"], columns["pose_Rz"]], axis=1)  # (N, 3)
    grid = video_grid([m.get(b"grid") for m in metadata])
    columns["tile"] = tile_of(grid, bboxes)
    tracks = assign_face_ids(columns["frame"], bboxes, landmarks) if len(x) else np.zeros(0, np.int32)
    if params.descriptor_every:
        _describe_rows(
            jobs[0], undescribed_tracks(tracks, landmarks, pose, descriptors), columns, landmarks, descriptors
        )
    face_id, person_id = assign_person_ids(
        columns["frame"], tracks, bboxes, landmarks, descriptors, columns["tile"] if grid else None
    )
    columns["face_id"], columns["person_id"] = face_id, person_id
    result.info["layout"] = layout_of(grid, columns["frame"], person_id)
    columns["success"] = np.ones(len(face_id), dtype=bool)
    if len(face_id):
        shapes = np.stack([columns[f"bs_{name}"] for name in BLENDSHAPE_NAMES[1:]], axis=1).astype(np.float32)
        estimator = load_au_estimator(params.au_model_dir)
        columns.update(estimator.predict(landmarks, pose, face_id, shapes, columns["infraorbital"]))
    else:
        columns.update({f.name: [] for f in FRAME_SCHEMA if f.name.startswith("AU")})
    result.counts["face_tracks"] = int(len(np.unique(face_id)))
    result.counts["persons"] = int(len(np.unique(person_id)))
    result.counts["frames_with_face"] = int(len(np.unique(columns["frame"])))
    result.counts["face_rows"] = len(face_id)
    return table_from_columns(columns, FRAME_SCHEMA), order
