"""Point layouts and the image codec shared by extraction (``tasks``) and training (``models``).

- OpenFace's 17 action-unit names (:data:`AU_NAMES`).
- iBUG-68 face landmarks (:data:`N_LANDMARKS` points, stored as ``x_i, y_i``), in image coordinates: index 36
  is the image-left eye corner, 45 the image-right one.
- BlazePose's 33 body keypoints (:data:`KEYPOINT_NAMES`, model order; left / right are the person's own sides).
- The horizontal-flip tables: the index each point takes after mirroring an image (iBUG-68 image-left <->
  image-right; BlazePose person's left <-> right).
- MediaPipe Face Landmarker's 52 blendshape coefficients (:data:`BLENDSHAPE_NAMES`, stored as ``bs_<name>``).
- The face descriptor's length (:data:`DESCRIPTOR_SIZE`, face-api.js's recognition net).
- JPEG, the storage of aligned face crops and cached training frames: RGB uint8 in and out, quality
  :data:`JPEG_QUALITY` (``tasks.extract.crops`` gives the measurements that chose it).
"""

import cv2
import numpy as np

N_LANDMARKS = 68

DESCRIPTOR_SIZE = 128  # face descriptors (models.face_recognition): person linking in tasks.extract.identity

# The 17 facial action units measured, named as OpenFace's (stored as ``<AU>_r`` intensity and ``<AU>_c`` presence).
AU_NAMES = [
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
]  # fmt: skip

# The 52 blendshape coefficients of MediaPipe's Face Landmarker (ARKit-style names), in the model's order;
# ``_neutral`` (always about 0) is not stored.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip

KEYPOINT_NAMES: list[str] = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
]  # fmt: skip
"""BlazePose's 33 keypoints in model order; left/right are the person's own sides."""

IBUG68_FLIP = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,  # nose
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)  # fmt: skip
BLAZEPOSE_FLIP = (0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, *[k + (1 if k % 2 else -1) for k in range(11, 33)])

JPEG_QUALITY = 90


def encode_jpeg(crop: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB uint8 image (OpenCV encodes BGR, so channels are swapped first)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {crop.shape}")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """The RGB uint8 image (H, W, 3) of JPEG ``data``; ValueError when the bytes are not a JPEG image."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"not a decodable JPEG image ({len(data)} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
