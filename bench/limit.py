"""The limit, measured: the bare MediaPipe calls of the face path vs the face path itself, in one run.

Same video, same sampled frames, same 2 processes (one per core), measured one after the other:

- ``limit``: the frames decoded beforehand (RGB arrays in shared memory-mapped files), then in each of 2
  processes only what MediaPipe must do per frame: BlazeFace full-range detection on the frame, the square
  crop around the best face and the Face Landmarker (mesh + blendshapes) on it: the calls
  ``tasks.extract.faces.MediaPipeFaceBackend`` makes, nothing else (no decoding, no Python post-processing, no
  tracking, AUs or Parquet). Both processes start together (a barrier) after a warm-up;
- ``face path``: ``bench/extract.py``'s face path on a 2-worker Dask LocalCluster (decode + detection +
  landmarks + pose + tracking + AUs + Parquet, no crops, no body), and the same with crops (the default);
- the pipeline's fraction of the limit = face-path rate / limit rate, per repeat (each face-path run over
  the limit run just before it), median over ``--repeats``;
- ``profile``: one chunk of the default face path (crops on) run in this process under cProfile, its time
  split into decode (decord + RGB conversion), MediaPipe (detection, landmarks), crops (alignment + JPEG),
  per-frame Python (result conversion, head pose, column appends), Parquet assembly and writes; and Dask's
  share: what the cluster adds to the chunks' own time (scheduling, transfers, waiting).

    python bench/limit.py [--seconds 60] [--repeats 3] [--json bench/out/limit.json]
"""

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster
from extract import SOURCE, dask_rate, ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py

from tasks.extract.decode import decode_frames, frame_times, open_video, plan_chunks
from tasks.extract.video import ChunkJob, ExtractParams, extract_chunk
from tasks.store import Store

WORKERS = 2
_STATE: dict = {}


def _load(frames_path: str, barrier) -> None:
    """Pool initializer: the face models of one process, warmed up on the first frame."""
    from tasks.extract.faces import MediaPipeFaceBackend

    backend = MediaPipeFaceBackend()
    frames = np.load(frames_path, mmap_mode="r")
    _STATE.update(backend=backend, frames=frames, barrier=barrier)
    bare_calls(backend, np.ascontiguousarray(frames[0]))


def bare_calls(backend, frame: np.ndarray) -> int:
    """The MediaPipe calls of the face path on one frame: full-range BlazeFace on the frame, then the Face
    Landmarker on the square crop around the best face (as MediaPipeFaceBackend.detect). Returns 1 for a face."""
    from tasks.extract.faces import _relative_box, _square_crop

    height, width = frame.shape[:2]
    found = backend._detector.process(frame).detections
    if not found:
        return 0
    box = _relative_box(found[0].location_data.relative_bounding_box, width, height)
    crop, _, _ = _square_crop(frame, box, backend.crop_scale, backend._CROP)
    result = backend._mesh.detect(backend._image(image_format=backend._format, data=crop))
    return int(bool(result.face_landmarks))


def _run_share(part: tuple[int, int]) -> tuple[float, float, int]:
    backend, frames = _STATE["backend"], _STATE["frames"]
    mine = [np.ascontiguousarray(frames[i]) for i in range(*part)]  # in memory before the clock starts
    _STATE["barrier"].wait()
    start = time.perf_counter()
    faces = sum(bare_calls(backend, frame) for frame in mine)
    return start, time.perf_counter(), faces


def limit_rate(video: Path, root: Path, fps: float) -> dict:
    """Frames per second of the bare MediaPipe calls on ``video``'s samples, one process per core."""
    reader = open_video(video)
    chunks = plan_chunks(frame_times(reader), fps, 10**6)
    wanted = tuple(f for c in chunks for f in c.frames)
    frames = np.stack([pixels for _, pixels in decode_frames(reader, wanted)])
    path = root / "frames.npy"
    np.save(path, frames)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    n = len(frames)
    parts = [(n * i // WORKERS, n * (i + 1) // WORKERS) for i in range(WORKERS)]
    with ctx.Pool(WORKERS, initializer=_load, initargs=(str(path), barrier)) as pool:
        spans = pool.map(_run_share, parts, chunksize=1)  # the barrier puts one share on each process
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return {"frames": n, "seconds": round(seconds, 2), "frames_per_s": round(n / seconds, 1),
            "frames_with_face": sum(f for _, _, f in spans)}  # fmt: skip


# where a chunk's time goes: cumulative seconds of these functions ("file:function"), summed per category
CATEGORIES = {
    "decode: decord + RGB conversion": ("decode.py:decode_chunk", "decode.py:open_video"),
    "MediaPipe detection (BlazeFace)": ("solution_base.py:process",),
    "MediaPipe landmarks (Face Landmarker)": ("face_landmarker.py:detect",),
    "mesh crop (warpAffine)": ("faces.py:_square_crop",),
    "crops: alignment + JPEG encoding": ("crops.py:append_crop",),
    "Parquet assembly and writes": ("schemas.py:table_from_columns", "files.py:write_table_atomic"),
    "per-frame Python: column appends": ("video.py:_append_face",),
}
BACKEND = "faces.py:detect"  # what the backend's detect costs beyond its MediaPipe calls and crop: Python


def profile_video(video: Path, root: Path, params: ExtractParams) -> dict:
    """The face path on ``video`` in this process, step by step (models loaded and warmed up first): seconds
    to probe and plan, of each chunk, of finalize; one chunk (the third) run under cProfile, its seconds per
    category of :data:`CATEGORIES` and the top of the profile as text."""
    from tasks.extract.discover import VideoRef, content_id
    from tasks.extract.video import finalize_video, plan_video
    from tasks.store import StepResult

    store = Store(root / "profile-store").ensure()
    ref = VideoRef(content_id(video), str(video), video.stat().st_size, 0)
    start = time.perf_counter()
    _, chunks, _ = plan_video(ref, params)
    plan = time.perf_counter() - start
    work = store.work_dir(ref.video_id, params.work_key())
    work.mkdir(parents=True, exist_ok=True)
    jobs = [ChunkJob(ref.video_id, str(video), chunk, params, work) for chunk in chunks]
    warm = ChunkJob(ref.video_id, str(video), chunks[0], params, root / "warm")
    warm.work_dir.mkdir()
    extract_chunk(warm)  # load and warm the models outside the measurements
    seconds, profiler = [], cProfile.Profile()
    for i, job in enumerate(jobs):
        start = time.perf_counter()
        profiler.runcall(extract_chunk, job) if i == 2 else extract_chunk(job)
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    finalize_video(ref.video_id, jobs, params, store, StepResult(ref.video_id, ref.path, "extract"))
    finalize = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    cumulative: dict[str, float] = {}
    for (filename, _, function), (_, _, _, spent, _) in stats.stats.items():
        key = f"{Path(filename).name}:{function}"
        cumulative[key] = cumulative.get(key, 0.0) + spent
    split = {name: sum(cumulative.get(k, 0.0) for k in keys) for name, keys in CATEGORIES.items()}
    inside = sum(split[k] for k in list(CATEGORIES)[1:4])  # detection, landmarks, mesh crop: all under detect
    split["per-frame Python: face results to arrays, head pose, overlaps"] = cumulative.get(BACKEND, 0.0) - inside
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return {"plan": plan, "chunks": seconds, "finalize": finalize, "split": split,
            "profiled": stats.total_tt, "frames": len(chunks[2].frames), "text": text.getvalue()}  # fmt: skip


def _chunk_side_by_side(arg: tuple[int, ChunkJob, str]) -> float:
    """In a limit pool process: extract one chunk with ``READ_AHEAD_BYTES`` = ``ahead``, started together with
    the other process (barrier); its seconds."""
    import shutil

    import tasks.extract.video

    ahead, job, tag = arg
    tasks.extract.video.READ_AHEAD_BYTES = ahead
    work = Path(f"{job.work_dir}-{tag}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    job = ChunkJob(job.video_id, job.path, job.chunk, job.params, work)
    _STATE["barrier"].wait()
    start = time.perf_counter()
    extract_chunk(job)
    return time.perf_counter() - start


def read_ahead_ab(video: Path, root: Path, repeats: int) -> list[dict]:
    """Seconds per chunk (default parameters: crops, body at 1 fps) of two processes side by side, decoding
    frame by frame with the decord reader open while the models run (``READ_AHEAD_BYTES`` = 0, as before)
    and decoding the chunk ahead with the reader closed first (the default), alternated; medians."""
    from tasks.extract.video import READ_AHEAD_BYTES

    params = ExtractParams()
    chunks = plan_chunks(frame_times(open_video(video)), params.fps, params.chunk_seconds)
    jobs = [ChunkJob("ab", str(video), chunks[i], params, root / f"ab{i}") for i in range(WORKERS)]
    np.save(root / "none.npy", np.zeros((1, 8, 8, 3), np.uint8))
    ctx = mp.get_context("spawn")
    modes = {"reader open while the models run (before)": 0, "chunk read ahead, reader closed (now)": READ_AHEAD_BYTES}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    with ctx.Pool(WORKERS, initializer=_load, initargs=(str(root / "none.npy"), ctx.Barrier(WORKERS))) as pool:
        pool.map(_chunk_side_by_side, [(0, job, "warm") for job in jobs], chunksize=1)
        for r in range(repeats):
            for name, ahead in modes.items():
                done = pool.map(_chunk_side_by_side, [(ahead, job, f"{r}-{ahead}") for job in jobs], chunksize=1)
                seconds[name].append(max(done))
    return [{"what": f"one chunk in each of {WORKERS} processes side by side: {name}",
             "seconds": round(sorted(v)[len(v) // 2], 2), "seconds_each_run": [round(x, 2) for x in v]}
            for name, v in seconds.items()]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test video")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs of each; the median is reported")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    params = ExtractParams(body_fps=0, keep_crops=False)
    conditions = {"video": f"{SOURCE.name} played forwards and backwards to {args.seconds:g} s", "faces": 1,
                  "resolution": "640x360", "fps": params.fps, "processes": WORKERS, "chunk_seconds": 10,
                  "face_backend": "mediapipe (BlazeFace full range + Face Landmarker)"}  # fmt: skip
    print(json.dumps(conditions), flush=True)
    runs: dict[str, list[dict]] = {"limit": [], "face": [], "crops": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = ping_pong(SOURCE, root / "single_face_360p.mp4", args.seconds)
        limit_rate(video, root, params.fps)  # page cache, MediaPipe files
        with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                dask_rate(client, video, ExtractParams(), root)  # every worker loads its models
                for _ in range(args.repeats):  # alternated, so that other load on the machine hits all three
                    runs["limit"].append(limit_rate(video, root, params.fps))
                    runs["face"].append(dask_rate(client, video, params, root))
                    runs["crops"].append(dask_rate(client, video, ExtractParams(body_fps=0), root))
                    for name, done in runs.items():
                        print(json.dumps({name: done[-1]}), flush=True)
        rows = []
        for name, what, crops in (
            ("limit", "limit: bare MediaPipe calls on decoded frames (detection + Face Landmarker)", False),
            ("face", "face path: decode + detection + landmarks + pose + tracking + AUs + Parquet", False),
            ("face", "face path + aligned crops (the default)", True),
        ):
            done = runs["crops" if crops else name]
            median = sorted(done, key=lambda r: r["seconds"])[len(done) // 2]
            rows.append({"what": what, "crops": crops, "body_fps": 0, **median,
                         "frames_per_s_each_run": [r["frames_per_s"] for r in done]})  # fmt: skip
        limit = rows[0]
        for row, name in zip(rows, ("limit", "face", "crops"), strict=True):
            # paired: each run over the limit measured just before it, then the median of those ratios
            paired = [r["frames_per_s"] / b["frames_per_s"] for r, b in zip(runs[name], runs["limit"], strict=True)]
            row["fraction_of_limit"] = round(sorted(paired)[len(paired) // 2], 3)
            row["fraction_each_run"] = [round(f, 3) for f in paired]
        steps = profile_video(video, root, ExtractParams(body_fps=0))
        ab = read_ahead_ab(video, root, args.repeats)
    for row in ab:
        print(json.dumps(row), flush=True)
    total = steps["profiled"]
    profile = [{"where": f"one chunk ({steps['frames']} frames, under cProfile): {name}", "seconds": round(t, 3),
                "share": round(t / total, 3)} for name, t in steps["split"].items()]  # fmt: skip
    rest = total - sum(steps["split"].values())
    profile.append({"where": "one chunk: other (fragment bookkeeping, small calls)", "seconds": round(rest, 3),
                    "share": round(rest / total, 3)})  # fmt: skip
    for row in ab:
        profile.append({"where": row["what"] + f" (median of {args.repeats})", "seconds": row["seconds"],
                        "share": round(row["seconds"] / ab[0]["seconds"], 3)})  # fmt: skip
    chunks = steps["chunks"]
    ideal = steps["plan"] + sum(chunks) / WORKERS + steps["finalize"]
    wall = rows[2]["seconds"]
    stage, work = rows[2]["chunk_stage_s"], rows[2]["chunk_work_s"]
    video_rows = [
        ("whole video, one process: probe and plan (frame times of the whole video)", steps["plan"]),
        (f"whole video, one process: {len(chunks)} chunks one after the other (mean {sum(chunks) / len(chunks):.2f} s)",
         sum(chunks)),
        ("whole video, one process: finalize (tracking, AUs, partitions)", steps["finalize"]),
        (f"whole video, expected on {WORKERS} workers: probe + chunks / {WORKERS} + finalize", ideal),
        ("whole video, measured on the Dask cluster (face path + crops)", wall),
        ("cluster minus expected (by difference)", wall - ideal),
        (f"on the cluster: the chunks' own time in the workers, summed ({rows[2]['chunks']} chunks)", work),
        (f"on the cluster: chunk stage wall time x {WORKERS} workers", stage * WORKERS),
    ]  # fmt: skip
    for name, t in video_rows:
        profile.append({"where": name, "seconds": round(t, 3), "share": round(t / wall, 3)})
    for row in profile:
        print(json.dumps(row), flush=True)
    text = steps["text"]
    print(text)
    out = Path(args.json) if args.json else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.stem + "-profile.txt").write_text(text)
    headline = {"face path / limit": rows[1]["fraction_of_limit"], "with crops / limit": rows[2]["fraction_of_limit"],
                "limit frames/s": limit["frames_per_s"]}  # fmt: skip
    write_result(out, "limit", "The limit: bare MediaPipe calls vs the face path, 2 processes",
                 command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
    if out is not None:  # the profile: a second table in its own file
        write_result(out.with_name("limit-profile.json"), "limit-profile",
                     "Where the face path's time goes (crops on): one chunk under cProfile; the whole video by step",
                     command_line(__file__, argv), conditions | {"crops": True}, profile)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
