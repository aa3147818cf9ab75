"""Marts benchmark: the per-video mart ``video_summary`` over a large store vs a bare DuckDB aggregate.

A synthetic store (``--videos`` videos × ``--rows`` frame rows each; default 5,000 × 2,000 = 10M rows) with
the real schemas, written through the store's own code (``tasks.store``: ``write_table_atomic`` into
``Store.partition`` as ``tasks.extract.video.finalize_video`` does, ``Store.write_predictions``, the ``videos``
catalog): per video a main face track on every sampled frame (5 fps) and a second one on the last tenth of
the rows, body keypoints of one person at 1 fps, and the rule baseline's emotion windows (16 samples every
8) over each face track (planned by ``tasks.predict.inference.plan_windows``, so they carry ``n_owned``). Values are
random (numpy), with the shapes of real ones (AU intensities in [0, 5], landmarks around a face, visibilities
in [0, 1]).

Measured in one run, alternated ``--repeats`` times (median), each on a fresh connection:

- ``mart``: ``select * from video_summary`` through ``tasks.analyse.warehouse.run_query`` (the views, the marts and
  their sandbox, as ``lessonlens query`` and ``analyse`` run it);
- ``bare aggregate``: one DuckDB ``group by video_id`` over the same frame columns the mart reads (row count,
  face tracks, mean of every AU intensity) with ``read_parquet`` on the same files;
- with ``--baseline DIR`` (a checkout of other code, e.g. ``git archive <commit> | tar -x -C DIR``): the same mart
  with that code's SQL and connection, in a subprocess that times the query alone, alternated with the two above;
- once, after those (unless ``--no-parts``): the mart's parts alone (``count(*)`` of ``primary_faces``,
  ``expression_windows``, ``wrist_motion``), to say where its time goes.

    python bench/marts.py [--videos 5000] [--rows 2000] [--repeats 3] [--store DIR] [--baseline DIR] [--no-parts]
                          [--json bench/out/marts.json]

``--store DIR`` keeps the generated store there (reused when it exists with the same size); otherwise it
is made in a temporary folder and deleted (about 11 GB at the default size; making it takes minutes).
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from results import command_line, write_result  # bench/results.py

from models.layout import BLENDSHAPE_NAMES, KEYPOINT_NAMES, N_LANDMARKS
from models.rules import MODEL_NAME, TASK_CLASSES
from tasks.analyse.warehouse import run_query
from tasks.extract.action_units import AU_NAMES
from tasks.predict.inference import VideoWindows, plan_windows, predictions_table, rules_version
from tasks.store import (
    BODY_SCHEMA,
    FRAME_SCHEMA,
    Store,
    prediction_schema,
    table_from_columns,
    write_table_atomic,
)

FPS, BODY_EVERY, VIDEO_FPS = 5, 5, 30.0  # sampled frames per second, a body sample every 5th, source frame rate
WINDOW, STRIDE = 16, 8  # emotion windows (samples), as inference makes them


def frames_table(rng: np.random.Generator, rows: int) -> tuple[pa.Table, int]:
    """One video's ``frames`` partition: face 0 on every sampled frame, face 1 on the last tenth of the rows."""
    second = rows // 10
    sampled = rows - second
    index = np.concatenate([np.arange(sampled), np.arange(sampled - second, sampled)])
    face_id = np.repeat(np.int32([0, 1]), [sampled, second])
    n = len(index)
    centre = rng.uniform(200, 400, (1, 2)).astype(np.float32)
    shape = rng.normal(0, 40, (N_LANDMARKS, 2)).astype(np.float32)
    points = centre + shape[None] + rng.normal(0, 2, (n, N_LANDMARKS, 2)).astype(np.float32)
    au_r = rng.uniform(0, 5, (n, len(AU_NAMES))).astype(np.float32)
    columns = {
        "frame": (index * (VIDEO_FPS / FPS)).astype(np.int32),
        "timestamp": index / FPS,
        "face_id": face_id,
        "person_id": face_id,  # each track its own person
        "tile": np.full(n, -1, np.int8),  # not a gallery
        "confidence": rng.uniform(0.5, 1, n).astype(np.float32),
        "success": np.ones(n, bool),
        "bbox_x": points[:, :, 0].min(axis=1),
        "bbox_y": points[:, :, 1].min(axis=1),
        "bbox_w": np.ptp(points[:, :, 0], axis=1),
        "bbox_h": np.ptp(points[:, :, 1], axis=1),
        **{f"x_{i}": points[:, i, 0] for i in range(N_LANDMARKS)},
        **{f"y_{i}": points[:, i, 1] for i in range(N_LANDMARKS)},
        **{f"pose_R{a}": rng.normal(0, 0.2, n).astype(np.float32) for a in "xyz"},
        "infraorbital": rng.normal(0.29, 0.03, n).astype(np.float32),
        **{f"{au}_r": au_r[:, j] for j, au in enumerate(AU_NAMES)},
        **{f"{au}_c": (au_r[:, j] >= 1).astype(np.int8) for j, au in enumerate(AU_NAMES)},
        **{f"bs_{name}": rng.uniform(0, 1, n).astype(np.float32) for name in BLENDSHAPE_NAMES[1:]},
    }
    order = np.lexsort((columns["face_id"], columns["frame"]))  # as finalize_video: by frame
    return table_from_columns({k: v[order] for k, v in columns.items()}, FRAME_SCHEMA), sampled


def body_table(rng: np.random.Generator, sampled: int) -> pa.Table:
    """One person's keypoints on every ``BODY_EVERY``-th sampled frame."""
    index = np.arange(0, sampled, BODY_EVERY)
    n = len(index)
    columns = {
        "frame": (index * (VIDEO_FPS / FPS)).astype(np.int32),
        "timestamp": index / FPS,
        "person_id": np.zeros(n, np.int32),
        "confidence": rng.uniform(0.5, 1, n).astype(np.float32),
    }
    for name in KEYPOINT_NAMES:
        columns[f"{name}_x"] = rng.uniform(100, 500, n).astype(np.float32)
        columns[f"{name}_y"] = rng.uniform(50, 350, n).astype(np.float32)
        columns[f"{name}_v"] = rng.uniform(0, 1, n).astype(np.float32)
    return table_from_columns(columns, BODY_SCHEMA)


def emotion_table(rng: np.random.Generator, frames: pa.Table) -> pa.Table:
    """The rule baseline's emotion windows over each face track of ``frames``, planned and written as inference
    plans and writes them (``plan_windows``, ``predictions_table``), with random class probabilities."""
    columns = {c: frames[c].to_numpy() for c in ("face_id", "person_id", "frame", "timestamp")}
    windows = plan_windows(columns["face_id"], columns["frame"], columns["timestamp"], WINDOW, STRIDE)
    probs = rng.dirichlet(np.ones(len(TASK_CLASSES["emotion"])), len(windows)).astype(np.float32)
    meta = {"window": WINDOW, "stride": STRIDE}
    return predictions_table("emotion", VideoWindows("", columns, windows), probs, MODEL_NAME, meta)


def write_videos(root: str, first: int, count: int, rows: int) -> list[dict]:
    """Videos ``first`` … ``first + count - 1`` of the synthetic store: partitions, predictions; catalog rows."""
    store = Store(root)
    version = rules_version("emotion")
    catalog = []
    for k in range(first, first + count):
        rng = np.random.default_rng(k)
        video_id = f"{k:016x}"
        frames, sampled = frames_table(rng, rows)
        body = body_table(rng, sampled)
        write_table_atomic(frames, store.partition("frames", video_id))
        write_table_atomic(body, store.partition("body", video_id))
        store.write_predictions(emotion_table(rng, frames), "emotion", version, video_id)
        catalog.append({
            "video_id": video_id, "path": f"/lessons/{video_id}.mp4", "size_bytes": 50_000_000,
            "duration_s": sampled / FPS, "fps": VIDEO_FPS, "n_frames": int(sampled * VIDEO_FPS / FPS),
            "width": 1280, "height": 720, "sampled_frames": sampled, "face_rows": frames.num_rows,
            "face_tracks": 2, "frames_with_face": sampled, "body_rows": body.num_rows, "decoder": "decord",
            "status": "ok", "params": "{}", "run_id": "bench", "extracted_at": datetime.now(UTC),
            "course": f"c{k % 20}", "session": f"s{k}", "teacher": f"t{k % 200}", "role": "teacher",
        })  # fmt: skip
    return catalog


def make_store(root: Path, videos: int, rows: int, processes: int) -> float:
    """The synthetic store (see the module docstring); returns the seconds it took."""
    start = time.perf_counter()
    store = Store(root).ensure()
    per = -(-videos // (processes * 8))
    batches = [(str(root), first, min(per, videos - first), rows) for first in range(0, videos, per)]
    with ProcessPoolExecutor(processes) as pool:
        catalog = [row for part in pool.map(write_videos, *zip(*batches, strict=True)) for row in part]
    store.write_catalog("videos", pd.DataFrame(catalog))
    return time.perf_counter() - start


def bare_aggregate(root: Path) -> int:
    """One ``group by video_id`` over the frame columns the mart reads, on the same files."""
    averages = ", ".join(f"avg({au}_r) as {au}_r" for au in AU_NAMES)
    sql = (
        f"select video_id, count(*) as face_rows, count(distinct face_id) as face_tracks, max(frame) as last_frame, "
        f"max(timestamp) as last_time, {averages} "
        f"from read_parquet('{root}/frames/*/*.parquet', hive_partitioning = true) group by video_id"
    )
    return len(duckdb.connect().sql(sql).fetchall())


BASELINE_MART = """
import sys, time
from tasks.analyse.warehouse import run_query
from tasks.store import Store
start = time.perf_counter()
run_query(Store(sys.argv[1]), "select * from video_summary")
print(time.perf_counter() - start)
"""


def baseline_mart(code: Path, root: Path) -> float:
    """Seconds of ``select * from video_summary`` through ``run_query`` of the checkout at ``code``."""
    env = os.environ | {"PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-c", BASELINE_MART, str(root)], env=env, cwd=code, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return float(done.stdout.split()[-1])


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=2000, help="frame rows per video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", type=Path, help="keep the generated store here (reused when the size matches)")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare the mart with")
    parser.add_argument("--no-parts", action="store_true", help="leave out the mart's parts")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    tmp = None if args.store else tempfile.mkdtemp(prefix="lessonlens-marts-")
    root = (args.store or Path(tmp)).resolve()
    try:
        schemas = repr(
            (FRAME_SCHEMA, BODY_SCHEMA, prediction_schema("emotion"))
        )  # a store of older schemas is made again
        size = {"videos": args.videos, "rows": args.rows, "schemas": hashlib.sha256(schemas.encode()).hexdigest()[:12]}
        made = None
        if not (root / "bench.json").is_file() or json.loads((root / "bench.json").read_text()) != size:
            shutil.rmtree(root, ignore_errors=True)
            made = make_store(root, args.videos, args.rows, os.cpu_count() or 1)
            (root / "bench.json").write_text(json.dumps(size))  # what --store reuses (with the schemas' hash)
            print(f"store of {args.videos} videos × {args.rows} rows made in {made:.1f} s: {root}", flush=True)
        store = Store(root)
        compared = {
            "mart: select * from video_summary (tasks.analyse.warehouse.run_query)": lambda: (
                run_query(store, "select * from video_summary").num_rows
            ),
            "bare aggregate: group by video_id over the same frame columns (duckdb, read_parquet)": lambda: (
                bare_aggregate(root)
            ),
        }
        if args.baseline:
            compared[f"mart with the baseline's code ({args.baseline.name})"] = lambda: baseline_mart(
                args.baseline.resolve(), root
            )
        parts = {  # once, after the comparison: where the mart's time goes
            f"part (once): count(*) from {name}": lambda name=name: run_query(store, f"select count(*) from {name}")
            for name in ("primary_faces", "expression_windows", "wrist_motion")
            if not args.no_parts
        }
        seconds: dict[str, list[float]] = {name: [] for name in compared | parts}
        for runs in [compared] * args.repeats + [parts]:
            for name, query in runs.items():
                took, inside = timed(query)
                if name.startswith("mart with the baseline"):
                    took = inside  # the query's own seconds, without the subprocess' start
                seconds[name].append(took)
                print(json.dumps({name: round(took, 3)}), flush=True)
        mart, bare = (statistics.median(seconds[name]) for name in list(compared)[:2])
        rows = [
            {"what": name, "seconds": round(statistics.median(s), 3), "seconds_each_run": [round(v, 3) for v in s],
             "over_bare_aggregate": round(statistics.median(s) / bare, 2)}
            for name, s in seconds.items()
        ]  # fmt: skip
        on_disk = sum(p.stat().st_size for p in (root / "frames").rglob("*.parquet"))
        conditions = {
            "store": f"{args.videos} videos × {args.rows} frame rows = {args.videos * args.rows:,} rows (synthetic, "
            "real schemas, written by tasks.store)",
            "frames on disk": f"{on_disk / 2**30:.2f} GiB in {args.videos} files",
            "duckdb": duckdb.__version__,
            "threads": os.cpu_count(),
            "statistic": f"median of {args.repeats}, alternated",
            "baseline": str(args.baseline) if args.baseline else None,
            "store made in (s)": round(made, 1) if made else None,
        }
        headline = {"mart / bare aggregate": round(mart / bare, 2), "mart (s)": round(mart, 2),
                    "bare aggregate (s)": round(bare, 2)}  # fmt: skip
        if args.baseline:
            base = statistics.median(seconds[list(compared)[2]])
            headline["baseline's mart / bare aggregate"] = round(base / bare, 2)
        write_result(args.json, "marts", "Marts: video_summary over 10M frame rows vs a bare DuckDB aggregate",
                     command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
        for row in rows:
            print(json.dumps(row))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
