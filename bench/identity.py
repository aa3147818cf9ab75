"""Identity dev benchmark: person ids and purity on generated galleries, a leave/re-enter clip and a room clip,
and the descriptor distances the linking thresholds rest on.

    # all of it, as `make bench` runs it (steps 1, 2 and 4 in a temporary folder; --json: bench/results.py)
    PYTHONPATH=. python bench/identity.py bench --baseline-tree DIR [--seconds 60] [--rounds 2] [--json PATH]
    # 1. write the dev corpus (tasks.synthetic.people) and its ground truth (<corpus>/<clip>.truth.json)
    PYTHONPATH=. python bench/identity.py make /tmp/iddev/corpus
    # 2. `lessonlens run` the corpus (the nightly-corpus flow itself), then per clip: face tracks, person ids,
    #    purity, layout
    PYTHONPATH=. python bench/identity.py score /tmp/iddev/corpus /tmp/iddev/store
    # 3. descriptor distances between faces of the same person and of different people (1 frame/s of each clip)
    PYTHONPATH=. python bench/identity.py distances /tmp/iddev/corpus
    # 4. cost: analysed frames/s of one process extracting a single-face video (the Wolfgang clip played
    #    forwards and backwards, 5 fps, crops, body at 1 fps), alternating: the baseline tree's code (today's
    #    defaults), this tree's defaults (descriptors, body per face), this tree without descriptors; per wall
    #    second and per CPU-second of the process (steadier on a shared machine); and the descriptor's own
    #    time per face
    PYTHONPATH=. python bench/identity.py cost --baseline-tree DIR [--seconds 60] [--rounds 2]

``DIR`` is a checkout of the code before persons (``git archive 8657020 | tar -x -C DIR``; ``make bench`` makes
it).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import command_line, write_result  # bench/results.py

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
GALLERIES = {  # file: people, columns x rows
    "gallery_a.mp4": (["wolfgang", "kindel", "cremad", "hanks"], (2, 2)),
    "gallery_b.mp4": (["selfie", "hanks", "wolfgang", "cremad", "kindel"], (3, 2)),
}


def make(corpus: Path) -> None:
    from tasks.synthetic.people import write_camera_move, write_gallery, write_reentry, write_room

    corpus.mkdir(parents=True, exist_ok=True)
    for name, (people, grid) in GALLERIES.items():
        write_gallery(corpus / name, people, MEDIA, grid=grid).save(corpus / f"{name}.truth.json")
    write_reentry(corpus / "reentry.mp4", "wolfgang", MEDIA).save(corpus / "reentry.mp4.truth.json")
    write_room(corpus / "room.mp4", ("wolfgang", "kindel"), MEDIA).save(corpus / "room.mp4.truth.json")
    people = ("wolfgang", "cremad", "selfie", "hanks")
    write_camera_move(corpus / "camera_move.mp4", people, MEDIA, size=(640, 360)).save(
        corpus / "camera_move.mp4.truth.json"
    )
    print(f"dev corpus in {corpus}")


def load_truth(path: Path):
    from tasks.synthetic.people import Placement, Truth

    raw = json.loads(Path(path).read_text())
    return Truth(raw["path"], raw["fps"], raw["seconds"], tuple(Placement(**p) for p in raw["placements"]))


def score(corpus: Path, store: Path) -> dict:
    from tasks.analyse.warehouse import connect
    from tasks.store import Store
    from tasks.synthetic.people import purity

    run = [sys.executable, "-m", "flows.cli", "run", str(corpus), "--store", str(store)]
    subprocess.run(run, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    with connect(Store(store)) as con:
        for truth_file in sorted(corpus.glob("*.truth.json")):
            truth = load_truth(truth_file)
            name = Path(truth.path).name
            rows = con.sql(
                "select f.timestamp, f.bbox_x + f.bbox_w / 2 as cx, f.bbox_y + f.bbox_h / 2 as cy, f.person_id, "
                "f.face_id, v.layout from frames f join videos v using (video_id) "
                f"where v.path like '%/{name}' order by f.frame"
            ).df()
            value, ids, on_people = purity(truth, rows.timestamp, rows.cx, rows.cy, rows.person_id)
            out[name] = {"people": len(truth.people()), "person_ids": ids, "purity": round(value, 4),
                         "face_tracks": int(rows.face_id.nunique()), "rows": on_people,
                         "layout": rows.layout.iloc[0] if len(rows) else None}  # fmt: skip
            print(name, out[name])
    return out


def distances(corpus: Path) -> dict:
    from models.faceapi_package import recognition_chip
    from tasks.extract.decode import decode_frames, frame_times, open_video
    from tasks.extract.faces import load_face_backend
    from tasks.extract.identity import describe, face_quality
    from tasks.synthetic.people import true_person

    backend = load_face_backend("mediapipe")
    names, descriptors = [], []
    for truth_file in sorted(corpus.glob("*.truth.json")):
        truth = load_truth(truth_file)
        who = true_person(truth)
        reader = open_video(truth.path)
        times = frame_times(reader)
        picks = tuple(int(np.argmin(np.abs(times - t))) for t in np.arange(0.25, truth.seconds, 1.0))
        backend.reset()
        for index, pixels in decode_frames(reader, picks):
            for face in backend.detect(pixels):
                centre = (face.bbox[:2] + face.bbox[2:]) / 2
                person = who(float(times[index]), *map(float, centre))
                if person and face_quality(pixels, face.landmarks, face.pose) > 0:
                    names.append(person)
                    descriptors.append(describe([recognition_chip(pixels, face.landmarks)])[0])
    d = np.linalg.norm(np.array(descriptors)[:, None] - np.array(descriptors)[None], axis=2)
    same = np.array(names)[:, None] == np.array(names)[None]
    upper = np.triu(np.ones_like(same), 1)
    within, between = d[same & upper], d[~same & upper]
    out = {"faces": len(names), "people": sorted(set(names)), "pairs_same": int(within.size),
           "pairs_different": int(between.size),
           "same_min_p99_max": [round(float(v), 3) for v in (within.min(), np.percentile(within, 99), within.max())],
           "different_min_p1_max": [round(float(v), 3) for v in (between.min(), np.percentile(between, 1),
                                                                 between.max())]}  # fmt: skip
    print(json.dumps(out, indent=1))
    return out


RATE = """
import json, sys, tempfile, time
from pathlib import Path
from tasks.extract.discover import VideoRef
from tasks.extract.video import ExtractParams, extract_chunk, extract_video
from tasks.store import Store
video, options = Path(sys.argv[1]), json.loads(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    store = Store(Path(tmp)).ensure()
    ref = VideoRef("bench", str(video), video.stat().st_size, 0, {})
    start, cpu = time.perf_counter(), time.process_time()
    result = extract_video(ref, ExtractParams(**options), store, lambda jobs: list(map(extract_chunk, jobs)))
    print(json.dumps({"frames": result.counts["sampled_frames"], "seconds": time.perf_counter() - start,
                      "cpu_seconds": time.process_time() - cpu}))
"""


def cost(baseline: Path, seconds: float, rounds: int) -> dict:
    from extract import ping_pong  # bench/extract.py

    from models.faceapi_package import recognition_chip
    from tasks.extract.decode import decode_frames, open_video
    from tasks.extract.faces import load_face_backend
    from tasks.extract.identity import describe

    here = Path(__file__).resolve().parents[1]
    runs = {"baseline": (baseline, {}), "descriptors": (here, {}), "no_descriptors": (here, {"descriptor_seconds": 0})}
    rates: dict[str, list[float]] = {name: [] for name in runs}  # frames per second of wall time
    cpu_rates: dict[str, list[float]] = {name: [] for name in runs}  # frames per CPU-second of the process
    with tempfile.TemporaryDirectory() as tmp:
        video = ping_pong(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4", Path(tmp) / "single.mp4", seconds)
        for _ in range(rounds):
            for name, (tree, options) in runs.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                done = subprocess.run([sys.executable, "-c", RATE, str(video), json.dumps(options)], env=env,
                                      cwd=tree, check=True, capture_output=True, text=True)  # fmt: skip
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                rates[name].append(measured["frames"] / measured["seconds"])
                cpu_rates[name].append(measured["frames"] / measured["cpu_seconds"])
                print(name, round(rates[name][-1], 2), "frames/s,", round(cpu_rates[name][-1], 2), "per CPU-s")
        reader = open_video(video)
        _, pixels = next(iter(decode_frames(reader, (10,))))
        face = load_face_backend("mediapipe").detect(pixels)[0]
        chips = [recognition_chip(pixels, face.landmarks)] * 8
        describe(chips)
        start = time.perf_counter()
        for _ in range(3):
            describe(chips)
        per_face_ms = (time.perf_counter() - start) / 24 * 1000

    def ratio(table: dict[str, list[float]], name: str) -> float:
        return round(float(np.mean(table[name]) / np.mean(table["baseline"])), 3)

    out = {"frames_per_s": {k: [round(v, 2) for v in r] for k, r in rates.items()},
           "frames_per_cpu_s": {k: [round(v, 2) for v in r] for k, r in cpu_rates.items()},
           "ratio_to_baseline": {name: ratio(rates, name) for name in runs},
           "cpu_ratio_to_baseline": {name: ratio(cpu_rates, name) for name in runs},
           "descriptor_ms_per_face": round(per_face_ms, 1), "load_average": os.getloadavg()}  # fmt: skip
    print(json.dumps(out, indent=1))
    return out


def bench(baseline: Path, seconds: float, rounds: int, json_path: Path | None) -> dict:
    """Dev corpus, scores and cost in one run: one JSON result (bench/results.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        make(Path(tmp) / "corpus")
        clips = score(Path(tmp) / "corpus", Path(tmp) / "store")
    spent = cost(baseline, seconds, rounds)
    rows = [{"what": name, **{k: v for k, v in clip.items() if k != "rows"}} for name, clip in clips.items()]
    for name in ("descriptors", "no_descriptors"):
        rows.append({"what": f"cost: this tree, {name.replace('_', ' ')} / baseline",
                     "frames_per_s": spent["ratio_to_baseline"][name],
                     "frames_per_cpu_s": spent["cpu_ratio_to_baseline"][name]})  # fmt: skip
    headline = {
        "gallery 2x2 (4 people, reorder): person ids": clips["gallery_a.mp4"]["person_ids"],
        "gallery 2x2: purity": clips["gallery_a.mp4"]["purity"],
        "leave and re-enter: person ids": clips["reentry.mp4"]["person_ids"],
        "camera move, 4 people: person ids": clips["camera_move.mp4"]["person_ids"],
        "defaults with descriptors / before persons, frames per CPU-s": spent["cpu_ratio_to_baseline"]["descriptors"],
        "descriptor ms per face": spent["descriptor_ms_per_face"],
    }
    conditions = {"corpus": "tasks.synthetic.people: gallery_a 2x2, gallery_b 3x2, reentry, room, camera_move "
                  "(shared/media clips and a pip-shipped photo)",
                  "scored by": "lessonlens run (defaults) + true_person",
                  "cost video": f"Wolfgang clip played forwards and backwards, {seconds:g} s, 5 fps, crops, body 1 fps",
                  "cost rounds": rounds, "baseline": str(baseline), "load_average": spent["load_average"]}  # fmt: skip
    return write_result(json_path, "identity", "Persons: ids and purity on dev clips, and what descriptors cost",
                        command_line(__file__, None), conditions, rows, headline)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make").add_argument("corpus", type=Path)
    scoring = sub.add_parser("score")
    scoring.add_argument("corpus", type=Path)
    scoring.add_argument("store", type=Path)
    sub.add_parser("distances").add_argument("corpus", type=Path)
    costs = sub.add_parser("cost")
    costs.add_argument("--baseline-tree", type=Path, required=True, help="a checkout of the code to compare with")
    costs.add_argument("--seconds", type=float, default=60.0)
    costs.add_argument("--rounds", type=int, default=2)
    everything = sub.add_parser("bench")
    everything.add_argument("--baseline-tree", type=Path, required=True, help="a checkout of the code to compare with")
    everything.add_argument("--seconds", type=float, default=60.0)
    everything.add_argument("--rounds", type=int, default=2)
    everything.add_argument("--json", type=Path, default=None, help="write the result here (bench/results.py)")
    args = parser.parse_args()
    if args.command == "bench":
        bench(args.baseline_tree, args.seconds, args.rounds, args.json)
    elif args.command == "make":
        make(args.corpus)
    elif args.command == "score":
        score(args.corpus, args.store)
    elif args.command == "distances":
        distances(args.corpus)
    else:
        cost(args.baseline_tree, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
