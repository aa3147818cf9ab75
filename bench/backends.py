"""Per-frame cost of the face and body backends, and the storage cost of aligned face crops, on real videos.

python bench/backends.py faces VIDEO [--fps 5] [--backend mediapipe]   # ms per detect() call
python bench/backends.py body VIDEO [--fps 1]                          # ms per pose detect() call
python bench/backends.py crops VIDEO... [--fps 5]                      # JPEG bytes/error per quality
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tasks.body import load_body_backend
from tasks.crops import JPEG_QUALITY, align_face, append_crop, crop_columns, decode_jpeg, encode_jpeg
from tasks.decode import decode_frames, frame_times, open_video, plan_chunks
from tasks.faces import load_face_backend
from tasks.store import CROP_SCHEMA, table_from_columns, write_table_atomic


def sampled_frames(video: str, fps: float) -> list[tuple[int, float, np.ndarray]]:
    """(frame, timestamp, RGB pixels) of ``video`` on the pipeline's sampling grid at ``fps``."""
    reader = open_video(video)
    chunks = plan_chunks(frame_times(reader), fps, 10**6)
    stamps = {f: t for c in chunks for f, t in zip(c.frames, c.timestamps, strict=True)}
    return [(frame, stamps[frame], pixels) for frame, pixels in decode_frames(reader, tuple(stamps))]


def detect_time(backend, frames: list[tuple[int, float, np.ndarray]]) -> tuple[float, int]:
    """Mean seconds per ``detect`` call (after one warm-up call) and the frames with a detection."""
    backend.detect(frames[0][2])
    backend.reset()
    start = time.perf_counter()
    found = sum(len(backend.detect(pixels)) > 0 for _, _, pixels in frames)
    return (time.perf_counter() - start) / len(frames), found


def faces(video: str, fps: float, backend: str) -> None:
    frames = sampled_frames(video, fps)
    seconds, found = detect_time(load_face_backend(backend), frames)
    print(f"{backend}: {seconds * 1000:.1f} ms/frame, faces in {found}/{len(frames)} frames")


def body(video: str, fps: float) -> None:
    frames = sampled_frames(video, fps)
    seconds, found = detect_time(load_body_backend(), frames)
    print(f"mediapipe pose: {seconds * 1000:.1f} ms/frame, a person in {found}/{len(frames)} frames")


def crop_storage(videos: list[str], fps: float, qualities: tuple[int, ...] = (80, 90, 95)) -> None:
    """Print aligned-crop JPEG sizes and errors per quality, and Parquet bytes per crop row, on real videos."""
    backend = load_face_backend("mediapipe")
    columns = crop_columns()
    sizes: dict[int, list[int]] = {q: [] for q in qualities}
    errors: dict[int, list[float]] = {q: [] for q in qualities}
    for video in videos:
        backend.reset()
        for frame, timestamp, pixels in sampled_frames(video, fps):
            for index, face in enumerate(backend.detect(pixels)):
                crop = align_face(pixels, face.landmarks)
                for q in qualities:
                    data = encode_jpeg(crop, q)
                    sizes[q].append(len(data))
                    errors[q].append(float(np.abs(decode_jpeg(data).astype(int) - crop).mean()))
                append_crop(columns, frame, timestamp, index, face, pixels)
    for q in qualities:
        print(f"quality {q}: {np.mean(sizes[q]):.0f} B per crop, mean abs error {np.mean(errors[q]):.2f} grey levels")
    table = table_from_columns(columns, CROP_SCHEMA)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part-0.parquet"
        write_table_atomic(table, path)
        per_row = path.stat().st_size / max(table.num_rows, 1)
    hour = 3600 * fps * per_row / 2**20
    print(f"Parquet (quality {JPEG_QUALITY}, zstd): {table.num_rows} crops, {per_row:.0f} B per crop row, "
          f"{hour:.1f} MiB per face track per hour at {fps:g} fps")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    face_parser = sub.add_parser("faces")
    face_parser.add_argument("video")
    face_parser.add_argument("--fps", type=float, default=5.0)
    face_parser.add_argument("--backend", default="mediapipe")
    body_parser = sub.add_parser("body")
    body_parser.add_argument("video")
    body_parser.add_argument("--fps", type=float, default=1.0)
    crops_parser = sub.add_parser("crops")
    crops_parser.add_argument("videos", nargs="+")
    crops_parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.what == "faces":
        faces(args.video, args.fps, args.backend)
    elif args.what == "body":
        body(args.video, args.fps)
    else:
        crop_storage(args.videos, args.fps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
