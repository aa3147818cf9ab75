"""Aligned face crops: 112 × 112 RGB faces from a frame and its iBUG-68 landmarks, and their JPEG storage.

Alignment. Five points are taken from the landmarks: the two eye centres (means of 36-41 and 42-47), the
nose tip (30) and the mouth corners (48, 54). The similarity transform (rotation, uniform scale,
translation; no shear, no reflection) that maps them onto :data:`TEMPLATE` in the least-squares sense is
applied with ``cv2.warpAffine`` (bilinear, black outside the frame).

The template is ours, chosen for expressions rather than identity: the whole face from forehead to chin
must be in the crop (brows carry AU1/2/4, the chin AU17/26). Measured with the mediapipe backend on
frontal frames of ``pyfeat_single_face.mp4`` and ``pyfeat_WolfgangLanger_Pexels.mp4``, in units of the
inter-ocular distance (IOD, eye centre to eye centre) from the point between the eyes: brows at -0.4,
nose tip at +0.45..0.69, mouth corners at ±0.34..0.53 and +0.9..1.14, chin at +1.7..1.83, jaw sides at
±0.8..1.25. With IOD = 36 px and the eyes at y = 38 px, the forehead (-0.9 IOD) is at 6 px, the chin at
about 103 px and the jaw sides at about 18 and 94 px. Mouth corners move with a smile; they enter the fit
with the same weight as the eyes, so a broad smile shrinks the crop scale by a few per cent.

Storage. Crops are JPEG-encoded at quality :data:`JPEG_QUALITY` = 90 (OpenCV's default 4:2:0 chroma).
Measured with ``python bench/backends.py crops VIDEO ...`` on the 162 faces of the three face clips in
``shared/media`` sampled at 5 fps: quality 80 / 90 / 95 give 3.5 / 4.8 / 6.6 kB per crop and a mean
absolute error of 3.3 / 2.4 / 1.7 grey levels; 90 keeps the error near the sensor noise of classroom video
at 73 % of the size of 95. In a zstd Parquet file a crop row costs 4.3 kB (zstd shares the JPEG headers),
i.e. about 73 MiB per face track per hour at 5 fps.
``<store>/crops/video_id=<id>/part-0.parquet`` holds one row per video × sampled frame × detected face
(:data:`CROP_SCHEMA`), sorted by frame; the ``video_id`` is the hive key and is not repeated inside the
file. ``face_id`` is assigned later (tracking needs the whole video), so a crop row carries the face's
``bbox_*`` (the same float32 values as its ``frames`` row) and is joined to ``frames`` on
(frame, nearest bbox), see ``tasks.predict.inference``.
"""

import cv2
import numpy as np

from models.layout import encode_jpeg
from tasks.extract.faces import Face
from tasks.store import CROP_SCHEMA

CROP_SIZE = 112

# (x, y) in pixels of the 112 × 112 crop: image-left eye centre, image-right eye centre, nose tip,
# image-left mouth corner, image-right mouth corner (see the module docstring for how they were chosen).
TEMPLATE = np.array([[38.0, 38.0], [74.0, 38.0], [56.0, 59.6], [41.6, 75.8], [70.4, 75.8]], dtype=np.float64)


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The five alignment points (5, 2) of iBUG-68 ``landmarks`` (68, 2), in :data:`TEMPLATE` order."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"landmarks must have shape (68, 2) (iBUG-68 x, y), got {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks contain NaN or infinite values")
    return np.stack(
        [landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[30], landmarks[48], landmarks[54]]
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 × 3 matrix ``[[a, -b, tx], [b, a, ty]]`` that best maps points ``src`` (N, 2) onto ``dst``.

    Linear least squares in (a, b, tx, ty): each point gives ``x' = a x - b y + tx`` and
    ``y' = b x + a y + ty``. Rotation and uniform scale only, so a face is never sheared or mirrored.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = len(src)
    design = np.zeros((2 * n, 4))
    design[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    design[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, dst.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def alignment_matrix(landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The 2 × 3 matrix from frame pixels to pixels of the ``size`` × ``size`` aligned crop."""
    return similarity_transform(anchor_points(landmarks), TEMPLATE * (size / CROP_SIZE))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (..., 2) mapped by the 2 × 3 affine ``matrix`` (e.g. landmarks into crop pixels)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(pixels: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The aligned face crop (size, size, 3) uint8 RGB of one face in frame ``pixels`` (H, W, 3) uint8."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be an H x W x 3 uint8 RGB frame, got {pixels.shape} {pixels.dtype}")
    return cv2.warpAffine(
        pixels,
        alignment_matrix(landmarks, size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def crop_columns() -> dict[str, list]:
    """Empty columns of :data:`CROP_SCHEMA`, to fill with :func:`append_crop` and write with
    ``tasks.store.table_from_columns(columns, CROP_SCHEMA)``."""
    return {f.name: [] for f in CROP_SCHEMA}


def append_crop(
    columns: dict[str, list], frame: int, timestamp: float, face_index: int, face: Face, pixels: np.ndarray
) -> None:
    """Align ``face`` in frame ``pixels``, encode it and append one :data:`CROP_SCHEMA` row to ``columns``."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    columns["frame"].append(frame)
    columns["timestamp"].append(timestamp)
    columns["face_index"].append(face_index)
    columns["bbox_x"].append(x1)
    columns["bbox_y"].append(y1)
    columns["bbox_w"].append(x2 - x1)
    columns["bbox_h"].append(y2 - y1)
    columns["jpeg"].append(encode_jpeg(align_face(pixels, face.landmarks)))
