"""Scaling benchmark: peak memory per worker as videos get longer, and many short videos vs one long one.

Each measurement is one ``lessonlens run`` process (2 workers, the defaults: 5 fps, crops, body at 1 fps) on a
fresh store, while this script reads the peak resident memory (``VmHWM``) of every Dask worker process it
starts. Videos are the real single-face 640×360 clip played forwards and backwards (``bench/extract.py``):

- ``short video`` (``--short-minutes``, default 1) and ``long video`` (``--clips`` × ``--clip-seconds``,
  default 120 × 10 s = 20 min): peak RSS of the largest worker, and its growth long / short;
- ``many clips``: ``--clips`` clips of ``--clip-seconds`` each (each starts at another frame of the source,
  so that no two have the same content), the long video's total length: the extraction stage's frames/s
  (the run's own last ``progress`` line: from the first video submitted to the last one recorded; chunks that
  ``lessonlens run`` started before the flow, ``flows.engine.head_start``, are outside that clock) and frames per
  wall second of the whole run (start-up and inference included), against the long video's;
- ``finalize alone``: the per-video finalize (tracks, AUs, the partitions written) in a fresh process, on the
  fragments of ``--short-minutes`` and of the long video's length (the real clip's two 10 s chunks extracted
  once, then repeated with their frames and times shifted), its peak RSS above the process' RSS before it
  (``VmHWM`` reset through ``/proc/self/clear_refs`` after the imports and the AU estimator); with
  ``--baseline DIR`` (a checkout of other code) the same with that code, alternated: with ``--finalize-only``,
  which measures only this (``bench/run.py``'s ``scaling-finalize``).

    python bench/scaling.py [--short-minutes 1] [--clips 120] [--clip-seconds 10] [--baseline DIR] [--finalize-only]
                            [--json bench/out/scaling.json]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from extract import SOURCE, ping_pong  # bench/extract.py
from results import command_line, write_result  # bench/results.py

HERE = Path(__file__).resolve().parent
CLI = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
PROGRESS = re.compile(r"progress: (\d+)/(\d+) videos, (\d+) frames, ([\d.]+) frames/s")


def peak_rss_mb(pid: int) -> float | None:
    """``VmHWM`` of a process (its peak resident memory so far), MiB; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def measured_run(corpus: Path, store: Path, prefect_home: Path) -> dict:
    """One ``lessonlens run``: wall seconds, the extraction stage's frames/s and frames, peak RSS per worker."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PYTHONPATH": str(HERE.parent), "PREFECT_HOME": str(prefect_home), "PREFECT_LOGGING_LEVEL": "INFO"}
    command = [sys.executable, "-c", CLI, "run", str(corpus), "--store", str(store), "--workers", "2"]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=env, cwd=HERE.parent, stdout=log, stderr=subprocess.STDOUT)
        peaks: dict[int, float] = {}
        while process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                try:
                    worker = "multiprocessing.spawn" in " ".join(child.cmdline())
                except psutil.Error:
                    continue
                if worker and (peak := peak_rss_mb(child.pid)) is not None:
                    peaks[child.pid] = max(peaks.get(child.pid, 0.0), peak)
            time.sleep(0.25)
        seconds = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        raise RuntimeError(f"lessonlens run failed ({process.returncode}):\n{output[-3000:]}")
    done, total, frames, rate = PROGRESS.findall(output)[-1]
    return {"videos": int(total), "frames": int(frames), "frames_per_s": float(rate), "run_s": round(seconds, 1),
            "peak_rss_mb_per_worker": sorted(round(v) for v in peaks.values())}  # fmt: skip


FINALIZE = """
import re, sys
from pathlib import Path
from tasks.extract.action_units import load_au_estimator
from tasks.extract.decode import Chunk
from tasks.extract.video import ChunkJob, ExtractParams, finalize_video
from tasks.store import StepResult, Store
store, n, work = Store(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
params = ExtractParams()
jobs = [ChunkJob("v", "", Chunk(i, (), ()), params, work) for i in range(n)]
load_au_estimator(params.au_model_dir)
status = lambda: Path("/proc/self/status").read_text()
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current RSS
before = int(re.search(r"VmRSS:\\s+(\\d+)", status()).group(1))
finalize_video("v", jobs, params, store, StepResult("v", "", "extract"))
print(before / 1024, int(re.search(r"VmHWM:\\s+(\\d+)", status()).group(1)) / 1024)
"""


def clip_fragments(root: Path) -> list:
    """The fragments of the real clip's two 10 s chunks with the default parameters (crops, body at 1 fps)."""
    from tasks.extract.decode import frame_times, open_video, plan_chunks
    from tasks.extract.video import ChunkJob, ExtractParams, extract_chunk

    params = ExtractParams()
    chunks = plan_chunks(frame_times(open_video(SOURCE)), params.fps, params.chunk_seconds)
    jobs = [ChunkJob("clip", str(SOURCE), chunk, params, root / "clip-work") for chunk in chunks[:2]]
    jobs[0].work_dir.mkdir(parents=True)
    for job in jobs:
        extract_chunk(job)
    return jobs


def fragments_of(jobs: list, n: int, store_root: Path) -> Path:
    """The clip's chunk fragments repeated to ``n`` chunks (frames and times shifted, as one video) in a work
    folder of video ``v`` of a new store at ``store_root``; returns that folder."""
    import pyarrow as pa

    from tasks.store import Store, read_table, write_table_atomic

    work = Store(store_root).ensure().work_dir("v", "bench")
    work.mkdir(parents=True)
    span = max(read_table(job.faces_path)["frame"].to_numpy().max() for job in jobs) + 1
    for k in range(n):
        job, lap = jobs[k % len(jobs)], k // len(jobs)
        for kind, path in (("faces", job.faces_path), ("body", job.body_path), ("crops", job.crops_path)):
            table = read_table(path)
            frame = table["frame"].to_numpy() + lap * span
            table = table.set_column(0, "frame", pa.array(frame, pa.int32()))
            shifted = table["timestamp"].to_numpy() + lap * 20.0
            table = table.set_column(1, "timestamp", pa.array(shifted, pa.float64()))
            write_table_atomic(table, work / f"{kind}-{k:05d}.parquet")
    return work


def finalize_peaks(root: Path, minutes: dict[str, float], codes: dict[str, Path]) -> list[dict]:
    """Peak RSS growth of finalize alone (see the module docstring) per video length and code, alternated."""
    jobs = clip_fragments(root)
    rows = []
    for what, length in minutes.items():
        n = round(length * 60 / 10)
        for name, code in codes.items():
            store = root / f"finalize-{n}-{name.replace(' ', '-')}"
            work = fragments_of(jobs, n, store)
            env = os.environ | {"PYTHONPATH": str(code)}
            out = subprocess.run([sys.executable, "-c", FINALIZE, str(store), str(n), str(work)], env=env, cwd=code,
                                 check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
            before, after = float(out[-2]), float(out[-1])
            rows.append({"what": f"finalize alone, {what}: {name}", "video_minutes": length, "chunks": n,
                         "rss_before_mb": round(before), "peak_mb": round(after),
                         "finalize_growth_mb": round(after - before)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-minutes", type=float, default=1.0)
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--baseline", type=Path, help="a checkout of other code for the finalize rows")
    parser.add_argument("--finalize-only", action="store_true", help="only the finalize rows")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    long_seconds = args.clips * args.clip_seconds
    rows = []
    codes = {"this checkout": HERE.parent} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    lengths = {"short video": args.short_minutes, "long video": long_seconds / 60}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.finalize_only:
            finalize = finalize_peaks(root, lengths, codes)
            growth = {r["what"]: r["finalize_growth_mb"] for r in finalize}
            headline = {f"finalize growth, long video (MiB): {name}": growth[f"finalize alone, long video: {name}"]
                        for name in codes}  # fmt: skip
            conditions = {"video": f"{SOURCE.name}: its two 10 s chunks repeated", "defaults": "crops, body at 1 fps",
                          "memory": "VmRSS of a fresh process before finalize_video, VmHWM after"}  # fmt: skip
            write_result(args.json, "scaling", "Scaling: memory of the per-video finalize with video length",
                         command_line(__file__, argv), conditions, finalize, headline)  # fmt: skip
            return 0
        corpora = {
            "short video": (root / "short", [("short.mp4", args.short_minutes * 60, 0)]),
            "long video": (root / "long", [("long.mp4", long_seconds, 0)]),
            "many clips": (root / "clips", [(f"clip{k:04d}.mp4", args.clip_seconds, 7 * k) for k in range(args.clips)]),
        }
        for folder, videos in corpora.values():
            for name, seconds, start in videos:
                ping_pong(SOURCE, folder / name, seconds, start)
        print(f"videos made in {root}", flush=True)
        for what, (folder, videos) in corpora.items():
            run = measured_run(folder, root / f"store-{folder.name}", root / "prefect")
            minutes = sum(seconds for _, seconds, _ in videos) / 60
            rows.append({"what": what, "video_minutes": round(minutes, 1), **run,
                         "largest_worker_peak_mb": max(run["peak_rss_mb_per_worker"])})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    short, long, clips = rows
    headline = {
        "peak RSS long / short video": round(long["largest_worker_peak_mb"] / short["largest_worker_peak_mb"], 2),
        "largest worker peak (MiB), long video": long["largest_worker_peak_mb"],
        "frames/s many clips / one long video": round(clips["frames_per_s"] / long["frames_per_s"], 2),
        "whole runs, frames per wall second, many clips / one long video": round(
            (clips["frames"] / clips["run_s"]) / (long["frames"] / long["run_s"]), 2
        ),
    }
    conditions = {"video": f"{SOURCE.name} played forwards and backwards", "resolution": "640x360", "workers": 2,
                  "defaults": "fps 5, crops, body at 1 fps", "clips": f"{args.clips} × {args.clip_seconds:g} s",
                  "memory": "VmHWM of each Dask worker process, read every 0.25 s",
                  "frames/s": "the run's last progress line (first video submitted to last one recorded)"}  # fmt: skip
    write_result(args.json, "scaling", "Scaling: memory per worker with video length, many short videos vs one long",
                 command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
