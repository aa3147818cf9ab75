"""Body: MediaPipe Pose keypoints on a real clip, and the name table."""

import numpy as np
import pytest

from models.layout import KEYPOINT_NAMES
from tasks.extract.body import Body, load_body_backend
from tests.test_faces import sample


def test_keypoint_names_are_blazepose_33():
    assert len(KEYPOINT_NAMES) == 33 and len(set(KEYPOINT_NAMES)) == 33
    assert KEYPOINT_NAMES[0] == "nose" and KEYPOINT_NAMES[16] == "right_wrist"


def test_unknown_body_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="mediapipe"):
        load_body_backend("openpose")


def test_finds_the_woman_with_her_nose_on_her_face(media_dir):
    frames = sample(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", fps=1)[:6]
    backend = load_body_backend()
    backend.reset()
    bodies = [backend.detect(frame) for frame in frames]
    assert all(len(b) == 1 for b in bodies)
    for body in (b[0] for b in bodies):
        assert isinstance(body, Body)
        assert body.keypoints.shape == (33, 3) and body.keypoints.dtype == np.float32
        assert np.all((body.keypoints[:, 2] >= 0) & (body.keypoints[:, 2] <= 1))
        assert 0.0 <= body.score <= 1.0
        nose_x, nose_y, nose_visibility = body.keypoints[0]
        assert 150 < nose_x < 500 and 50 < nose_y < 330 and nose_visibility > 0.5  # her face is mid-frame
    assert load_body_backend().detect(np.zeros((360, 640, 3), np.uint8)) == []
