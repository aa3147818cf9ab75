"""Labelled clip sets (DAiSEE, DFEW, a manifest CSV), prepared clips, and the PyTorch dataset over them.

Adapters turn a dataset as distributed into a :class:`ClipSet`: clips with an integer label, a split
(``train`` / ``validation`` / ``test``) and the class names in logit order. Bad label rows raise
:class:`DatasetError` naming the file and the row (row 2 is the first row under the header).

- **DAiSEE** (Gupta et al. 2016), as distributed: ``DataSet/{Train,Validation,Test}/<subject>/<clip>/
  <clip>.avi|mp4`` and ``Labels/{Train,Validation,Test}Labels.csv`` with columns ``ClipID, Boredom,
  Engagement, Confusion, Frustration`` (levels 0-3; the official CSVs write ``"Frustration "`` with a
  trailing space, column names are stripped). Labelled clips whose video is missing are dropped and
  counted (``missing_clip``): the official release has a few. Two tasks:

  * ``"state"`` (paper 2, §4.1, after Zhu [47]): one learner state per clip, :func:`daisee_state` -
    the state with the highest level; ties go to frustration > confusion > boredom > engagement. Then,
    per split, all frustration and confusion clips are kept and boredom and engagement are undersampled
    without replacement (``numpy.random.default_rng(seed)``) to ``min(available, round(r * F))`` clips,
    where F is the split's frustration count and r is :data:`DAISEE_UNDERSAMPLING` (engagement 3,
    boredom 4/3). The paper's text says "boredom : engagement : confusion : frustration ≈ 3:1:1:1", but its
    Table 1 keeps engagement = 3·F and boredom = round(4/3·F) in all three splits, to the clip (train
    582 = 3·194, 259 = round(258.7); validation 204 = 3·68, 91; test 312 = 3·104, 139), with confusion
    = every clip (275 / 90 / 106). We follow the table; ``ratios`` takes other values. Classes are
    ``models.rules.LEARNER_STATES`` (the registry's ``learner_state`` task).
  * ``"level"``: the standard per-state task, the 4 levels of one chosen state (``very_low``, ``low``,
    ``high``, ``very_high`` = 0..3), no resampling; no registry task matches it.

- **DFEW** (Jiang et al. 2020): 5-fold; ``EmoLabel_DataSplit/train(single-labeled)/set_<fold>.csv`` and
  ``test(single-labeled)/set_<fold>.csv`` with columns ``video_name, label``. DFEW's label ids are
  1 happy, 2 sad, 3 neutral, 4 angry, 5 surprise, 6 disgust, 7 fear (0 marks clips without a single
  label, which the single-labelled splits do not contain: 0 is an error here); they map to the
  registry's ``emotion`` classes happiness, sadness, neutral, anger, surprise, disgust, fear, and logits
  follow ``models.rules.EMOTIONS``. A clip is the frame folder ``Clip/clip_224x224/<video_name>/``
  (``video_name`` zero-padded to 5 digits when the folder is named so) or a video
  ``Clip/original/<video_name>.mp4|avi``. DFEW has no validation split.

- **Manifest**: a CSV with columns ``path, label, split``; ``path`` (a video file or a folder of frame
  images) is relative to the CSV's folder, ``label`` a class name. When every label is a class of one
  registry task (``emotion``, ``learner_state`` or ``gesture``), the classes are that task's, in its order (so the
  model can be registered); otherwise they are the sorted label names and no task is set.

Prepared clips: ``tasks.predict.prepare`` extracts each clip once (decode, faces, aligned crops or the letterboxed
body view, on the nightly sampling grid) into a Parquet cache file per clip content and view; here a
:class:`CachedClip` points to that file (or says why the clip was dropped) and a :class:`PreparedSet` holds
a clip set's cached clips per split with the extraction parameters, whose :meth:`PreparedSet.fingerprint`
identifies the training data. A cache file has one row per kept frame: ``frame``, ``timestamp``,
``confidence``, ``jpeg`` (the image, ``models.layout`` codec) and the point columns of :func:`view_columns`
in the image's pixels. Views: ``face`` (112 × 112 aligned crop, iBUG-68 landmarks) for learner_state and
teacher_expression, ``body`` (letterboxed whole frame, 33 BlazePose keypoints) for teacher_gesture.

Sampling (paper 2, §3.1, after TSN [39]): a clip's N cached frames are split evenly into U segments; in
training V frames are drawn at random in each segment, at test the V frames at the middle of each segment.
Augmentation (paper 2, §4.2.2) draws its parameters once per clip, so every frame of a clip gets the same
gamma, brightness / contrast / saturation jitter, multiscale crop (side × 1, 0.875, 0.75 or 0.66 at one
of five fixed offsets: the corners and the centre) and horizontal flip; landmarks and keypoints move
with the pixels and flipping swaps their left / right indices.
"""

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from models.layout import BLAZEPOSE_FLIP, IBUG68_FLIP, KEYPOINT_NAMES, N_LANDMARKS, decode_jpeg
from models.rules import EMOTIONS, LEARNER_STATES, TASK_CLASSES

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")

DAISEE_STATES = ("boredom", "engagement", "confusion", "frustration")  # CSV column order
DAISEE_PRIORITY = ("frustration", "confusion", "boredom", "engagement")  # tie-break, highest first
DAISEE_UNDERSAMPLING = {"engagement": 3.0, "boredom": 4.0 / 3.0}  # clips per frustration clip (Table 1)
DAISEE_LEVELS = ("very_low", "low", "high", "very_high")
DAISEE_FOLDERS = {"train": "Train", "validation": "Validation", "test": "Test"}

DFEW_LABELS = {1: "happiness", 2: "sadness", 3: "neutral", 4: "anger", 5: "surprise", 6: "disgust", 7: "fear"}
DFEW_FOLDS = (1, 2, 3, 4, 5)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIEWS = ("face", "body")
MODEL_VIEWS = {"learner_state": "face", "teacher_expression": "face", "teacher_gesture": "body"}


class DatasetError(ValueError):
    """A dataset that cannot be read as labelled; the message names the file and the row."""


@dataclass(frozen=True)
class Clip:
    """One labelled clip: a video file or a folder of frame images."""

    clip_id: str
    path: Path
    label: int
    split: str


@dataclass
class ClipSet:
    """Clips of one dataset with their classes (logit order) and the registry task they fit, if any."""

    name: str
    classes: tuple[str, ...]
    clips: list[Clip]
    task: str | None = None
    licence: str = "unspecified"
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> clips dropped while reading labels

    def split(self, split: str) -> list[Clip]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return [c for c in self.clips if c.split == split]

    def counts(self, split: str) -> dict[str, int]:
        """Clips per class name in ``split`` (classes without clips included, as 0)."""
        found = Counter(c.label for c in self.split(split))
        return {name: found.get(k, 0) for k, name in enumerate(self.classes)}


# ------------------------------------------------------------------------------------------- DAiSEE


def daisee_state(levels: Mapping[str, int]) -> str:
    """Paper 2's single label: the state with the highest level, ties by :data:`DAISEE_PRIORITY`."""
    top = max(levels[s] for s in DAISEE_PRIORITY)
    return next(s for s in DAISEE_PRIORITY if levels[s] == top)


def undersample(labels: Sequence[str], targets: Mapping[str, int], seed: int) -> list[int]:
    """Indices of ``labels`` kept when class ``c`` is cut to ``targets[c]`` clips (others all kept).

    Draws without replacement with ``numpy.random.default_rng(seed)``, classes in sorted order; the
    result is sorted, so it is the same whatever the Python hash seed.
    """
    rng = np.random.default_rng(seed)
    labels = list(labels)
    keep = [i for i, label in enumerate(labels) if label not in targets]
    for name in sorted(targets):
        members = [i for i, label in enumerate(labels) if label == name]
        keep += rng.choice(members, size=min(targets[name], len(members)), replace=False).tolist()
    return sorted(keep)


def daisee_targets(counts: Mapping[str, int], ratios: Mapping[str, float] = DAISEE_UNDERSAMPLING) -> dict[str, int]:
    """Clips kept per undersampled state: ``min(available, round(ratio * frustration clips))``."""
    return {s: min(counts.get(s, 0), round(r * counts.get("frustration", 0))) for s, r in ratios.items()}


def read_daisee_labels(path: Path) -> list[tuple[str, dict[str, int]]]:
    """(ClipID, {state: level}) per row of an official DAiSEE label CSV; DatasetError naming bad rows."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        wanted = ["ClipID", *(s.capitalize() for s in DAISEE_STATES)]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}; found {header}")
        index = {c: header.index(c) for c in wanted}
        rows = []
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise DatasetError(f"{path}: row {row_number} has {len(row)} fields, the header {len(header)}")
            clip = row[index["ClipID"]].strip()
            if not clip:
                raise DatasetError(f"{path}: row {row_number} has an empty ClipID")
            levels = {}
            for state in DAISEE_STATES:
                text = row[index[state.capitalize()]].strip()
                if text not in {"0", "1", "2", "3"}:
                    raise DatasetError(
                        f"{path}: row {row_number} ({clip}): {state.capitalize()} level {text!r} is not 0, 1, 2 or 3"
                    )
                levels[state] = int(text)
            rows.append((clip, levels))
    return rows


def read_daisee(
    root: str | os.PathLike,
    *,
    task: str = "state",
    state: str = "engagement",
    seed: int = 0,
    ratios: Mapping[str, float] = DAISEE_UNDERSAMPLING,
) -> ClipSet:
    """DAiSEE as distributed (see the module docstring): ``task`` "state" (paper 2) or "level" of ``state``."""
    root = Path(root)
    if task not in ("state", "level"):
        raise ValueError(f"DAiSEE task must be 'state' or 'level', got {task!r}")
    if task == "level" and state not in DAISEE_STATES:
        raise ValueError(f"DAiSEE state must be one of {', '.join(DAISEE_STATES)}, got {state!r}")
    classes = LEARNER_STATES if task == "state" else DAISEE_LEVELS
    clips: list[Clip] = []
    dropped: Counter = Counter()
    for split, folder in DAISEE_FOLDERS.items():
        labels_path = root / "Labels" / f"{folder}Labels.csv"
        if not labels_path.is_file():
            raise FileNotFoundError(f"DAiSEE labels {labels_path} not found (<root>/Labels/{folder}Labels.csv)")
        videos = {p.stem: p for p in (root / "DataSet" / folder).glob("*/*/*") if p.suffix.lower() in VIDEO_SUFFIXES}
        rows = []
        for clip_id, levels in read_daisee_labels(labels_path):
            path = videos.get(Path(clip_id).stem)  # ClipID is the file name, e.g. 1100011002.avi
            if path is None:
                dropped["missing_clip"] += 1
                continue
            name = daisee_state(levels) if task == "state" else DAISEE_LEVELS[levels[state]]
            rows.append((clip_id, path, name))
        if task == "state":
            names = [r[2] for r in rows]
            keep = undersample(names, daisee_targets(Counter(names), ratios), seed)
            rows = [rows[i] for i in keep]
        clips += [Clip(clip_id, path, classes.index(name), split) for clip_id, path, name in rows]
    if dropped:
        logger.warning("DAiSEE %s: dropped %s (labelled clips without a video)", root, dict(dropped))
    return ClipSet(
        name="daisee",
        classes=tuple(classes),
        clips=clips,
        task="learner_state" if task == "state" else None,
        licence="research-only: trained on DAiSEE (non-commercial licence)",
        dropped=dict(dropped),
    )


# --------------------------------------------------------------------------------------------- DFEW


def _dfew_clip_path(root: Path, name: str) -> Path | None:
    for candidate in (name, name.zfill(5)):
        folder = root / "Clip" / "clip_224x224" / candidate
        if folder.is_dir():
            return folder
        for suffix in VIDEO_SUFFIXES:
            video = root / "Clip" / "original" / f"{candidate}{suffix}"
            if video.is_file():
                return video
    return None


def read_dfew(root: str | os.PathLike, *, fold: int = 1) -> ClipSet:
    """DFEW fold ``fold`` (1..5) as distributed (see the module docstring)."""
    root = Path(root)
    if fold not in DFEW_FOLDS:
        raise ValueError(f"DFEW fold must be one of {DFEW_FOLDS}, got {fold!r}")
    clips = []
    for split, folder in (("train", "train(single-labeled)"), ("test", "test(single-labeled)")):
        path = root / "EmoLabel_DataSplit" / folder / f"set_{fold}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"DFEW split file {path} not found")
        for row_number, row in _csv_rows(path, ("video_name", "label")):
            name, label = row["video_name"], row["label"]
            if not name:
                raise DatasetError(f"{path}: row {row_number} has an empty video_name")
            if label not in {str(k) for k in DFEW_LABELS}:
                raise DatasetError(f"{path}: row {row_number} ({name}): label {label!r} is not a DFEW id 1..7")
            clip_path = _dfew_clip_path(root, name)
            if clip_path is None:
                raise DatasetError(
                    f"{path}: row {row_number}: clip {name!r} not found as Clip/clip_224x224/{name.zfill(5)}/ "
                    f"or Clip/original/{name}.mp4"
                )
            clips.append(Clip(name, clip_path, EMOTIONS.index(DFEW_LABELS[int(label)]), split))
    return ClipSet(
        name="dfew",
        classes=EMOTIONS,
        clips=clips,
        task="emotion",
        licence="research-only: trained on DFEW (non-commercial licence)",
    )


# ----------------------------------------------------------------------------------------- manifest


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(row number, {column: stripped text}) of a CSV that must have ``columns``."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in columns if c not in fields]
        if missing:
            raise DatasetError(f"{path}: missing columns {missing}; found {fields}")
        for row_number, row in enumerate(reader, start=2):
            values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if any(values.values()):
                yield row_number, values


def read_manifest(path: str | os.PathLike) -> ClipSet:
    """A manifest CSV ``path, label, split`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found")
    rows = []
    for row_number, row in _csv_rows(path, ("path", "label", "split")):
        if not row["path"] or not row["label"]:
            raise DatasetError(f"{path}: row {row_number} has an empty path or label")
        if row["split"] not in SPLITS:
            raise DatasetError(f"{path}: row {row_number}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        clip_path = path.parent / row["path"]
        if not clip_path.exists():
            raise DatasetError(f"{path}: row {row_number}: {clip_path} does not exist")
        rows.append((row["path"], clip_path, row["label"], row["split"]))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    labels = {r[2] for r in rows}
    task = next((t for t, names in TASK_CLASSES.items() if labels <= set(names)), None)
    classes = TASK_CLASSES[task] if task else tuple(sorted(labels))
    clips = [Clip(clip_id, p, classes.index(label), split) for clip_id, p, label, split in rows]
    return ClipSet(name="manifest", classes=tuple(classes), clips=clips, task=task)


def read_dataset(kind: str, path: str | os.PathLike, **options) -> ClipSet:
    """Dispatch on ``kind`` (daisee, dfew, manifest); ``options`` go to the adapter."""
    readers = {"daisee": read_daisee, "dfew": read_dfew, "manifest": read_manifest}
    if kind not in readers:
        raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(readers)}")
    return readers[kind](path, **options)


# ------------------------------------------------------------------------------------ prepared clips


@dataclass(frozen=True)
class CachedClip:
    """A clip's prepared frames (one cache file); ``path`` is None when it was dropped for ``reason``."""

    clip: Clip
    content: str
    path: Path | None
    frames: int
    reason: str | None = None


@dataclass(frozen=True)
class PreparedSet:
    """A :class:`ClipSet` prepared for one view: its cached clips per split and the extraction parameters.

    ``params`` is the JSON form of the extraction parameters the cache files were made with
    (``tasks.predict.prepare.ExtractionParams``); training records it, and evaluation of a registered model checks it.
    ``splits`` maps a split to its clips, dropped ones included (``path`` None); a split not prepared is absent.
    """

    dataset: ClipSet
    view: str
    params: Mapping[str, object]
    splits: Mapping[str, list[CachedClip]]

    def split(self, split: str) -> list[CachedClip]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return list(self.splits.get(split, []))

    def fingerprint(self) -> str:
        """:func:`fingerprint` of every prepared split with the dataset's classes."""
        return fingerprint([c for split in SPLITS for c in self.split(split)], self.dataset.classes, self.params)


def view_columns(view: str) -> list[str]:
    """Point columns of a view's cache file: ``x_i, y_i`` (iBUG-68, crop pixels) or ``<keypoint>_x, _y``."""
    if view == "face":
        return [f"x_{i}" for i in range(N_LANDMARKS)] + [f"y_{i}" for i in range(N_LANDMARKS)]
    return [f"{n}_x" for n in KEYPOINT_NAMES] + [f"{n}_y" for n in KEYPOINT_NAMES]


def fingerprint(cached: Sequence[CachedClip], classes: Sequence[str], params: Mapping[str, object]) -> str:
    """SHA-256 of what the model saw: classes, extraction parameters and (split, label, content id) per clip."""
    lines = sorted(f"{c.clip.split},{c.clip.label},{c.content}" for c in cached if c.path is not None)
    text = json.dumps({"classes": list(classes), "params": dict(params), "clips": lines}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------ sampling


def sample_indices(n: int, segments: int, per_segment: int, rng: np.random.Generator | None) -> np.ndarray:
    """U × V frame indices into ``n`` frames: random in each segment (``rng`` given) or its middle V.

    Segment k covers ``[k n / U, (k + 1) n / U)``; a segment shorter than V (or empty, when n < U)
    repeats frames. Returns shape (U * V,), non-decreasing.
    """
    if n < 1:
        raise ValueError("a clip needs at least one frame")
    bounds = np.linspace(0, n, segments + 1)
    picks = []
    for k in range(segments):
        start = min(int(np.floor(bounds[k])), n - 1)
        stop = max(int(np.floor(bounds[k + 1])), start + 1)
        if rng is not None:
            chosen = np.sort(rng.integers(start, stop, size=per_segment))
        else:
            first = start + (stop - start - per_segment + 1) // 2
            chosen = np.clip(np.arange(first, first + per_segment), start, stop - 1)
        picks.append(chosen)
    return np.concatenate(picks).astype(int)


@dataclass(frozen=True)
class ClipAugment:
    """One clip's augmentation parameters (paper 2, §4.2.2), applied alike to all of its frames."""

    gamma: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    scale: float = 1.0  # crop side / image side
    offset: int = 0  # 0 centre, 1-4 the corners top-left, top-right, bottom-left, bottom-right
    flip: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "ClipAugment":
        return cls(
            gamma=float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))),
            brightness=float(rng.uniform(0.75, 1.25)),
            contrast=float(rng.uniform(0.75, 1.25)),
            saturation=float(rng.uniform(0.75, 1.25)),
            scale=float(rng.choice([1.0, 0.875, 0.75, 0.66])),
            offset=int(rng.integers(0, 5)),
            flip=bool(rng.random() < 0.5),
        )

    def crop_box(self, side: int) -> tuple[int, int, int]:
        """(x0, y0, crop side) of the multiscale crop in an image of ``side`` pixels."""
        crop = max(1, round(side * self.scale))
        free = side - crop
        x0, y0 = [(free // 2, free // 2), (0, 0), (free, 0), (0, free), (free, free)][self.offset]
        return x0, y0, crop

    def colour(self, x: Tensor) -> Tensor:
        """Gamma, brightness, contrast and saturation on RGB in [0, 1], shape (T, 3, H, W)."""
        x = x.clamp(0, 1) ** self.gamma * self.brightness
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]  # (T, 1, H, W)
        x = (x - grey.mean(dim=(2, 3), keepdim=True)) * self.contrast + grey.mean(dim=(2, 3), keepdim=True)
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        return (grey + (x - grey) * self.saturation).clamp(0, 1)


def load_frames(path: Path, view: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (T, S, S, 3) uint8 and points (T, K, 2) of cache rows ``rows`` (repeats allowed)."""
    table = pq.read_table(path, columns=["jpeg", *view_columns(view)])
    unique, inverse = np.unique(rows, return_inverse=True)
    table = table.take(pa.array(unique))
    jpeg = table.column("jpeg").to_pylist()
    images = np.stack([decode_jpeg(b) for b in jpeg])[inverse]
    k = len(view_columns(view)) // 2
    flat = np.stack([table.column(c).to_numpy() for c in view_columns(view)], axis=1)  # (U, 2K)
    points = np.stack([flat[:, :k], flat[:, k:]], axis=2).astype(np.float32)[inverse]  # (T, K, 2)
    return images, points


class ClipDataset(Dataset):
    """Cached clips as model input: ``(x (T, 3, S, S) normalised, points (T, K, 2) in x's pixels, label, index)``.

    ``T = segments * per_segment`` frames per clip, ``S = image_size``. With ``train`` the frames are
    sampled at random and (unless ``augment`` is False) augmented, parameters from ``seed``, ``epoch`` and
    the clip's index, so an epoch is reproducible; otherwise the middle frames of the segments, resized
    only - the input that ``tasks.predict.inference`` builds from crops.
    """

    def __init__(
        self,
        clips: Sequence[CachedClip],
        *,
        view: str,
        segments: int,
        per_segment: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = False,
        augment: bool = True,
        seed: int = 0,
    ):
        self.clips = [c for c in clips if c.path is not None]
        self.view = view
        self.segments, self.per_segment, self.image_size = segments, per_segment, image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.train, self.augment, self.seed, self.epoch = train, augment, seed, 0
        self.flip_order = list(IBUG68_FLIP if view == "face" else BLAZEPOSE_FLIP)
        self.labels = torch.tensor([c.clip.label for c in self.clips], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, int]:
        clip = self.clips[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        rows = sample_indices(clip.frames, self.segments, self.per_segment, rng)
        images, points = load_frames(clip.path, self.view, rows)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, S0, S0)
        p = torch.from_numpy(points)  # (T, K, 2)
        side = x.shape[-1]
        augment = ClipAugment.draw(rng) if self.train and self.augment else ClipAugment()
        if augment != ClipAugment():
            x0, y0, crop = augment.crop_box(side)
            x = x[:, :, y0 : y0 + crop, x0 : x0 + crop]
            p = p - torch.tensor([x0, y0], dtype=p.dtype)
            side = crop
            x = augment.colour(x)
        x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        p = p * (self.image_size / side)
        if augment.flip:
            x = x.flip(-1)
            p = p[:, self.flip_order]
            p[..., 0] = self.image_size - p[..., 0]
        x = (x - self.mean) / self.std
        return x, p, self.labels[index], index
