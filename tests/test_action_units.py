"""Action units: output contract, each AU's direction on synthetic landmark edits, invariances, a real
smile, and the user-model (ONNX + JSON) format."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tasks.extract.action_units import (
    AU_NAMES,
    BLENDSHAPE_AUS,
    GEOMETRIC_AUS,
    BlendshapeAUEstimator,
    GeometricAUEstimator,
    load_au_estimator,
)
from tasks.extract.faces import load_face_backend
from tests.test_faces import sample

N, EDITED = 200, slice(150, 200)  # a long track (its own rest face is the baseline); the last 50 frames edited


@pytest.fixture(scope="module")
def neutral(media_dir) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and pose of the neutral first frame of ``pyfeat_single_face.mp4``, lips closed by hand.

    (Not scikit-image's astronaut: she smiles, and a held smile now reads as one.)"""
    face = load_face_backend("mediapipe").detect(sample(media_dir / "pyfeat_single_face.mp4", fps=30)[0])[0]
    landmarks = face.landmarks.astype(np.float64)
    landmarks[[67, 66, 65]] = landmarks[[61, 62, 63]]
    return landmarks, face.pose.astype(np.float64)


def _track(neutral, edit=None, seed: int = 0, n: int = N, edited=EDITED, talk: bool = True):
    """n jittered copies of the neutral face; ``edit`` moves points by (du, dv) IOD units (v: down).

    ``talk``: the lips part by 0.12 IOD on every third unedited frame, as when someone speaks (a long track
    with both rest and movement is where the person's own rest face becomes the baseline)."""
    landmarks, pose = neutral
    iod = np.linalg.norm(landmarks[42:48].mean(0) - landmarks[36:42].mean(0))
    rng = np.random.default_rng(seed)
    track = landmarks[None] + rng.normal(0, 0.002 * iod, (n, 68, 2))
    if talk:
        speech = np.setdiff1d(np.arange(0, n, 3), np.arange(n)[edited])
        track[speech[:, None], [49, 50, 51, 52, 53, 61, 62, 63], 1] -= 0.06 * iod  # upper lip up
        track[speech[:, None], [55, 56, 57, 58, 59, 65, 66, 67], 1] += 0.06 * iod  # lower lip down
    for point, (du, dv) in (edit or {}).items():
        track[edited, point] += np.array([du, dv]) * iod
    return track, np.repeat(pose[None], n, 0), np.zeros(n, int)


def _mean_change(result: dict[str, np.ndarray], au: str) -> float:
    values = result[f"{au}_r"]
    return float(values[EDITED].mean() - values[: EDITED.start].mean())


def test_output_contract(neutral):
    result = load_au_estimator().predict(*_track(neutral, talk=False))
    assert set(result) == {f"{au}_{kind}" for au in AU_NAMES for kind in "rc"}
    for au in AU_NAMES:
        assert result[f"{au}_r"].dtype == np.float32 and result[f"{au}_r"].shape == (N,)
        assert result[f"{au}_c"].dtype == np.int8
        assert np.all((result[f"{au}_r"] >= 0) & (result[f"{au}_r"] <= 5))
        # an unedited neutral face is neutral against the population reference (below the FACS trace level)
        assert result[f"{au}_r"].mean() < 0.8 and result[f"{au}_c"].mean() < 0.1, au


def test_each_au_has_one_source_and_dead_coefficients_are_not_read(neutral):
    """Every AU comes from a blendshape or from the geometry, not both and not neither; the AUs whose
    coefficients Blendshape V2 leaves dead (eyeWide, cheekSquint, noseSneer) are the geometric ones even when
    those coefficients carry values."""
    assert set(BLENDSHAPE_AUS).isdisjoint(GEOMETRIC_AUS) and set(BLENDSHAPE_AUS) | set(GEOMETRIC_AUS) == set(AU_NAMES)
    landmarks, pose, face_id = _track(neutral, talk=False)
    shapes = np.random.default_rng(0).uniform(0, 1, (len(face_id), 51))
    default = BlendshapeAUEstimator().predict(landmarks, pose, face_id, shapes)
    geometric = GeometricAUEstimator().predict(landmarks, pose, face_id)
    for au in GEOMETRIC_AUS:
        np.testing.assert_array_equal(default[f"{au}_r"], geometric[f"{au}_r"], err_msg=au)
    assert not np.array_equal(default["AU04_r"], geometric["AU04_r"])  # read from browDown


BROW_INNER, BROW_OUTER = (20, 21, 22, 23), (17, 18, 25, 26)
EDITS = {
    "AU01": ({p: (0, -0.06) for p in BROW_INNER}, "AU12"),
    "AU02": ({p: (0, -0.06) for p in BROW_OUTER}, "AU12"),
    "AU04": ({p: (0.03 if p < 22 else -0.03, 0.05) for p in range(17, 27)}, "AU01"),
    "AU05": ({p: (0, -0.02) for p in (37, 38, 43, 44)}, "AU12"),
    "AU06": ({p: (0, -0.02) for p in (40, 41, 46, 47)}, "AU12"),
    "AU09": ({p: (0, -0.05) for p in range(31, 36)}, "AU12"),
    "AU10": ({p: (0, -0.05) for p in (49, 50, 51, 52, 53, 61, 62, 63)}, "AU01"),
    "AU12": ({48: (-0.05, -0.06), 54: (0.05, -0.06), 60: (-0.04, -0.05), 64: (0.04, -0.05)}, "AU01"),
    "AU15": ({48: (0, 0.05), 54: (0, 0.05), 60: (0, 0.04), 64: (0, 0.04)}, "AU12"),
    "AU17": ({p: (0, -0.05) for p in (55, 56, 57, 58, 59)}, "AU12"),
    "AU20": ({48: (-0.06, 0), 54: (0.06, 0), 60: (-0.05, 0), 64: (0.05, 0)}, "AU01"),
    "AU25": ({p: (0, 0.12) for p in (55, 56, 57, 58, 59, 65, 66, 67)}, "AU01"),
    "AU26": ({p: (0, 0.2) for p in (5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67)}, "AU01"),
    "AU45": ({p: (0, 0.08) for p in (37, 38, 43, 44)}, "AU12"),
}


@pytest.mark.parametrize("au", sorted(EDITS))
def test_each_au_follows_its_facs_movement(neutral, au):
    edit, unrelated = EDITS[au]
    result = load_au_estimator().predict(*_track(neutral, edit))
    assert _mean_change(result, au) > 1.0
    assert abs(_mean_change(result, unrelated)) < 0.3
    assert result[f"{au}_c"][EDITED].mean() > 0.5


def test_scale_rotation_and_translation_do_not_change_aus(neutral):
    landmarks, pose, face_id = _track(neutral, EDITS["AU12"][0])
    estimator = load_au_estimator()
    reference = estimator.predict(landmarks, pose, face_id)
    angle = np.radians(10)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for moved in (landmarks * 2, landmarks @ turn.T * 0.7 + 40):
        result = estimator.predict(moved, pose, face_id)
        for key in reference:
            np.testing.assert_allclose(result[key], reference[key], atol=1e-4, err_msg=key)


def test_long_tracks_learn_the_persons_own_rest_face(neutral):
    """Over a long track (200 samples) a person whose rest face differs from the population's by a normal
    between-person amount (mouth 0.06 IOD wider, corners 0.015 IOD higher, brows 0.03 IOD higher) is
    neutral to themself; over a 20-sample clip the same face is measured against the population."""
    iod = np.linalg.norm(neutral[0][42:48].mean(0) - neutral[0][36:42].mean(0))

    def person(n):
        landmarks, pose, face_id = _track(neutral, n=n)
        landmarks[:, 48, 0] -= 0.03 * iod
        landmarks[:, 54, 0] += 0.03 * iod
        landmarks[:, [48, 54], 1] -= 0.015 * iod
        landmarks[:, 17:27, 1] -= 0.03 * iod
        return landmarks, pose, face_id

    long, short = load_au_estimator().predict(*person(200)), load_au_estimator().predict(*person(20))
    for au in ("AU01", "AU02", "AU12", "AU20"):
        assert long[f"{au}_r"].mean() < 0.3, au
    assert short["AU01_r"].mean() > long["AU01_r"].mean() + 0.5


def test_a_held_expression_is_measured_on_real_stills(media_dir):
    """Each frame its own one-sample track, as a still photo or the apex of a short clip: the default
    estimator reads a real broad smile as AU12 at level C (3) or more (never below 2.5, as the smile starts
    to fade) and a real neutral face as no smile, without any neutral frame of the same person to compare
    with."""
    from tasks.synthetic.media import face_photos

    backend = load_face_backend("mediapipe")
    frames = sample(media_dir / "pyfeat_single_face.mp4", fps=30)
    smiling = frames[30:-2]  # the broad smile (it fades in the clip's last two frames)
    faces = [backend.detect(frame)[0] for frame in [*frames[:15], *smiling, face_photos()["astronaut"]]]
    result = load_au_estimator().predict(
        np.stack([f.landmarks for f in faces]), np.stack([f.pose for f in faces]), np.arange(len(faces)),
        np.stack([f.blendshapes[1:] for f in faces]),
    )  # fmt: skip
    neutral, smiles = slice(0, 15), slice(15, None)  # the astronaut smiles too
    assert np.median(result["AU12_r"][smiles]) >= 3.0 and (result["AU12_r"][smiles] >= 2.5).all()
    assert result["AU12_c"][smiles].all()
    assert result["AU12_r"][neutral].max() < 1.0 and not result["AU12_c"][neutral].any()
    for au in ("AU04", "AU15", "AU20", "AU26"):  # a smile is not a frown, a stretch or a jaw drop
        assert result[f"{au}_r"][smiles].mean() < 1.0, au


def test_geometric_fallback_reads_a_held_smile_above_the_same_face_at_rest(neutral):
    """Without blendshapes (the insightface backend) a held smile is measured against the population
    neutral of two people: weaker than with blendshapes (a broad 0.08-IOD smile reads about 0.7), but it
    reads, without any neutral frame of the person."""
    smile = {48: (-0.08, -0.08), 54: (0.08, -0.08), 60: (-0.06, -0.06), 64: (0.06, -0.06)}  # a broad smile
    for n in (3, 20, 100):
        rest = load_au_estimator().predict(*_track(neutral, n=n, talk=False))
        result = load_au_estimator().predict(*_track(neutral, smile, n=n, edited=slice(None), talk=False))
        assert result["AU12_r"].mean() > rest["AU12_r"].mean() + 0.5, n
        assert result["AU15_r"].max() < 0.3 and result["AU20_r"].mean() < 1.0, n


def test_smile_raises_au12_and_au06(media_dir):
    """The broad smile of pyfeat_single_face.mp4 raises AU12 and AU06; for AU06 the infraorbital cheek of the
    dense mesh sees far more than the lower lids of the 68 points (0 -> 2.3 against 0 -> 0.9 when measured)."""
    backend = load_face_backend("mediapipe")
    faces = [backend.detect(frame)[0] for frame in sample(media_dir / "pyfeat_single_face.mp4", fps=30)]
    landmarks = np.stack([f.landmarks for f in faces])
    pose = np.stack([f.pose for f in faces])
    face_id = np.zeros(len(faces), int)
    infraorbital = np.array([f.infraorbital for f in faces])
    result = load_au_estimator().predict(landmarks, pose, face_id, infraorbital=infraorbital)
    lids_only = load_au_estimator().predict(landmarks, pose, face_id)
    neutral_part, smile_part = slice(0, 15), slice(30, None)  # neutral first, then a broad smile
    for au, margin in (("AU12", 2.0), ("AU06", 1.5)):
        values = result[f"{au}_r"]
        assert values[smile_part].mean() > values[neutral_part].mean() + margin, au
    assert result["AU06_r"][smile_part].mean() > lids_only["AU06_r"][smile_part].mean() + 1.0


def test_laugh_raises_au12_over_a_sad_onset_and_over_au20(media_dir):
    """Wolfgang clip at 5 fps: sad with a hand over the face in seconds 0-9, laughing with an open mouth and
    head tilts from second 12 on; the only lips-together (baseline) frames are sad ones."""
    backend = load_face_backend("mediapipe")
    found = [
        (t, faces[0])
        for t, frame in enumerate(sample(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4"))
        if (faces := backend.detect(frame))
    ]
    second = np.array([t for t, _ in found]) // 5
    landmarks = np.stack([f.landmarks for _, f in found])
    pose = np.stack([f.pose for _, f in found])
    result = load_au_estimator().predict(landmarks, pose, np.zeros(len(found), int))
    sad, laugh = second <= 9, second >= 12
    assert sad.sum() > 30 and laugh.sum() > 25
    au12, au20 = result["AU12_r"], result["AU20_r"]
    assert au12[laugh].mean() > au12[sad].mean() + 1.5
    assert au12[laugh].mean() > au20[laugh].mean() + 1.5


def _user_model(directory, au_names: list[str]) -> None:
    """A linear ONNX model on the documented (N, 139) input: a zero weight matrix plus a bias of 2.5."""
    k = len(au_names)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "w", "b"], ["intensity"])],
        "user_au",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 139])],
        [helper.make_tensor_value_info("intensity", TensorProto.FLOAT, [None, k])],
        [
            numpy_helper.from_array(np.zeros((139, k), np.float32), "w"),
            numpy_helper.from_array(np.full(k, 2.5, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(directory / "au_model.onnx"))
    spec = {"input": "features", "intensity": "intensity", "au_names": au_names, "person_normalisation": True}
    (directory / "au_model.json").write_text(json.dumps(spec))


def test_user_supplied_onnx_model(tmp_path, neutral):
    _user_model(tmp_path, ["AU01", "AU12"])
    estimator = load_au_estimator(tmp_path)
    result = estimator.predict(*_track(neutral))
    np.testing.assert_allclose(result["AU12_r"], 2.5)
    assert result["AU12_c"].tolist() == [1] * N
    assert np.isnan(result["AU04_r"]).all() and not result["AU04_c"].any()


def test_user_model_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="au_model.onnx"):
        load_au_estimator(tmp_path)
    _user_model(tmp_path, ["AU99"])
    with pytest.raises(ValueError, match="AU99"):
        load_au_estimator(tmp_path)
