"""Cost of the default emotion stream (face-api.js's expression net) on the face path, CPU, one process.

The input is the single-face 640×360 clip played forwards and backwards (``bench/extract.py``'s ``ping_pong``)
to ``--seconds`` (default 30) at 5 fps. Measured in one run, in one process (torch at its default threads):

- ``extract``: decode + faces + tracking + AUs + aligned crops kept (the defaults without body), once;
- ``rules``: the AU-rule stream (``emotion_rules``) over the video's windows, what ``emotion`` cost before;
- ``net``: the expression net (``emotion``) from the stored crops: JPEG decode, one forward pass per face in
  batches of ``DEFAULT_BATCH_FACES`` on one torch thread, window means, Parquet; its one-time load apart;
- ``forward``: the net's forward pass alone on the same crops, batched, one thread, per face;
- ``net, 2 threads``: ``net`` on two torch threads, as inference runs it when one batch of videos has the cluster
  to itself (``flows.engine.infer_on_dask``: one long video on two workers).

``rules`` and ``net`` alternate ``--repeats`` times (median). Face path frames/s without the net =
frames / (extract + rules); with it = frames / (extract + rules + net), as a default run now computes both
streams.

    python bench/expression_net.py [--seconds 30] [--repeats 3] [--json bench/out/expression_net.json]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from extract import SOURCE, ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py

from models.faceapi import load_expression_net
from models.layout import decode_jpeg
from tasks.extract.discover import VideoRef, content_id
from tasks.extract.video import ExtractParams, extract_chunk, extract_video
from tasks.predict.inference import DEFAULT_BATCH_FACES, infer_videos
from tasks.store import Store


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()[0]  # other work on the machine slows torch far more than MediaPipe
    with tempfile.TemporaryDirectory(prefix="lessonlens-bench-net-") as tmp:
        video = ping_pong(SOURCE, Path(tmp) / "video.mp4", args.seconds)
        store = Store(Path(tmp) / "store").ensure()
        video_id = content_id(video)
        ref = VideoRef(video_id, str(video), video.stat().st_size, 0)
        start = time.perf_counter()
        result = extract_video(ref, ExtractParams(body_fps=0, keep_crops=True), store,
                               lambda jobs: list(map(extract_chunk, jobs)))  # fmt: skip
        extract_s = time.perf_counter() - start
        assert result.status == "ok", result.message
        frames, faces = result.counts["sampled_frames"], result.counts["face_rows"]
        load_s = timed(load_expression_net)
        first_s = timed(lambda: infer_videos(store, [video_id], "emotion"))  # loads the net once per process
        rules_s, net_s, net2_s = [], [], []
        for _ in range(args.repeats):
            rules_s.append(timed(lambda: infer_videos(store, [video_id], "emotion_rules")))
            net_s.append(timed(lambda: infer_videos(store, [video_id], "emotion")))
            net2_s.append(timed(lambda: infer_videos(store, [video_id], "emotion", threads=2)))
        crops = pq.read_table(store.partition("crops", video_id), columns=["jpeg"])["jpeg"].to_pylist()
        x = torch.from_numpy(np.stack([decode_jpeg(j) for j in crops])).permute(0, 3, 1, 2).float()
        x = x.contiguous(memory_format=torch.channels_last)  # as the pipeline runs it
        net = load_expression_net().to(memory_format=torch.channels_last)
        forward_s = []
        torch.set_num_threads(1)  # as the pipeline runs it on CPU
        with torch.inference_mode():
            for _ in range(args.repeats):
                forward_s.append(timed(lambda: [net(b) for b in x.split(DEFAULT_BATCH_FACES)]))
    rules, infer = statistics.median(rules_s), statistics.median(net_s)
    without, with_net = frames / (extract_s + rules), frames / (extract_s + rules + infer)
    figures = {
        "frames": frames,
        "faces": faces,
        "extract_s": round(extract_s, 2),
        "extract_ms_per_face": round(1e3 * extract_s / faces, 1),
        "rules_s": round(rules, 3),
        "net_s": round(infer, 3),
        "net_ms_per_face": round(1e3 * infer / faces, 2),
        "net_ms_per_face_2_threads": round(1e3 * statistics.median(net2_s) / faces, 2),
        "forward_ms_per_face": round(1e3 * statistics.median(forward_s) / len(crops), 2),
        "net_load_s": round(load_s, 2),
        "first_net_call_s": round(first_s, 2),
        "face_path_fps_without_net": round(without, 1),
        "face_path_fps_with_net": round(with_net, 1),
        "ratio_with_over_without": round(with_net / without, 3),
    }
    conditions = {"video": f"{SOURCE.name} ping-pong to {args.seconds:g} s", "fps": 5, "process": "one, in process",
                  "torch_threads": torch.get_num_threads(), "batch_faces": DEFAULT_BATCH_FACES,
                  "repeats": args.repeats, "statistic": "median", "load_average_at_start": round(load_at_start, 1),
                  "load_average_at_end": round(os.getloadavg()[0], 1)}  # fmt: skip
    for key, value in figures.items():
        print(f"{key}: {value}")
    headline = {"face path with / without the net": figures["ratio_with_over_without"],
                "net ms per face": figures["net_ms_per_face"]}  # fmt: skip
    write_result(args.json, "expression_net", "Expression net: cost on the face path, CPU",
                 command_line(__file__, argv), conditions, [figures], headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
