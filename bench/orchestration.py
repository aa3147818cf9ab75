"""Orchestration overhead: `lessonlens run` on a corpus vs plain Dask over the same chunks, in one run.

The corpus: ``--videos`` videos (default 6) of the real single-face 640×360 clip played forwards and backwards
(``bench/extract.py``), ``--minutes`` of video in all (default 30), each starting at another frame of the source
so that no two have the same content. Alternated ``--repeats`` times (default 2), each on a fresh store:

- ``A``: ``lessonlens run CORPUS --store S`` with the defaults (fps 5, crops, body at 1 fps, one worker per
  core), a fresh process as a user starts it, wall time from its start to its exit: imports, the no-work
  check, the temporary Prefect API, discovery, the Dask cluster, one Prefect task per video mapping its chunks
  over the cluster, the catalog, the rule-baseline predictions, crop retention, the run's records, shutdown;
- ``B``: plain Dask, in this process: a LocalCluster made with the run's own cluster arguments
  (``flows.engine.task_runner``), then for every video (hashed for its id as discovery does) one Dask task
  running what the flow's video task runs, ``tasks.extract.video.extract_video`` (probe, chunk plan, the chunks
  mapped over the cluster from the worker with ``flows.engine.map_on_cluster``, finalize: tracks, AUs, the
  frames, body and crops partitions) with the same parameters: no Prefect, no catalog, no predictions. Wall
  time from the cluster's start to the last partition written (the cluster's close is measured, not counted);
- ``A / B`` per repeat, the median reported; and where A's time goes, from the lines its log prints as they
  arrive (A's timeline), next to B's.

    python bench/orchestration.py [--minutes 30] [--videos 6] [--repeats 2] [--json bench/out/orchestration.json]
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from distributed import Client
from extract import SOURCE, ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py
from scaling import PROGRESS  # bench/scaling.py
from small_jobs import CLI, environment, warm_prefect_home  # bench/small_jobs.py

from flows.engine import local_cluster, map_on_cluster, task_runner
from tasks.extract.discover import VideoRef, content_id
from tasks.extract.video import ExtractParams, extract_chunk, extract_video
from tasks.store import Store

HERE = Path(__file__).resolve().parent
# A's timeline: (step, the log line that ends it, whether its last occurrence counts rather than its first)
MARKS = [
    ("imports, parameter checks, no-work check", r"Starting temporary server", False),
    ("temporary Prefect API start, flow run created", r"Beginning flow run", False),
    ("subflow, discovery (hashing), catalog read", r"\d+ videos in .* to extract", False),
    ("Dask cluster start", r"Dask dashboard is available", False),
    ("extraction: video tasks, chunks, catalog rows (to the last video recorded)", r"progress: ", True),
    ("rule-baseline predictions, retention, run record, catalog compaction", r"run \w+: \{", False),
    ("artifacts, cluster close, flow runs finished", r"Stopping temporary server", False),
    ("temporary API stop, process exit", None, False),
]


def corpus_videos(folder: Path, minutes: float, videos: int) -> list[Path]:
    seconds = minutes * 60 / videos
    return [ping_pong(SOURCE, folder / f"lesson{k:02d}.mp4", seconds, 7 * k) for k in range(videos)]


def run_a(corpus: Path, store: Path, prefect_home: Path) -> dict:
    """One ``lessonlens run`` process: wall seconds, frames analysed, seconds spent per step of :data:`MARKS`."""
    command = [sys.executable, "-c", CLI, "run", str(corpus), "--store", str(store)]
    env = environment(HERE.parent, prefect_home) | {"PREFECT_LOGGING_LEVEL": "INFO"}
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    for line in process.stdout:
        lines.append((time.perf_counter() - start, line))
    process.wait()
    seconds = time.perf_counter() - start
    output = "".join(line for _, line in lines)
    if process.returncode != 0:
        raise RuntimeError(f"lessonlens run failed ({process.returncode}):\n{output[-3000:]}")
    marks = [0.0]
    for _, pattern, last in MARKS:
        found = [t for t, line in lines if pattern and re.search(pattern, line)] or [seconds]
        marks.append(found[-1] if last else found[0])
    steps = {name: marks[i + 1] - marks[i] for i, (name, _, _) in enumerate(MARKS)}
    return {"seconds": seconds, "frames": int(PROGRESS.findall(output)[-1][2]), "steps": steps}


def run_b(videos: list[Path], store: Path) -> dict:
    """Plain Dask over the videos' chunks (the module docstring's ``B``): wall seconds, frames, steps."""
    params = ExtractParams()  # the run's defaults (no manifest: every video keeps its crops)
    cluster_kwargs = task_runner().cluster_kwargs
    start = time.perf_counter()
    with local_cluster(**cluster_kwargs) as cluster, Client(cluster) as client:
        up = time.perf_counter()
        st = Store(store).ensure()
        run_chunks = partial(map_on_cluster, extract_chunk)  # what the flow's video task passes
        refs = [VideoRef(content_id(v), str(v), v.stat().st_size, 0) for v in videos]
        results = client.gather([client.submit(extract_video, ref, params, st, run_chunks, pure=False) for ref in refs])
        written = time.perf_counter()
    closed = time.perf_counter()
    failed = [r.path for r in results if r.status != "ok"]
    if failed:
        raise RuntimeError(f"plain Dask failed on {failed}")
    steps = {"Dask cluster start": up - start, "extract_video per video (to the last partition written)": written - up,
             "cluster close (not counted)": closed - written}  # fmt: skip
    frames = sum(r.counts["sampled_frames"] for r in results)
    return {"seconds": written - start, "frames": frames, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of video in the corpus, all videos")
    parser.add_argument("--videos", type=int, default=6, help="videos the corpus is split into")
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each; the median is reported")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = corpus_videos(root / "corpus", args.minutes, args.videos)
        print(f"{len(videos)} videos made in {root / 'corpus'}", flush=True)
        home = root / "prefect"
        warm_prefect_home(home)
        for r in range(args.repeats):
            sides = ("A", "B") if r % 2 == 0 else ("B", "A")  # alternated, so that other load hits both
            for side in sides:
                store = root / f"store-{side}-{r}"
                done = run_a(root / "corpus", store, home) if side == "A" else run_b(videos, store)
                runs[side].append(done)
                print(json.dumps({side: done}), flush=True)
    for a, b in zip(runs["A"], runs["B"], strict=True):
        assert a["frames"] == b["frames"], (a["frames"], b["frames"])
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["A"], runs["B"], strict=True)]
    rows = []
    for side, what in (("A", "A: `lessonlens run CORPUS --store S`, process start to exit"),
                       ("B", "B: plain Dask, cluster start to the last partition written")):  # fmt: skip
        seconds = [d["seconds"] for d in runs[side]]
        median = statistics.median(seconds)
        rows.append({"what": what, "seconds": round(median, 1), "seconds_each_run": [round(s, 1) for s in seconds],
                     "frames": runs[side][0]["frames"],
                     "frames_per_s": round(runs[side][0]["frames"] / median, 1)})  # fmt: skip
    rows.append({"what": "A / B, paired per repeat", "ratio": round(statistics.median(ratios), 3),
                 "ratio_each_run": [round(x, 3) for x in ratios]})  # fmt: skip
    for side in ("A", "B"):
        total = statistics.median(d["seconds"] for d in runs[side])
        for step in runs[side][0]["steps"]:
            seconds = statistics.median(d["steps"][step] for d in runs[side])
            rows.append({"what": f"{side} timeline: {step}", "seconds": round(seconds, 1),
                         "share": round(seconds / total, 3)})  # fmt: skip
    for row in rows:
        print(json.dumps(row), flush=True)
    conditions = {
        "corpus": f"{args.videos} videos of {SOURCE.name} played forwards and backwards, {args.minutes:g} min in all",
        "resolution": "640x360", "workers": task_runner().cluster_kwargs["n_workers"], "threads_per_worker": 1,
        "defaults": "fps 5, crops, body at 1 fps, chunks of 10 s",
        "A includes": "process start and imports, temporary Prefect API, discovery and hashing, Prefect task "
        "runs, catalog, rule-baseline predictions (emotion, learner_state), retention, cluster and API shutdown",
        "B includes": "cluster start, content hashes, plan, chunks and finalize on the workers (the partitions "
        "written)",
        "B excludes": "Prefect, catalog, predictions, the interpreter's start and imports, the cluster's close",
        "A's timeline": "the run's log lines, timed as they arrive (stdout is not a terminal: one line per video)",
        "statistic": f"median of {args.repeats}, A and B alternated, each on a fresh store; Prefect home warmed",
    }  # fmt: skip
    headline = {"A / B": rows[2]["ratio"], "A (s)": rows[0]["seconds"], "B (s)": rows[1]["seconds"]}
    write_result(args.json, "orchestration", "Orchestration overhead: `lessonlens run` vs plain Dask, same chunks",
                 command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
