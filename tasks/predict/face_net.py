"""Face crops for the face models, streamed from the store, and face-api.js's expression net that reads them.

:func:`face_crops` gives the aligned 112 × 112 crops of a video's frames-table rows in frame order: from the
video's ``crops`` partition when it has one (matched to rows by face box), else aligned again from frames
decoded from the video's file. Registry models (``tasks.predict.inference.ModelPredictor``) and the
expression net read them.

:class:`ExpressionNetPredictor` is the default ``emotion`` stream when no model is promoted: face-api.js's
FaceExpressionNet (``models.faceapi``; MIT weights from the npm package ``@vladmandic/face-api``, fetched at
setup by ``models.faceapi_package``) on each sampled face's aligned crop as it is, one forward pass per face,
batched across the faces and videos of one call; a window's probabilities are the mean over its samples.
Without the weights (:func:`expression_net_missing` says why, in one line) inference uses the AU rules.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models import faceapi_package
from models.layout import N_LANDMARKS, decode_jpeg
from models.rules import TASK_CLASSES
from tasks.extract.crops import align_face
from tasks.extract.decode import VideoError, decode_frames, open_video
from tasks.extract.discover import local_video
from tasks.predict.windows import VideoWindows
from tasks.store import Store, parquet_file

if TYPE_CHECKING:  # torch only where the net runs
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

BBOX_COLUMNS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
LANDMARK_COLUMNS = tuple(f"x_{i}" for i in range(N_LANDMARKS)) + tuple(f"y_{i}" for i in range(N_LANDMARKS))
# faces per forward pass of the expression net, on one torch thread on CPU: the pipeline runs one worker process
# per core, and the net's activations of a small batch stay in cache (measured at load average 7 on 2 cores:
# 6.3 ms per face at 16 faces on 1 thread, 23 ms at 128 faces, 30-160 ms on 2 threads)
DEFAULT_BATCH_FACES = 16
_NETS_LOCK = threading.Lock()


def face_crops(
    store: Store, video: VideoWindows, needed: np.ndarray, landmarks: np.ndarray
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(frame, {row: aligned 112 × 112 crop}) of the frames-table rows ``needed``, in frame order: read from the
    video's crops partition when it has one (matched to rows by face box), else aligned from frames decoded
    from the video's file (``landmarks`` (N, 68, 2): the rows' landmarks in frame pixels)."""
    frame = video.columns["frame"]
    by_frame: dict[int, list[int]] = {}
    for r in needed:
        by_frame.setdefault(int(frame[r]), []).append(int(r))
    if video.crops_path is not None:
        boxes = np.stack([video.columns[c] for c in BBOX_COLUMNS], axis=1)
        for f, stored_boxes, jpegs in _crop_groups(video.crops_path, set(by_frame)):
            crops = {}
            for r in by_frame[f]:
                distance = np.abs(stored_boxes - boxes[r]).max(axis=1)
                best = int(distance.argmin())
                if distance[best] > 1.0:
                    raise VideoError("crops_mismatch", f"video {video.video_id}: no stored crop for frame {f} face box")
                crops[r] = decode_jpeg(jpegs[best])
            yield f, crops
        return
    if video.video_path is None:
        raise VideoError("missing_file", f"video {video.video_id}: no stored crops and no path in the catalog")
    with local_video(video.video_path, video.video_id, store.storage_options) as path:
        for f, pixels in decode_frames(open_video(path), tuple(sorted(by_frame))):
            yield f, {r: align_face(pixels, landmarks[r]) for r in by_frame[f]}


def row_landmarks(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 68, 2) iBUG-68 landmarks of the frames-table rows, frame pixels."""
    return np.stack([np.stack([columns[f"x_{i}"], columns[f"y_{i}"]], axis=1) for i in range(N_LANDMARKS)], axis=1)


def _crop_groups(path: Path, frames: set[int]) -> Iterator[tuple[int, np.ndarray, list[bytes]]]:
    """(frame, boxes (k, 4), jpegs) of the stored crops of ``frames``, streamed in frame order."""
    file = parquet_file(path)
    group: tuple[int, list, list] | None = None
    previous = -1
    for batch in file.iter_batches(batch_size=512, columns=["frame", *BBOX_COLUMNS, "jpeg"]):
        frame = batch.column("frame").to_numpy()
        boxes = np.stack([batch.column(c).to_numpy() for c in BBOX_COLUMNS], axis=1)
        jpegs = batch.column("jpeg")
        for i, f in enumerate(frame.tolist()):
            if f < previous:
                raise VideoError("crops_unsorted", f"{path}: crops are not sorted by frame ({f} after {previous})")
            if group is not None and f != group[0]:
                yield group[0], np.array(group[1]), group[2]
                group = None
            previous = f
            if f in frames:
                if group is None:
                    group = (f, [], [])
                group[1].append(boxes[i])
                group[2].append(jpegs[i].as_py())
    if group is not None:
        yield group[0], np.array(group[1]), group[2]


class ExpressionNetPredictor:
    """face-api.js's FaceExpressionNet (``models.faceapi``, MIT weights of ``@vladmandic/face-api``) on each
    sampled face: the stored aligned 112 × 112 crop (decoded and aligned from the video when there are none)
    is the net's input as it is, one forward pass per face, batched across the faces and videos of one call;
    a window's probabilities are the mean over its samples (every sample is computed once, though windows
    overlap). Crops are streamed in frame order and dropped once their faces are predicted."""

    def __init__(self, store: Store, device: torch.device, batch_faces: int, threads: int = 1):
        self.store = store
        self.device = device
        self.threads = threads  # torch's CPU threads (models.device.cpu_threads)
        self.batch_faces = batch_faces
        self.name = faceapi_package.MODEL_NAME
        self.version = faceapi_package.MODEL_VERSION
        self.columns = ["frame", "timestamp", "face_id", *BBOX_COLUMNS, *LANDMARK_COLUMNS]
        self.net = cached_expression_net(device)
        names = [faceapi_package.EMOTION_NAMES[e] for e in faceapi_package.EXPRESSIONS]  # its outputs, our names
        self.order = [names.index(c) for c in TASK_CLASSES["emotion"]]

    def predict(self, videos: Iterable[VideoWindows]) -> Iterator[tuple[VideoWindows, np.ndarray | None]]:
        pending: list[tuple[np.ndarray, int, np.ndarray]] = []  # (the video's per-row probabilities, row, crop)
        open_videos: deque[tuple[VideoWindows, np.ndarray]] = deque()
        for video in videos:
            rows = np.full((len(video.columns["frame"]), len(self.order)), np.nan, dtype=np.float32)
            open_videos.append((video, rows))
            if not video.windows:  # no face: nothing to read
                continue
            needed = np.unique(np.concatenate([w.rows for w in video.windows]))
            try:
                for _, crops in face_crops(self.store, video, needed, row_landmarks(video.columns)):
                    pending += [(rows, r, crop) for r, crop in crops.items()]
                    while len(pending) >= self.batch_faces:
                        self._run(pending[: self.batch_faces])
                        pending = pending[self.batch_faces :]
            except VideoError as exc:
                video.error = exc
                pending = [p for p in pending if p[0] is not rows]
            waiting = {id(p[0]) for p in pending}
            while open_videos and id(open_videos[0][1]) not in waiting:
                yield self._windows(*open_videos.popleft())
        if pending:
            self._run(pending)
        for done in open_videos:
            yield self._windows(*done)

    def _run(self, batch: list[tuple[np.ndarray, int, np.ndarray]]) -> None:
        """One forward pass over the faces of ``batch``; probabilities go into each video's row array."""
        import torch

        from models.device import cpu_threads

        x = torch.from_numpy(np.stack([crop for _, _, crop in batch])).to(self.device)  # (B, 112, 112, 3) uint8
        x = x.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)  # (B, 3, 112, 112)
        with cpu_threads(self.device, self.threads), torch.inference_mode():
            probs = torch.softmax(self.net(x), dim=1)[:, self.order].cpu().numpy()
        for (rows, r, _), p in zip(batch, probs, strict=True):
            rows[r] = p

    @staticmethod
    def _windows(video: VideoWindows, rows: np.ndarray) -> tuple[VideoWindows, np.ndarray | None]:
        if video.error:
            return video, None
        probs = np.array([rows[w.rows].mean(axis=0) for w in video.windows], dtype=np.float32)
        return video, probs.reshape(len(video.windows), rows.shape[1])


_NETS: dict[str, nn.Module] = {}


def cached_expression_net(device: torch.device) -> nn.Module:
    """face-api.js's expression net on ``device``, loaded once per process (``WeightsMissing`` when setup has
    not fetched the weights)."""
    import torch

    from models.faceapi import load_expression_net

    with _NETS_LOCK:
        if str(device) not in _NETS:
            # channels-last: the depthwise convolutions run about twice as fast on CPU (bench/expression_net.py)
            _NETS[str(device)] = load_expression_net().to(device, memory_format=torch.channels_last)
            logger.info("loaded %s on %s (weights: MIT licence)", faceapi_package.MODEL_NAME, device)
        return _NETS[str(device)]


def expression_net_missing() -> str | None:
    """Why the default emotion stream cannot run here (one line saying how to get the weights), or None."""
    why = faceapi_package.weights_missing(faceapi_package.EXPRESSION_MANIFEST, "face expression")
    return why and f"{why}; the AU rules label emotion meanwhile"
