"""Controlled ground truth for action units: real face photos warped by known FACS movements.

A face photo shipped in a pip package (:func:`tasks.synthetic.media.face_photos`) is landmarked with our own face
backend, then its iBUG-68 points are moved by the displacement that the Facial Action Coding System describes
for each AU (Ekman, Friesen & Hager, 2002, *FACS: The Manual*, "FACS 2002"), scaled linearly by the
intensity (5 = level E, the maximum), and the image follows by a thin-plate-spline warp through the moved
points and a fixed ring of anchors around the face (:func:`warp_points`). Where the lips part beyond the
source's gap, the mouth opening is painted dark, as the inside of a mouth is. Clips made from such frames
have a known AU timeline, so the AU estimator's response (direction, order, cross-talk) can be tested.

Displacements (:data:`FACS_MOVES`) are in units of the inter-ocular distance (IOD, between the eye centres),
in the face's own frame (u along the eye line towards the image right, v down the face), at intensity 5.
They are our reading of FACS 2002's appearance changes, sized to the range landmarks move in posed
expressions (e.g. lip corners up by about 0.1 IOD in a broad smile); they are not measurements.

The photo's own expression is the neutral frame, except that :func:`neutral_face` first relaxes a held
smile (scikit-image's astronaut smiles with closed lips) by moving the lip corners to the population's
neutral corner height (:data:`tasks.extract.action_units.POPULATION_NEUTRAL`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

BROW_INNER, BROW_MID, BROW_OUTER = (20, 21, 22, 23), (19, 24), (17, 18, 25, 26)
UPPER_LIDS, LOWER_LIDS = (37, 38, 43, 44), (40, 41, 46, 47)
UPPER_LIP_OUTER, UPPER_LIP_INNER = (49, 50, 51, 52, 53), (61, 62, 63)
LOWER_LIP_OUTER, LOWER_LIP_INNER = (55, 56, 57, 58, 59), (65, 66, 67)


def _both(left: int, right: int, du: float, dv: float) -> dict[int, tuple[float, float]]:
    """A mirrored pair: ``du`` is outwards (away from the face midline), ``dv`` down."""
    return {left: (-du, dv), right: (du, dv)}


def _all(points, du: float, dv: float) -> dict[int, tuple[float, float]]:
    return {p: (du, dv) for p in points}


FACS_MOVES: dict[str, dict[int, tuple[float, float]]] = {
    # AU01 Inner Brow Raiser (frontalis, pars medialis): the inner brows rise, the middle of the brow less.
    "AU01": _all(BROW_INNER, 0, -0.12) | _all(BROW_MID, 0, -0.06) | _all((18, 25), 0, -0.02),
    # AU02 Outer Brow Raiser (frontalis, pars lateralis): the outer brows rise, arching the brow.
    "AU02": _all(BROW_OUTER, 0, -0.12) | _all(BROW_MID, 0, -0.07),
    # AU04 Brow Lowerer (corrugator, depressor supercilii, procerus): brows down and drawn together.
    "AU04": _all(range(17, 27), 0, 0.07)
    | _both(21, 22, -0.05, 0.03)
    | _both(20, 23, -0.04, 0.02)
    | _both(19, 24, -0.02, 0.01),
    # AU05 Upper Lid Raiser (levator palpebrae superioris): the upper lids rise, more of the eyeball shows.
    "AU05": _all(UPPER_LIDS, 0, -0.05),
    # AU06 Cheek Raiser (orbicularis oculi, pars orbitalis): cheeks up, the lower lids pushed up, the
    # eye-cover fold above lowered a little; crow's feet (not a landmark change).
    "AU06": _all(LOWER_LIDS, 0, -0.045) | _all((36, 39, 42, 45), 0, -0.01) | _all(BROW_OUTER, 0, 0.02),
    # AU07 Lid Tightener (orbicularis oculi, pars palpebralis): lower lids raised and straightened.
    "AU07": _all(LOWER_LIDS, 0, -0.04) | _all(UPPER_LIDS, 0, 0.015),
    # AU09 Nose Wrinkler (levator labii superioris alaeque nasi): nostril wings and upper lip pulled up,
    # the inner brows drawn down.
    "AU09": _all((31, 35), 0, -0.07)
    | _all((32, 33, 34), 0, -0.05)
    | _all(UPPER_LIP_OUTER + UPPER_LIP_INNER, 0, -0.03)
    | _all((21, 22), 0, 0.03),
    # AU10 Upper Lip Raiser (levator labii superioris): the centre of the upper lip rises, the lip arches.
    "AU10": _all(UPPER_LIP_OUTER + UPPER_LIP_INNER, 0, -0.08) | _all((31, 35), 0, -0.02),
    # AU12 Lip Corner Puller (zygomaticus major): lip corners up and back (outwards), the lower lid bulges a
    # little at high intensity.
    "AU12": _both(48, 54, 0.08, -0.10)
    | _both(60, 64, 0.07, -0.08)
    | _both(49, 53, 0.04, -0.04)
    | _both(59, 55, 0.04, -0.05),
    # AU15 Lip Corner Depressor (depressor anguli oris): lip corners pulled down.
    "AU15": _both(48, 54, 0.0, 0.08) | _both(60, 64, 0.0, 0.06) | _both(59, 55, 0.0, 0.04) | _both(49, 53, 0, 0.03),
    # AU17 Chin Raiser (mentalis): chin boss and lower lip pushed up.
    "AU17": _all(LOWER_LIP_OUTER + LOWER_LIP_INNER, 0, -0.05) | _all((7, 8, 9), 0, -0.05),
    # AU20 Lip Stretcher (risorius, platysma): lip corners pulled sideways, the mouth elongated.
    "AU20": _both(48, 54, 0.10, 0.01) | _both(60, 64, 0.09, 0.01) | _both(49, 53, 0.04, 0) | _both(59, 55, 0.04, 0),
    # AU23 Lip Tightener (orbicularis oris): the red parts of the lips narrow.
    "AU23": _all(UPPER_LIP_OUTER, 0, 0.03) | _all(LOWER_LIP_OUTER, 0, -0.03) | _both(48, 54, -0.02, 0),
    # AU25 Lips Part: the lower lip drops away from the upper one (no jaw drop).
    "AU25": _all(LOWER_LIP_INNER, 0, 0.14) | _all(LOWER_LIP_OUTER, 0, 0.12) | _all(UPPER_LIP_INNER, 0, -0.02),
    # AU26 Jaw Drop: the mandible lowers; the chin and the lower lip move down with it, the lips part.
    "AU26": _all((6, 7, 8, 9, 10), 0, 0.28)
    | _all((5, 11), 0, 0.18)
    | _all((4, 12), 0, 0.08)
    | _all(LOWER_LIP_OUTER, 0, 0.22)
    | _all(LOWER_LIP_INNER, 0, 0.24)
    | _both(48, 54, -0.01, 0.08)
    | _both(60, 64, -0.01, 0.09),
    # AU45 Blink: the upper lids drop to the lower lids (fully at intensity 5, see ``_closure``).
    "AU45": {},
}
"""Point moves (du, dv) in IOD units at intensity 5 per AU; AU45 is handled by :func:`_closure`."""

EMOTION_AUS: dict[str, dict[str, float]] = {
    "anger": {"AU04": 4, "AU05": 2, "AU07": 3, "AU23": 3},
    "disgust": {"AU09": 4, "AU10": 3, "AU15": 2, "AU17": 2},
    "fear": {"AU01": 4, "AU02": 3, "AU04": 2, "AU05": 4, "AU20": 4, "AU25": 3},
    "happiness": {"AU06": 3, "AU12": 4, "AU25": 1},
    "sadness": {"AU01": 4, "AU04": 2, "AU15": 4, "AU17": 2},
    "surprise": {"AU01": 4, "AU02": 4, "AU05": 3, "AU26": 4},
    "neutral": {},
}
"""Posed prototype of each emotion for synthetic stills, intensities on the 0-5 scale. From FACS 2002's
Investigator's Guide table of prototypes (anger 4+5+7+23, disgust 9+15+17 / 10+17, fear 1+2+4+5+20+25/26,
happiness 6+12, sadness 1+4+15(+17), surprise 1+2+5B+26) and EMFACS (Friesen & Ekman, 1983)."""


def eye_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit u (eye line, towards image right), unit v (down the face) and the IOD of (68, 2) pixels."""
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    iod = float(np.linalg.norm(right - left))
    u = (right - left) / iod
    return u, np.array([-u[1], u[0]]), iod


def _closure(landmarks: np.ndarray, level: float) -> np.ndarray:
    """Upper-lid moves (pixels) that close each eye by ``level`` (0-1): upper lids onto the lower lids."""
    moves = np.zeros_like(landmarks)
    for upper, lower in (((37, 38), (41, 40)), ((43, 44), (47, 46))):
        gap = landmarks[list(lower)] - landmarks[list(upper)]
        moves[list(upper)] = level * 0.95 * gap
    return moves


def moved_landmarks(landmarks: np.ndarray, aus: Mapping[str, float]) -> np.ndarray:
    """(68, 2) pixels moved by the FACS displacements of ``aus`` (name -> intensity 0-5), summed."""
    unknown = set(aus) - set(FACS_MOVES)
    if unknown:
        raise ValueError(f"no FACS movement for {sorted(unknown)}; known: {sorted(FACS_MOVES)}")
    u, v, iod = eye_frame(landmarks)
    moved = landmarks.astype(np.float64).copy()
    for au, intensity in aus.items():
        scale = float(np.clip(intensity, 0.0, 5.0)) / 5.0
        for point, (du, dv) in FACS_MOVES[au].items():
            moved[point] += scale * iod * (du * u + dv * v)
    if aus.get("AU45", 0) > 0:
        moved += _closure(moved, float(np.clip(aus["AU45"], 0.0, 5.0)) / 5.0)
    return moved


def _anchors(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fixed points: a ring around the face at 1.7 times its radius, and the image border."""
    height, width = shape
    centre = landmarks[27:36].mean(axis=0)
    outline = landmarks[list(range(0, 17)) + list(range(26, 16, -1))]
    ring = centre + 1.7 * (outline - centre)
    xs, ys = np.linspace(0, width - 1, 7), np.linspace(0, height - 1, 5)
    border = [(x, y) for x in xs for y in (0, height - 1)] + [(x, y) for y in ys[1:-1] for x in (0, width - 1)]
    return np.concatenate([ring, np.array(border, np.float64)])


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """Thin-plate spline radial function U(r) = r^2 log r^2 (0 at r = 0)."""
    return np.where(r2 > 0, r2 * np.log(np.maximum(r2, 1e-12)), 0.0)


def warp_points(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Warp ``image`` so that points ``source`` (K, 2) land on ``target`` (K, 2), anchors held fixed.

    A thin-plate spline (Bookstein, 1989, "Principal warps", IEEE TPAMI 11(6)) through the target points
    gives, for every output pixel, where to sample the source (bilinear). Unlike a piecewise-affine warp of
    the 68 points, the skin between the points moves smoothly with them, as it does in a real expression.
    """
    import cv2

    height, width = image.shape[:2]
    anchors = _anchors(source, (height, width))
    src = np.concatenate([source, anchors])
    dst = np.concatenate([target, anchors])
    scale = float(max(height, width))
    d = dst / scale
    k = len(d)
    kernel = _tps_kernel(((d[:, None] - d[None]) ** 2).sum(axis=2))
    affine = np.concatenate([np.ones((k, 1)), d], axis=1)
    system = np.zeros((k + 3, k + 3))
    system[:k, :k] = kernel + 1e-9 * np.eye(k)
    system[:k, k:], system[k:, :k] = affine, affine.T
    rhs = np.zeros((k + 3, 2))
    rhs[:k] = (src - dst) / scale
    weights = np.linalg.solve(system, rhs)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1) / scale
    offset = np.zeros_like(pixels)
    for start in range(0, len(pixels), 65536):  # bounded memory: (chunk, K) kernel at a time
        p = pixels[start : start + 65536]
        u = _tps_kernel(((p[:, None] - d[None]) ** 2).sum(axis=2))
        offset[start : start + 65536] = u @ weights[:k] + weights[k] + p @ weights[k + 1 :]
    mapped = (pixels + offset) * scale
    map_x = mapped[:, 0].reshape(height, width).astype(np.float32)
    map_y = mapped[:, 1].reshape(height, width).astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _paint_mouth(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dark mouth opening between the target inner lips where they part more than in the source."""
    import cv2

    gap_src = float(np.mean(source[[67, 66, 65], 1] - source[[61, 62, 63], 1]))
    gap_dst = float(np.mean(target[[67, 66, 65], 1] - target[[61, 62, 63], 1]))
    _, _, iod = eye_frame(source)
    if gap_dst - gap_src < 0.01 * iod:
        return image
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(target[60:68] * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    mask = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255.0
    inside = np.array([45, 22, 24], np.float32)
    return (image.astype(np.float32) * (1 - mask) + inside * mask).astype(np.uint8)


@dataclass(frozen=True)
class FacsFace:
    """A photo and its neutral iBUG-68 landmarks (pixels); :meth:`render` makes any AU combination."""

    photo: np.ndarray
    landmarks: np.ndarray

    def render(self, aus: Mapping[str, float]) -> np.ndarray:
        """The photo with the FACS movements of ``aus`` (name -> intensity 0-5)."""
        if not any(value > 0 for value in aus.values()):
            return self.photo.copy()
        target = moved_landmarks(self.landmarks, aus)
        warped = warp_points(self.photo, self.landmarks, target)
        return _paint_mouth(warped, self.landmarks, target)


def neutral_face(photo: np.ndarray, backend=None, size: int = 360) -> FacsFace:
    """The largest face of ``photo`` cropped square (2.2 face heights) to ``size`` pixels, landmarked with
    our own face backend, with a held smile relaxed: lip corners moved to the population's neutral height.

    Raises ValueError when no face is found."""
    import cv2

    from tasks.extract.action_units import FEATURES, POPULATION_NEUTRAL, canonical_landmarks
    from tasks.extract.faces import load_face_backend

    backend = backend or load_face_backend("mediapipe")
    backend.reset()
    faces = backend.detect(np.ascontiguousarray(photo))
    if not faces:
        raise ValueError("no face found in the photo")
    face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    centre = (face.bbox[:2] + face.bbox[2:]) / 2
    side = 2.2 * float(face.bbox[3] - face.bbox[1])
    zoom = size / side
    affine = np.array([[zoom, 0, size / 2 - centre[0] * zoom], [0, zoom, size / 2 - centre[1] * zoom]], np.float32)
    crop = cv2.warpAffine(photo, affine, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    backend.reset()
    faces = backend.detect(crop)
    if not faces:
        raise ValueError("no face found in the cropped photo")
    landmarks = faces[0].landmarks.astype(np.float64)
    canonical = canonical_landmarks(landmarks[None], faces[0].pose[None].astype(np.float64))
    elevation = float(FEATURES["corner_elev"](canonical[..., 0], canonical[..., 1])[0])
    excess = elevation - POPULATION_NEUTRAL["corner_elev"][0]
    if excess > 0:  # corners above the neutral height: an AU12 held in the photo, undone by AU12's own moves
        u, v, iod = eye_frame(landmarks)
        relaxed = landmarks.copy()
        for point, (du, dv) in FACS_MOVES["AU12"].items():
            relaxed[point] -= (excess / 0.10) * iod * (du * u + dv * v)
        crop = warp_points(crop, landmarks, relaxed)
        landmarks = relaxed
    backend.reset()
    found = backend.detect(crop)
    return FacsFace(crop, found[0].landmarks.astype(np.float64) if found else landmarks)


def still(face: FacsFace, aus: Mapping[str, float], seconds: float, fps: float) -> Iterator[np.ndarray]:
    """A held expression: the same rendered frame for ``seconds``."""
    frame = face.render(aus)
    for _ in range(int(round(seconds * fps))):
        yield frame


def ramp(face: FacsFace, aus: Mapping[str, float], seconds: float, fps: float, hold: float = 0.0):
    """Neutral to apex: intensities grow linearly from 0 at the first frame to ``aus`` at the last ramp frame,
    then the apex is held ``hold`` seconds. Yields (frame, intensities of that frame)."""
    n = max(2, int(round(seconds * fps)))
    for k in range(n + int(round(hold * fps))):
        level = min(1.0, k / (n - 1))
        current = {au: level * value for au, value in aus.items()}
        yield face.render(current), current
