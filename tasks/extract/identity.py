"""Persons: one ``person_id`` per person over the face tracks of one video, from face descriptors and time.

Descriptors. face-api.js's 128-d face-recognition net (:class:`models.face_recognition.FaceRecognitionNet`, a port of
dlib's ResNet metric net: two faces of one person lie closer than about 0.6) runs on a few good faces, not on
every face: in each window of :attr:`ExtractParams.descriptor_every` sampled frames of a chunk,
:class:`DescriptorSampler` keeps the frame with the most usable faces (landmark box at least
:data:`MIN_FACE_PX` high, yaw and pitch within :data:`MAX_TURN` rad), ties broken by sharpness × size, and
runs the net once, batched, on all of that frame's usable faces at the end of the chunk. The descriptors
travel in the chunk's faces fragment and are used by :func:`assign_person_ids` when the video is
finalised; they are not stored in ``frames`` (biometric data; see README, Personal data).

Linking (:func:`assign_person_ids`), after :func:`tasks.extract.tracking.assign_face_ids`:

1. A track is cut where the person in it changes: where its face moves to another gallery tile, and where its
   descriptors change (a descriptor further than :data:`SPLIT_DISTANCE` from the mean of the track so far,
   and the next one too, or it is the last). The cut is placed at the largest jump of the face's box and
   landmark shape between the two descriptors (a gallery that reorders its tiles swaps faces in one frame).
   The pieces are the ``face_id`` tracks of ``frames``: each is one person.
2. Tracks are merged into persons greedily, closest mean descriptors first, while the distance is below
   :data:`LINK_DISTANCE`; two groups that share a sampled frame are never merged (one person is never
   twice in a frame). A track of :data:`MIN_TRACK_ROWS` samples or more that no window described (shorter
   than a window, or never the window's best frame) gets a descriptor from its largest usable face when the
   video is finalised (:func:`undescribed_tracks`: that frame alone is decoded again); a track still without
   one (never frontal, or one or two samples) is its own person.

Thresholds measured on the dev material of ``tasks.synthetic.people`` (``bench/identity.py``): see
:data:`LINK_DISTANCE`.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models import faceapi_package
from models.faceapi_package import recognition_chip
from models.layout import DESCRIPTOR_SIZE
from tasks.extract.decode import Chunk, ChunkDecode, decode_chunk, open_video
from tasks.extract.discover import local_video
from tasks.extract.tracking import landmark_shape

MIN_FACE_PX = 40.0  # landmark box height below which a face gets no descriptor
MAX_TURN = 0.6  # rad (34°) of yaw or pitch beyond which a face gets no descriptor
# Measured with `python bench/identity.py distances` on the dev clips of tasks.synthetic.people (166 usable
# faces of five people, 1 frame/s): one face to another, same person 0.07-0.69 (99th percentile 0.63),
# different people 0.55-1.03 (1st percentile 0.62); dlib's own threshold is 0.6. Single faces overlap in the
# tails (a hand over the face, a low angle), so tracks are merged on their mean descriptors, below the
# closest pair of different people seen (0.55), and a track is cut only where two descriptors in a row
# leave its mean by more than that.
LINK_DISTANCE = 0.5
SPLIT_DISTANCE = 0.55
MIN_TRACK_ROWS = 3  # a track this long without a descriptor gets one from its best face (undescribed_tracks)


def usable_faces(landmarks: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(height, usable) of faces with ``landmarks`` (N, 68, 2) and ``pose`` (N, 2 or 3: pitch, yaw, ...): the
    landmark box's height in pixels, and whether the face may get a descriptor (height at least
    :data:`MIN_FACE_PX`, pitch and yaw within :data:`MAX_TURN`)."""
    height = landmarks[:, :, 1].max(axis=1) - landmarks[:, :, 1].min(axis=1)
    return height, (height >= MIN_FACE_PX) & (np.abs(pose[:, 0]) <= MAX_TURN) & (np.abs(pose[:, 1]) <= MAX_TURN)


def face_quality(pixels: np.ndarray, landmarks: np.ndarray, pose: np.ndarray) -> float:
    """0 when the face is too small or turned for a descriptor (:func:`usable_faces`), else size × sharpness
    (variance of the Laplacian of its grey landmark box, resized to 64 px)."""
    (height,), (usable,) = usable_faces(landmarks[None], np.asarray(pose)[None])
    if not usable:
        return 0.0
    (x1, y1), (x2, y2) = landmarks.min(axis=0), landmarks.max(axis=0)
    H, W = pixels.shape[:2]
    box = pixels[max(int(y1), 0) : min(int(y2) + 1, H), max(int(x1), 0) : min(int(x2) + 1, W)]
    if box.size == 0:
        return 0.0
    grey = cv2.cvtColor(cv2.resize(box, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return float(height * (cv2.Laplacian(grey, cv2.CV_32F).var() + 1.0))


class DescriptorSampler:
    """Picks, per window of ``every`` sampled frames of a chunk, the frame whose faces get descriptors.

    ``offer(sample, rows, chips, qualities)`` is called once per decoded frame with the fragment row of each
    of its faces, their recognition chips (:func:`models.faceapi_package.recognition_chip`) and :func:`face_quality`;
    ``descriptors(n_rows)`` runs the net on the kept chips and returns an (n_rows, 128) float32 array, NaN
    for rows without a descriptor.
    """

    def __init__(self, every: int):
        self.every = every
        self.best: dict[int, tuple[tuple[int, float], list[int], list[np.ndarray]]] = {}

    def offer(self, sample: int, rows: list[int], chips: list[np.ndarray], qualities: list[float]) -> None:
        usable = [k for k, q in enumerate(qualities) if q > 0]
        if not usable:
            return
        score = (len(usable), float(sum(qualities[k] for k in usable)))
        window = sample // self.every
        if window not in self.best or score > self.best[window][0]:
            self.best[window] = (score, [rows[k] for k in usable], [chips[k] for k in usable])

    def descriptors(self, n_rows: int) -> np.ndarray:
        out = np.full((n_rows, DESCRIPTOR_SIZE), np.nan, np.float32)
        rows = [r for _, kept, _ in self.best.values() for r in kept]
        if rows:
            chips = [c for _, _, kept in self.best.values() for c in kept]
            out[rows] = describe(chips)
        return out


_NET = None
_NET_LOCK = threading.Lock()


def descriptors_missing() -> str | None:
    """Why face descriptors cannot be computed here (one line saying how to get the weights), or None."""
    return faceapi_package.weights_missing(faceapi_package.RECOGNITION_MANIFEST, "face recognition")


def describe(chips: list[np.ndarray]) -> np.ndarray:
    """(len(chips), 128) float32 descriptors of face chips (H, W, 3) uint8 RGB, on one CPU thread (extraction
    workers are single-threaded processes); the net is loaded once per process."""
    import torch

    from models import face_recognition, faceapi
    from models.device import cpu_threads

    global _NET
    with _NET_LOCK:
        if _NET is None:
            _NET = face_recognition.load_recognition_net()
        net = _NET
    with cpu_threads(), torch.inference_mode():
        return net(faceapi.prepare(chips, face_recognition.RECOGNITION_SIZE)).numpy().astype(np.float32)


def describe_at(
    path: str, video_id: str, storage_options: dict | None, frames: np.ndarray, timestamps: np.ndarray,
    landmarks: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(N, 128) descriptors of the faces with ``landmarks`` (N, 68, 2) in the video's ``frames`` (at
    ``timestamps``), those frames decoded again as extraction decodes them (decord, PyAV where decord fails); NaN
    rows for faces whose frame neither decodes. VideoError when the video cannot be opened."""
    out = np.full((len(frames), DESCRIPTOR_SIZE), np.nan, np.float32)
    stamps = {int(f): float(t) for f, t in zip(frames, timestamps, strict=True)}
    if not stamps:
        return out
    wanted = Chunk(0, tuple(sorted(stamps)), tuple(stamps[f] for f in sorted(stamps)))
    with local_video(path, video_id, storage_options) as local:
        pixels = dict(decode_chunk(local, open_video(local), wanted, ChunkDecode()))
    rows = [k for k, frame in enumerate(frames) if int(frame) in pixels]
    if rows:
        out[rows] = describe([recognition_chip(pixels[int(frames[k])], landmarks[k]) for k in rows])
    return out


def descriptor_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(N, 128) descriptors as an Arrow column of 128-float lists (chunk fragments, ``descriptors`` partitions)."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors, np.float32).reshape(-1)), DESCRIPTOR_SIZE)


def descriptor_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(N, 128) float32 from a column of 128-float lists (NaN rows: no descriptor)."""
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return flat.astype(np.float32).reshape(len(column), DESCRIPTOR_SIZE)


def undescribed_tracks(
    face_id: np.ndarray, landmarks: np.ndarray, pose: np.ndarray, descriptors: np.ndarray
) -> list[int]:
    """For each track of at least :data:`MIN_TRACK_ROWS` rows that no window gave a descriptor (a track shorter
    than a window, or whose faces were never the window's best), its largest usable face's row (height at
    least :data:`MIN_FACE_PX`, yaw and pitch within :data:`MAX_TURN`); tracks without one are left out."""
    height, usable = usable_faces(landmarks, pose)
    rows = []
    for track in np.unique(face_id):
        mine = np.flatnonzero(face_id == track)
        if len(mine) < MIN_TRACK_ROWS or not np.isnan(descriptors[mine, 0]).all() or not usable[mine].any():
            continue
        candidates = mine[usable[mine]]
        rows.append(int(candidates[np.argmax(height[candidates])]))
    return rows


def assign_person_ids(
    frame: np.ndarray,
    face_id: np.ndarray,
    bboxes: np.ndarray,
    landmarks: np.ndarray,
    descriptors: np.ndarray,
    tile: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut tracks where their person changes and link the pieces into persons (module docstring).

    Args:
        frame: (N,) sampled frame index of each detection, non-decreasing.
        face_id: (N,) tracks from :func:`tasks.extract.tracking.assign_face_ids`.
        bboxes: (N, 4) x1, y1, x2, y2 pixels.
        landmarks: (N, 68, 2) pixels.
        descriptors: (N, 128), NaN rows where no descriptor was computed.
        tile: (N,) gallery tile of each face, -1 outside a gallery; None: no gallery.

    Returns:
        (face_id, person_id), both (N,) int32 numbered in order of first appearance: the tracks after the
        cuts, and the person of each.
    """
    n = len(frame)
    if n == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    if descriptors.shape != (n, DESCRIPTOR_SIZE):
        raise ValueError(f"descriptors must be ({n}, {DESCRIPTOR_SIZE}), got {descriptors.shape}")
    tile = np.full(n, -1) if tile is None else np.asarray(tile)
    features = _face_features(bboxes, landmarks)
    segment = np.empty(n, np.int64)
    count = 0
    for track in np.unique(face_id):
        rows = np.flatnonzero(face_id == track)
        cuts = _cuts(rows, descriptors, tile, features)
        for k, piece in enumerate(np.split(rows, cuts)):
            segment[piece] = count + k
        count += len(cuts) + 1
    person = link_groups(segment, count, frame, descriptors)
    return _first_appearance(segment), _first_appearance(person)


def _face_features(bboxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 139) per row: box centre (2), box size (1) and normalised landmark shape (136), for :func:`_change`."""
    centre = (bboxes[:, :2] + bboxes[:, 2:]) / 2
    size = np.sqrt(np.maximum(bboxes[:, 2] - bboxes[:, 0], 1e-6) * np.maximum(bboxes[:, 3] - bboxes[:, 1], 1e-6))
    return np.column_stack([centre, size, landmark_shape(np.asarray(landmarks, np.float64))])


def _change(features: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How much the face changed between rows ``before`` and ``after`` (same length): centre step and size
    ratio in face sizes plus the landmark-shape distance."""
    a, b = features[before], features[after]
    step = np.linalg.norm(b[:, :2] - a[:, :2], axis=1) / a[:, 2]
    ratio = np.abs(np.log(b[:, 2] / a[:, 2]))
    shape = np.sqrt(((b[:, 3:] - a[:, 3:]) ** 2).mean(axis=1))
    return step + ratio + 4.0 * shape


def _cuts(rows: np.ndarray, descriptors: np.ndarray, tile: np.ndarray, features: np.ndarray) -> list[int]:
    """Positions in ``rows`` (one track's rows in frame order) where a new person's piece starts."""
    cuts = set(np.flatnonzero(tile[rows][1:] != tile[rows][:-1]) + 1)
    have = [k for k in range(len(rows)) if not np.isnan(descriptors[rows[k], 0])]
    mean, count, last = None, 0, None
    for j, k in enumerate(have):
        d = descriptors[rows[k]]
        if mean is not None and np.linalg.norm(d - mean) > SPLIT_DISTANCE:
            following = descriptors[rows[have[j + 1]]] if j + 1 < len(have) else None
            if following is None or np.linalg.norm(following - mean) > SPLIT_DISTANCE:
                span = np.arange(last + 1, k + 1)  # the new piece starts at one of these positions
                cuts.add(int(span[np.argmax(_change(features, rows[span - 1], rows[span]))]))
                mean, count = None, 0
        mean = d if mean is None else (mean * count + d) / (count + 1)
        count += 1
        last = k
    return sorted(c for c in cuts if 0 < c < len(rows))


def link_groups(segment: np.ndarray, count: int, frame: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """Person of each row: its segment (0..count-1) merged closest-first on mean descriptors (NaN rows left out)
    below :data:`LINK_DISTANCE`, never two that share a ``frame`` value (within a video, a sampled frame; across
    videos, :mod:`tasks.extract.linking` passes the video, as two persons of one video are two people)."""
    frames = [set(frame[segment == s].tolist()) for s in range(count)]
    sums = np.zeros((count, DESCRIPTOR_SIZE))
    weight = np.zeros(count)
    for s in range(count):
        d = descriptors[segment == s]
        d = d[~np.isnan(d[:, 0])]
        sums[s], weight[s] = d.sum(axis=0), len(d)
    group = np.arange(count)
    alive = [s for s in range(count) if weight[s] > 0]
    while len(alive) > 1:
        means = sums[alive] / weight[alive, None]
        distance = np.linalg.norm(means[:, None] - means[None], axis=2)
        distance[np.tril_indices(len(alive))] = np.inf
        for i, j in zip(*np.unravel_index(np.argsort(distance, axis=None), distance.shape), strict=True):
            if distance[i, j] >= LINK_DISTANCE:
                return group[segment]
            a, b = alive[i], alive[j]
            if not frames[a] & frames[b]:
                break
        else:
            return group[segment]
        sums[a] += sums[b]
        weight[a] += weight[b]
        frames[a] |= frames[b]
        group[group == b] = a
        alive.remove(b)
    return group[segment]


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int32)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int32)
    return rank[inverse]


def link_bodies(
    body_frame: np.ndarray, nose: np.ndarray, face_frame: np.ndarray, face_boxes: np.ndarray, person_id: np.ndarray
) -> np.ndarray:
    """(B,) person of each body: the person whose face box (x1, y1, x2, y2) in the same frame holds the body's
    ``nose`` (B, 2), the nearest box centre if several do; -1 when none does."""
    out = np.full(len(body_frame), -1, np.int32)
    for k, (f, point) in enumerate(zip(body_frame, nose, strict=True)):
        rows = np.flatnonzero(face_frame == f)
        boxes = face_boxes[rows]
        inside = (
            (boxes[:, 0] <= point[0])
            & (point[0] <= boxes[:, 2])
            & (boxes[:, 1] <= point[1])
            & (point[1] <= boxes[:, 3])
        )
        if inside.any():
            centres = (boxes[inside, :2] + boxes[inside, 2:]) / 2
            out[k] = person_id[rows[inside][np.argmin(np.linalg.norm(centres - point, axis=1))]]
    return out
