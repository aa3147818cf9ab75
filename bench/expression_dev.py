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
import math
import sys
import time
from pathlib import Path

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
MEDIA = Path("/work/shared/media")
RAMP_FPS = 30.0  # as sequence datasets are filmed: the 10-fps grid falls between their frames
RAMP_FRAMES = (9, 24, 45)  # 0.3, 0.8 and 1.5 s


def make(corpus: Path, ramp_bases: set[str] | None = None) -> None:
    """Write the corpus and its labels.csv; ``ramp_bases``: the face bases that get ramps (default all: each
    ramp renders every frame, about 470 renders per base, the slow part on 2 busy cores)."""
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
            if emotion == "neutral" or (ramp_bases is not None and name not in ramp_bases):
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


def compare_crops(corpus: Path, fps: float, margin: float) -> dict[str, dict[str, float]]:
    """Issue 23's crop decision: face-api.js's expression net on the aligned 112 × 112 crop the store keeps vs a
    looser box (the detector's box grown by ``margin`` of its size on every side, cut from the frame and
    prepared as face-api.js does: padded square, resized). Same frames (``fps`` grid of each clip, our MediaPipe
    backend, the largest face), clip label = argmax of the mean probability; prints and returns UAR per set."""
    import numpy as np
    import torch

    from models.faceapi import load_expression_net, prepare
    from models.faceapi_package import EMOTION_NAMES, EXPRESSIONS
    from models.train import classification_metrics
    from tasks.extract.crops import align_face
    from tasks.extract.decode import decode_frames, frame_times, open_video
    from tasks.extract.faces import MediaPipeFaceBackend

    net, backend = load_expression_net(), MediaPipeFaceBackend()
    order = [[EMOTION_NAMES[e] for e in EXPRESSIONS].index(c) for c in EMOTIONS]
    truth: dict[str, list[str]] = {}
    predicted: dict[str, dict[str, list[str]]] = {"aligned": {}, "box": {}}
    for row in csv.DictReader(open(corpus / "labels.csv")):
        wolfgang = [("sadness", 0.0, 10.0), ("happiness", 12.0, math.inf)]  # as score() cuts it
        segments = wolfgang if row["set"] == "wolfgang" else [(row["label"], 0.0, math.inf)]
        reader = open_video(corpus / row["path"])
        times = frame_times(reader)
        for label, start, end in segments:
            grid = np.arange(max(start, times[0]), min(end, times[-1]) + 1e-9, 1 / fps)
            picks = {int(np.abs(times - t).argmin()) for t in grid}
            if end > times[-1]:
                picks.add(len(times) - 1)  # the pipeline samples each video's last frame too
            faces = {"aligned": [], "box": []}
            backend.reset()
            for _, pixels in decode_frames(reader, tuple(sorted(picks))):
                found = backend.detect(pixels)
                if not found:
                    continue
                face = max(found, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
                x1, y1, x2, y2 = face.bbox
                dx, dy = margin * (x2 - x1), margin * (y2 - y1)
                h, w = pixels.shape[:2]
                box = [int(max(x1 - dx, 0)), int(max(y1 - dy, 0)), int(min(x2 + dx, w)), int(min(y2 + dy, h))]
                faces["aligned"].append(align_face(pixels, face.landmarks))
                faces["box"].append(pixels[box[1] : box[3], box[0] : box[2]])
            truth.setdefault(row["set"], []).append(label)
            for crop, images in faces.items():
                if not images:
                    predicted[crop].setdefault(row["set"], []).append("(no face)")
                    continue
                with torch.inference_mode():
                    probs = torch.softmax(net(prepare(images)), dim=1).numpy()[:, order].mean(axis=0)
                predicted[crop].setdefault(row["set"], []).append(EMOTIONS[int(probs.argmax())])
    classes = [*EMOTIONS, "(no face)"]
    table = {}
    print(f"\nUAR per set, face-api.js expression net, {fps:g} fps, box margin {margin:g}:")
    for name, labels in truth.items():
        table[name] = {}
        for crop in predicted:
            metrics = classification_metrics([classes.index(t) for t in labels],
                                             [classes.index(p) for p in predicted[crop][name]], classes)  # fmt: skip
            table[name][crop] = metrics["uar"]
        aligned, box = table[name]["aligned"], table[name]["box"]
        print(f"  {name:9s} ({len(labels):3d} clips): aligned crop {aligned:.2f}, box {box:.2f}")
    return table


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    making = sub.add_parser("make")
    making.add_argument("corpus", type=Path)
    making.add_argument("--ramp-bases", default=None, help="comma-separated face bases that get ramps (default all)")
    scoring = sub.add_parser("score")
    scoring.add_argument("corpus", type=Path)
    scoring.add_argument("out", type=Path, help="folder for the manifests and evaluation pages")
    scoring.add_argument("--fps", type=float, default=10.0)
    crops = sub.add_parser("crops", help="the net on the aligned crop vs a looser box (issue 23's crop decision)")
    crops.add_argument("corpus", type=Path)
    crops.add_argument("--fps", type=float, default=10.0)
    crops.add_argument("--margin", type=float, default=0.2, help="box growth per side, share of its size")
    args = parser.parse_args(argv)
    if args.command == "crops":
        compare_crops(args.corpus, args.fps, args.margin)
    elif args.command == "make":
        make(args.corpus, set(args.ramp_bases.split(",")) if args.ramp_bases else None)
    else:
        score(args.corpus, args.out, args.fps)


if __name__ == "__main__":
    main(sys.argv[1:])
