"""Tracking: one stable ``face_id`` per person over all face detections of one whole video.

Detections are associated frame by frame (in sampled-frame order) with the tracks seen so far, by
solving an assignment problem (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``) on

    cost = centre distance / track face size  +  SHAPE_WEIGHT * landmark-shape distance

where the face size is the geometric mean of the track's last box sides, and the landmark shape is the
68 landmarks centred, de-rotated (eye line horizontal) and scaled to unit RMS radius, so the term compares
face proportions (a weak identity cue), not position. A pair is allowed only when the centre moved less
than ``MAX_STEP + GAP_STEP * (gap - 1)`` face sizes (at most ``MAX_JUMP``), where ``gap`` is the number of
sampled frames since the track was last seen, and when the face size changed by less than
``MAX_SIZE_RATIO``. Tracks never expire: a person who is occluded or missed for any number of frames gets
their id back when a face reappears near where they were last seen. Detections that match no track
start a new one. Two detections of one frame can never share an id (the assignment is one-to-one).

Without an appearance model, two people who swap places while neither is detected, or a newcomer who
sits where someone left, cannot be told apart; ids follow positions in those cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_STEP = 0.6  # face sizes the centre may move between consecutive sampled frames
GAP_STEP = 0.15  # extra allowance per missed sampled frame
MAX_JUMP = 1.5  # cap on the allowance, whatever the gap
MAX_SIZE_RATIO = 1.6  # larger / smaller face size
SHAPE_WEIGHT = 4.0


@dataclass(slots=True)
class _Track:
    box: np.ndarray  # last bbox (4,)
    frame: int  # last frame seen
    shape: np.ndarray  # running mean of the normalised landmark shape (136,)


def landmark_shape(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks -> (N, 136) shapes: centred, eye line horizontal, unit RMS radius."""
    centred = landmarks - landmarks.mean(axis=1, keepdims=True)
    eye_line = landmarks[:, 42:48].mean(axis=1) - landmarks[:, 36:42].mean(axis=1)
    angle = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    cos, sin = np.cos(-angle)[:, None], np.sin(-angle)[:, None]
    rotated = np.stack(
        [cos * centred[..., 0] - sin * centred[..., 1], sin * centred[..., 0] + cos * centred[..., 1]], -1
    )
    radius = np.sqrt((rotated**2).sum(axis=2).mean(axis=1))
    return (rotated / np.maximum(radius, 1e-9)[:, None, None]).reshape(len(landmarks), 136)


def assign_face_ids(frame: np.ndarray, bboxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Give every detection of one video a face id.

    Args:
        frame: (N,) sampled frame index of each detection, non-decreasing.
        bboxes: (N, 4) x1, y1, x2, y2 pixels.
        landmarks: (N, 68, 2) pixels, iBUG-68 order.

    Returns:
        (N,) int32 ids 0..K-1, numbered in order of first appearance.
    """
    frame, bboxes, landmarks = _validated(frame, bboxes, landmarks)
    if len(frame) == 0:
        return np.zeros(0, np.int32)
    shapes = landmark_shape(landmarks.astype(np.float64))
    ids = np.empty(len(frame), np.int32)
    tracks: list[_Track] = []
    starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(frame)], strict=True):
        rows = np.arange(start, stop)
        cost = _cost(tracks, int(frame[start]), bboxes[rows], shapes[rows])
        track_of_row = dict(_matches(cost))
        for position, row in enumerate(rows):
            if position in track_of_row:
                index = track_of_row[position]
                track = tracks[index]
                track.box, track.frame = bboxes[row], int(frame[row])
                track.shape = 0.8 * track.shape + 0.2 * shapes[row]
            else:
                index = len(tracks)
                tracks.append(_Track(box=bboxes[row], frame=int(frame[row]), shape=shapes[row]))
            ids[row] = index
    return ids


def _validated(
    frame: np.ndarray, bboxes: np.ndarray, landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = np.asarray(frame).astype(np.int64).reshape(-1)
    bboxes = np.asarray(bboxes, np.float64)
    landmarks = np.asarray(landmarks, np.float64)
    if bboxes.shape != (len(frame), 4):
        raise ValueError(f"bboxes must be ({len(frame)}, 4), got {bboxes.shape}")
    if landmarks.shape != (len(frame), 68, 2):
        raise ValueError(f"landmarks must be ({len(frame)}, 68, 2), got {landmarks.shape}")
    if np.any(np.diff(frame) < 0):
        raise ValueError("frame must be sorted (non-decreasing): pass one video's detections in frame order")
    return frame, bboxes, landmarks


def _cost(tracks: list[_Track], now: int, boxes: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """(tracks, detections) association cost; np.inf where the pair is not allowed."""
    cost = np.full((len(tracks), len(boxes)), np.inf)
    if not tracks:
        return cost
    track_boxes = np.stack([t.box for t in tracks])
    track_size = _size(track_boxes)
    gap = now - np.array([t.frame for t in tracks])
    allowed_step = np.minimum(MAX_STEP + GAP_STEP * (gap - 1), MAX_JUMP)
    step = np.linalg.norm(_centre(boxes)[None] - _centre(track_boxes)[:, None], axis=2) / track_size[:, None]
    ratio = _size(boxes)[None] / track_size[:, None]
    track_shapes = np.stack([t.shape for t in tracks])
    shape_distance = np.sqrt(((track_shapes[:, None] - shapes[None]) ** 2).mean(axis=2))
    ok = (step <= allowed_step[:, None]) & (ratio < MAX_SIZE_RATIO) & (ratio > 1 / MAX_SIZE_RATIO)
    cost[ok] = step[ok] + SHAPE_WEIGHT * shape_distance[ok]
    return cost


def _matches(cost: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (detection, track) pairs of least total cost among the allowed pairs."""
    if cost.size == 0 or not np.isfinite(cost).any():
        return []
    finite = np.where(np.isfinite(cost), cost, 1e6)
    track_rows, detection_cols = linear_sum_assignment(finite)
    return [(int(d), int(t)) for t, d in zip(track_rows, detection_cols, strict=True) if finite[t, d] < 1e6]


def _centre(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _size(boxes: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6) * np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6))
