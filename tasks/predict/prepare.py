"""Clip preparation for training and evaluation: labelled clips → frames on the nightly grid → a Parquet cache.

The same steps as the nightly run, so training and inference see identical input: frames are sampled on
the nightly grid (``tasks.extract.decode.plan_chunks`` at ``fps``; a frame folder is read as video at
``folder_fps``), decoded with decord (``tasks.extract.decode``), faces found by ``tasks.extract.faces`` (mediapipe by
default); the largest face of each frame is aligned with ``tasks.extract.crops.align_face`` to 112 × 112 and its
iBUG-68 landmarks are mapped into crop pixels. The ``body`` view (for teacher_gesture) keeps the whole
frame, letterboxed into a ``body_size`` square, with the 33 BlazePose keypoints of ``tasks.extract.body`` in its
pixels. Frames without a face (body) are dropped; a clip left without frames is dropped with a reason
(``no_face``, ``no_body``, ``missing_file``, or the decoder's ``not_a_video`` / ``decode_error`` ...),
counted by :func:`prepare`. Results are cached as Parquet at
``<cache>/<content id>/<params key>/<view>.parquet`` (content id: ``tasks.extract.discover.content_id`` of the video
bytes, or a SHA-256 prefix of a frame folder's names and bytes; written atomically by
``tasks.store.write_table_atomic``), so a clip is extracted once whatever its name. The cache holds face
crops: keep it on the training machine.

The output is what ``models.datasets`` reads: :class:`models.datasets.CachedClip` per clip and, for a whole
clip set, a :class:`models.datasets.PreparedSet` (:func:`prepare_set`), which ``models.train`` trains on.
"""

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from models.datasets import SPLITS, VIEWS, CachedClip, Clip, ClipSet, PreparedSet, view_columns
from models.layout import encode_jpeg
from tasks.extract.crops import align_face, alignment_matrix, transform_points
from tasks.extract.decode import VideoError, decode_frames, frame_times, open_video, plan_chunks
from tasks.extract.discover import content_id
from tasks.extract.video import ExtractParams
from tasks.store import write_table_atomic

logger = logging.getLogger(__name__)

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
CACHE_VERSION = "1"


@dataclass(frozen=True)
class ExtractionParams:
    """What a cached clip depends on; any change is a new cache entry.

    Args:
        fps: sampling rate on the nightly grid (the nightly default is 5).
        folder_fps: the frame rate a folder of frame images is read at.
        face_backend: ``tasks.extract.faces`` backend name.
        body_size: side of the letterboxed whole frame kept by the body view.
    """

    fps: float = ExtractParams.fps  # the nightly sampling rate, so training sees what inference sees
    folder_fps: float = 25.0
    face_backend: str = "mediapipe"
    body_size: int = 224
    version: str = CACHE_VERSION

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def clip_content_id(path: Path) -> str:
    """SHA-256 prefix of a video's bytes, or of a frame folder's file names and bytes."""
    if path.is_file():
        return content_id(path)
    digest = hashlib.sha256()
    for frame in _frame_files(path):
        digest.update(frame.name.encode() + b"\0" + frame.read_bytes())
    return digest.hexdigest()[:16]


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))


def _sampled_frames(path: Path, params: ExtractionParams) -> Iterable[tuple[int, float, np.ndarray]]:
    """(frame index, timestamp, RGB pixels) of the frames on the sampling grid, in order."""
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise VideoError("not_a_video", f"{path}: no frame images ({', '.join(FRAME_SUFFIXES)})")
        times = np.arange(len(files)) / params.folder_fps
        for chunk in plan_chunks(times, params.fps, 10**6):
            for frame, stamp in zip(chunk.frames, chunk.timestamps, strict=True):
                image = cv2.imread(str(files[frame]), cv2.IMREAD_COLOR)
                if image is None:
                    raise VideoError("decode_error", f"{files[frame]}: not a readable image")
                yield frame, stamp, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    reader = open_video(path)
    for chunk in plan_chunks(frame_times(reader), params.fps, 10**6):
        stamps = dict(zip(chunk.frames, chunk.timestamps, strict=True))
        for frame, pixels in decode_frames(reader, chunk.frames):
            yield frame, stamps[frame], pixels


def letterbox(pixels: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """``pixels`` scaled to fit a black ``size`` square, centred; returns it, the scale and the offset (x, y)."""
    height, width = pixels.shape[:2]
    scale = size / max(height, width)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    offset = np.array([(size - w) // 2, (size - h) // 2], dtype=np.float64)
    out = np.zeros((size, size, 3), np.uint8)
    out[int(offset[1]) : int(offset[1]) + h, int(offset[0]) : int(offset[0]) + w] = cv2.resize(
        pixels, (w, h), interpolation=cv2.INTER_AREA
    )
    return out, scale, offset


def _view_schema(view: str) -> pa.Schema:
    base = [("frame", pa.int32()), ("timestamp", pa.float64()), ("confidence", pa.float32()), ("jpeg", pa.binary())]
    return pa.schema(base + [(c, pa.float32()) for c in view_columns(view)])


def extract_clip(path: Path, view: str, params: ExtractionParams, backend) -> tuple[dict[str, list], int]:
    """Columns of one clip's cache file and the number of sampled frames (``backend`` detects faces or bodies)."""
    columns: dict[str, list] = {f.name: [] for f in _view_schema(view)}
    sampled = 0
    backend.reset()
    for frame, stamp, pixels in _sampled_frames(path, params):
        sampled += 1
        found = backend.detect(pixels)
        if not found:
            continue
        if view == "face":
            face = max(found, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
            image = align_face(pixels, face.landmarks)
            points = transform_points(alignment_matrix(face.landmarks), face.landmarks)  # (68, 2) crop pixels
            score = face.score
        else:
            body = found[0]
            image, scale, offset = letterbox(pixels, params.body_size)
            points = body.keypoints[:, :2] * scale + offset  # (33, 2) letterboxed pixels
            score = body.score
        columns["frame"].append(frame)
        columns["timestamp"].append(stamp)
        columns["confidence"].append(float(score))
        columns["jpeg"].append(encode_jpeg(image))
        flat = np.concatenate([points[:, 0], points[:, 1]])
        for name, value in zip(view_columns(view), flat, strict=True):
            columns[name].append(float(value))
    return columns, sampled


def cache_path(cache_dir: Path, content: str, params: ExtractionParams, view: str) -> Path:
    return Path(cache_dir) / content / params.key() / f"{view}.parquet"


def prepare(
    clips: Sequence[Clip],
    cache_dir: str | os.PathLike,
    view: str,
    params: ExtractionParams | None = None,
    erased: Collection[str] = (),
) -> list[CachedClip]:
    """Extract ``clips`` into the cache (each once; cached ones are read back) and return them all.

    Dropped clips come back with ``path=None`` and a ``reason``; the counts per reason are logged. A clip
    whose content id is in ``erased`` (the store's erased videos, ``lessonlens forget``) is dropped unread
    (reason ``erased``): its face crops never come back into the store's cache.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid views: {', '.join(VIEWS)}")
    params = params or ExtractionParams()
    backend = None
    out = []
    for clip in clips:
        content = clip_content_id(clip.path) if clip.path.exists() else ""
        if content in erased:
            logger.warning("clip %s dropped: its video %s was erased (lessonlens forget)", clip.clip_id, content)
            out.append(CachedClip(clip, content, None, 0, "erased"))
            continue
        target = cache_path(Path(cache_dir), content, params, view)
        if content and not target.is_file():
            if backend is None:
                backend = _load_backend(view, params)
            try:
                columns, sampled = extract_clip(clip.path, view, params, backend)
            except VideoError as exc:
                logger.warning("clip %s dropped: %s", clip.clip_id, exc)
                out.append(CachedClip(clip, content, None, 0, exc.reason))
                continue
            schema = _view_schema(view).with_metadata({"sampled_frames": str(sampled), "source": str(clip.path)})
            write_table_atomic(pa.table(columns, schema=schema), target)
        if not content:
            out.append(CachedClip(clip, content, None, 0, "missing_file"))
            continue
        rows = pq.read_metadata(target).num_rows
        reason = None if rows else ("no_face" if view == "face" else "no_body")
        out.append(CachedClip(clip, content, target if rows else None, rows, reason))
    drops = Counter(c.reason for c in out if c.reason)
    logger.info("%d clips ready (%s view), dropped: %s", sum(c.path is not None for c in out), view, dict(drops))
    return out


def _load_backend(view: str, params: ExtractionParams):
    if view == "face":
        from tasks.extract.faces import load_face_backend

        return load_face_backend(params.face_backend)
    from tasks.extract.body import load_body_backend

    return load_body_backend("mediapipe")


def prepare_set(
    dataset: ClipSet,
    cache_dir: str | os.PathLike,
    view: str,
    params: ExtractionParams | None = None,
    splits: Sequence[str] = SPLITS,
    erased: Collection[str] = (),
) -> PreparedSet:
    """:func:`prepare` each of ``splits`` of ``dataset`` (``erased``: content ids to drop unread); the result
    says which view and parameters were used."""
    params = params or ExtractionParams()
    cached = {split: prepare(dataset.split(split), cache_dir, view, params, erased) for split in splits}
    return PreparedSet(dataset=dataset, view=view, params=asdict(params), splits=cached)
