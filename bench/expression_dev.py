"""Expression dev benchmark: clip-level emotion UAR of the rule baseline, scored as issue 10's measurement.

Two steps, so that the scoring can run on any checkout (e.g. main's code, for a before/after):

    # 1. write the dev corpus (needs this checkout's tasks.facs_warp): CREMA-D clips and the Wolfgang clip
    #    (symlinked), synthetic posed stills (2 s) and neutral->apex ramps (0.3-1.5 s at 10 fps)
    PYTHONPATH=. python bench/expression_dev.py make /tmp/exprdev/corpus
    # 2. extract at 10 fps with the real extraction code (tasks.extract), run the emotion rules per window
    #    (tasks.inference.infer_videos, default window 16 / stride 8), clip label = argmax of the mean class
    #    probability over the clip's windows; UAR per set
    PYTHONPATH=. python bench/expression_dev.py score /tmp/exprdev/corpus /tmp/exprdev/store-after

Sets: ``cremad`` (6 acted clips of one actor, weak labels, CREMA-D, ODbL: Cao et al. 2014), ``still``
(each photo of :func:`tasks.facs_warp.face_bases` posed with each emotion's prototype AUs of
:data:`tasks.facs_warp.EMOTION_AUS`, plus neutral), ``ramp`` (the same faces and six emotions, linear
neutral->apex over 3, 8 and 15 frames at 10 fps), ``wolfgang`` (sad then laughing: the labels of its
windows in seconds 0-9 and from 12 on are printed, not scored). A clip without a face counts as wrong.
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
MEDIA = Path("/work/shared/media")
RAMP_FRAMES = (3, 8, 15)


def make(corpus: Path) -> None:
    from tasks.facs_warp import EMOTION_AUS, face_bases, ramp, still, write_clip

    corpus.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in csv.DictReader(open(MEDIA / "cremad" / "labels.csv")):
        link = corpus / f"cremad_{row['path']}"
        if not link.exists():
            link.symlink_to(MEDIA / "cremad" / row["path"])
        rows.append({"path": link.name, "set": "cremad", "label": row["label"]})
    link = corpus / "wolfgang.mp4"
    if not link.exists():
        link.symlink_to(MEDIA / "pyfeat_WolfgangLanger_Pexels.mp4")
    rows.append({"path": link.name, "set": "wolfgang", "label": ""})
    bases = face_bases()
    print(f"face bases: {sorted(bases)}", flush=True)
    for name, face in bases.items():
        for emotion, aus in EMOTION_AUS.items():
            path = corpus / f"still_{name}_{emotion}.mp4"
            if not path.exists():
                write_clip(path, still(face, aus, seconds=2.0, fps=25.0), fps=25.0)
            rows.append({"path": path.name, "set": "still", "label": emotion})
            if emotion == "neutral":
                continue
            for n in RAMP_FRAMES:
                path = corpus / f"ramp{n:02d}_{name}_{emotion}.mp4"
                if not path.exists():
                    write_clip(path, (frame for frame, _ in ramp(face, aus, seconds=n / 10.0, fps=10.0)), fps=10.0)
                rows.append({"path": path.name, "set": "ramp", "label": emotion})
    with open(corpus / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "set", "label"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} clips in {corpus}")


def uar(truth: list[str], predicted: list[str]) -> float:
    """Unweighted average recall over the classes present in ``truth``."""
    classes = sorted(set(truth))
    return float(np.mean([np.mean([p == c for t, p in zip(truth, predicted, strict=True) if t == c]) for c in classes]))


def score(corpus: Path, store_root: Path, fps: float) -> None:
    import pyarrow.parquet as pq

    from tasks.discover import VideoRef, content_id
    from tasks.extract import ExtractParams, extract_chunk, extract_video
    from tasks.inference import current_version, infer_videos, prediction_path
    from tasks.store import Store

    store = Store(store_root)
    params = ExtractParams(fps=fps, body_fps=0, keep_crops=False)
    labels = list(csv.DictReader(open(corpus / "labels.csv")))
    ids = {}
    start = time.perf_counter()
    for row in labels:
        path = (corpus / row["path"]).resolve()
        stat = path.stat()
        ref = VideoRef(content_id(path), str(path), stat.st_size, stat.st_mtime_ns)
        ids[row["path"]] = ref.video_id
        if not store.has_partition("frames", ref.video_id):
            result = extract_video(ref, params, store, lambda jobs: [extract_chunk(job) for job in jobs])
            if result.status != "ok":
                print(f"{row['path']}: extraction failed ({result.stage}: {result.message})")
    print(f"extracted {len(labels)} clips in {time.perf_counter() - start:.0f} s", flush=True)
    infer_videos(store_root, list(ids.values()), "emotion", device="cpu")
    version = current_version(store_root, "emotion")
    results = {}
    for row in labels:
        path = prediction_path(store_root, "emotion", version, ids[row["path"]])
        table = pq.read_table(path).to_pandas() if path.is_file() else None
        if table is None or table.empty:
            results[row["path"]] = ("no face", table)
            continue
        mean = table[[f"p_{c}" for c in EMOTIONS]].mean().to_numpy()
        results[row["path"]] = (EMOTIONS[int(mean.argmax())], table)
    print(f"model version {version}")
    for name in ("cremad", "still", "ramp"):
        rows = [r for r in labels if r["set"] == name]
        if not rows:
            continue
        truth = [r["label"] for r in rows]
        predicted = [results[r["path"]][0] for r in rows]
        classes = sorted(set(truth))
        print(f"\n{name}: UAR {uar(truth, predicted):.2f} over {len(rows)} clips ({len(classes)} classes)")
        for c in classes:
            got = [p for t, p in zip(truth, predicted, strict=True) if t == c]
            counts = {p: got.count(p) for p in sorted(set(got))}
            print(f"  {c:10s} recall {np.mean([p == c for p in got]):.2f}  predicted {counts}")
    for r in labels:
        if r["set"] != "wolfgang":
            continue
        _, table = results[r["path"]]
        if table is None or table.empty:
            print("\nwolfgang: no face")
            continue
        for title, part in (
            ("seconds 0-9 (sad)", table.end_time <= 10),
            ("seconds 12+ (laughing)", table.start_time >= 12),
        ):
            print(f"\nwolfgang {title}: window labels {table.loc[part, 'label'].value_counts().to_dict()}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make").add_argument("corpus", type=Path)
    scoring = sub.add_parser("score")
    scoring.add_argument("corpus", type=Path)
    scoring.add_argument("store", type=Path)
    scoring.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.corpus)
    else:
        score(args.corpus, args.store, args.fps)


if __name__ == "__main__":
    main(sys.argv[1:])
