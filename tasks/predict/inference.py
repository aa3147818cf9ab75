"""Inference: windows of face-track frames → class probabilities per task, written as Parquet per video.

Windows. A video's ``frames`` partition is split by ``face_id``; each track's samples (in frame order)
form windows of ``window`` consecutive samples starting every ``stride`` samples (defaults 16 and 8: 3.2 s
windows every 1.6 s at 5 fps). Only complete windows are made, plus, when the stride leaves a tail, one
more window ending at the track's last sample, so every sample is in a window; a track shorter than
``window`` gives one window of all its samples (``n_frames`` says how many). Windows run over the track's
samples, so a window may span a gap where the face was not detected: ``start_time`` / ``end_time`` are
the timestamps of its first and last sample and show it. Windows overlap, so each sample of a track is
owned by one window, whose label it takes in the marts' time accounting: of the windows covering it
(``start_time <= timestamp <= end_time``), the one whose centre ``(start_time + end_time) / 2`` is nearest
(ties: the later window); ``n_owned`` is how many samples a window owns (the per-frame form of the same rule
is the ``expression_frames`` mart; ``video_summary`` sums ``n_owned`` instead of joining every frame).

Predictors (one per task and run, chosen by :func:`load_predictor`):

- the registry model promoted for the task (``models.registry.promoted``): it sees the window as aligned
  112 × 112 face crops (``tasks.extract.crops``), read from ``<store>/crops/video_id=<id>/`` when that partition
  exists, else re-aligned from frames decoded with decord from the video's path in the catalog. When the
  model takes ``num_frames`` frames and the window has another count, ``num_frames`` samples are picked
  evenly across the window. Crops are resized to the model's ``image_size`` and normalised by its mean /
  std on the device; models whose ``forward`` takes ``landmarks`` (teacher_expression) get the iBUG-68
  landmarks mapped into the resized crop. A model is loaded once per process (cache keyed by store, name,
  version and device) and run under ``torch.inference_mode``, with bf16 autocast on CUDA; windows are
  batched across the videos of one call, and crops are streamed in frame order, so memory holds only the
  windows in flight, not a whole video;
- for ``emotion`` without a promoted model, face-api.js's expression net (``tasks.predict.face_net``) on each
  sample's aligned crop, a window's probabilities the mean over its samples; ``model_version``
  ``face_expression-face-api-1.7.15``. Without its weights (setup fetches them) the rules below stand in, and
  :func:`emotion_stream` says why in one line;
- otherwise the AU-rule baseline (``models.rules``; always for ``emotion_rules``, the rules' own stream):
  each AU's 0.8 quantile over the window's samples (``rules.window_peaks``, so a brief apex is not averaged
  away), scored by the prototypes; ``model_name``
  says "rule baseline", ``model_version`` is ``rules-<hash>``, a hash of the task's prototypes, so a
  change of the rules makes every video stale (a registered model's is ``<name>-<version>``).

Gestures (task ``gesture``) run over the ``body`` samples instead: windows per ``person_id`` (written in
the ``face_id`` column) with the same window and stride, by the promoted ``teacher_gesture`` model
(:class:`GesturePredictor`). It sees ``num_frames`` whole frames per window, letterboxed into its
``image_size`` square as training prepares them (``tasks.predict.prepare.letterbox``), with the 33 BlazePose
keypoints of those samples mapped into it. The frames are decoded again from the video (path from the
catalog): the store keeps no whole frames, because the body samples are sparse (1 fps by default) and
decoding them costs little next to the model (measured in ``bench/RESULTS.md``); a video whose file is gone
fails with ``missing_file``. There is no rule baseline for gestures: until a gesture model is promoted the
task is skipped (results ``skipped``, reason ``no_model``, and one log line) and the marts' ``body_group``
uses the wrist-speed rule of ``sql/marts/wrist_motion.sql``.

Output, written atomically: ``<store>/predictions/task=<task>/model_version=<version>/video_id=<id>/
part-0.parquet``, one row per face track × window (:func:`prediction_schema`; the hive keys are not
repeated in the file). A video without faces gets an empty file, which records that it is done. The
window length and stride are in the file's metadata.
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa

from models import faceapi_package, rules
from models.layout import KEYPOINT_NAMES
from models.registry import load_model, promoted
from models.rules import BODY_TASKS, TASK_CLASSES, check_task
from tasks.extract.crops import CROP_SIZE, alignment_matrix, transform_points
from tasks.extract.decode import VideoError, decode_frames, open_video
from tasks.extract.discover import local_video
from tasks.predict.face_net import (
    BBOX_COLUMNS,
    DEFAULT_BATCH_FACES,
    LANDMARK_COLUMNS,
    ExpressionNetPredictor,
    expression_net_missing,
    face_crops,
    row_landmarks,
)
from tasks.predict.windows import VideoWindows, Window, load_video_windows, plan_windows  # noqa: F401 (inference's interface)
from tasks.store import StepResult, Store, prediction_schema

if TYPE_CHECKING:  # torch only where a registry model runs: the rule baseline and the stale checks need none
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 16
DEFAULT_STRIDE = 8
DEFAULT_BATCH_WINDOWS = 32  # windows per forward pass of a registry model
DEFAULT_NET_TASK = "emotion"  # the task face-api.js's expression net predicts when no model is promoted
KEYPOINT_COLUMNS = tuple(f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in ("x", "y"))


def source_table(task: str) -> str:
    """The partition a task's windows come from: ``body`` for gestures, ``frames`` for the face tasks."""
    check_task(task)
    return "body" if task in BODY_TASKS else "frames"


def rules_version(task: str) -> str:
    """``rules-<8 hex>``: a hash of the rule baseline's name and the task's prototypes."""
    check_task(task)
    _, prototypes = rules.RULES[task]
    return "rules-" + hashlib.sha256(repr((rules.MODEL_NAME, prototypes)).encode()).hexdigest()[:8]


# predictors ---------------------------------------------------------------------------------------------
class Predictor(Protocol):
    """Class probabilities for the windows of a stream of videos, in the task's class order."""

    name: str  # model_name column
    version: str  # model_version partition key
    columns: list[str]  # frames columns it needs

    def predict(self, videos: Iterable[VideoWindows]) -> Iterator[tuple[VideoWindows, np.ndarray | None]]:
        """(video, probabilities (windows, classes) float32) per video in input order; None if it failed."""
        ...


class RulePredictor:
    """The AU-rule baseline on each window's per-AU high quantile (``rules.window_peaks``; no crops, no model)."""

    def __init__(self, task: str):
        self.task = task
        self.name = rules.MODEL_NAME
        self.version = rules_version(task)
        self.columns = ["frame", "timestamp", "face_id", *rules.AU_COLUMNS]

    def predict(self, videos: Iterable[VideoWindows]) -> Iterator[tuple[VideoWindows, np.ndarray | None]]:
        classify, _ = rules.RULES[self.task]
        for video in videos:
            au = np.stack([video.columns[c] for c in rules.AU_COLUMNS], axis=1).astype(np.float64)  # (N, 17)
            peaks = np.array([rules.window_peaks(au[w.rows]) for w in video.windows]).reshape(-1, au.shape[1])
            probs = classify(dict(zip(rules.AU_COLUMNS, peaks.T, strict=True)))
            yield video, probs[list(TASK_CLASSES[self.task])].to_numpy(np.float32)


_MODELS: dict[tuple[str, str, str, str], nn.Module] = {}
_MODELS_LOCK = threading.Lock()


def cached_model(store: Store, name: str, version: str, device: torch.device) -> nn.Module:
    """The registry model on ``device``, loaded once per process (name + version + store + device)."""
    key = (str(store.root), name, version, str(device))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(store.root, name, version).to(device)
            logger.info("loaded model %s %s on %s", name, version, device)
        return _MODELS[key]


@dataclass
class _Pending:
    video: VideoWindows
    window: int  # position in video.windows
    crops: np.ndarray  # (T, 112, 112, 3) uint8
    landmarks: np.ndarray  # (T, 68, 2) in 112-crop pixels


class _RegistryPredictor:
    """What every predictor of a promoted registry model holds: the model (cached per process), its input
    size and normalisation on the device, and the map from its logits to the task's class order."""

    def __init__(self, store: Store, record: dict, device: torch.device, batch_windows: int, threads: int = 1):
        import torch

        self.store = store
        self.device = device
        self.batch_windows = batch_windows
        self.threads = threads  # torch's CPU threads (models.device.cpu_threads)
        self.name = f"{record['name']} {record['version']}"
        self.version = version_key(record)
        self.model = cached_model(store, record["name"], record["version"], device)
        config = self.model.config
        self.num_frames = int(config.num_frames)
        self.image_size = int(config.image_size)
        self.mean = torch.tensor(config.mean, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(config.std, device=device).view(1, 1, 3, 1, 1)
        self.order = [record["classes"].index(c) for c in TASK_CLASSES[record["task"]]]  # logits → task order


class ModelPredictor(_RegistryPredictor):
    """A promoted registry model on aligned face crops (see the module docstring)."""

    def __init__(self, store: Store, record: dict, device: torch.device, batch_windows: int, threads: int = 1):
        super().__init__(store, record, device, batch_windows, threads)
        self.takes_landmarks = "landmarks" in inspect.signature(self.model.forward).parameters
        self.columns = ["frame", "timestamp", "face_id", *BBOX_COLUMNS, *LANDMARK_COLUMNS]

    def predict(self, videos: Iterable[VideoWindows]) -> Iterator[tuple[VideoWindows, np.ndarray | None]]:
        pending: list[_Pending] = []
        open_videos: deque[VideoWindows] = deque()
        for video in videos:
            video.probs = np.full((len(video.windows), len(self.order)), np.nan, dtype=np.float32)
            open_videos.append(video)
            try:
                for item in self._clips(video):
                    pending.append(item)
                    if len(pending) == self.batch_windows:
                        self._run(pending)
                        pending = []
            except VideoError as exc:
                video.error = exc
                pending = [p for p in pending if p.video is not video]
            # every video before the first one with windows still pending is complete
            waiting = {id(p.video) for p in pending}
            while open_videos and id(open_videos[0]) not in waiting:
                done = open_videos.popleft()
                yield done, None if done.error else done.probs
        if pending:
            self._run(pending)
        for done in open_videos:
            yield done, None if done.error else done.probs

    def _clips(self, video: VideoWindows) -> Iterator[_Pending]:
        """The windows of ``video`` with their crops, as soon as their last crop has been read."""
        picks = [w.rows[np.linspace(0, len(w.rows) - 1, self.num_frames).round().astype(int)] for w in video.windows]
        needed = np.unique(np.concatenate(picks)) if picks else np.array([], dtype=int)
        if needed.size == 0:
            return
        landmarks = row_landmarks(video.columns)  # (N, 68, 2)
        frame = video.columns["frame"]
        last = [(int(frame[p].max()), k) for k, p in enumerate(picks)]
        heapq.heapify(last)
        first = [(int(frame[p].min()), k) for k, p in enumerate(picks)]
        heapq.heapify(first)
        emitted: set[int] = set()
        held: dict[int, np.ndarray] = {}  # row → crop, for windows not yet emitted
        for current, crops in face_crops(self.store, video, needed, landmarks):
            held.update(crops)
            while last and last[0][0] <= current:
                _, k = heapq.heappop(last)
                emitted.add(k)
                rows = picks[k]
                aligned = np.stack([transform_points(alignment_matrix(landmarks[r]), landmarks[r]) for r in rows])
                yield _Pending(video, k, np.stack([held[r] for r in rows]), aligned.astype(np.float32))
            while first and first[0][1] in emitted:
                heapq.heappop(first)
            low = first[0][0] if first else current + 1
            held = {r: c for r, c in held.items() if frame[r] >= low}
        if last:
            raise VideoError("missing_crops", f"video {video.video_id}: crops of {len(last)} windows were never read")

    def _run(self, batch: list[_Pending]) -> None:
        """One forward pass over ``batch``; probabilities are written into each video's array."""
        import torch
        import torch.nn.functional as F

        from models.device import autocast, cpu_threads

        crops = torch.from_numpy(np.stack([p.crops for p in batch])).to(self.device)  # (B, T, H, W, C) uint8
        x = crops.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, T, C, H, W)
        x = (x - self.mean) / self.std
        B, T, C, H, W = x.shape
        if (H, W) != (self.image_size, self.image_size):
            x = F.interpolate(
                x.reshape(B * T, C, H, W), size=self.image_size, mode="bilinear", antialias=True, align_corners=False
            ).reshape(B, T, C, self.image_size, self.image_size)
        with cpu_threads(self.device, self.threads), torch.inference_mode(), autocast(self.device):
            if self.takes_landmarks:
                points = torch.from_numpy(np.stack([p.landmarks for p in batch])).to(self.device)  # (B, T, 68, 2)
                logits = self.model(x, points * (self.image_size / CROP_SIZE))
            else:
                logits = self.model(x)
        probs = torch.softmax(logits.float(), dim=1)[:, self.order].cpu().numpy()  # (B, classes)
        for p, row in zip(batch, probs, strict=True):
            p.video.probs[p.window] = row


class GesturePredictor(_RegistryPredictor):
    """The promoted ``teacher_gesture`` model on windows of body samples: whole frames decoded from the video,
    letterboxed into the model's square, and the BlazePose keypoints mapped into it (module docstring)."""

    def __init__(self, store: Store, record: dict, device: torch.device, batch_windows: int, threads: int = 1):
        super().__init__(store, record, device, batch_windows, threads)
        self.columns = ["frame", "timestamp", "face_id", *KEYPOINT_COLUMNS]

    def predict(self, videos: Iterable[VideoWindows]) -> Iterator[tuple[VideoWindows, np.ndarray | None]]:
        for video in videos:
            video.probs = np.full((len(video.windows), len(self.order)), np.nan, dtype=np.float32)
            pending: list[tuple[int, np.ndarray, np.ndarray]] = []
            try:
                for item in self._clips(video):
                    pending.append(item)
                    if len(pending) == self.batch_windows:
                        self._run(video, pending)
                        pending = []
                if pending:
                    self._run(video, pending)
            except VideoError as exc:
                video.error = exc
            yield video, None if video.error else video.probs

    def _clips(self, video: VideoWindows) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(window position, frames (T, S, S, 3) uint8, keypoints (T, 33, 2) in their pixels) per window, as
        soon as its last frame is decoded; frames are held only while a window in flight needs them."""
        from tasks.predict.prepare import letterbox  # it imports the training datasets (torch)

        picks = [w.rows[np.linspace(0, len(w.rows) - 1, self.num_frames).round().astype(int)] for w in video.windows]
        if not picks:
            return
        if video.video_path is None:
            raise VideoError("missing_file", f"video {video.video_id}: no path in the catalog to decode")
        cols = video.columns
        frame = cols["frame"]
        points = np.stack([np.stack([cols[f"{n}_x"], cols[f"{n}_y"]], axis=1) for n in KEYPOINT_NAMES], axis=1)
        last = sorted((int(frame[p].max()), k) for k, p in enumerate(picks))
        held: dict[int, tuple[np.ndarray, float, np.ndarray]] = {}  # frame -> (letterboxed, scale, offset)
        needed = tuple(sorted({int(frame[r]) for p in picks for r in p}))
        done = 0
        with local_video(video.video_path, video.video_id, self.store.storage_options) as path:
            for f, pixels in decode_frames(open_video(path), needed):
                held[f] = letterbox(pixels, self.image_size)
                while done < len(last) and last[done][0] <= f:
                    k = last[done][1]
                    done += 1
                    rows = picks[k]
                    boxed = [held[int(frame[r])] for r in rows]
                    keypoints = np.stack([points[r] * b[1] + b[2] for r, b in zip(rows, boxed, strict=True)])
                    yield k, np.stack([b[0] for b in boxed]), keypoints.astype(np.float32)
                low = min((int(frame[picks[k]].min()) for _, k in last[done:]), default=f + 1)
                held = {g: v for g, v in held.items() if g >= low}
        if done < len(last):
            raise VideoError(
                "decode_error", f"video {video.video_id}: frames of {len(last) - done} windows not decoded"
            )

    def _run(self, video: VideoWindows, batch: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        import torch

        from models.device import autocast, cpu_threads

        frames = torch.from_numpy(np.stack([b[1] for b in batch])).to(self.device)  # (B, T, S, S, 3) uint8
        x = (frames.permute(0, 1, 4, 2, 3).float().div_(255.0) - self.mean) / self.std
        keypoints = torch.from_numpy(np.stack([b[2] for b in batch])).to(self.device)  # (B, T, 33, 2)
        with cpu_threads(self.device, self.threads), torch.inference_mode(), autocast(self.device):
            logits = self.model(x, keypoints)
        probs = torch.softmax(logits.float(), dim=1)[:, self.order].cpu().numpy()
        for (k, _, _), row in zip(batch, probs, strict=True):
            video.probs[k] = row


# the stage --------------------------------------------------------------------------------------------
def emotion_stream(store: Store) -> dict[str, str | None]:
    """What labels ``emotion`` in ``store`` now: ``model_name``, ``model_version`` and ``fallback`` (the line
    saying why the AU rules stand in for the expression net, or None)."""
    record = promoted(store.root, "emotion")
    if record is not None:
        return {"model_name": f"{record['name']} {record['version']}", "model_version": version_key(record),
                "fallback": None}  # fmt: skip
    missing = expression_net_missing()
    if missing is None:
        return {"model_name": faceapi_package.MODEL_NAME, "model_version": faceapi_package.MODEL_VERSION,
                "fallback": None}  # fmt: skip
    return {"model_name": rules.MODEL_NAME, "model_version": rules_version("emotion"), "fallback": missing}


def load_predictor(
    store: Store, task: str, device: str = "auto", batch_windows: int = DEFAULT_BATCH_WINDOWS, threads: int = 1
) -> Predictor:
    """The promoted registry model of ``task``; else, for ``emotion``, face-api.js's expression net (the AU
    rules when its weights are missing); else the task's AU rules; None for a task without rules (gesture)
    and no promoted model. A net runs on ``threads`` CPU threads (``models.device.cpu_threads``)."""
    record = promoted(store.root, task)
    if record is None and task == DEFAULT_NET_TASK and expression_net_missing() is None:
        from models.device import resolve_device  # torch

        return ExpressionNetPredictor(store, resolve_device(device), DEFAULT_BATCH_FACES, threads)
    if record is None:
        return RulePredictor(task) if task in rules.RULES else None
    from models.device import resolve_device  # torch

    if task in BODY_TASKS:
        return GesturePredictor(store, record, resolve_device(device), batch_windows, threads)
    return ModelPredictor(store, record, resolve_device(device), batch_windows, threads)


def version_key(record: dict) -> str:
    """The ``model_version`` of a registered model's predictions: ``<name>-<version>`` (e.g.
    ``teacher_expression-v0002``), since versions are numbered per model name and two models' ``v0001`` must
    not pass for each other when one replaces the other."""
    return f"{record['name']}-{record['version']}"


def current_version(store: Store, task: str) -> str | None:
    """The ``model_version`` that inference of ``task`` writes now: the promoted model's (:func:`version_key`),
    the expression net's for ``emotion`` when its weights are here, or the rules'; None for a task without
    rules (gesture) and no promoted model: it is skipped."""
    record = promoted(store.root, task)
    if record is not None:
        return version_key(record)
    if task == DEFAULT_NET_TASK and expression_net_missing() is None:
        return faceapi_package.MODEL_VERSION
    return rules_version(task) if task in rules.RULES else None


def predictions_table(task: str, video: VideoWindows, probs: np.ndarray, model_name: str, meta: dict) -> pa.Table:
    """The predictions of one video as a table of ``prediction_schema`` (``probs`` in class order)."""
    classes = TASK_CLASSES[task]
    usable = ~np.isnan(probs).any(axis=1)
    top = np.nan_to_num(probs, nan=-1.0).argmax(axis=1) if len(probs) else np.array([], dtype=int)
    columns = {
        "face_id": [w.face_id for w in video.windows],
        "person_id": [int(video.columns["person_id"][w.rows[0]]) for w in video.windows],
        "window_index": [w.index for w in video.windows],
        "start_time": [w.start_time for w in video.windows],
        "end_time": [w.end_time for w in video.windows],
        "n_frames": [len(w.rows) for w in video.windows],
        "n_owned": [w.owned for w in video.windows],
        "model_name": [model_name] * len(video.windows),
        "label": [classes[t] if ok else None for t, ok in zip(top, usable, strict=True)],
        "confidence": [float(probs[i, t]) if ok else None for i, (t, ok) in enumerate(zip(top, usable, strict=True))],
        **{f"p_{c}": probs[:, j] for j, c in enumerate(classes)},
    }
    schema = prediction_schema(task).with_metadata({k: str(v) for k, v in meta.items()})
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)


def infer_videos(
    store: Store,
    video_ids: list[str],
    task: str,
    *,
    window: int = DEFAULT_WINDOW,
    stride: int = DEFAULT_STRIDE,
    device: str = "auto",
    batch_windows: int = DEFAULT_BATCH_WINDOWS,
    threads: int = 1,
) -> list[StepResult]:
    """Predict ``task`` for the windows of each video and write its predictions partition (a net on ``threads``
    CPU threads: one by default, as in a worker beside others).

    Runs wherever it is called (the flow process, or a Dask worker): paths in, one :class:`StepResult`
    (step ``infer``) per video out, in input order, with ``counts`` ``windows`` and ``faces`` and ``info``
    ``task``, ``model_name``, ``model_version``. A video without a frames partition is skipped (reason
    ``no_frames``); one whose crops cannot be read fails (stage ``infer``) with the reason of its
    ``VideoError`` and writes nothing. Other errors (bugs) raise.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    predictor = load_predictor(store, task, device, batch_windows, threads)
    if predictor is None:
        logger.info("%s: no promoted model and no rule baseline: %d videos skipped", task, len(set(video_ids)))
        none = {"task": task, "model_name": None, "model_version": None}
        return [
            StepResult(v, "", "infer", "skipped", reason="no_model", counts={"windows": 0, "faces": 0}, info=dict(none))
            for v in dict.fromkeys(video_ids)
        ]
    source = source_table(task)
    paths: dict[str, str] = {}
    if isinstance(predictor, ModelPredictor | GesturePredictor | ExpressionNetPredictor):  # decoded without crops
        catalog = store.read_catalog("videos")
        paths = dict(zip(catalog["video_id"], catalog["path"], strict=True))
    results: dict[str, StepResult] = {}
    started: dict[str, float] = {}
    unique_ids = list(dict.fromkeys(video_ids))
    info = {"task": task, "model_name": predictor.name, "model_version": predictor.version}
    for video_id in unique_ids:
        counts = {"windows": 0, "faces": 0}
        results[video_id] = StepResult(video_id, paths.get(video_id, ""), "infer", counts=counts, info=info)

    def videos() -> Iterator[VideoWindows]:
        for video_id in unique_ids:
            if not store.has_partition(source, video_id):
                result = results[video_id]
                result.status, result.reason, result.message = "skipped", f"no_{source}", f"no {source} partition"
                continue
            started[video_id] = time.perf_counter()
            video = load_video_windows(store, video_id, predictor.columns, window, stride, source)
            video.video_path = paths.get(video_id)
            yield video

    meta = {"window": window, "stride": stride, "model_version": predictor.version}
    for video, probs in predictor.predict(videos()):
        result = results[video.video_id]
        result.seconds = time.perf_counter() - started[video.video_id]
        if probs is None:
            error = video.error
            result.fail("infer", error.reason, f"{task}: {error}")
            logger.error("%s: %s inference failed (%s): %s", video.video_id, task, error.reason, error)
            continue
        table = predictions_table(task, video, probs, predictor.name, meta)
        store.write_predictions(table, task, predictor.version, video.video_id)
        result.status = "ok"
        result.counts = {"windows": len(video.windows), "faces": len({w.face_id for w in video.windows})}
        logger.info("%s: %d %s windows of %d face tracks by %s", video.video_id, result.counts["windows"], task,
                    result.counts["faces"], predictor.name)  # fmt: skip
    return [results[v] for v in unique_ids]


def stale_videos(store: Store, task: str) -> list[str]:
    """Videos whose predictions of ``task`` by the version inference would use now (:func:`current_version`)
    are missing or older than their frames (body partition for gesture); none when the task is skipped."""
    version = current_version(store, task)
    return [] if version is None else store.stale_videos(task, version, source_table(task))
