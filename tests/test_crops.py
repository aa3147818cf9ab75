import numpy as np
import pytest

from models.layout import decode_jpeg, encode_jpeg
from tasks.extract.crops import (
    CROP_SIZE,
    TEMPLATE,
    align_face,
    alignment_matrix,
    anchor_points,
    append_crop,
    crop_columns,
    transform_points,
)
from tasks.extract.faces import Face
from tasks.store import CROP_SCHEMA, table_from_columns


def synthetic_landmarks(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """iBUG-68 landmarks (68, 2) whose five anchors are TEMPLATE moved by a known similarity."""
    points = np.full((68, 2), 56.0)
    ring = 3.0 * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], axis=1)
    points[36:42] = TEMPLATE[0] + ring  # eye contours whose means are the template's eye centres
    points[42:48] = TEMPLATE[1] + ring
    points[30], points[48], points[54] = TEMPLATE[2], TEMPLATE[3], TEMPLATE[4]
    a = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rotation.T + np.array(shift)


def test_anchors_of_a_rotated_scaled_face_land_on_the_template():
    landmarks = synthetic_landmarks(25.0, 2.7, (300.0, 140.0))
    aligned = transform_points(alignment_matrix(landmarks), anchor_points(landmarks))
    np.testing.assert_allclose(aligned, TEMPLATE, atol=1e-6)


def test_eye_pixels_end_up_at_the_template_eye_positions():
    landmarks = synthetic_landmarks(-15.0, 3.0, (250.0, 120.0))
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    for eye in (slice(36, 42), slice(42, 48)):
        x, y = np.round(landmarks[eye].mean(axis=0)).astype(int)
        frame[y - 3 : y + 4, x - 3 : x + 4] = 255  # a bright 7 × 7 spot on each eye centre
    crop = align_face(frame, landmarks)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    weight = crop[..., 0].astype(float)
    ys, xs = np.mgrid[:CROP_SIZE, :CROP_SIZE]
    for eye in TEMPLATE[:2]:
        near = weight * ((xs - eye[0]) ** 2 + (ys - eye[1]) ** 2 < 8**2)
        centroid = np.array([(near * xs).sum(), (near * ys).sum()]) / near.sum()
        np.testing.assert_allclose(centroid, eye, atol=0.6)  # rounding of the spot centre: < 0.5 px × 1/3


def test_bad_inputs_are_refused_with_a_message():
    frame = np.zeros((50, 50, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        align_face(frame, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        align_face(frame, np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="uint8"):
        align_face(frame.astype(np.float32), synthetic_landmarks(0, 1, (0, 0)))


def test_jpeg_round_trip_keeps_rgb_order_and_detail():
    image = np.zeros((CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    image[:, : CROP_SIZE // 2, 0] = 220  # red left half, green right half
    image[:, CROP_SIZE // 2 :, 1] = 200
    back = decode_jpeg(encode_jpeg(image))
    assert back.shape == image.shape
    assert back[:, :40, 0].mean() > 200 and back[:, :40, 1].mean() < 20
    assert back[:, -40:, 1].mean() > 180 and back[:, -40:, 0].mean() < 20
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        decode_jpeg(b"not a jpeg")


def test_real_faces_are_aligned_whole_and_stored_in_the_crop_schema(media_dir):
    from tasks.extract.decode import decode_frames, open_video
    from tasks.extract.faces import load_face_backend

    backend = load_face_backend("mediapipe")
    reader = open_video(media_dir / "pyfeat_single_face.mp4")
    columns = crop_columns()
    for frame, pixels in decode_frames(reader, (0, 36, 70)):
        (face,) = backend.detect(pixels)
        crop = align_face(pixels, face.landmarks)
        inside = transform_points(alignment_matrix(face.landmarks), face.landmarks)
        np.testing.assert_allclose(inside[[36, 39, 42, 45]].reshape(2, 2, 2).mean(1), TEMPLATE[:2], atol=3.0)
        assert inside[8, 1] < CROP_SIZE and inside[19, 1] > 0  # chin and brows are in the crop
        assert crop[30:90, 30:80].mean() > 60  # a lit face, not the black border
        assert np.abs(decode_jpeg(encode_jpeg(crop)).astype(int) - crop).mean() < 4
        append_crop(columns, frame, frame / 30.0, 0, face, pixels)
    table = table_from_columns(columns, CROP_SCHEMA)
    assert table.num_rows == 3 and table.schema == CROP_SCHEMA
    assert decode_jpeg(table["jpeg"][0].as_py()).shape == (CROP_SIZE, CROP_SIZE, 3)


def test_append_crop_records_the_face_box():
    landmarks = synthetic_landmarks(0.0, 1.0, (10.0, 10.0))
    face = Face(np.array([12, 14, 100, 120], np.float32), 0.9, landmarks.astype(np.float32), np.zeros(3))
    columns = crop_columns()
    append_crop(columns, 7, 1.4, 2, face, np.zeros((160, 160, 3), dtype=np.uint8))
    row = table_from_columns(columns, CROP_SCHEMA).to_pylist()[0]
    assert (row["frame"], row["face_index"], row["bbox_x"], row["bbox_y"]) == (7, 2, 12.0, 14.0)
    assert (row["bbox_w"], row["bbox_h"]) == (88.0, 106.0)
