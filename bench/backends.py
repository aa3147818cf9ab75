"""Per-frame cost of the face and body backends, and the storage cost of aligned face crops, on real videos.

python bench/backends.py faces VIDEO [--fps 5] [--backend mediapipe]   # ms per detect() call
python bench/backends.py body VIDEO [--fps 1]                          # ms per pose detect() call
python bench/backends.py crops VIDEO... [--fps 5]                      # JPEG bytes/error per quality

Each takes ``--json PATH`` to write its result for bench/run.py.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from results import command_line, write_result  # bench/results.py

from models.layout import JPEG_QUALITY, decode_jpeg, encode_jpeg
from tasks.extract.body import load_body_backend
from tasks.extract.crops import align_face, append_crop, crop_columns
from tasks.extract.decode import decode_frames, frame_times, open_video, plan_chunks, probe
from tasks.extract.faces import load_face_backend
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


def conditions(video: str, fps: float) -> dict:
    info = probe(open_video(video))
    return {"video": Path(video).name, "resolution": f"{info.width}x{info.height}", "sampling_fps": fps}


def faces(video: str, fps: float, backend: str) -> dict:
    frames = sampled_frames(video, fps)
    seconds, found = detect_time(load_face_backend(backend), frames)
    print(f"{backend}: {seconds * 1000:.1f} ms/frame, faces in {found}/{len(frames)} frames")
    row = {"backend": backend, "what": "detect + landmarks + pose + blendshapes", "frames": len(frames),
           "frames_with_face": found, "ms_per_frame": round(seconds * 1000, 2)}  # fmt: skip
    return {"title": "Face backend: ms per frame, one process", "rows": [row],
            "headline": {f"{backend} ms/frame": row["ms_per_frame"]}}  # fmt: skip


def body(video: str, fps: float) -> dict:
    frames = sampled_frames(video, fps)
    seconds, found = detect_time(load_body_backend(), frames)
    print(f"mediapipe pose: {seconds * 1000:.1f} ms/frame, a person in {found}/{len(frames)} frames")
    row = {"backend": "mediapipe pose", "frames": len(frames), "frames_with_person": found,
           "ms_per_frame": round(seconds * 1000, 2)}  # fmt: skip
    return {"title": "Body backend: ms per frame, one process", "rows": [row],
            "headline": {"pose ms/frame": row["ms_per_frame"]}}  # fmt: skip


def crop_storage(videos: list[str], fps: float, qualities: tuple[int, ...] = (80, 90, 95)) -> dict:
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
    rows = []
    for q in qualities:
        print(f"quality {q}: {np.mean(sizes[q]):.0f} B per crop, mean abs error {np.mean(errors[q]):.2f} grey levels")
        rows.append({"jpeg_quality": q, "crops": len(sizes[q]), "bytes_per_crop": round(float(np.mean(sizes[q]))),
                     "mean_abs_error_grey": round(float(np.mean(errors[q])), 2)})  # fmt: skip
    table = table_from_columns(columns, CROP_SCHEMA)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part-0.parquet"
        write_table_atomic(table, path)
        per_row = path.stat().st_size / max(table.num_rows, 1)
    hour = 3600 * fps * per_row / 2**20
    print(f"Parquet (quality {JPEG_QUALITY}, zstd): {table.num_rows} crops, {per_row:.0f} B per crop row, "
          f"{hour:.1f} MiB per face track per hour at {fps:g} fps")  # fmt: skip
    for row in rows:
        row["parquet_bytes_per_row"] = round(per_row) if row["jpeg_quality"] == JPEG_QUALITY else None
    return {"title": "Aligned face crops: storage per crop", "rows": rows,
            "headline": {f"Parquet bytes per crop row (q{JPEG_QUALITY})": round(per_row),
                         "MiB per face track per hour": round(hour, 1)}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="write the result here (bench/run.py reads it)")
    face_parser = sub.add_parser("faces", parents=[common])
    face_parser.add_argument("video")
    face_parser.add_argument("--fps", type=float, default=5.0)
    face_parser.add_argument("--backend", default="mediapipe")
    body_parser = sub.add_parser("body", parents=[common])
    body_parser.add_argument("video")
    body_parser.add_argument("--fps", type=float, default=1.0)
    crops_parser = sub.add_parser("crops", parents=[common])
    crops_parser.add_argument("videos", nargs="+")
    crops_parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.what == "faces":
        result = faces(args.video, args.fps, args.backend)
    elif args.what == "body":
        result = body(args.video, args.fps)
    else:
        result = crop_storage(args.videos, args.fps)
    videos = [args.video] if args.what != "crops" else args.videos
    conds = [conditions(v, args.fps) for v in videos]
    merged = {k: ", ".join(str(c[k]) for c in conds) for k in ("video", "resolution")} | {"sampling_fps": args.fps}
    write_result(args.json, f"backends-{args.what}", result["title"], command_line(__file__, argv), merged,
                 result["rows"], result["headline"])  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
