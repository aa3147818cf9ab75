"""Extraction benchmark: analysed frames per second on 2 Dask workers, single-face 360p video at 5 fps.

The input is a real single-face 640×360 clip (``pyfeat_WolfgangLanger_Pexels.mp4``) played forwards
and backwards into a longer video (``--seconds``, default 120 s) so that the rate is measured over
hundreds of frames. Measurements in one run, on the same machine:

- ``face path``: decode + detection + landmarks + pose + tracking + AUs + Parquet (no crops, no body),
  chunks mapped over a 2-worker LocalCluster with plain Dask (workers warmed up first);
- ``+ crops``: the same, keeping aligned face crops (the default);
- ``+ body``: the defaults: crops and body keypoints at ``--body-fps`` (default 1);
- ``lessonlens run``: the whole CLI (Prefect API start, cluster start, discovery, catalog, rule-baseline
  predictions) on the same video with the defaults, wall time end to end.

    python bench/extract.py [--seconds 120] [--body-fps 1] [--json bench/out/extract.json]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster
from results import command_line, write_result  # bench/results.py

from tasks.extract.decode import open_video
from tasks.extract.discover import VideoRef, content_id
from tasks.extract.video import ExtractParams, extract_chunk, extract_video
from tasks.store import Store
from tasks.synthetic.media import write_video

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SOURCE = MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4"


def ping_pong(source: Path, target: Path, seconds: float, start: int = 0) -> Path:
    """A longer real video: the source's frames forwards, backwards, forwards… at its frame rate, from its
    ``start``-th frame of that sequence."""
    reader = open_video(source)
    fps = reader.get_avg_fps()
    frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    n = int(seconds * fps)
    return write_video(target, (frames[order[(start + i) % len(order)]] for i in range(n)), fps)


def dask_rate(client: Client, video: Path, params: ExtractParams, root: Path) -> dict:
    """Extract ``video`` with its chunks mapped over ``client``'s workers: frames, seconds and frames/s; also
    the seconds the chunks spent in the workers (summed) and the wall time of the chunk stage."""
    store = Store(root / f"store-{params.key()}-{time.monotonic_ns()}").ensure()
    ref = VideoRef(content_id(video), str(video), video.stat().st_size, 0)
    chunks: dict = {}

    def run_chunks(jobs):
        start = time.perf_counter()
        done = client.gather(client.map(extract_chunk, jobs, pure=False))
        chunks.update(wall=time.perf_counter() - start, work=sum(r.seconds for r in done), n=len(done))
        return done

    start = time.perf_counter()
    result = extract_video(ref, params, store, run_chunks)
    seconds = time.perf_counter() - start
    assert result.status == "ok", result.message
    return {
        "frames": result.counts["sampled_frames"],
        "seconds": round(seconds, 2),
        "frames_per_s": round(result.counts["sampled_frames"] / seconds, 1),
        "face_rows": result.counts["face_rows"],
        "chunks": chunks["n"],
        "chunk_stage_s": round(chunks["wall"], 2),
        "chunk_work_s": round(chunks["work"], 2),
    }


def cli_rate(video: Path, root: Path) -> dict:
    from flows.cli import main

    corpus = root / "corpus"
    corpus.mkdir(exist_ok=True)
    shutil.copy(video, corpus / video.name)
    start = time.perf_counter()
    code = main(["run", str(corpus), "--store", str(root / "cli-store"), "--workers", "2"])
    seconds = time.perf_counter() - start
    assert code == 0
    from tasks.analyse.warehouse import run_query

    frames = run_query(Store(root / "cli-store"), "select sum(sampled_frames)::bigint as n from videos").to_pylist()[0][
        "n"
    ]
    return {"frames": frames, "seconds": round(seconds, 2), "frames_per_s": round(frames / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--body-fps", type=float, default=1.0)
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    conditions = {"video": f"{SOURCE.name} played forwards and backwards to {args.seconds:g} s", "faces": 1,
                  "resolution": "640x360", "fps": ExtractParams.fps, "workers": 2, "chunk_seconds": 10,
                  "face_backend": "mediapipe (BlazeFace full range + Face Landmarker)"}  # fmt: skip
    print(json.dumps(conditions), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = ping_pong(SOURCE, root / "single_face_360p.mp4", args.seconds)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                warmup = ping_pong(SOURCE, root / "warmup.mp4", 20)
                dask_rate(client, warmup, ExtractParams(), root)  # load the models in both workers
                face = dask_rate(client, video, ExtractParams(body_fps=0, keep_crops=False), root)
                rows.append({"what": "face path: decode + detection + landmarks + pose + tracking + AUs + Parquet",
                             "crops": False, "body_fps": 0, **face})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
                crops = dask_rate(client, video, ExtractParams(body_fps=0), root)
                rows.append({"what": "+ aligned face crops kept (the default)", "crops": True, "body_fps": 0, **crops})
                print(json.dumps(rows[-1]), flush=True)
                body = dask_rate(client, video, ExtractParams(body_fps=args.body_fps), root)
                rows.append({"what": f"+ body keypoints at {args.body_fps:g} fps (the default)", "crops": True,
                             "body_fps": args.body_fps, **body})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
        run = cli_rate(video, root)
        rows.append({"what": "`lessonlens run` end to end (Prefect API start, cluster start, catalog, "
                     "rule-baseline predictions)", "crops": True, "body_fps": args.body_fps, **run})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    headline = {"face path frames/s": rows[0]["frames_per_s"], "with crops and body frames/s": rows[2]["frames_per_s"],
                "lessonlens run frames/s": rows[3]["frames_per_s"]}  # fmt: skip
    write_result(args.json, "extract", "Extraction: analysed frames per second, 2 workers",
                 command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
