"""Small jobs: how long `lessonlens run` takes when there is little or nothing to do, as a user runs it.

Each measurement is a fresh ``lessonlens run`` process (imports included) on a small corpus (``--clips``: the
20 s single-face clip, then a 2.4 s face clip and a 4 s title card; default one clip, 2 workers):

- ``first chunk``: a first run on an empty store, timed from the process start to the moment its first
  chunk was planned and handed to the cluster (its work folder appears) and to the moment the first chunk
  was decoded and analysed (its fragment appears), and to the end of the run; its start-up timeline: when
  the run's own log lines (Prefect at INFO) say that the temporary API starts, that the flow run begins (the
  API answers), that the subflow begins and that the corpus is discovered, each the first such line;
- ``no-op rerun``: the same command again, everything already extracted and predicted;
- ``import floor``: ``python -c "import flows.cli"``, what every command pays before doing anything;
- ``first chunk floor`` (this checkout only): a fresh process that imports what ``lessonlens run`` imports, starts
  the same local cluster, loads the models on its workers and starts the first chunks as ``lessonlens run`` does
  (``flows.engine.head_start``), without the Prefect API or a flow: timed to the first chunk's fragment, the
  part of the first run's start-up that the API's start does not add.

With ``--baseline DIR`` (a checkout of other code, e.g. ``git archive <commit> | tar -x -C DIR``), the
same measurements run with that code too, alternated with this checkout's, in the same Prefect home
(warmed up first), so that the ratios compare code, not machine load.

    python bench/small_jobs.py [--baseline DIR] [--repeats 2] [--clips 1] [--json bench/out/small_jobs.json]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from results import command_line, write_result  # bench/results.py

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parents[1] / "shared" / "media"
CLIPS = ("pyfeat_WolfgangLanger_Pexels.mp4", "pyfeat_single_face.mp4", "pyfeat_no_face.mp4")
CLI = "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
# start-up timeline: the first log line of the run that contains each text
LOG_MARKS = {
    "temporary Prefect API starting": "Starting temporary server",
    "flow run begun (the API answers)": "Beginning flow run",
    "subflow begun": "Beginning subflow run",
    "corpus discovered": " to extract (fps=",
}


def environment(code: Path, prefect_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PYTHONPATH": str(code), "PREFECT_HOME": str(prefect_home), "PREFECT_LOGGING_LEVEL": "INFO"}


def warm_prefect_home(prefect_home: Path) -> None:
    """Start and stop the temporary Prefect API once in ``prefect_home``: its database is made there then."""
    warm = [sys.executable, "-c", "from flows.engine import prefect_api\nwith prefect_api(): pass"]
    subprocess.run(warm, env=environment(HERE.parent, prefect_home), check=True, capture_output=True)


def timed_run(code: Path, corpus: Path, store: Path, prefect_home: Path) -> dict:
    """Wall seconds of one ``lessonlens run`` process, when its first chunk was planned and done, and when the
    lines of :data:`LOG_MARKS` first appeared in its output."""
    marks: dict[str, float] = {}
    lines: list[str] = []
    command = [sys.executable, "-c", CLI, "run", str(corpus), "--store", str(store), "--workers", "2"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment(code, prefect_home), cwd=code, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            for name, text in LOG_MARKS.items():
                if name not in marks and text in line:
                    marks[name] = time.perf_counter() - start

    reader = threading.Thread(target=read)
    reader.start()
    while process.poll() is None:
        now = time.perf_counter() - start
        if "planned" not in marks and any((store / "work").glob("*/*")):
            marks["planned"] = now
        if "first_chunk" not in marks and any((store / "work").glob("*/*/faces-*.parquet")):
            marks["first_chunk"] = now
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    reader.join()
    output = "".join(lines)
    if process.returncode not in (0, 1):
        raise RuntimeError(f"lessonlens run failed ({process.returncode}):\n{output[-2000:]}")
    return {"seconds": seconds, **marks, "nothing_to_do": "nothing to do" in output}


FIRST_CHUNK_FLOOR = """
import sys
import time
from functools import partial
from pathlib import Path

if __name__ == "__main__":
    from flows.engine import _preload, head_start, local_cluster, local_cluster_kwargs
    from flows.nightly_corpus import discover_task, extract_params
    from tasks.extract.video import chunks_ahead
    from tasks.store import Store

    corpus, store = sys.argv[1], Store(sys.argv[2])
    params = extract_params(5.0, 10, "mediapipe", None, 1.0, None, True, 30.0)  # lessonlens run's defaults
    refs = discover_task.fn(corpus, store)[0]
    with local_cluster(**local_cluster_kwargs(2)) as cluster:
        _preload(cluster, params)
        head_start(cluster, partial(chunks_ahead, [(ref, params) for ref in refs], store))
        while not any(Path(sys.argv[2], "work").glob("*/*/faces-*.parquet")):
            time.sleep(0.02)
"""


def first_chunk_floor(code: Path, corpus: Path, store: Path, prefect_home: Path) -> float:
    """Seconds from a fresh process's start to its first chunk's fragment (:data:`FIRST_CHUNK_FLOOR`)."""
    start = time.perf_counter()
    command = [sys.executable, "-c", FIRST_CHUNK_FLOOR, str(corpus), str(store)]
    process = subprocess.Popen(command, env=environment(code, prefect_home), cwd=code, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    while not any((store / "work").glob("*/*/faces-*.parquet")):
        if process.poll() is not None:
            raise RuntimeError(f"the first-chunk floor script failed ({process.returncode})")
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    process.wait()
    return seconds


def import_floor(code: Path, prefect_home: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import flows.cli"], env=environment(code, prefect_home), cwd=code,
                   check=True)  # fmt: skip
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clips", type=int, default=1, choices=range(1, len(CLIPS) + 1), help="videos in the corpus")
    parser.add_argument("--json", help="write the result here (bench/run.py reads it)")
    args = parser.parse_args(argv)
    codes = {"this checkout": HERE.parent} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in codes}

    def add(name: str, key: str, value: float | None) -> None:
        if value is not None:
            figures[name].setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        corpus.mkdir()
        for clip in CLIPS[: args.clips]:
            shutil.copy(MEDIA / clip, corpus / clip)
        home = root / "prefect"
        warm_prefect_home(home)
        for r in range(args.repeats):
            for name, code in codes.items():
                store = root / f"store-{name.replace(' ', '-')}-{r}"
                first = timed_run(code, corpus, store, home)
                for mark in LOG_MARKS:
                    add(name, f"first run timeline: {mark} (s)", first.get(mark))
                add(name, "first run: chunks planned (s)", first.get("planned"))
                add(name, "first run: first chunk decoded and analysed (s)", first.get("first_chunk"))
                add(name, "first run: whole run (s)", first["seconds"])
                print(json.dumps({name: first}), flush=True)
            for name, code in codes.items():
                store = root / f"store-{name.replace(' ', '-')}-{r}"
                again = timed_run(code, corpus, store, home)
                add(name, "no-op rerun (s)", again["seconds"])
                add(name, "import floor: python -c 'import flows.cli' (s)", import_floor(code, home))
                print(json.dumps({name: again}), flush=True)
            floor = first_chunk_floor(HERE.parent, corpus, root / f"store-floor-{r}", home)
            add("this checkout", "first chunk floor: cluster, models, first chunk, no Prefect (s)", floor)
    keys = list(figures["this checkout"])
    rows = []
    for key in keys:
        row = {"what": key}
        for name in codes:
            values = figures[name].get(key, [])
            row[name] = round(statistics.median(values), 2) if values else None
        if args.baseline and row["baseline"] and row["this checkout"]:
            row["this checkout / baseline"] = round(row["this checkout"] / row["baseline"], 3)
        rows.append(row)
    for row in rows:
        print(json.dumps(row), flush=True)
    conditions = {"corpus": f"{args.clips} videos: " + ", ".join(CLIPS[: args.clips]), "workers": 2, "fps": 5,
                  "crops": True, "body_fps": 1,
                  "statistic": f"median of {args.repeats} (each a fresh process and store)",
                  "baseline": str(args.baseline) if args.baseline else None}  # fmt: skip
    by_key = {row["what"]: row for row in rows}
    headline = {
        "no-op rerun (s)": by_key["no-op rerun (s)"]["this checkout"],
        "to first chunk decoded (s)": by_key.get("first run: first chunk decoded and analysed (s)", {}).get(
            "this checkout"
        ),
    }
    if args.baseline:
        headline["no-op rerun: baseline (s)"] = by_key["no-op rerun (s)"]["baseline"]
    write_result(args.json, "small_jobs", "Small jobs: `lessonlens run` with little or nothing to do",
                 command_line(__file__, argv), conditions, rows, headline)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
