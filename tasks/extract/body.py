"""Body: 33 BlazePose keypoints per person per frame, for gestures.

The embedded ``"mediapipe"`` backend runs MediaPipe Pose (BlazePose GHUM, Bazarevsky et al., 2020,
"BlazePose: On-device Real-time Body Pose tracking") from the ``mediapipe==0.10.21`` wheel, whose
``model_complexity=1`` ("full") model ships inside the wheel; complexities 0 and 2 are downloaded on
first use, so they are not offered. The legacy Pose solution follows ONE person (the most prominent).

Every body in view. MediaPipe's Tasks ``PoseLandmarker`` (several poses per image) needs a
``pose_landmarker.task`` bundle that no installed wheel ships (the legacy models inside mediapipe's wheel lack
the metadata the Tasks API demands: "it requires specifying NormalizationOptions metadata"), so
:meth:`MediaPipeBodyBackend.detect_in_view` runs the one-person model once per face, on the region where
that face's body can be (:func:`body_region`: 4 face widths wide, from 1 face height above the face to 6
below, clipped to the frame), in static mode (each region is another person), and maps the keypoints back to
the frame. Each body is then that face's: ``body.person_id`` is the face's person
(``tasks.extract.video`` links it by box). A frame without a face, or with one face, gets the whole-frame pass
(:meth:`detect`) once, and so does a frame where no region gave its own face's body.

Whole-frame passes run in MediaPipe's tracking mode (``static_image_mode=False``): the person detector runs
only when the landmark model loses the person, otherwise the previous frame's keypoints give the region to
look at. :meth:`MediaPipeBodyBackend.reset` restarts the graph, so each chunk starts with a detection.
``smooth_landmarks`` is off: sampled body frames are far apart, and smoothing would mix them. Measured
on this 2-core machine (shared, so expect +-30 %), 1 frame/s of ``pyfeat_WolfgangLanger_Pexels.mp4``
(640 x 360) and of ``metaloom_pexels-kindel-media-8164110.mp4`` (1920 x 1080): 32 and 41 ms per frame in
tracking mode versus 55 and 70 ms with ``static_image_mode=True``; the person was found in every frame
either way (``python bench/backends.py body VIDEO --fps 1`` prints the time per frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tasks.extract.faces import check_frame, import_mediapipe


@dataclass(frozen=True, slots=True)
class Body:
    """One person in one frame.

    Attributes:
        keypoints: (33, 3) float32: x, y in pixels of the frame given to ``detect()``, visibility in
            [0, 1] (the model's estimate that the point is visible, not occluded), order
            :data:`models.layout.KEYPOINT_NAMES`.
        score: mean visibility of the 17 upper-body points 0-16 (face, shoulders, elbows, wrists): the
            legacy Pose API exposes no detection score, and a seated person's legs are often out of
            frame.
    """

    keypoints: np.ndarray
    score: float


class BodyBackend(Protocol):
    name: str

    def reset(self) -> None: ...

    def detect(self, frame: np.ndarray) -> list[Body]: ...

    def detect_in_view(self, frame: np.ndarray, face_boxes: list[np.ndarray]) -> list[Body]: ...


_UPPER_BODY = list(range(17))


class MediaPipeBodyBackend:
    """MediaPipe Pose, full model (``model_complexity=1``), one person per frame."""

    name = "mediapipe"

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        mp = import_mediapipe()
        self._pose, self._still = (
            mp.solutions.pose.Pose(
                static_image_mode=static,
                model_complexity=1,
                smooth_landmarks=False,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
            )
            for static in (False, True)
        )

    def reset(self) -> None:
        self._pose.reset()

    def detect(self, frame: np.ndarray) -> list[Body]:
        """The most prominent person of the whole frame (tracking mode)."""
        check_frame(frame)
        return _bodies(self._pose, frame, 0, 0)

    def detect_in_view(self, frame: np.ndarray, face_boxes: list[np.ndarray]) -> list[Body]:
        """The bodies of a frame whose faces are ``face_boxes`` (x1, y1, x2, y2 each).

        With several faces: for each face, the body found in its :func:`body_region` (static mode) whose nose
        lies in the face's box (a region whose most prominent body is a neighbour's gives none). With one face
        or none, or when no region gave its own face's body: the whole frame's most prominent body
        (:meth:`detect`, tracking mode), run once. A close-up's shoulders and hands reach past its region, and
        the region's static mode loses them (the demo's portrait teacher: shoulder visibility 0.29 in the
        region, every wrist speed lost), so one face always gets the whole-frame pass. Which person a body
        belongs to is decided by the caller, by box."""
        check_frame(frame)
        out = []
        if len(face_boxes) > 1:
            for box in face_boxes:
                x1, y1, x2, y2 = body_region(box, frame.shape)
                found = _bodies(self._still, np.ascontiguousarray(frame[y1:y2, x1:x2]), x1, y1)
                nose = found[0].keypoints[0, :2] if found else None
                if nose is not None and box[0] <= nose[0] <= box[2] and box[1] <= nose[1] <= box[3]:
                    out.append(found[0])
        return out or self.detect(frame)


def body_region(face_box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Where the body of a face (x1, y1, x2, y2 pixels) can be in a frame of ``shape``: 4 face widths wide,
    from 1 face height above the face to 6 below, clipped."""
    x1, y1, x2, y2 = (float(v) for v in face_box)
    w, h, cx = x2 - x1, y2 - y1, (x1 + x2) / 2
    height, width = shape[:2]
    return (int(max(cx - 2 * w, 0)), int(max(y1 - h, 0)), int(min(cx + 2 * w, width)), int(min(y2 + 6 * h, height)))


def _bodies(pose, pixels: np.ndarray, dx: int, dy: int) -> list[Body]:
    found = pose.process(pixels).pose_landmarks
    if found is None:
        return []
    height, width = pixels.shape[:2]
    keypoints = np.array(
        [(p.x * width + dx, p.y * height + dy, p.visibility) for p in found.landmark], dtype=np.float32
    )
    return [Body(keypoints=keypoints, score=float(keypoints[_UPPER_BODY, 2].mean()))]


BODY_BACKENDS: dict[str, Callable[..., BodyBackend]] = {"mediapipe": MediaPipeBodyBackend}


def load_body_backend(name: str = "mediapipe", **options: Any) -> BodyBackend:
    """Build the body backend ``name`` (a key of :data:`BODY_BACKENDS`); unknown names raise ValueError."""
    if name not in BODY_BACKENDS:
        raise ValueError(f"unknown body backend {name!r}; valid names: {sorted(BODY_BACKENDS)}")
    return BODY_BACKENDS[name](**options)
