"""Face backends: the embedded MediaPipe backend on real clips, head-pose conventions, the name table,
and the insightface adapter on a random-weight model pack (see tests/insightface_pack.py)."""

import logging

import decord
import numpy as np
import pytest

from tasks.extract.faces import (
    FACE_BACKENDS,
    IBUG68_FROM_MEDIAPIPE,
    Face,
    InsightFaceBackend,
    head_pose,
    infraorbital_height,
    load_face_backend,
)
from tests.insightface_pack import write_random_pack


def sample(path, fps: float = 5.0) -> np.ndarray:
    """Frames of ``path`` on a ``fps`` grid (every round(native / fps)-th frame), as (T, H, W, 3) RGB."""
    reader = decord.VideoReader(str(path))
    step = max(1, round(reader.get_avg_fps() / fps))
    return reader.get_batch(list(range(0, len(reader), step))).asnumpy()


@pytest.fixture(scope="module")
def backend():
    return load_face_backend("mediapipe")


@pytest.fixture(scope="module")
def wolfgang(media_dir, backend) -> tuple[np.ndarray, list[list[Face]]]:
    frames = sample(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4")
    backend.reset()
    return frames, [backend.detect(frame) for frame in frames]


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="mediapipe"):
        load_face_backend("openface")
    assert set(FACE_BACKENDS) == {"mediapipe", "insightface"}


def test_ibug_map_has_68_distinct_mesh_vertices():
    assert len(IBUG68_FROM_MEDIAPIPE) == 68
    assert len(set(IBUG68_FROM_MEDIAPIPE)) == 68
    assert max(IBUG68_FROM_MEDIAPIPE) < 468


def test_finds_the_face_in_almost_every_frame(wolfgang):
    frames, faces = wolfgang
    found = sum(len(f) > 0 for f in faces)
    assert found >= 0.95 * len(frames)
    for face in (f for per_frame in faces for f in per_frame):
        assert face.bbox.shape == (4,) and face.bbox.dtype == np.float32
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
        assert face.pose.shape == (3,) and face.pose.dtype == np.float32
        assert 0.0 <= face.score <= 1.0
        x1, y1, x2, y2 = face.bbox
        assert np.all((face.landmarks >= [x1, y1]) & (face.landmarks <= [x2, y2]))
        assert np.all(np.abs(face.pose) < np.pi / 2)


def test_no_face_in_the_title_card(media_dir, backend):
    backend.reset()
    assert all(backend.detect(frame) == [] for frame in sample(media_dir / "pyfeat_no_face.mp4"))


@pytest.mark.parametrize("inset", [0.0, 0.05])
@pytest.mark.parametrize("size", [48, 224, 512])
@pytest.mark.parametrize("grey", [False, True])
def test_finds_a_face_that_fills_the_frame(backend, inset, size, grey):
    """Dataset stills and cropped portraits: the face box is the whole image, or the image cuts into the
    face. The full-range detector misses or misplaces these; the short-range one takes over."""
    import cv2
    import skimage.data

    photo = skimage.data.astronaut()
    backend.reset()
    x1, y1, x2, y2 = backend.detect(photo)[0].bbox
    dx, dy = inset * (x2 - x1), inset * (y2 - y1)
    still = cv2.resize(photo[int(y1 + dy) : int(y2 - dy), int(x1 + dx) : int(x2 - dx)], (size, size))
    if grey:
        still = cv2.cvtColor(cv2.cvtColor(still, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    backend.reset()
    faces = backend.detect(np.ascontiguousarray(still))
    assert len(faces) == 1
    fx1, fy1, fx2, fy2 = faces[0].bbox
    assert (fx2 - fx1) > 0.7 * size and (fy2 - fy1) > 0.7 * size


def test_a_close_face_is_found_within_five_frames_and_then_kept(backend):
    """The short-range detector tries every fifth frame in a row without a face (it costs ~7 ms); once it has
    found one, the face is carried from frame to frame."""
    import cv2
    import skimage.data

    photo = skimage.data.astronaut()
    backend.reset()
    x1, y1, x2, y2 = backend.detect(photo)[0].bbox.astype(int)
    close = np.ascontiguousarray(cv2.resize(photo[y1:y2, x1:x2], (512, 512)))
    backend.reset()
    found = [len(backend.detect(frame)) for frame in [np.zeros_like(close)] * 7 + [close] * 12]
    assert found[:7] == [0] * 7
    first = found.index(1)
    assert first < 7 + 5 and found[first:] == [1] * (len(found) - first)


def test_mirrored_frame_mirrors_yaw_and_roll(wolfgang, backend):
    frames, faces = wolfgang
    yaws = [abs(f[0].pose[1]) if f else 0.0 for f in faces]
    index = int(np.argmax(yaws))
    assert yaws[index] > np.radians(8)
    backend.reset()
    mirrored = backend.detect(np.ascontiguousarray(frames[index][:, ::-1]))[0]
    original = faces[index][0]
    assert np.sign(mirrored.pose[1]) == -np.sign(original.pose[1])
    assert abs(mirrored.pose[1] + original.pose[1]) < np.radians(5)
    assert abs(mirrored.pose[2] + original.pose[2]) < np.radians(5)
    assert abs(mirrored.pose[0] - original.pose[0]) < np.radians(5)


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
        np.cos(roll),
        np.sin(roll),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def test_head_pose_recovers_openface_euler_angles():
    """A symmetric 3-D face rotated by R = Rx(pitch) Ry(yaw) Rz(roll) (OpenFace's order) gives them back."""
    rng = np.random.default_rng(0)
    face = np.zeros((68, 3))
    face[:, 2] = rng.uniform(-0.3, 0.3, 68)
    for left, right in [(k, 16 - k) for k in range(8)] + [(17 + k, 26 - k) for k in range(5)] + [
        (36, 45), (39, 42), (31, 35)
    ]:  # fmt: skip
        x, y, z = rng.uniform(0.2, 1.0), rng.uniform(-1, 1), rng.uniform(-0.3, 0.3)
        face[left], face[right] = (-x, y, z), (x, y, z)
    face[27], face[8] = (0, -0.8, -0.15), (0, 1.0, -0.15)  # zero pitch: the nasion-chin line is vertical
    for angles in [(0.2, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, -0.25), (-0.15, 0.35, 0.1)]:
        rotated = face @ _rotation(*angles).T
        np.testing.assert_allclose(head_pose(rotated), angles, atol=1e-5)


def test_yaw_positive_means_nose_towards_image_left():
    face = np.zeros((68, 3))
    for left, right in [(36, 45), (39, 42), (0, 16)]:
        face[left], face[right] = (-1, 0, 0), (1, 0, 0)
    face[27], face[8], face[30] = (0, -1, 0), (0, 1, 0), (0, 0, -1)  # nose tip towards the camera
    turned = face @ _rotation(0.0, 0.3, 0.0).T
    assert turned[30, 0] < 0  # the nose points to the image left
    assert head_pose(turned)[1] == pytest.approx(0.3, abs=1e-6)


def test_infraorbital_height_ignores_head_rotation_scale_and_position(wolfgang):
    """The cheek height is measured in the face's own axes: the same mesh turned in 3-D, scaled and moved
    gives the same value; raising the cheek points lowers it. The backend fills it on real faces (plausible
    values: the cheekbones lie about 0.2-0.4 IOD below the eye corners); insightface leaves it NaN."""
    mesh = np.random.default_rng(1).normal(0, 0.3, (478, 3))
    mesh[[33, 133]], mesh[[263, 362]] = [(-1.2, 0, 0), (-0.4, 0, 0)], [(1.2, 0, 0), (0.4, 0, 0)]
    mesh[168], mesh[2] = (0, -0.1, -0.2), (0, 1.0, -0.2)
    for cheek in (117, 118, 119, 346, 347, 348):
        mesh[cheek, 1:] = (0.5, 0.0)
    value = infraorbital_height(mesh)
    assert value == pytest.approx(0.5 / 1.6, abs=1e-9)
    for angles in [(0.3, 0.0, 0.0), (0.0, -0.4, 0.2), (-0.2, 0.3, -0.1)]:
        moved = 37.0 * mesh @ _rotation(*angles).T + np.array([300.0, 120.0, 5.0])
        assert infraorbital_height(moved) == pytest.approx(value, abs=1e-9)
    raised = mesh.copy()
    raised[[117, 118, 119, 346, 347, 348], 1] -= 0.1
    assert infraorbital_height(raised) < value - 0.05
    heights = [face.infraorbital for faces in wolfgang[1] for face in faces]
    assert heights and all(0.15 < h < 0.45 for h in heights)
    assert np.isnan(Face(np.zeros(4), 1.0, np.zeros((68, 2)), np.zeros(3)).infraorbital)


# --- insightface adapter ------------------------------------------------------------------------------


def test_insightface_adapter_maps_a_random_weight_pack(tmp_path, caplog):
    """Random weights test our plumbing (loading an explicit pack through FaceAnalysis, routing the three
    ONNX files, output mapping to Face, shapes and dtypes), not accuracy: the faces found are noise."""
    pack = write_random_pack(tmp_path / "random_pack")
    with caplog.at_level(logging.WARNING, logger="tasks.extract.faces"):
        backend = load_face_backend("insightface", model_dir=pack, det_size=(160, 160), max_num_faces=3)
    assert "non-commercial" in caplog.text
    assert isinstance(backend, InsightFaceBackend)
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    faces = backend.detect(frame)
    assert 1 <= len(faces) <= 3
    for face in faces:
        assert face.bbox.shape == (4,) and face.bbox.dtype == np.float32
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
        assert face.pose.shape == (3,) and np.all(np.isfinite(face.pose))
        assert 0.0 <= face.score <= 1.0


def test_insightface_missing_pack_is_our_error_not_a_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_face_backend("insightface", model_dir=tmp_path / "buffalo_l")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .onnx"):
        load_face_backend("insightface", model_dir=tmp_path / "empty")
