"""Dev material for identities: video-call galleries whose tiles reorder, a person leaving and coming back, two
people in one room; each with its ground truth (who is where, when).

People come from real recordings and photos: the clips of ``shared/media`` (one person each; CREMA-D's six clips
of one actor are played one after another) and the pip-shipped photos of :func:`tasks.synthetic.media.face_photos`
animated by :func:`tasks.synthetic.media.animate`. A clip shorter than needed plays forward then backward.

:func:`write_gallery` tiles several people in a grid with flat gaps, like a video-call app, and moves every
person to another tile at ``reorder_at`` seconds (a cyclic shift, so nobody keeps a tile); :func:`write_reentry`
shows one person, then an empty textured scene, then the same person elsewhere and larger; :func:`write_room`
puts two people next to each other with no gap (one scene, not a gallery); :func:`write_camera_move` shows four
small faces in a wide shot until the camera zooms and pans (OpenFace's multi-person sample moves its camera at
13 s: every box jumps, one person leaves the shot). Each returns :class:`Truth`;
:func:`true_person` names the person of a face row from its time and box centre.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from tasks.extract.decode import decode_frames, frame_times, open_video
from tasks.synthetic.media import animate, face_photos, write_clip

# person -> recording(s) under shared/media, played in order
RECORDINGS = {
    "wolfgang": ("pyfeat_WolfgangLanger_Pexels.mp4",),
    "kindel": ("metaloom_pexels-kindel-media-8164110.mp4",),
    "cremad": tuple(f"cremad/1001_DFA_{e}_XX.flv" for e in ("NEU", "HAP", "ANG", "SAD", "DIS", "FEA")),
    "selfie": ("pyfeat_single_face.mp4",),
}
PHOTOS = ("astronaut", "hanks")  # pip-shipped photos, animated
GAP = 8  # px between tiles
GAP_GREY = 30


@dataclass(frozen=True)
class Placement:
    """``person`` is shown in the rectangle x1, y1, x2, y2 (pixels) from ``start`` to ``end`` seconds."""

    person: str
    box: tuple[int, int, int, int]
    start: float
    end: float


@dataclass(frozen=True)
class Truth:
    path: str
    fps: float
    seconds: float
    placements: tuple[Placement, ...]

    def people(self) -> set[str]:
        return {p.person for p in self.placements}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))


def person_frames(person: str, media: Path, seconds: float, fps: float, size: tuple[int, int]) -> list[np.ndarray]:
    """``seconds × fps`` RGB frames of ``person`` (a key of :data:`RECORDINGS` or :data:`PHOTOS`) at ``size``
    (width, height): the recording resampled at ``fps`` (cut to the size's aspect, centred), ping-ponged."""
    n = int(round(seconds * fps))
    if person in PHOTOS:
        photos = face_photos()
        if person not in photos:
            raise ValueError(f"photo {person!r} is not installed (insightface ships hanks)")
        return list(animate(photos[person], seconds, fps, seed=len(person), size=size))
    if person not in RECORDINGS:
        raise ValueError(f"unknown person {person!r}; valid: {sorted([*RECORDINGS, *PHOTOS])}")
    source = []
    for name in RECORDINGS[person]:
        path = Path(media) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: recording of {person!r} not found (shared/media)")
        reader = open_video(path)
        times = frame_times(reader)
        picks = [int(np.nanargmin(np.abs(times - t))) for t in np.arange(0, np.nanmax(times), 1 / fps)]
        source += [_fit(pixels, size) for _, pixels in decode_frames(reader, tuple(picks))]
    loop = source + source[-2:0:-1]
    return [loop[k % len(loop)] for k in range(n)]


def _fit(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` cut to the aspect of ``size`` (centred) and resized to it."""
    width, height = size
    H, W = pixels.shape[:2]
    if W * height > H * width:
        keep = H * width // height
        pixels = pixels[:, (W - keep) // 2 : (W - keep) // 2 + keep]
    else:
        keep = W * height // width
        pixels = pixels[(H - keep) // 2 : (H - keep) // 2 + keep]
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _tiles(columns: int, rows: int, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    width, height = size
    w, h = (width - GAP * (columns + 1)) // columns, (height - GAP * (rows + 1)) // rows
    return [
        (GAP + c * (w + GAP), GAP + r * (h + GAP), GAP + c * (w + GAP) + w, GAP + r * (h + GAP) + h)
        for r in range(rows)
        for c in range(columns)
    ]


def write_gallery(
    path: Path,
    people: list[str],
    media: Path,
    seconds: float = 16.0,
    reorder_at: float = 8.0,
    grid: tuple[int, int] = (2, 2),
    size: tuple[int, int] = (960, 540),
    fps: float = 15.0,
) -> Truth:
    """A video-call gallery of ``people`` (columns × rows tiles); at ``reorder_at`` each person moves to the next
    tile (cyclic shift by one)."""
    tiles = _tiles(*grid, size)
    if len(people) > len(tiles):
        raise ValueError(f"{len(people)} people do not fit a {grid[0]}x{grid[1]} gallery")
    tile_size = (tiles[0][2] - tiles[0][0], tiles[0][3] - tiles[0][1])
    clips = {p: person_frames(p, media, seconds, fps, tile_size) for p in people}
    cut = int(round(reorder_at * fps))

    def frame_at(k: int) -> np.ndarray:
        canvas = np.full((size[1], size[0], 3), GAP_GREY, np.uint8)
        for i, person in enumerate(people):
            x1, y1, x2, y2 = tiles[(i + (k >= cut)) % len(people)]
            canvas[y1:y2, x1:x2] = clips[person][k]
        return canvas

    n = int(round(seconds * fps))
    write_clip(path, (frame_at(k) for k in range(n)), fps)
    placements = [
        Placement(person, tiles[(i + shift) % len(people)], start, end)
        for i, person in enumerate(people)
        for shift, (start, end) in enumerate(((0.0, cut / fps), (cut / fps, seconds)))
    ]
    return Truth(str(path), fps, seconds, tuple(placements))


def _texture(size: tuple[int, int], seed: int) -> np.ndarray:
    """A 'room': a diagonal colour gradient with fine grain (no flat column or row, so never a gallery; no
    blobs a face detector could take for a face)."""
    width, height = size
    rng = np.random.default_rng(seed)
    ramp = (np.arange(width)[None, :] / width + np.arange(height)[:, None] / height)[..., None]  # (H, W, 1)
    colour = np.array([70.0, 90.0, 110.0]) + 60.0 * ramp * np.array([1.0, 0.6, 0.3])
    return (colour + rng.normal(0, 6, (height, width, 3))).clip(0, 255).astype(np.uint8)


def _scene(
    path: Path, layers: list[tuple[str, tuple[int, int, int, int], float, float]], media: Path, seconds: float,
    fps: float, size: tuple[int, int],
) -> Truth:  # fmt: skip
    """``layers`` (person, box, start, end) pasted on a textured background."""
    background = _texture(size, seed=len(layers))
    clips = [person_frames(p, media, seconds, fps, (b[2] - b[0], b[3] - b[1])) for p, b, _, _ in layers]

    def frame_at(k: int) -> np.ndarray:
        canvas = background.copy()
        for (_, (x1, y1, x2, y2), start, end), clip in zip(layers, clips, strict=True):
            if start <= k / fps < end:
                canvas[y1:y2, x1:x2] = clip[k]
        return canvas

    write_clip(path, (frame_at(k) for k in range(int(round(seconds * fps)))), fps)
    return Truth(str(path), fps, seconds, tuple(Placement(p, b, s, e) for p, b, s, e in layers))


def write_reentry(path: Path, person: str, media: Path, size: tuple[int, int] = (960, 540), fps: float = 15.0) -> Truth:
    """``person`` at the left for 5 s, nobody for 3 s, then ``person`` at the right, larger, for 5 s."""
    layers = [(person, (40, 120, 400, 440), 0.0, 5.0), (person, (480, 60, 920, 450), 8.0, 13.0)]
    return _scene(path, layers, media, 13.0, fps, size)


def write_room(
    path: Path, people: tuple[str, str], media: Path, size: tuple[int, int] = (960, 540), fps: float = 15.0
) -> Truth:
    """Two people side by side in one scene, head and shoulders in view, for 8 s."""
    width, height = size
    left = (width // 16, height // 5, width * 7 // 16, height * 17 // 20)
    right = (width * 9 // 16, height // 5, width * 15 // 16, height * 17 // 20)
    layers = [(people[0], left, 0.0, 8.0), (people[1], right, 0.0, 8.0)]
    return _scene(path, layers, media, 8.0, fps, size)


def write_camera_move(
    path: Path, people: tuple[str, ...], media: Path, size: tuple[int, int] = (960, 540), fps: float = 15.0,
    move_at: float = 13.0, seconds: float = 20.0,
) -> Truth:  # fmt: skip
    """``people`` side by side in one room, small (a wide shot: each a 1/len(people) strip, faces of about 60 px),
    until the camera moves at ``move_at`` s: then everyone is shown 1.3× larger, shifted right and down, the
    rightmost person cut out of the shot (like OpenFace's multi-person sample)."""
    width, height = size
    n = len(people)
    strip = width // n
    before = [(k * strip + strip // 8, height // 3, (k + 1) * strip - strip // 8, height * 3 // 4) for k in range(n)]
    after = [
        (
            int(x1 * 1.3) + strip // 6,
            int(y1 * 1.3) - height // 5,
            int(x2 * 1.3) + strip // 6,
            int(y2 * 1.3) - height // 5,
        )
        for x1, y1, x2, y2 in before
    ]
    layers = [(person, box, 0.0, move_at) for person, box in zip(people, before, strict=True)]
    layers += [(person, box, move_at, seconds) for person, box in zip(people, after, strict=True) if box[2] <= width]
    return _scene(path, layers, media, seconds, fps, size)


def true_person(truth: Truth) -> Callable[[float, float, float], str | None]:
    """(timestamp, x, y) of a face centre → the person shown there then, or None."""

    def who(t: float, x: float, y: float) -> str | None:
        for p in truth.placements:
            x1, y1, x2, y2 = p.box
            if p.start <= t + 1e-6 < p.end and x1 <= x < x2 and y1 <= y < y2:
                return p.person
        return None

    return who


def purity(truth: Truth, timestamp, cx, cy, person_id) -> tuple[float, int, int]:
    """(purity, ids, rows): the share of face rows whose ``person_id`` holds mostly their true person, the
    number of distinct ids, and the rows that lie on a person (rows elsewhere are false detections)."""
    who = true_person(truth)
    names = [who(float(t), float(x), float(y)) for t, x, y in zip(timestamp, cx, cy, strict=True)]
    pairs = [(int(pid), name) for pid, name in zip(person_id, names, strict=True) if name is not None]
    best = 0
    for pid in {p for p, _ in pairs}:
        counts: dict[str, int] = {}
        for p, name in pairs:
            if p == pid:
                counts[name] = counts.get(name, 0) + 1
        best += max(counts.values())
    return (best / len(pairs) if pairs else float("nan")), len({p for p, _ in pairs}), len(pairs)
