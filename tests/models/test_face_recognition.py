"""face-api.js's face-recognition net (dlib's ResNet descriptor) from the weights of ``@vladmandic/face-api``:
parity with the package's own JavaScript (fixture written by ``tests/fixtures/faceapi/parity.mjs``
with the expression net's; no node needed here) and the chip it is fed."""

import json

import numpy as np
import pytest
import torch
from test_faceapi import FIXTURE, fixture_faces

from models import face_recognition, faceapi, faceapi_package


def test_descriptor_parity_with_face_api_js():
    """Our torch port gives face-api.js's descriptors (tfjs 4.22 CPU backend under node) to 1e-4."""
    expected = json.loads((FIXTURE / "expected_recognition.json").read_text())
    faces = fixture_faces()
    assert [n for n, _ in faces] == [f["name"] for f in expected["faces"]] and len(faces) >= 8
    net = face_recognition.load_recognition_net()
    with torch.inference_mode():
        ours = net(faceapi.prepare([f for _, f in faces], face_recognition.RECOGNITION_SIZE)).numpy()
    reference = np.array([f["descriptor"] for f in expected["faces"]])
    assert ours.shape == (len(faces), 128)
    assert np.abs(ours - reference).max() <= 1e-4
    # the six CREMA-D faces are one actor: closer to each other than to any of the four other people
    distance = np.linalg.norm(ours[:, None] - ours[None], axis=2)
    same = np.array([n.startswith("1001_") for n, _ in faces])
    assert same.sum() == 6
    assert distance[np.ix_(same, same)].max() < distance[np.ix_(same, ~same)].min()


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(faceapi.WeightsMissing, match="make setup"):
        face_recognition.load_recognition_net(tmp_path)


def test_recognition_chip_is_the_landmark_box_enlarged_and_clipped():
    image = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    landmarks = np.array([[50.0, 20.0], [150.0, 70.0]])
    chip = faceapi_package.recognition_chip(image, landmarks)
    assert chip.shape == (60, 120, 3)  # 100 × 50 px box, 10 % more on each side
    np.testing.assert_array_equal(chip, image[15:75, 40:160])
    assert faceapi_package.recognition_chip(image, landmarks - 45).shape == (30, 115, 3)  # clipped at the top-left
