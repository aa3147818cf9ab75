"""Action units (AUs): 17 OpenFace-named intensities (0-5) and presences, per face and frame.

Default (:class:`BlendshapeAUEstimator`): from the 52 blendshape coefficients of MediaPipe's Face
Landmarker (Blendshape V2, Apache-2.0; an MLP-Mixer over 146 Face Mesh V2 points trained by Google to
regress ARKit-style expression coefficients), which the default face backend measures on every face. Each
coefficient is a population-level measure of one facial movement (no person baseline needed, so a held
expression or a still photo is measured as it is); each AU is the blendshape that describes its FACS
appearance change, averaged over the face's two sides (:data:`BLENDSHAPE_AUS`, with the coefficient's
level on neutral faces subtracted and the rest scaled to 0-5). The AUs whose coefficient Blendshape V2
leaves dead (AU05, AU06, AU09) and AU25 (lips part, which no blendshape isolates) come from the landmark
geometry below (:data:`GEOMETRIC_AUS`), and so does every AU of a face without blendshapes (the insightface
backend); AU12 is the weaker of its coefficient and the geometry (:data:`AGREED_AUS`). These are not
OpenFace's trained AU detectors: an AU means "the movement FACS names for it, as Blendshape V2 or the
geometry measures it"; `lessonlens evaluate --au-reference` compares them with OpenFace on your video.

Geometric proxy (:class:`GeometricAUEstimator`, the fallback): for each AU, the landmark displacement
that the Facial Action Coding System describes for it (Ekman, Friesen & Hager, 2002, *FACS: The Manual*,
Research Nexus, "FACS 2002" below), compared with a neutral face (the population's, adjusted to the person
on long tracks). It is blind to what landmarks cannot see (wrinkles, dimples, skin bulges), so AUs with
mostly textural cues (AU06, AU09, AU14, AU23) are the weakest. A trained model can replace either through
:func:`load_au_estimator` with a model directory.

Method (:class:`GeometricAUEstimator`)
--------------------------------------
1. Canonical frame per face (:func:`canonical_landmarks`): origin at the midpoint of the two eye
   centres (means of points 36-41 and 42-47), roll removed by turning the eye line horizontal, then head
   pitch and yaw undone in 3-D: with ``R = Rx(pitch) Ry(yaw)`` (:func:`tasks.extract.faces.head_pose`'s
   convention) the image shows ``s * R[:2] @ (u, v, z)``; each point's depth ``z`` is taken from a generic
   face (:data:`MEAN_DEPTH`, measured once from FaceMesh) and the two equations are solved for the frontal
   (u, v), in units of the inter-ocular distance (IOD; cosines floored at 0.5). This matters because the
   lip corners lie about 0.2 IOD behind the lip midline and the lower lids 0.05 IOD in front of the eye
   corners: a head tilted back by 15 degrees otherwise lowers the seen corners by ~0.05-0.07 IOD, about
   a 1-point AU12 loss and a larger AU20 gain. All features below are in IOD units and scale-free.
2. Geometric features per face (:data:`FEATURES`), e.g. brow heights above the eye line, lid apertures,
   lip-corner elevation above the lip midline, mouth width, lip gap, chin distance below the nose.
3. Baseline: a population neutral face, adjusted to the person when their track shows it. A face that
   holds one expression for the whole track (a posed still, a short neutral-to-apex clip, a presenter
   who smiles throughout) has no neutral frames of its own, so every feature is measured against
   :data:`POPULATION_NEUTRAL` (neutral faces measured through the same backend) plus ``trust`` times the
   person's offset from it. The person's rest face is the median over the track's reference frames, in
   the spirit of OpenFace's person-specific normalisation (Baltrusaitis, Mahmoud & Robinson, 2015,
   "Cross-dataset learning and person-specific normalisation for automatic Action Unit detection", FG
   2015, which subtracts a median over the video): the frames with the lips together (inner-lip gap below
   ``CLOSED_LIPS`` = 0.04 IOD), or the quarter of the track with the smallest lip gap. Its offset from the
   population is limited to ``PERSON_OFFSET_LIMIT`` (2) between-person tolerances, so even a long smiling
   track keeps most of its smile. ``trust`` (:func:`track_trust`) grows from 0 at 50 samples to 1 at 150,
   times the fraction of lips-together samples over 0.25 (capped at 1), times the lips' 90th-percentile
   gap over 0.10 IOD (capped at 1): only a long track that both rests and moves (talks) has a believable
   rest face. Where the population carries weight, changes within ``DEAD_ZONE`` (half) of the feature's
   between-person tolerance times ``1 - trust`` are not counted as movement. Exceptions: the lip gap is
   absolute (closed lips are 0), and AU45's open-eye aperture is the track's 90th percentile (blinks are
   brief).
4. Intensity ``AUxx_r = clip(5 * correlate / full_scale, 0, 5)`` where the correlate is the signed
   displacement from the baseline that FACS describes and ``full_scale`` (:data:`AU_RULES`) the
   displacement taken as the maximum (FACS level E, intensity 5), in IOD units. The full scales were
   set so that the broad smile of ``pyfeat_single_face.mp4`` reads AU12 ~ 4-5. The scale is linear:
   1 ~ trace (A), 2 ~ slight (B), 3 ~ marked (C), 4 ~ severe (D), 5 ~ maximum (E), as OpenFace's 0-5.
   Presence ``AUxx_c = intensity >= PRESENCE_THRESHOLD`` (1.0, the trace level).

AU definitions (FACS 2002 name; muscle; correlate measured here)
----------------------------------------------------------------
- AU01 Inner Brow Raiser; frontalis, pars medialis: inner brows (20-23) rise above the eye line.
- AU02 Outer Brow Raiser; frontalis, pars lateralis: outer brows (17, 18, 25, 26) rise.
- AU04 Brow Lowerer; corrugator supercilii, depressor supercilii, procerus: the brows lower (mean of
  inner and outer heights falls) and draw together (inner-brow gap 21-22 shrinks).
- AU05 Upper Lid Raiser; levator palpebrae superioris: the upper lids (37, 38, 43, 44) rise above the
  eye-corner line.
- AU06 Cheek Raiser; orbicularis oculi, pars orbitalis: the cheeks push the lower lids (40, 41, 46, 47)
  up towards the eye-corner line, and the infraorbital skin over the cheekbones rises (Face Mesh points
  that the 68-point reduction lacks, :func:`tasks.extract.faces.infraorbital_height`, measured in 3-D by the
  backend; full scale 0.06 IOD, twice the lids', as the cheek travels about four times as far as the lid
  in a broad smile); the stronger of the two.
- AU07 Lid Tightener; orbicularis oculi, pars palpebralis: the eye aperture (lid-to-lid height over eye
  width) narrows. Overlaps AU06 and AU45, which also narrow it.
- AU09 Nose Wrinkler; levator labii superioris alaeque nasi: the nostril wings (31, 35) rise towards
  the eyes, minus half the lip-corner rise (a broad smile lifts the wings too).
- AU10 Upper Lip Raiser; levator labii superioris: the upper lip (51) rises towards the nose base (33).
- AU12 Lip Corner Puller; zygomaticus major: the lip corners (48, 54) rise above the lip midline
  (inner lip points 62, 66) and move apart (half weight on the widening).
- AU14 Dimpler; buccinator: the lip corners tighten: the lips thin next to the corners (49-59, 53-55)
  while the mouth widens a little.
- AU15 Lip Corner Depressor; depressor anguli oris (triangularis): the lip corners fall below the lip
  midline.
- AU17 Chin Raiser; mentalis: the chin boss pushes the lower lip (57) up towards the nose base.
- AU20 Lip Stretcher; risorius (with platysma): the mouth widens, minus three times any lip-corner rise
  (a smile widens the mouth about three times as much as it lifts the corners).
- AU23 Lip Tightener; orbicularis oris: the red parts of the lips narrow (51-62 and 66-57 heights).
- AU25 Lips Part; depressor labii inferioris or relaxed mentalis / orbicularis oris: the inner lips
  (61-67, 62-66, 63-65) separate (absolute gap).
- AU26 Jaw Drop; masseter, temporalis and internal pterygoid relaxed: the chin (8) moves down from the
  nose base (33).
- AU45 Blink; levator palpebrae superioris relaxes, orbicularis oculi pars palpebralis contracts: the eye
  closure ``1 - aperture / open aperture`` (open: the track's 90th percentile) beyond ``BLINK_ONSET``
  (0.25, so the narrowing of a smile is not a blink); intensity 5 = fully closed.

Measured (before the population baseline of step 3) on the two clips of ``/work/shared/media`` (5 fps, MediaPipe
landmarks, one track), before
(2-D cosine correction, every baseline from lips-together frames) and after steps 1 and 3 as above.
``pyfeat_WolfgangLanger_Pexels.mp4`` is sad with a hand over the face in seconds 0-9 and laughs with
an open mouth, head tilted back or sideways, from second 12; mean intensity sad -> laugh:

====  ============  ============
AU    before        after
====  ============  ============
AU12  0.41 -> 2.37  0.60 -> 3.21
AU06  0.38 -> 0.81  2.51 -> 2.04
AU20  0.45 -> 2.57  0.16 -> 0.05
AU15  0.68 -> 0.05  0.17 -> 0.00
====  ============  ============

(per second in the laugh, AU12 before 1.3-1.6 and AU20 4.5-5.0 in seconds 12-13; after 2.4-2.5 and
0.0-0.3). ``pyfeat_single_face.mp4`` neutral second -> smile seconds: AU12 1.21 -> 4.6 before,
1.13 -> 4.4 after; AU06 0.55 -> 2.2 before, 0.80 -> 2.6 after; AU20 and AU15 stay below 0.1. Command:
landmarks from ``load_face_backend("mediapipe").detect`` on ``tests.test_faces.sample(path, fps=5)``,
then ``GeometricAUEstimator().predict(landmarks, pose, zeros)`` and per-second means.

Known weaknesses: FaceMesh pulls the lower-lid points up when the eyes close, so AU06 reads high on
closed or squeezed eyes (2.5-4.9 in the crying seconds 0-5 of the Wolfgang clip, where AU45 also reads
~1-1.5) and cannot be told from a Duchenne narrowing by landmarks alone; the depth table is a generic face
(per-point spread 0.035 IOD), so the pitch correction is first-order for unusual faces and extreme
tilts; AU05's baseline still comes from lips-together frames.

User-supplied models (:class:`OnnxAUEstimator`)
-----------------------------------------------
A directory with ``au_model.onnx`` and ``au_model.json``. The JSON gives ``"input"`` (the ONNX input
name), ``"intensity"`` (the output name of a float (N, K) array on the 0-5 scale), optionally
``"presence"`` (the output name of (N, K) probabilities; >= 0.5 counts as present, otherwise presence
is thresholded intensity), ``"au_names"`` (the K names, a subset of :data:`AU_NAMES`; missing AUs come
back as NaN / 0) and optionally ``"person_normalisation": true`` (subtract each track's median input,
as step 3). The input is float32 (N, 139): the 136 canonical landmark coordinates of step 1 (u, v per
point, in iBUG order) followed by pose_Rx, pose_Ry, pose_Rz in radians.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.layout import AU_NAMES

PRESENCE_THRESHOLD = 1.0
_MIN_COS = 0.5


class AUEstimator(Protocol):
    """AU intensities and presences for all faces of one whole video."""

    name: str

    def predict(
        self,
        landmarks: np.ndarray,
        pose: np.ndarray,
        face_id: np.ndarray,
        blendshapes: np.ndarray | None = None,
        infraorbital: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """(N, 68, 2), (N, 3), (N,), optional (N, 51) blendshapes in ``BLENDSHAPE_NAMES[1:]`` order (NaN rows:
        none measured), optional (N,) infraorbital cheek heights (:func:`tasks.extract.faces.infraorbital_height`; NaN:
        none measured) -> {"AU01_r": float32 (N,), ..., "AU01_c": int8 (N,), ...}."""
        ...


MEAN_DEPTH = np.array([
    0.84, 0.88, 0.85, 0.78, 0.47, 0.28, 0.12, -0.12, -0.23, -0.12, 0.12, 0.28, 0.47, 0.78, 0.85, 0.88, 0.84,
    0.14, 0.03, -0.06, -0.15, -0.20, -0.20, -0.15, -0.06, 0.03, 0.14,
    -0.23, -0.41, -0.61, -0.65, -0.30, -0.40, -0.42, -0.40, -0.30,
    0.09, -0.01, -0.04, 0.00, -0.03, -0.01, 0.00, -0.04, -0.01, 0.09, -0.01, -0.04,
    -0.19, -0.33, -0.44, -0.45, -0.44, -0.33, -0.19, -0.32, -0.38, -0.42, -0.38, -0.32,
    -0.22, -0.34, -0.38, -0.34, -0.22, -0.34, -0.39, -0.34,
])  # fmt: skip
"""Generic depth of the 68 points (IOD units, from the eye midpoint, positive into the head), step 1.

Measured once with ``tasks.extract.faces``' MediaPipe backend: the 3-D FaceMesh points (reduced to iBUG-68) of 16
near-frontal neutral faces (scikit-image's astronaut and the first 15 frames of ``pyfeat_single_face.mp4``
at 30 fps) were rotated into the face's own axes with :func:`tasks.extract.faces.head_pose`'s rotation, centred on
the eye midpoint, divided by the IOD and averaged; the per-point standard deviation is below 0.035. FaceMesh
depth is close to its template, so this is a generic face, not the person's."""


def canonical_landmarks(landmarks: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(N, 68, 2) pixels + (N, 3) pose -> (N, 68, 2) (u, v) in the canonical frame of step 1."""
    left_eye = landmarks[:, 36:42].mean(axis=1)
    right_eye = landmarks[:, 42:48].mean(axis=1)
    axis_u = right_eye - left_eye
    iod = np.maximum(np.linalg.norm(axis_u, axis=1), 1e-9)
    axis_u = axis_u / iod[:, None]
    axis_v = np.stack([-axis_u[:, 1], axis_u[:, 0]], axis=1)  # u turned 90 degrees towards the chin
    offset = landmarks - ((left_eye + right_eye) / 2)[:, None]
    seen = np.stack([(offset * axis_u[:, None]).sum(axis=2), (offset * axis_v[:, None]).sum(axis=2)], axis=2)
    # R = Rx(pitch) Ry(yaw) (roll is the eye line, already removed): the image shows s * R[:2] @ (x, y, z).
    sin_p, sin_y = np.sin(pose[:, 0]), np.sin(pose[:, 1])
    cos_p = np.maximum(np.cos(pose[:, 0]), _MIN_COS)
    cos_y = np.maximum(np.cos(pose[:, 1]), _MIN_COS)
    eye_x, eye_y = cos_y, sin_p * sin_y  # the image of the face's left-right axis, (1, 0, 0)
    scale = iod * np.hypot(eye_x, eye_y)
    turn = np.arctan2(eye_y, eye_x)  # put the eye line where R puts it, not exactly horizontal
    cos_t, sin_t = np.cos(turn)[:, None], np.sin(turn)[:, None]
    seen = seen / scale[:, None, None]
    a = seen[..., 0] * cos_t - seen[..., 1] * sin_t
    b = seen[..., 0] * sin_t + seen[..., 1] * cos_t
    # a = cos_y x + sin_y z;  b = sin_p sin_y x + cos_p y - sin_p cos_y z  ->  solve for x, y with z = MEAN_DEPTH
    z = MEAN_DEPTH[None]
    u = (a - sin_y[:, None] * z) / cos_y[:, None]
    v = (b - sin_p[:, None] * sin_y[:, None] * u + sin_p[:, None] * np.cos(pose[:, 1])[:, None] * z) / cos_p[:, None]
    return np.stack([u, v], axis=2)


def _height(v: np.ndarray, points: list[int]) -> np.ndarray:
    """Height above the eye line (v points down the face)."""
    return -v[:, points].mean(axis=1)


def _eye_aperture(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Lid-to-lid height over eye width, mean of both eyes (an eye aspect ratio)."""
    left = (v[:, [41, 40]].mean(axis=1) - v[:, [37, 38]].mean(axis=1)) / (u[:, 39] - u[:, 36])
    right = (v[:, [47, 46]].mean(axis=1) - v[:, [43, 44]].mean(axis=1)) / (u[:, 45] - u[:, 42])
    return (left + right) / 2


def _corner_line(v: np.ndarray) -> np.ndarray:
    """Mean height of the four eye corners (36, 39, 42, 45) as v."""
    return v[:, [36, 39, 42, 45]].mean(axis=1)


FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "brow_inner": lambda u, v: _height(v, [20, 21, 22, 23]),
    "brow_outer": lambda u, v: _height(v, [17, 18, 25, 26]),
    "brow_gap": lambda u, v: u[:, 22] - u[:, 21],
    "upper_lid": lambda u, v: _corner_line(v) - v[:, [37, 38, 43, 44]].mean(axis=1),
    "lower_lid": lambda u, v: v[:, [40, 41, 46, 47]].mean(axis=1) - _corner_line(v),
    "eye_open": lambda u, v: _eye_aperture(v, u),
    "ala": lambda u, v: v[:, [31, 35]].mean(axis=1),
    "upper_lip": lambda u, v: v[:, 51] - v[:, 33],
    "lower_lip": lambda u, v: v[:, 57] - v[:, 33],
    "corner_elev": lambda u, v: v[:, [62, 66]].mean(axis=1) - v[:, [48, 54]].mean(axis=1),
    "mouth_width": lambda u, v: u[:, 54] - u[:, 48],
    "corner_lips": lambda u, v: ((v[:, 59] - v[:, 49]) + (v[:, 55] - v[:, 53])) / 2,
    "red_lips": lambda u, v: (v[:, 62] - v[:, 51]) + (v[:, 57] - v[:, 66]),
    "lip_gap": lambda u, v: np.maximum(v[:, [67, 66, 65]] - v[:, [61, 62, 63]], 0).mean(axis=1),
    "jaw": lambda u, v: v[:, 8] - v[:, 33],
}
"""Geometric features of one canonical face, in IOD units (see the module docstring)."""

CLOSED_LIPS = 0.04  # inner-lip gap (IOD units) below which the lips count as together
EYE_OPEN_QUANTILE = 0.90  # the track's open-eye aperture
BLINK_ONSET = 0.25  # eye closure (fraction of the open aperture) below which AU45 stays 0

POPULATION_NEUTRAL: dict[str, tuple[float, float]] = {
    "brow_inner": (0.423, 0.072),
    "brow_outer": (0.272, 0.079),
    "brow_gap": (0.494, 0.029),
    "upper_lid": (0.104, 0.015),
    "lower_lid": (0.029, 0.011),
    "eye_open": (0.315, 0.074),
    "ala": (0.670, 0.102),
    "upper_lip": (0.261, 0.038),
    "lower_lip": (0.557, 0.147),
    "corner_elev": (-0.022, 0.051),
    "mouth_width": (0.731, 0.129),
    "corner_lips": (0.146, 0.055),
    "red_lips": (0.242, 0.020),
    "jaw": (1.147, 0.124),
    "infraorbital": (0.291, 0.030),
}
"""Population neutral face, step 3: feature -> (neutral value, between-person tolerance), IOD units.

Values: the mean of the per-person medians of two neutral faces seen through ``tasks.extract.faces``' MediaPipe
backend (Face Mesh V2 of the Face Landmarker) and step 1 (the first 15 frames of ``pyfeat_single_face.mp4``
at 30 fps, and the lips-together
neutral clip ``cremad/1001_DFA_NEU_XX.flv`` at 10 fps). Tolerance: the difference between the two people
(so that each of them, half a tolerance from the mean, is inside the dead zone and reads as neutral), or a
plausible between-person spread of the feature where they happen to agree; it is the dead zone of step 3
for tracks that are measured against this reference alone. ``infraorbital`` (from the dense mesh): the
same two people, all frames of the CREMA-D clip (0.306 and 0.276)."""

TRUST_SAMPLES = (50, 150)  # a track's own rest state: no weight below 50 samples, full weight from 150
REST_FRACTION = 0.25  # ... and full weight only when at least this fraction of its samples has the lips together
MOVING_GAP = 0.10  # ... and its lips part by at least this much (IOD) in a tenth of its samples: it talks or moves
PERSON_OFFSET_LIMIT = 2.0  # the person's rest face may differ from the population by at most 2 tolerances
DEAD_ZONE = 0.5  # changes within this fraction of the tolerance are not movements when the population is the baseline


@dataclass(frozen=True, slots=True)
class AURule:
    """One AU: its correlate (a function of feature displacements) and the correlate's intensity-5 value."""

    correlate: Callable[[dict[str, np.ndarray]], np.ndarray]
    full_scale: float


def _raise(d: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.maximum(d[name], 0)


AU_RULES: dict[str, AURule] = {
    "AU01": AURule(lambda d: d["brow_inner"], 0.15),
    "AU02": AURule(lambda d: d["brow_outer"], 0.15),
    "AU04": AURule(lambda d: -(d["brow_inner"] + d["brow_outer"]) / 2 - d["brow_gap"], 0.12),
    "AU05": AURule(lambda d: d["upper_lid"], 0.06),
    "AU06": AURule(lambda d: np.fmax(-d["lower_lid"], -0.5 * d["infraorbital"]), 0.03),
    "AU07": AURule(lambda d: -d["eye_open"], 0.15),
    "AU09": AURule(lambda d: -d["ala"] - 0.5 * _raise(d, "corner_elev"), 0.10),
    "AU10": AURule(lambda d: -d["upper_lip"], 0.10),
    "AU12": AURule(lambda d: d["corner_elev"] + 0.5 * d["mouth_width"], 0.30),
    "AU14": AURule(lambda d: -d["corner_lips"] + 0.5 * d["mouth_width"] - _raise(d, "corner_elev"), 0.08),
    "AU15": AURule(lambda d: -d["corner_elev"], 0.10),
    "AU17": AURule(lambda d: -d["lower_lip"], 0.10),
    "AU20": AURule(lambda d: d["mouth_width"] - 3 * _raise(d, "corner_elev"), 0.12),
    "AU23": AURule(lambda d: -d["red_lips"], 0.08),
    "AU25": AURule(lambda d: d["lip_gap"], 0.30),
    "AU26": AURule(lambda d: d["jaw"], 0.30),
    "AU45": AURule(lambda d: d["eye_closure"] - BLINK_ONSET, 1.0 - BLINK_ONSET),
}
"""Correlate and full scale of each AU; the correlates are described in the module docstring."""


def feature_displacements(
    canonical: np.ndarray, face_id: np.ndarray, infraorbital: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every feature minus its baseline (step 3), beyond the dead zone; ``lip_gap`` absolute; plus ``eye_closure``.
    ``infraorbital`` (measured on the dense mesh, not the 68 points) is NaN where not given."""
    u, v = canonical[..., 0], canonical[..., 1]
    values = {name: feature(u, v) for name, feature in FEATURES.items()}
    given = infraorbital is not None
    values["infraorbital"] = np.asarray(infraorbital, np.float64) if given else np.full(len(face_id), np.nan)
    reference = _reference_frames(values["lip_gap"], face_id)
    trust = track_trust(values["lip_gap"], face_id)
    open_eye = _track_quantile(values["eye_open"], face_id, EYE_OPEN_QUANTILE)
    displacement = {"lip_gap": values["lip_gap"]}
    for name, (neutral, tolerance) in POPULATION_NEUTRAL.items():
        own = _track_median(values[name], face_id, reference)
        limit = PERSON_OFFSET_LIMIT * tolerance
        offset = np.clip(np.nan_to_num(own - neutral), -limit, limit)
        change = values[name] - (neutral + trust * offset)
        dead = (1.0 - trust) * DEAD_ZONE * tolerance
        displacement[name] = np.sign(change) * np.maximum(np.abs(change) - dead, 0.0)
    displacement["eye_closure"] = 1.0 - values["eye_open"] / np.maximum(open_eye, 1e-6)
    return displacement


def track_trust(lip_gap: np.ndarray, face_id: np.ndarray) -> np.ndarray:
    """Per row, the weight (0-1) of its track's own rest face against the population one (step 3)."""
    trust = np.zeros(len(face_id))
    low, high = TRUST_SAMPLES
    for track in np.unique(face_id):
        rows = face_id == track
        n = int(rows.sum())
        gaps = np.nan_to_num(lip_gap[rows])
        rest = min(1.0, float(np.mean(gaps < CLOSED_LIPS)) / REST_FRACTION)
        moving = min(1.0, float(np.quantile(gaps, 0.9)) / MOVING_GAP)
        trust[rows] = np.clip((n - low) / (high - low), 0.0, 1.0) * rest * moving
    return trust


def _reference_frames(lip_gap: np.ndarray, face_id: np.ndarray) -> np.ndarray:
    """Rows whose lips are together, or each track's quarter of rows with the smallest lip gap."""
    reference = lip_gap < CLOSED_LIPS
    for track in np.unique(face_id):
        rows = np.flatnonzero(face_id == track)
        if reference[rows].sum() < max(1, len(rows) // 4):
            gaps = np.where(np.isfinite(lip_gap[rows]), lip_gap[rows], np.inf)
            reference[rows[np.argsort(gaps, kind="stable")[: max(1, len(rows) // 4)]]] = True
    return reference


def _track_median(values: np.ndarray, face_id: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row, the median of ``values`` over the reference rows of the same track (NaNs ignored)."""
    result = np.full_like(values, np.nan)
    for track in np.unique(face_id):
        rows = face_id == track
        finite = values[rows & reference]
        finite = finite[np.isfinite(finite)]
        if finite.size:
            result[rows] = np.median(finite)
    return result


def _track_quantile(values: np.ndarray, face_id: np.ndarray, q: float) -> np.ndarray:
    """Per row, the q-quantile of ``values`` over the rows of the same track (NaNs ignored)."""
    result = np.full_like(values, np.nan)
    for track in np.unique(face_id):
        rows = face_id == track
        finite = values[rows][np.isfinite(values[rows])]
        if finite.size:
            result[rows] = np.quantile(finite, q)
    return result


def _validated(landmarks: np.ndarray, pose: np.ndarray, face_id: np.ndarray) -> tuple[np.ndarray, ...]:
    landmarks = np.asarray(landmarks, np.float64)
    pose = np.asarray(pose, np.float64)
    face_id = np.asarray(face_id).reshape(-1)
    n = len(face_id)
    if landmarks.shape != (n, 68, 2):
        raise ValueError(f"landmarks must be ({n}, 68, 2), got {landmarks.shape}")
    if pose.shape != (n, 3):
        raise ValueError(f"pose must be ({n}, 3), got {pose.shape}")
    return landmarks, pose, face_id


def _with_presence(intensity: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {f"{au}_r": intensity[au].astype(np.float32) for au in AU_NAMES}
    out |= {f"{au}_c": (intensity[au] >= PRESENCE_THRESHOLD).astype(np.int8) for au in AU_NAMES}
    return out


class GeometricAUEstimator:
    """Landmark geometry relative to a population / person baseline (module docstring): the fallback for faces
    without blendshapes, and the source of :data:`GEOMETRIC_AUS` in the default estimator."""

    name = "geometric"

    def predict(
        self,
        landmarks: np.ndarray,
        pose: np.ndarray,
        face_id: np.ndarray,
        blendshapes: np.ndarray | None = None,
        infraorbital: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        landmarks, pose, face_id = _validated(landmarks, pose, face_id)
        displacement = feature_displacements(canonical_landmarks(landmarks, pose), face_id, infraorbital)
        intensity = {
            au: np.clip(5.0 * rule.correlate(displacement) / rule.full_scale, 0.0, 5.0) for au, rule in AU_RULES.items()
        }
        return _with_presence(intensity)


# AU <- the Blendshape V2 coefficients that describe its FACS appearance change (left and right averaged),
# and the coefficient's level on neutral faces, measured through the default backend on the neutral faces
# at hand (CREMA-D's neutral clip, frames 0-14 of pyfeat_single_face.mp4: the two people's medians, about
# their mean, rounded up): resting lids read as some eyeSquint, a resting brow as some browDown or
# browInnerUp (0.01 and 0.46 for the two), closed lips as some mouthPress.
# Not here, so measured by the landmark geometry (GEOMETRIC_AUS): AU05, AU06, AU09, whose coefficients
# (eyeWide, cheekSquint, noseSneer) Blendshape V2 leaves dead: their largest value over every frame of
# the dev clips (CREMA-D's six, the Wolfgang clip, 10 fps) is 0.05, 0.000 and 0.000, also on the
# disgust clip and the laugh (MediaPipe issue #4450 reports eyeWide and noseSneer "always near 0");
# and AU25 (no coefficient isolates parted lips).
BLENDSHAPE_AUS: dict[str, tuple[tuple[str, ...], float]] = {
    "AU01": (("browInnerUp",), 0.25),  # inner brow raiser
    "AU02": (("browOuterUpLeft", "browOuterUpRight"), 0.05),  # outer brow raiser
    "AU04": (("browDownLeft", "browDownRight"), 0.15),  # brow lowerer
    "AU07": (("eyeSquintLeft", "eyeSquintRight"), 0.40),  # lid tightener
    "AU10": (("mouthUpperUpLeft", "mouthUpperUpRight"), 0.02),  # upper lip raiser
    "AU12": (("mouthSmileLeft", "mouthSmileRight"), 0.05),  # lip corner puller
    "AU14": (("mouthDimpleLeft", "mouthDimpleRight"), 0.05),  # dimpler
    "AU15": (("mouthFrownLeft", "mouthFrownRight"), 0.02),  # lip corner depressor
    "AU17": (("mouthShrugLower",), 0.05),  # chin raiser (lower lip pushed up)
    "AU20": (("mouthStretchLeft", "mouthStretchRight"), 0.02),  # lip stretcher
    "AU23": (("mouthPressLeft", "mouthPressRight"), 0.15),  # lip tightener (lips pressed thin)
    "AU26": (("jawOpen",), 0.05),  # jaw drop
    "AU45": (("eyeBlinkLeft", "eyeBlinkRight"), 0.15),  # blink (lids closed)
}
GEOMETRIC_AUS = ("AU05", "AU06", "AU09", "AU25")
"""AUs the default estimator takes from the landmark geometry (see above; AU25: no blendshape isolates it)."""
WEAK_BLENDSHAPE_AUS = ("AU15",)
"""AUs whose coefficient rarely moves (mouthFrown: at most 0.07 over the dev clips, sad ones included): the
stronger of it and the geometric measure of the same FACS appearance change."""
AGREED_AUS = ("AU12",)
"""AUs read where the coefficient and the geometry agree (the weaker of the two): each has its own false
smiles. mouthSmile reads CREMA-D's neutral clip as AU12 1.2 (the geometry 0.4) and its disgust clip as 3.5
(1.8); the lip-corner geometry reads the Hanks photo tilted 30 degrees down as about 1 (mouthSmile 0). In a
real smile both are high (pyfeat_single_face.mp4: 4.5 and 3-4)."""


class BlendshapeAUEstimator:
    """Default estimator: AUs from MediaPipe's Blendshape V2 coefficients (module docstring); the
    :data:`GEOMETRIC_AUS`, and every AU of rows without blendshapes, from :class:`GeometricAUEstimator`.

    Rest level: the coefficient's population level (:data:`BLENDSHAPE_AUS`), moved towards the track's own
    10th percentile by the track's trust (:func:`track_trust`: a long track that both rests and talks), as
    the geometric baseline is: a still or a short clip is measured against the population, a lesson against
    the person. The :data:`WEAK_BLENDSHAPE_AUS` are the stronger of the coefficient and the geometric
    measure (two measures of the same FACS appearance change, one of which rarely moves), the
    :data:`AGREED_AUS` the weaker (two measures with different false positives).
    """

    name = "blendshapes"

    def predict(
        self,
        landmarks: np.ndarray,
        pose: np.ndarray,
        face_id: np.ndarray,
        blendshapes: np.ndarray | None = None,
        infraorbital: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        from models.layout import BLENDSHAPE_NAMES

        geometric = GeometricAUEstimator().predict(landmarks, pose, face_id, infraorbital=infraorbital)
        if blendshapes is None:
            return geometric
        shapes = np.asarray(blendshapes, dtype=np.float64)
        names = list(BLENDSHAPE_NAMES[1:])
        if shapes.shape != (len(face_id), len(names)):
            raise ValueError(f"blendshapes must be (N, {len(names)}), got {shapes.shape}")
        landmarks, pose, face_id = _validated(landmarks, pose, face_id)
        canonical = canonical_landmarks(landmarks, pose)
        trust = track_trust(FEATURES["lip_gap"](canonical[..., 0], canonical[..., 1]), face_id)
        measured = ~np.isnan(shapes).any(axis=1)
        intensity = {au: geometric[f"{au}_r"].astype(np.float64) for au in AU_NAMES}
        for au, (sources, population) in BLENDSHAPE_AUS.items():
            value = shapes[:, [names.index(n) for n in sources]].mean(axis=1)
            rest = (1 - trust) * population + trust * np.fmin(_track_quantile(value, face_id, 0.10), 0.95)
            scaled = np.clip(5.0 * (value - rest) / (1.0 - rest), 0.0, 5.0)
            if au in WEAK_BLENDSHAPE_AUS:
                scaled = np.maximum(scaled, intensity[au])
            if au in AGREED_AUS:
                scaled = np.minimum(scaled, intensity[au])
            intensity[au] = np.where(measured, scaled, intensity[au])
        return _with_presence(intensity)


class OnnxAUEstimator:
    """A user-supplied ONNX AU model described by ``au_model.json`` (format in the module docstring)."""

    def __init__(self, model_dir: Path) -> None:
        spec_path, model_path = model_dir / "au_model.json", model_dir / "au_model.onnx"
        if not spec_path.is_file() or not model_path.is_file():
            raise FileNotFoundError(
                f"AU model directory {model_dir} must hold au_model.onnx and au_model.json "
                "(see tasks/extract/action_units.py for the format)"
            )
        spec = json.loads(spec_path.read_text())
        missing = {"input", "intensity", "au_names"} - spec.keys()
        if missing:
            raise ValueError(f"{spec_path} lacks the keys {sorted(missing)}")
        unknown = set(spec["au_names"]) - set(AU_NAMES)
        if unknown:
            raise ValueError(f"{spec_path}: unknown AU names {sorted(unknown)}; valid: {AU_NAMES}")
        import onnxruntime

        self._session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self._spec = spec
        self.name = f"onnx:{model_dir.name}"

    def predict(
        self,
        landmarks: np.ndarray,
        pose: np.ndarray,
        face_id: np.ndarray,
        blendshapes: np.ndarray | None = None,
        infraorbital: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        landmarks, pose, face_id = _validated(landmarks, pose, face_id)
        features = np.concatenate([canonical_landmarks(landmarks, pose).reshape(len(face_id), -1), pose], axis=1)
        if self._spec.get("person_normalisation", False):
            features = features - np.stack([_track_quantile(column, face_id, 0.5) for column in features.T], axis=1)
        names = [self._spec["intensity"]] + ([self._spec["presence"]] if "presence" in self._spec else [])
        outputs = self._session.run(names, {self._spec["input"]: features.astype(np.float32)})
        predicted = {au: outputs[0][:, k] for k, au in enumerate(self._spec["au_names"])}
        nan = np.full(len(face_id), np.nan)
        intensity = {au: np.clip(predicted.get(au, nan), 0.0, 5.0) for au in AU_NAMES}
        result = _with_presence(intensity)
        if len(outputs) > 1:
            for k, au in enumerate(self._spec["au_names"]):
                result[f"{au}_c"] = (outputs[1][:, k] >= 0.5).astype(np.int8)
        return result


def load_au_estimator(model_dir: str | Path | None = None) -> AUEstimator:
    """``None`` -> the default (:class:`BlendshapeAUEstimator`); a directory -> :class:`OnnxAUEstimator` on it."""
    if model_dir is None:
        return BlendshapeAUEstimator()
    return OnnxAUEstimator(Path(model_dir).expanduser())
