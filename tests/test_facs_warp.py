"""FACS warps as controlled AU ground truth: the generator's geometry, and the AU estimator's response to
warped pip-shipped photos seen through the real face backend (tasks.extract.faces, MediaPipe)."""

import numpy as np
import pytest

from tasks.extract.action_units import load_au_estimator
from tasks.extract.faces import load_face_backend
from tasks.synthetic.facs_warp import FACS_MOVES, eye_frame, moved_landmarks, still, warp_points
from tasks.synthetic.media import face_bases

LEVELS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


@pytest.fixture(scope="module")
def backend():
    return load_face_backend("mediapipe")


@pytest.fixture(scope="module")
def bases(backend):
    return face_bases(backend)


def _measure(backend, frames, blendshapes: bool = False) -> dict[str, np.ndarray]:
    """AUs of a sequence of frames as one face track (population baseline: too short for the person's), by
    the geometric estimator (the fallback of faces without blendshapes), or with ``blendshapes`` by the
    default estimator as the pipeline runs it (with the infraorbital cheek heights too)."""
    faces = []
    for frame in frames:
        backend.reset()
        found = backend.detect(frame)
        assert found, "the warped face must still be found"
        faces.append(found[0])
    landmarks = np.stack([f.landmarks for f in faces]).astype(np.float64)
    pose = np.stack([f.pose for f in faces]).astype(np.float64)
    if not blendshapes:
        return load_au_estimator().predict(landmarks, pose, np.zeros(len(faces), int))
    shapes, cheeks = np.stack([f.blendshapes[1:] for f in faces]), np.array([f.infraorbital for f in faces])
    return load_au_estimator().predict(landmarks, pose, np.zeros(len(faces), int), shapes, cheeks)


def test_moves_follow_facs_directions_and_scale_linearly(bases):
    face = bases["astronaut"]
    u, v, iod = eye_frame(face.landmarks)
    for au, level in (("AU12", 5), ("AU12", 2.5)):
        moved = moved_landmarks(face.landmarks, {au: level})
        delta = (moved - face.landmarks) / iod
        for point, (du, dv) in FACS_MOVES[au].items():
            np.testing.assert_allclose([delta[point] @ u, delta[point] @ v], np.array([du, dv]) * level / 5, atol=1e-9)
    left_corner, right_corner = (moved_landmarks(face.landmarks, {"AU12": 5}) - face.landmarks)[[48, 54]] / iod
    assert left_corner @ u < 0 < right_corner @ u and left_corner @ v < 0 and right_corner @ v < 0  # up and out
    closed = moved_landmarks(face.landmarks, {"AU45": 5})
    aperture = np.abs((closed[[41, 40]] - closed[[37, 38]]) @ v).mean()
    assert aperture < 0.1 * np.abs((face.landmarks[[41, 40]] - face.landmarks[[37, 38]]) @ v).mean()
    with pytest.raises(ValueError, match="AU99"):
        moved_landmarks(face.landmarks, {"AU99": 1})


def test_warp_puts_source_points_on_targets_and_keeps_the_border(bases):
    """Bright dots at the lip corners and the chin of a face's landmarks land where AU12 + AU26 move them."""
    landmarks = bases["astronaut"].landmarks
    image = np.zeros((360, 360, 3), np.uint8)
    for x, y in landmarks[[48, 54, 8]].round().astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    target = moved_landmarks(landmarks, {"AU12": 5, "AU26": 5})
    warped = warp_points(image, landmarks, target)
    for x, y in target[[48, 54, 8]].round().astype(int):
        assert warped[y - 1 : y + 2, x - 1 : x + 2].max() > 128, (x, y)
    x, y = landmarks[8].round().astype(int)  # the chin moved down by far more than the dot's size
    assert warped[y, x].max() < 64
    np.testing.assert_array_equal(warped[:3], image[:3])


# Since the face backend moved to the Face Landmarker's Face Mesh V2 (for its blendshapes), the geometric
# AUs follow some warps only partly (measured): AU25 on the Hanks photo grows in order by 0.67 from level 0
# to 5; the group2 photo's mouth is open already (AU25 3.3 at level 0); the jaw drop warped onto group1 is
# not followed. These pairs are measured with the bound below or not at all.
WEAKLY_FOLLOWED = {("AU25", "hanks"): 0.5}
NOT_FOLLOWED = {("AU25", "group2"), ("AU26", "group1"), ("AU05", "group1"), ("AU05", "group2")}
"""Faces whose mesh does not follow that AU's warp (AU05: the two small faces of the group photo, whose lids
are a few pixels tall)."""


@pytest.mark.parametrize("au", ["AU05", "AU12", "AU25", "AU26"])
def test_warped_au_levels_are_measured_in_order_on_every_face(backend, bases, au):
    """Levels 0-5 of one AU on each pip-shipped face: the AU grows with the level (allowing 0.3 of noise
    between neighbouring levels) by at least one intensity point from level 0 to 5 (less where the mesh is
    known to follow the warp only partly, :data:`WEAKLY_FOLLOWED`)."""
    for name, face in bases.items():
        if (au, name) in NOT_FOLLOWED:
            continue
        values = _measure(backend, [face.render({au: level}) for level in LEVELS])[f"{au}_r"]
        assert values[-1] - values[0] > WEAKLY_FOLLOWED.get((au, name), 1.0), (name, values)
        assert np.all(np.diff(values) > -0.3), (name, values)


FOLLOWED_BY_DEFAULT = {
    "AU01": ("astronaut",),
    "AU02": ("astronaut",),
    "AU04": ("group0",),
    "AU06": ("group0", "group1"),
    "AU12": ("astronaut", "hanks", "group0", "group1", "group2"),
    "AU15": ("group0",),
    "AU45": ("astronaut", "group1"),
}
"""AU -> the photos on which the default estimator (Blendshape V2 coefficients, geometry for AU06/AU12) follows
that AU's warp. Measured on all five: Blendshape V2 does not move its brow coefficients for the brow warps
on Hanks and the three small faces of the group photo (one of which reads raised brows at every level),
raises browDown by only 0.7-0.9 points on Hanks and group2; the astronaut's own smile already raises her
infraorbital cheek (AU06 2.1 at every level: the warp moves her lower lids, not the cheek above the bone);
the lip-corner depressor warp moves the mesh's corners by more than the neutral tolerance only on group0;
the detector loses Hanks and group0 with their lids warped shut."""

TOP_LEVEL = {"AU45": 4.0}
"""AUs measured only up to this warp level: with the lids fully shut (AU45 level 5) Face Mesh V2 reads the
eyes as partly open again (measured: astronaut 1.9 at level 4, 1.4 at 5; group1 3.3, 2.2)."""


@pytest.mark.parametrize("au", list(FOLLOWED_BY_DEFAULT))
def test_default_estimator_measures_warped_levels_in_order_where_the_face_model_follows(backend, bases, au):
    """As above, through the default estimator with the faces' blendshapes (what a nightly run stores)."""
    levels = [level for level in LEVELS if level <= TOP_LEVEL.get(au, LEVELS[-1])]
    for name in FOLLOWED_BY_DEFAULT[au]:
        values = _measure(backend, [bases[name].render({au: level}) for level in levels], blendshapes=True)[f"{au}_r"]
        assert values[-1] - values[0] > 1.0, (name, values)
        assert np.all(np.diff(values) > -0.3), (name, values)


@pytest.mark.xfail(strict=True, reason="Face Mesh V2 does not follow the inner-brow warp on the Hanks photo")
def test_inner_brow_raise_is_measured_where_the_mesh_follows_it(backend, bases):
    values = _measure(backend, [bases["hanks"].render({"AU01": level}) for level in LEVELS])["AU01_r"]
    assert values[-1] - values[0] > 1.0 and np.all(np.diff(values) > -0.3), values


def test_lip_corner_puller_has_little_cross_talk(backend, bases):
    """AU12 at level 5: the corners go up and out; AU15 (corners down) and AU01/AU02/AU04 (brows) stay."""
    for name, face in bases.items():
        result = _measure(backend, [face.render({}), face.render({"AU12": 5})])
        assert result["AU12_r"][1] > result["AU12_r"][0] + 0.8, name
        for other in ("AU15", "AU01", "AU02", "AU04"):
            assert result[f"{other}_r"][1] - result[f"{other}_r"][0] < 0.6, (name, other)


def test_a_held_warped_smile_reads_as_au12(backend, bases):
    """A 2-s still of a smile (AU6+AU12, every frame identical) is a held expression, not a neutral face."""
    for name in ("hanks", "group1"):
        frames = list(still(bases[name], {"AU06": 3, "AU12": 5}, seconds=2.0, fps=10.0))
        assert len(frames) == 20
        neutral = _measure(backend, [bases[name].render({})] * 3)["AU12_r"]
        smile = _measure(backend, frames[:3])["AU12_r"]
        assert smile.min() >= 1.0, (name, smile)  # present (FACS trace level or more)
        assert smile.mean() > neutral.mean() + 0.8, name
