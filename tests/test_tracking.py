"""Tracking: one id per person on a real clip, two people side by side never merged, gaps bridged."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from tasks.extract.faces import load_face_backend
from tasks.extract.tracking import assign_face_ids
from tests.test_faces import sample


def _detections(backend, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    backend.reset()
    rows = [(i, face) for i, frame in enumerate(frames) for face in backend.detect(frame)]
    frame = np.array([i for i, _ in rows])
    return frame, np.stack([f.bbox for _, f in rows]), np.stack([f.landmarks for _, f in rows])


@pytest.fixture(scope="module")
def backend():
    return load_face_backend("mediapipe")


def test_one_id_for_the_occluded_woman(media_dir, backend):
    frame, bboxes, landmarks = _detections(backend, sample(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4"))
    ids = assign_face_ids(frame, bboxes, landmarks)
    assert ids.dtype == np.int32
    assert set(ids.tolist()) == {0}


def _two_faces() -> tuple[np.ndarray, np.ndarray]:
    import insightface

    tom = cv2.imread(str(Path(insightface.__file__).parent / "data/images/Tom_Hanks_54745.png"))
    tom = cv2.resize(cv2.cvtColor(tom, cv2.COLOR_BGR2RGB), (140, 140))
    astronaut = cv2.resize(skimage.data.astronaut()[20:240, 115:335], (150, 150))
    return tom, astronaut


def _two_people_clip(frames: int = 16, hidden: range = range(6, 9)) -> np.ndarray:
    """Tom Hanks (left) drifts right, the astronaut (right) drifts left; Tom is covered in ``hidden``."""
    tom, astronaut = _two_faces()
    clip = np.full((frames, 360, 640, 3), 90, np.uint8)
    for t in range(frames):
        tx, ax = 40 + 8 * t, 440 - 6 * t
        clip[t, 110:250, tx : tx + 140] = tom
        clip[t, 100:250, ax : ax + 150] = astronaut
        if t in hidden:
            clip[t, 100:260, tx - 10 : tx + 150] = (150, 120, 100)  # a hand-coloured block over Tom
    return clip


def test_two_people_side_by_side_keep_two_ids(backend):
    clip = _two_people_clip()
    frame, bboxes, landmarks = _detections(backend, clip)
    ids = assign_face_ids(frame, bboxes, landmarks)
    centre_x = (bboxes[:, 0] + bboxes[:, 2]) / 2
    assert set(ids.tolist()) == {0, 1}
    assert len(set(ids[centre_x < 320].tolist())) == 1  # Tom, also after being covered
    assert len(set(ids[centre_x >= 320].tolist())) == 1
    assert ids[centre_x < 320][0] != ids[centre_x >= 320][0]
    seen = frame[centre_x < 320]
    assert seen.min() < 6 and seen.max() > 8  # Tom was found on both sides of the gap
    for f in np.unique(frame):
        assert len(set(ids[frame == f].tolist())) == (frame == f).sum()


def _box_face(x: float, y: float, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A box and a crude 68-point layout inside it (points on a grid, eyes at rows 36-47)."""
    grid = np.stack(np.meshgrid(np.linspace(0.1, 0.9, 17), np.linspace(0.1, 0.9, 4)), -1).reshape(-1, 2)
    return np.array([x, y, x + size, y + size]), np.array([x, y]) + grid[:68] * size


def test_ids_follow_first_appearance_and_bridge_a_long_gap():
    rows = [(0, 300, 100), (1, 302, 100), (1, 50, 100), (2, 52, 100), (40, 305, 100), (40, 55, 100)]
    frame = np.array([r[0] for r in rows])
    boxes, marks = zip(*(_box_face(x, y, 80) for _, x, y in rows), strict=True)
    ids = assign_face_ids(frame, np.stack(boxes), np.stack(marks))
    assert ids.tolist() == [0, 0, 1, 1, 0, 1]


def test_unsorted_frames_are_rejected():
    boxes, marks = zip(*(_box_face(10, 10, 50) for _ in range(2)), strict=True)
    with pytest.raises(ValueError, match="sorted"):
        assign_face_ids(np.array([3, 1]), np.stack(boxes), np.stack(marks))


def test_no_detections_give_no_ids():
    assert assign_face_ids(np.zeros(0, int), np.zeros((0, 4)), np.zeros((0, 68, 2))).shape == (0,)
