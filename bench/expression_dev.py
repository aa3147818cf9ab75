"""Expression dev benchmark: clip-level emotion UAR of the rule baseline, scored as issue 10's measurement.

Two steps, so that the scoring can run on any checkout (e.g. main's code, for a before/after):

    # 1. write the dev corpus (needs this checkout's tasks.synthetic.facs_warp): CREMA-D clips and the Wolfgang clip
    #    (symlinked), synthetic posed stills (2 s) and neutral->apex ramps (0.3-1.5 s at 30 fps)
    PYTHONPATH=. python bench/expression_dev.py make /tmp/exprdev/corpus
    # 2. per set, `lessonlens evaluate --manifest` at 10 fps: the nightly-corpus flow itself (Prefect, Dask,
    #    decode, faces, AUs, the default emotion predictor per window), clip label = argmax of the mean class
    #    probability over the clip's windows; UAR per set, and the evaluation pages under OUT
    PYTHONPATH=. python bench/expression_dev.py score /tmp/exprdev/corpus /tmp/exprdev/out

Sets: ``cremad`` (6 acted clips of one actor, weak labels, CREMA-D, ODbL: Cao et al. 2014), ``still``
(each photo of :func:`tasks.synthetic.media.face_bases` posed with each emotion's prototype AUs of
:data:`tasks.synthetic.facs_warp.EMOTION_AUS`, plus neutral), ``crop`` (the same stills as face datasets ship
them: cut to the landmarks' extent, grey, 128 px), ``ramp`` (the same faces and six emotions, linear
neutral->apex over 9, 24 and 45 frames at 30 fps), ``wolfgang`` (sad for its first 10 s, laughing from 12 s:
scored as two segments). A clip without a face counts as wrong.
"""

import argparse
import csv
import sys
import time
from pathlib import Path

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
MEDIA = Path("/work/shared/media")
RAMP_FPS = 30.0  # as sequence datasets are filmed: the 10-fps grid falls between their frames
RAMP_FRAMES = (9, 24, 45)  # 0.3, 0.8 and 1.5 s


def make(corpus: Path) -> None:
    from tasks.synthetic.facs_warp import EMOTION_AUS, ramp, still
    from tasks.synthetic.media import face_bases, write_clip

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
            path = corpus / f"crop_{name}_{emotion}.mp4"
            if not path.exists():
                write_clip(path, (dataset_view(face, f) for f in still(face, aus, seconds=2.0, fps=25.0)), fps=25.0)
            rows.append({"path": path.name, "set": "crop", "label": emotion})
            if emotion == "neutral":
                continue
            for n in RAMP_FRAMES:
                path = corpus / f"ramp{n:02d}_{name}_{emotion}.mp4"
                if not path.exists():
                    frames = (frame for frame, _ in ramp(face, aus, seconds=n / RAMP_FPS, fps=RAMP_FPS))
                    write_clip(path, frames, fps=RAMP_FPS)
                rows.append({"path": path.name, "set": "ramp", "label": emotion})
    with open(corpus / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "set", "label"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} clips in {corpus}")


def dataset_view(face, frame, size: int = 128):
    """``frame`` of ``face`` as face datasets ship stills: cropped to the neutral landmarks' extent (brows to
    chin, no margin), greyscale, ``size`` pixels square."""
    import cv2
    import numpy as np

    (x1, y1), (x2, y2) = face.landmarks.min(axis=0).astype(int), face.landmarks.max(axis=0).astype(int)
    grey = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(cv2.cvtColor(cv2.resize(grey, (size, size)), cv2.COLOR_GRAY2RGB))


def score(corpus: Path, out: Path, fps: float) -> dict[str, dict]:
    """``lessonlens evaluate --manifest`` of each set; prints and returns each set's clip-level scores."""
    from flows.evaluate import evaluate_manifest
    from tasks.analyse.evaluate import summary_lines

    labels = list(csv.DictReader(open(corpus / "labels.csv")))
    sets = {}
    for name in ("cremad", "still", "crop", "ramp", "wolfgang"):
        rows = [r for r in labels if r["set"] == name]
        if not rows:
            continue
        manifest = out / f"{name}.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "start", "end"])
            for r in rows:
                path = (corpus / r["path"]).resolve()
                if name == "wolfgang":  # sad, then laughing
                    writer.writerows([[path, "sadness", 0, 10], [path, "happiness", 12, ""]])
                else:
                    writer.writerow([path, r["label"], "", ""])
        start = time.perf_counter()
        result = evaluate_manifest(manifest, out / name, fps=fps, progress=lambda message: None)
        print(f"\n{name} ({time.perf_counter() - start:.0f} s, {result['model_version']}):")
        for line in summary_lines(result):
            print(f"  {line}")
        sets[name] = result["clip"]
    return sets


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make").add_argument("corpus", type=Path)
    scoring = sub.add_parser("score")
    scoring.add_argument("corpus", type=Path)
    scoring.add_argument("out", type=Path, help="folder for the manifests and evaluation pages")
    scoring.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.corpus)
    else:
        score(args.corpus, args.out, args.fps)


if __name__ == "__main__":
    main(sys.argv[1:])
