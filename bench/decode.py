"""Decode benchmark: our decoding (decord through tasks.extract.decode) vs `ffmpeg -threads 2 -f null`.

Both decode every frame of the same file on 2 cores. Ours decodes the way the pipeline does: the video
split into chunks, decoded by 2 worker processes with one decoding thread each, frames converted to RGB
arrays in memory; ffmpeg's null muxer discards its YUV frames. Runs alternate (ours, ffmpeg, ours, ...)
so machine noise hits both; the ratio of medians is reported.

A third column, ``sampled``, is what a nightly run actually decodes: the 5 fps samples of the whole video
(``plan_chunks`` + ``decode_frames``, two halves on the two processes), reported in source frames per
second, i.e. how fast the video is consumed.

    python bench/decode.py [VIDEO ...] [--repeats 5] [--json bench/out/decode.json]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from results import command_line, write_result  # bench/results.py

from tasks.extract.decode import decode_frames, frame_times, open_video, plan_chunks, probe

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
DEFAULT_VIDEOS = [
    MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4",
    MEDIA / "metaloom_pexels-kindel-media-8164110.mp4",
]


def decode_range(path: Path, start: int, stop: int) -> int:
    reader = open_video(path)
    return sum(1 for _ in decode_frames(reader, tuple(range(start, stop))))


def decode_sampled(path: Path, half: int) -> int:
    reader = open_video(path)
    chunks = plan_chunks(frame_times(reader), fps=5, chunk_seconds=1)
    frames = [f for chunk in chunks for f in chunk.frames]
    mine = tuple(frames[: len(frames) // 2] if half == 0 else frames[len(frames) // 2 :])
    return sum(1 for _ in decode_frames(reader, mine))


def sampled(pool: ProcessPoolExecutor, path: Path) -> float:
    start = time.perf_counter()
    list(pool.map(decode_sampled, [path, path], [0, 1]))
    return time.perf_counter() - start


def ours(pool: ProcessPoolExecutor, path: Path, n_frames: int) -> tuple[int, float]:
    start = time.perf_counter()
    half = n_frames // 2
    parts = pool.map(decode_range, [path, path], [0, half], [half, n_frames])
    return sum(parts), time.perf_counter() - start


def ffmpeg(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-threads", "2", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        check=True,
    )
    return time.perf_counter() - start


def bench(pool: ProcessPoolExecutor, path: Path, repeats: int, with_ffmpeg: bool = True) -> dict:
    reader = open_video(path)
    n_frames, info = len(reader), probe(reader)
    del reader
    ours(pool, path, n_frames)  # warm the page cache and the worker processes
    ours_s, ffmpeg_s, sampled_s = [], [], []
    for _ in range(repeats):
        ours_s.append(ours(pool, path, n_frames)[1])
        if with_ffmpeg:
            ffmpeg_s.append(ffmpeg(path))
        sampled_s.append(sampled(pool, path))
    o, f = statistics.median(ours_s), statistics.median(ffmpeg_s) if ffmpeg_s else None
    s = statistics.median(sampled_s)
    return {
        "video": path.name,
        "resolution": f"{info.width}x{info.height}",
        "video_fps": round(info.fps, 2),
        "frames": n_frames,
        "ours_fps": round(n_frames / o, 1),
        "ffmpeg_fps": round(n_frames / f, 1) if f else None,
        "ratio_ours_over_ffmpeg": round(f / o, 3) if f else None,
        "sampled_5fps_source_fps": round(n_frames / statistics.median(sampled_s), 1),
        "ratio_sampled_over_ffmpeg": round(f / s, 3) if f else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    with_ffmpeg = shutil.which("ffmpeg") is not None
    if not with_ffmpeg:
        print("ffmpeg not found (apt-get install -y ffmpeg): measuring ours only", file=sys.stderr)
    rows = []
    with ProcessPoolExecutor(2) as pool:
        for path in args.videos:
            rows.append(bench(pool, path, args.repeats, with_ffmpeg))
            print(json.dumps(rows[-1]), flush=True)
    conditions = {
        "ours": "2 processes x 1 decoding thread (decord), each half of the video, frames converted to RGB",
        "ffmpeg": "ffmpeg -threads 2 -f null (YUV frames discarded)" if with_ffmpeg else "not installed: not measured",
        "sampled": "plan_chunks + decode_frames at 5 fps, 2 processes",
        "repeats": args.repeats,
        "statistic": "median",
    }
    headline = {f"{r['video']}: ours / ffmpeg": r["ratio_ours_over_ffmpeg"] for r in rows}
    headline |= {f"{r['video']}: 5 fps samples / ffmpeg": r["ratio_sampled_over_ffmpeg"] for r in rows}
    if not with_ffmpeg:
        headline = {f"{r['video']}: ours, frames/s": r["ours_fps"] for r in rows}
    write_result(args.json, "decode", "Decoding: ours vs `ffmpeg -threads 2 -f null`", command_line(__file__, argv),
                 conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
