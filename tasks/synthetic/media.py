"""Real face photos animated into short clips: the demo corpus and the tests' videos.

The photos ship inside pip packages this project installs, so a fresh machine has them offline:
``skimage.data.astronaut()`` (scikit-image; public-domain NASA portrait) and, when insightface is
installed, ``insightface/data/images/Tom_Hanks_54745.png`` (one face) and ``t1.jpg`` (a group of
six). Each clip pans, zooms, rotates a little and changes lighting, like a handheld lesson recording; the
teachers smile in the middle third of their clips (a FACS warp, :mod:`tasks.synthetic.facs_warp`).
Videos are H.264 written with PyAV (no system ffmpeg needed).
"""

import csv
import importlib.resources
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

SIZE = (640, 360)  # width, height of generated clips


def face_photos() -> dict[str, np.ndarray]:
    """Name → RGB uint8 photo of the face photos available in installed packages."""
    import skimage.data

    photos = {"astronaut": skimage.data.astronaut()}
    try:
        images = importlib.resources.files("insightface") / "data" / "images"
    except ModuleNotFoundError:
        return photos
    import cv2

    for name, filename in (("hanks", "Tom_Hanks_54745.png"), ("group", "t1.jpg")):
        bgr = cv2.imread(str(images / filename), cv2.IMREAD_COLOR)
        if bgr is not None:
            photos[name] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return photos


def animate(
    photo: np.ndarray,
    seconds: float,
    fps: float,
    seed: int = 0,
    size: tuple[int, int] = SIZE,
    photo_at: Callable[[float], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Frames of ``photo`` slowly panning, zooming (±8%), rotating (±6°) with changing lighting.

    ``photo_at(t)``, when given, is the photo at time ``t`` seconds (same size as ``photo``), e.g. a
    changing facial expression (:func:`smiling`)."""
    import cv2

    rng = np.random.default_rng(seed)
    width, height = size
    phase = rng.uniform(0, 2 * np.pi, size=4)
    base = min(width / photo.shape[1], height / photo.shape[0])
    for k in range(int(round(seconds * fps))):
        t = k / fps
        scale = base * (1.0 + 0.08 * np.sin(0.9 * t + phase[0]))
        angle = 6.0 * np.sin(0.7 * t + phase[1])
        shift = np.array([0.04 * width * np.sin(0.5 * t + phase[2]), 0.03 * height * np.sin(0.6 * t)])
        matrix = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), angle, scale)
        matrix[:, 2] += np.array([width / 2, height / 2]) + shift - np.array(photo.shape[1::-1]) / 2
        frame = cv2.warpAffine(
            photo if photo_at is None else photo_at(t),
            matrix,
            (width, height),
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(48, 48, 48),
        )
        gain = 0.85 + 0.2 * np.sin(0.8 * t + phase[3])
        yield np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray, height: int = 360) -> np.ndarray:
    """Two photos scaled to one height and placed next to each other (two people in one shot)."""
    import cv2

    scaled = [cv2.resize(p, (int(p.shape[1] * height / p.shape[0]), height)) for p in (left, right)]
    return np.concatenate(scaled, axis=1)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, codec: str = "libx264") -> Path:
    """Encode RGB frames to ``path`` (H.264, yuv420p) with PyAV; the same frames give the same bytes.

    libx264 runs with ``tune=zerolatency`` (no lookahead, no B-frames, no macroblock tree): with its defaults
    the same frames came out different now and then inside a process that had run MediaPipe (up to 47 grey
    levels apart once decoded; 30 of the 36 clips of ``tests/models/test_train.py``'s set between three
    encodings), and that test's held-out WAR with them (0.58-1.00). With it, three encodings of the set were
    byte-identical."""
    from fractions import Fraction

    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.codec_context.options = {"tune": "zerolatency"}
            frame = frame[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


SMILE = {"AU06": 3.0, "AU12": 4.0, "AU25": 1.0}  # a Duchenne smile, lips slightly parted (tasks.synthetic.facs_warp)


def smiling(
    photo: np.ndarray, seconds: float, start: float = 1 / 3, end: float = 2 / 3
) -> Callable[[float], np.ndarray]:
    """``photo_at`` for :func:`animate`: the photo's own expression, smiling (:data:`SMILE`, warped with
    :mod:`tasks.synthetic.facs_warp` on the landmarks our face backend finds) from ``start`` to ``end`` of the clip
    (fractions of ``seconds``), with a 0.5-s onset and offset. Unchanged when no face is found."""
    from tasks.extract.faces import load_face_backend
    from tasks.synthetic.facs_warp import FacsFace

    faces = load_face_backend("mediapipe").detect(np.ascontiguousarray(photo))
    if not faces:
        return lambda t: photo
    face = FacsFace(photo, faces[0].landmarks.astype(np.float64))
    levels = [face.render({au: value * k / 4 for au, value in SMILE.items()}) for k in range(5)]  # 0, 1/4 .. 1

    def photo_at(t: float) -> np.ndarray:
        level = np.clip(min(t - start * seconds, end * seconds - t) / 0.5, 0.0, 1.0)
        return levels[int(round(level * 4))]

    return photo_at


def write_clip(path: Path, frames, fps: float) -> Path:
    """Encode frames with :func:`write_video` (H.264), via a hidden name then renamed."""
    path = Path(path)
    tmp = write_video(path.with_name(f".{path.name}"), frames, fps)
    return tmp.rename(path)


def face_bases(backend=None, size: int = 360, max_group: int = 3) -> dict:
    """Neutral :class:`tasks.synthetic.facs_warp.FacsFace` of every pip-shipped photo (:func:`face_photos`): the
    astronaut, Tom Hanks, and up to ``max_group`` faces of the group photo (each cropped on its own)."""
    from tasks.extract.faces import load_face_backend
    from tasks.synthetic.facs_warp import neutral_face

    backend = backend or load_face_backend("mediapipe")
    bases = {}
    for name, photo in face_photos().items():
        if name != "group":
            bases[name] = neutral_face(photo, backend, size)
            continue
        backend.reset()
        faces = sorted(backend.detect(photo), key=lambda f: -(f.bbox[3] - f.bbox[1]))[:max_group]
        for k, face in enumerate(faces):
            centre, half = (face.bbox[:2] + face.bbox[2:]) / 2, 1.6 * float(face.bbox[3] - face.bbox[1])
            x1, y1 = (np.maximum(centre - half, 0)).astype(int)
            x2, y2 = (centre + half).astype(int)
            try:
                bases[f"group{k}"] = neutral_face(np.ascontiguousarray(photo[y1:y2, x1:x2]), backend, size)
            except ValueError:
                continue
    return bases


DEMO_CLIPS = (
    # file, photo(s), seconds, teacher, role, the teacher smiles mid-clip
    ("teacher_astronaut.mp4", ("astronaut",), 12.0, "t01", "teacher", True),
    ("teacher_hanks.mp4", ("hanks",), 8.0, "t02", "teacher", False),
    ("students_group.mp4", ("group",), 8.0, "t01", "students", False),
    ("pair_discussion.mp4", ("astronaut", "hanks"), 6.0, "t02", "students", False),
)
DEMO_STUDENTS = 12  # synthetic students per teacher session in the demo's outcomes file


def make_demo_corpus(folder: Path, fps: float = 25.0) -> list[Path]:
    """Write the demo clips (those whose photos are available) and a manifest.csv into ``folder``.

    Existing clips are kept, so running the demo twice shows a rerun that re-extracts nothing.
    """
    folder = Path(folder)
    photos = face_photos()
    written, manifest = [], []
    for index, (name, sources, seconds, teacher, role, smiles) in enumerate(DEMO_CLIPS):
        if not all(s in photos for s in sources):
            continue
        photo = photos[sources[0]] if len(sources) == 1 else side_by_side(*(photos[s] for s in sources))
        path = folder / name
        if not path.is_file():  # written under a hidden name, then renamed: never half a clip
            expression = smiling(photo, seconds) if smiles else None
            frames = animate(photo, seconds, fps, seed=index, photo_at=expression)
            tmp = write_video(folder / f".{name}", frames, fps)
            tmp.rename(path)
        written.append(path)
        manifest.append(
            {
                "path": name,
                "course": "demo",
                "session": f"s{index + 1:02d}",
                "teacher": teacher,
                "role": role,
                "lesson_type": "lecture",
            }
        )
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(manifest)
    return written


def write_demo_outcomes(path: Path, sessions: dict[str, bool], seed: int = 0) -> Path:
    """A clearly synthetic student-outcomes file for the demo's teacher sessions (``sessions``: session id ->
    whether its teacher smiles): :data:`DEMO_STUDENTS` students each, ``pretest`` ~ N(50, 10), and
    ``classroom_performance`` = 10 + 0.8 * pretest + 4 where the teacher smiles + N(0, 4) noise. Made up to
    show the analysis end to end; no real students, no finding."""
    rng = np.random.default_rng(seed)
    rows = []
    for session, smiles in sorted(sessions.items()):
        for k in range(DEMO_STUDENTS):
            pretest = rng.normal(50, 10)
            score = 10 + 0.8 * pretest + (4.0 if smiles else 0.0) + rng.normal(0, 4)
            rows.append({"student_id": f"{session}-synthetic-{k + 1:02d}", "session_id": session,
                         "pretest": round(pretest, 1), "classroom_performance": round(score, 1)})  # fmt: skip
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
