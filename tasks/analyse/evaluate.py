"""Check it on your data first: score an expression predictor on labelled clips.

On what the nightly pipeline itself produces (``flows/evaluate.py`` runs the
``nightly-corpus`` flow on the clips; this module holds the plain functions around it):

Labelled clips (``lessonlens evaluate --manifest labels.csv``). The manifest is a CSV with columns
``path,label`` and optionally ``start,end``: ``path`` relative to the CSV, a video or a still image;
``label`` one of the task's classes (:data:`models.rules.EMOTIONS`); ``start`` / ``end`` in seconds
cut a segment of a video (either may be empty). :func:`build_corpus` turns the rows into a corpus
folder: a video is linked, a segment is cut into a new file, an image becomes a 2-s clip animated the
way the demo corpus is made (``tasks.synthetic.media.animate``); a row whose clip cannot be made is a miss with
its reason. After the pipeline ran:

- clip level: a clip's predicted label is the argmax of the mean class probability over all its
  prediction windows (every face track); a clip without any window (no face found, or the video
  failed) is a miss, predicted ``(no prediction)``, and is listed;
- window level: every window gets its clip's label and is scored by its own argmax;
- both with WAR, UAR, per-class recall and the confusion matrix of ``models.train.classification_metrics``
  (UAR averages the classes with at least one clip). The ``(no prediction)`` column appears only when
  there are misses;
- for each emotion stream (:data:`STREAMS`): ``emotion``, the default (a promoted model, else face-api.js's
  expression net), and ``emotion_rules``, the AU rules, both predicted by the same pipeline run. One is the
  headline (``--stream``, default ``emotion``; ``--model rules`` means ``--stream emotion_rules``): its pages
  are in ``out``; every stream's are in ``out/streams/<stream>``, and ``streams`` in the result compares them.
"""

import csv
import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from models.registry import list_versions, models_root, promote, promoted
from models.rules import EMOTION_STREAMS, EMOTIONS
from models.train import classification_metrics, save_metrics
from tasks.extract.discover import VIDEO_EXTENSIONS, content_id
from tasks.store import Store, csv_safe, remove_tree

TASK = "emotion"  # the task a registered model is promoted for
STREAMS = EMOTION_STREAMS
CLASSES: tuple[str, ...] = EMOTIONS
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
IMAGE_CLIP_SECONDS = 2.0  # an image becomes a clip this long ...
IMAGE_CLIP_FPS = 25.0  # ... at the demo corpus' frame rate
MISS = "(no prediction)"
MANIFEST_COLUMNS = ("path", "label", "start", "end")
FACE_COLUMNS = ("face_tracks", "frames_with_face", "sampled_frames", "windows")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# manifest ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledItem:
    """One manifest row: ``row`` is its line number in the CSV (the header is line 1)."""

    row: int
    source: Path  # resolved path of the video or image
    label: str
    start: float | None = None
    end: float | None = None

    @property
    def is_image(self) -> bool:
        return self.source.suffix.lower() in IMAGE_EXTENSIONS


def _seconds(manifest: Path, row: int, column: str, text: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{manifest}: row {row} column {column}: {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{manifest}: row {row} column {column}: {text!r} must be a finite number >= 0")
    return value


def read_label_manifest(path: str | Path, classes: Sequence[str] = CLASSES) -> list[LabelledItem]:
    """The rows of a ``path,label[,start,end]`` manifest, validated; errors name the file, row and column.

    Labels are matched case-insensitively. A missing file is a FileNotFoundError; any other bad row is a
    ValueError.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{manifest}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as CSV UTF-8"
        ) from None
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise ValueError(f"{manifest}: row 1 (header): missing column(s) {missing}; expected path,label[,start,end]")
    unknown = [c for c in header if c not in MANIFEST_COLUMNS]
    if unknown:
        raise ValueError(f"{manifest}: row 1 (header): unknown column(s) {unknown}; allowed: path,label,start,end")
    lookup = {c.lower(): c for c in classes}
    items = []
    for number, values in enumerate(rows, start=2):
        if not any(v.strip() for v in values):
            continue  # blank line
        if len(values) != len(header):
            raise ValueError(f"{manifest}: row {number}: {len(values)} fields, the header has {len(header)}")
        row = {c: v.strip() for c, v in zip(header, values, strict=True)}
        if not row["path"]:
            raise ValueError(f"{manifest}: row {number} column path: empty")
        source = (manifest.parent / row["path"]).resolve()
        suffix = source.suffix.lower()
        if suffix not in VIDEO_EXTENSIONS and suffix not in IMAGE_EXTENSIONS:
            raise ValueError(
                f"{manifest}: row {number} column path: {row['path']!r} is neither a video "
                f"({' '.join(sorted(VIDEO_EXTENSIONS))}) nor an image ({' '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        if not source.is_file():
            raise FileNotFoundError(f"{manifest}: row {number} column path: file {source} not found")
        label = lookup.get(row["label"].lower())
        if label is None:
            raise ValueError(
                f"{manifest}: row {number} column label: {row['label']!r} is not a class of task {TASK} "
                f"({', '.join(classes)})"
            )
        start = _seconds(manifest, number, "start", row.get("start", ""))
        end = _seconds(manifest, number, "end", row.get("end", ""))
        if (start is not None or end is not None) and suffix in IMAGE_EXTENSIONS:
            column = "start" if start is not None else "end"
            raise ValueError(f"{manifest}: row {number} column {column}: an image has no segment to cut")
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{manifest}: row {number} column end: {end} s is not after start {start} s")
        items.append(LabelledItem(number, source, label, start, end))
    if not items:
        raise ValueError(f"{manifest}: no rows (expected path,label[,start,end])")
    _check_clips(manifest, items)
    return items


def _check_clips(manifest: Path, items: Sequence[LabelledItem]) -> None:
    """Refuse a clip (file and segment) listed twice with different labels, naming both rows; warn of paths
    outside the manifest's folder (absolute, ``..``, or a link out of it): a manifest from elsewhere then
    reads files you may not have meant to score, and its clips and their names land in ``--out``."""
    first: dict[tuple, LabelledItem] = {}
    for item in items:
        seen = first.setdefault((item.source, item.start, item.end), item)
        if seen.label != item.label:
            raise ValueError(
                f"{manifest}: row {item.row} column label: the clip of row {seen.row} again ({item.source}), "
                f"labelled {item.label} here and {seen.label} in row {seen.row}"
            )
    folder = manifest.parent.resolve()
    outside = [item.row for item in items if not item.source.is_relative_to(folder)]
    if outside:
        warnings.warn(
            f"{manifest}: {', '.join(f'row {r}' for r in outside)}: files outside the manifest's folder {folder}",
            stacklevel=3,
        )


# corpus -----------------------------------------------------------------------------------------------
def image_clip(image: Path, destination: Path, seed: int = 0) -> Path:
    """A :data:`IMAGE_CLIP_SECONDS` clip of ``image`` animated like the demo corpus (pan, zoom, light)."""
    import cv2

    from tasks.synthetic.media import animate, write_video

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image}: not a readable image")
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return write_video(destination, animate(photo, IMAGE_CLIP_SECONDS, IMAGE_CLIP_FPS, seed=seed), IMAGE_CLIP_FPS)


def cut_segment(video: Path, destination: Path, start: float | None, end: float | None, where: str) -> Path:
    """The frames of ``video`` shown in [start, end) seconds, re-encoded (H.264) at the video's frame rate.

    ``where`` (e.g. ``labels.csv: row 3``) prefixes errors: a segment past the video's end, or one
    without frames.
    """
    from tasks.extract.decode import VideoError, decode_frames, frame_times, open_video, probe
    from tasks.synthetic.media import write_video

    try:
        reader = open_video(video)
        times = frame_times(reader)
        info = probe(reader, times)
    except VideoError as exc:
        raise ValueError(f"{where} column path: {exc}") from exc
    lo = 0.0 if start is None else start
    hi = info.duration_s if end is None else end
    if lo >= info.duration_s:
        raise ValueError(f"{where} column start: {lo} s is past the end of {video} ({info.duration_s:.3f} s)")
    if end is not None and end > info.duration_s + 1e-3:
        raise ValueError(f"{where} column end: {end} s is past the end of {video} ({info.duration_s:.3f} s)")
    frames = tuple(int(i) for i in np.flatnonzero((times >= lo - 1e-6) & (times < hi - 1e-6)))
    if not frames:
        raise ValueError(f"{where} columns start/end: no frame of {video} is shown in [{lo}, {hi}) s")
    try:
        return write_video(destination, (pixels for _, pixels in decode_frames(reader, frames)), info.fps)
    except VideoError as exc:
        raise ValueError(f"{where} column path: {video}: {exc}") from exc


def build_corpus(items: Sequence[LabelledItem], folder: str | Path, manifest: str | Path, progress: Progress = _quiet
                 ) -> tuple[dict[int, Path], dict[int, str]]:  # fmt: skip
    """A corpus folder for the pipeline: (row → the clip the pipeline analyses for that row, row → why no clip
    could be made: an unreadable image, a segment past the video's end). A bad row never stops the others.

    Whole videos are symbolic links (the pipeline resolves them to the original file), segments and image
    clips new files named after their source's path, size, modification time and segment: a rerun reuses
    a clip whose source is unchanged and never one made from another file. Whatever else is in ``folder``
    (clips of an earlier manifest) is removed, so the pipeline analyses this manifest's clips only.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips, problems = {}, {}
    for item in items:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", item.source.stem)[:60]
        name = f"row{item.row:05d}_{stem}"
        where = f"{manifest}: row {item.row}"
        if item.is_image or item.start is not None or item.end is not None:
            stat = item.source.stat()
            key = f"{item.source}|{stat.st_size}|{stat.st_mtime_ns}|{item.start}|{item.end}"
            clip = folder / f"{name}_{hashlib.sha256(key.encode()).hexdigest()[:10]}.mp4"
            if not clip.is_file():
                try:
                    clip = _make_clip(item, clip, where, progress)
                except ValueError as exc:
                    problems[item.row] = str(exc)
                    progress(f"row {item.row}: no clip: {exc}")
                    continue
        else:
            clip = folder / f"{name}{item.source.suffix.lower()}"
            if clip.is_symlink() and clip.resolve() != item.source:
                clip.unlink()
            if not clip.is_symlink():
                clip.symlink_to(item.source)
        clips[item.row] = clip
    keep_only(folder, set(clips.values()))
    return clips, problems


def keep_only(folder: Path, keep: set[Path]) -> None:
    """Remove everything in ``folder`` but ``keep``: the pipeline analyses the whole folder, and clips of an
    earlier evaluation into the same ``--out`` (or half-written ones) must not be analysed with these."""
    for stale in [p for p in folder.iterdir() if p not in keep]:
        remove_tree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()


def _make_clip(item: LabelledItem, clip: Path, where: str, progress: Progress) -> Path:
    """Encode the clip of an image or segment row into ``clip`` (written aside, then renamed into place)."""
    tmp = clip.with_name(f".{clip.name}")
    if item.is_image:
        progress(f"row {item.row}: {item.source.name} → {IMAGE_CLIP_SECONDS:g}-s clip")
        try:
            image_clip(item.source, tmp, seed=item.row)
        except ValueError as exc:
            raise ValueError(f"{where} column path: {exc}") from exc
    else:
        progress(f"row {item.row}: cutting {item.source.name} [{item.start or 0:g}, {item.end or 'end'}] s")
        cut_segment(item.source, tmp, item.start, item.end, where)
    return tmp.rename(clip)


# predictor --------------------------------------------------------------------------------------------
def resolve_model(registry: str | Path | None, spec: str | None) -> dict | None:
    """The registry record of the predictor to evaluate; None for the rule baseline.

    ``spec``: ``rules``; ``promoted`` (the task's promoted version in ``registry``); a version ``vNNNN``
    (unique among the registry's versions of the task) or ``NAME:VERSION``; None means what the pipeline
    would use: the promoted version when ``registry`` has one, else the rule baseline.
    """
    if spec is None:
        return promoted(registry, TASK) if registry is not None and Path(registry).is_dir() else None
    if spec == "rules":
        return None
    if registry is None:
        raise ValueError(f"--model {spec}: registered versions are read from a store; give --registry (or --store)")
    if not Path(registry).is_dir():
        raise FileNotFoundError(f"--registry {registry} does not exist")
    if spec == "promoted":
        record = promoted(registry, TASK)
        if record is None:
            raise ValueError(f"--model promoted: no {TASK} model is promoted in {registry} (use --model rules)")
        return record
    name, _, version = spec.rpartition(":")
    candidates = [r for r in list_versions(registry, name or None) if r["version"] == version]
    on_task = [r for r in candidates if r["task"] == TASK]
    if len(on_task) == 1:
        return on_task[0]
    known = [f"{r['name']}:{r['version']}" for r in list_versions(registry) if r["task"] == TASK]
    if len(on_task) > 1:
        raise ValueError(f"--model {spec}: ambiguous in {registry}; give one of {', '.join(known)}")
    if candidates:
        raise ValueError(f"--model {spec}: it predicts task {candidates[0]['task']!r}, not {TASK!r}")
    raise ValueError(
        f"--model {spec}: no such {TASK} version in {registry}; registered: {', '.join(known) or 'none'} "
        "(or rules, promoted)"
    )


def describe(record: dict | None) -> str:
    return "rule baseline" if record is None else f"{record['name']} {record['version']}"


def prepare_store(store: str | Path, registry: str | Path | None, record: dict | None) -> None:
    """Make ``record`` (None: the rule baseline) the predictor the pipeline uses in ``store``.

    A registered version is linked into ``store`` from its registry and promoted there (a pointer file;
    no Prefect event). A store whose predictor is already another one is refused rather than changed, so
    an evaluation never re-promotes a store's model.
    """
    current = promoted(store, TASK)
    same = current is not None and record is not None and (current["name"], current["version"]) == (
        record["name"], record["version"])  # fmt: skip
    if same or (current is None and record is None):
        return
    if current is not None:
        raise ValueError(
            f"--store {store} uses {describe(current)} for {TASK}; evaluating {describe(record)} there would "
            "change it: omit --store (a temporary store) or name a new one"
        )
    registry_root = models_root(registry).parent if registry is not None else None
    if registry_root == Path(store).expanduser().resolve():
        raise ValueError(
            f"--store {store} is the registry and does not promote {describe(record)}: omit --store or name another"
        )
    link = models_root(store) / record["name"] / record["version"]
    if link.is_symlink() and link.resolve() != Path(record["path"]).resolve():
        raise ValueError(f"--store {store}: {link} links to another model ({link.resolve()})")
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(record["path"]).resolve(), target_is_directory=True)
    promote(store, record["name"], record["version"], notify=False)  # its own store: no reprocess event


# scoring ----------------------------------------------------------------------------------------------
def prediction_file(store: str | Path, video_id: str, stream: str = TASK) -> Path:
    from tasks.predict.inference import current_version

    store = Store(store)
    return store.prediction_path(stream, current_version(store, stream), video_id)


def collect_predictions(
    items: Sequence[LabelledItem],
    clips: dict[int, Path],
    store: str | Path,
    problems: dict[int, str] | None = None,
    stream: str = TASK,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per manifest row, one row per prediction window) of emotion stream ``stream`` from ``store``
    after the pipeline ran; ``problems``: the rows without a clip (:func:`build_corpus`), misses with their reason.

    Clip columns: row, path, label, start, end, video_id, status, sampled_frames, frames_with_face,
    face_tracks, windows, predicted, correct, miss_reason and the mean ``p_<class>``. Window columns:
    row, video_id, face_id, window_index, start_time, end_time, label (the clip's), predicted.
    """
    catalog = Store(store).read_catalog("videos").set_index("video_id")
    failures = Store(store).read_catalog("failures")
    p_columns = [f"p_{c}" for c in CLASSES]
    clip_rows, window_frames = [], []
    for item in items:
        if item.row not in clips:
            reason = f"no clip made ({(problems or {}).get(item.row, 'unknown')})"
            clip_rows.append({"row": item.row, "path": str(item.source), "label": item.label, "start": item.start,
                              "end": item.end, "predicted": MISS, "correct": False, "windows": 0,
                              "miss_reason": reason})  # fmt: skip
            continue
        video_id = content_id(clips[item.row])
        info = catalog.loc[video_id] if video_id in catalog.index else None
        status = None if info is None else info["status"]
        row = {"row": item.row, "path": str(item.source), "label": item.label, "start": item.start,
               "end": item.end, "video_id": video_id, "status": status}  # fmt: skip
        for column in ("sampled_frames", "frames_with_face", "face_tracks"):
            row[column] = None if info is None or pd.isna(info[column]) else int(info[column])
        file = prediction_file(store, video_id, stream)
        windows = pq.read_table(file).to_pandas() if file.is_file() else pd.DataFrame(columns=p_columns)
        probs = windows[p_columns].to_numpy(np.float64)
        usable = probs[~np.isnan(probs).any(axis=1)]
        row["windows"] = len(windows)
        means = usable.mean(axis=0) if len(usable) else np.full(len(CLASSES), np.nan)
        row["predicted"] = CLASSES[int(np.argmax(means))] if len(usable) else MISS
        row["correct"] = row["predicted"] == item.label
        if len(usable):
            row["miss_reason"] = None
        elif status == "ok" and not row["face_tracks"]:
            row["miss_reason"] = "no face found"
        elif status == "ok":
            row["miss_reason"] = "no usable prediction window"
        else:
            mine = failures[failures["video_id"] == video_id].tail(1)
            detail = f"{mine['stage'].iloc[0]}: {mine['message'].iloc[0]}" if len(mine) else "not extracted"
            row["miss_reason"] = f"pipeline failed ({detail})"
        row.update({c: float(m) for c, m in zip(p_columns, means, strict=True)})
        clip_rows.append(row)
        if len(windows):
            labelled = np.where(np.isnan(probs).any(axis=1), MISS, np.array(CLASSES)[np.nan_to_num(probs).argmax(1)])
            window_frames.append(
                pd.DataFrame(
                    {
                        "row": item.row,
                        "video_id": video_id,
                        "face_id": windows["face_id"].to_numpy(),
                        "window_index": windows["window_index"].to_numpy(),
                        "start_time": windows["start_time"].to_numpy(),
                        "end_time": windows["end_time"].to_numpy(),
                        "label": item.label,
                        "predicted": labelled,
                    }
                )  # fmt: skip
            )
    window_columns = ["row", "video_id", "face_id", "window_index", "start_time", "end_time", "label", "predicted"]
    windows_all = pd.concat(window_frames, ignore_index=True) if window_frames else pd.DataFrame(columns=window_columns)
    return pd.DataFrame(clip_rows), windows_all


def label_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    """``classification_metrics`` over the task's classes, plus :data:`MISS` when a prediction is missing."""
    classes = list(CLASSES) + ([MISS] if MISS in set(predicted) else [])
    index = {c: i for i, c in enumerate(classes)}
    metrics = classification_metrics([index[t] for t in truth], [index[p] for p in predicted], classes)
    metrics["recall"].pop(MISS, None)  # no clip is labelled "no prediction"
    metrics["support"].pop(MISS, None)
    return metrics


def score(clips: pd.DataFrame, windows: pd.DataFrame) -> dict:
    """Clip- and window-level metrics (window: None when no clip had a window) and the misses."""
    misses = clips[clips["predicted"] == MISS]
    return {
        "clip": label_metrics(clips["label"].tolist(), clips["predicted"].tolist()),
        "window": label_metrics(windows["label"].tolist(), windows["predicted"].tolist()) if len(windows) else None,
        "misses": [{"row": int(r.row), "path": r.path, "reason": r.miss_reason} for r in misses.itertuples()],
        "faces": {
            str(r.row): {k: None if pd.isna(getattr(r, k)) else int(getattr(r, k)) for k in FACE_COLUMNS}
            for r in clips.itertuples()
        },
    }


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def recall_table(result: dict) -> pd.DataFrame:
    rows = []
    for level in ("clip", "window"):
        metrics = result.get(level)
        if metrics is None:
            continue
        for c in CLASSES:
            recall = metrics["recall"][c]
            rows.append({"level": level, "class": c, "support": metrics["support"][c],
                         "recall": "" if recall is None else f"{recall:.3f}"})  # fmt: skip
    return pd.DataFrame(rows)


def write_evaluation(out: str | Path, result: dict, clips: pd.DataFrame, windows: pd.DataFrame, facts: dict) -> Path:
    """``evaluation.json``, ``clips.csv``, ``windows.csv``, ``clip/`` and ``window/`` (metrics.json,
    confusion.csv, confusion.png) and the self-contained ``report.html``; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_safe(clips).to_csv(out / "clips.csv", index=False)  # paths and labels from the manifest
    csv_safe(windows).to_csv(out / "windows.csv", index=False)
    for level in ("clip", "window"):
        if result[level] is not None:
            save_metrics(result[level], out / level)
        else:
            remove_tree(out / level)  # an earlier evaluation's, which the page would show
    (out / "evaluation.json").write_text(json.dumps(jsonable({**facts, **result}), indent=2) + "\n")
    path = out / "report.html"
    path.write_text(evaluation_html(result, clips, facts, out))
    return path


def evaluation_html(result: dict, clips: pd.DataFrame, facts: dict, out: Path) -> str:
    """One self-contained page: facts, scores, per-class recall, confusion matrices, the clips and misses."""
    import html

    from tasks.analyse.report import CSS, _html_table, _img

    esc = html.escape
    dl = "".join(f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>" for k, v in facts.items())
    body = [f"<h1>Expression evaluation: {esc(str(facts.get('model', '')))}</h1>", f'<dl class="facts">{dl}</dl>']
    lines = []
    for level in ("clip", "window"):
        m = result[level]
        if m is not None:
            lines.append(f"{level} level: UAR {m['uar']:.3f}, WAR {m['war']:.3f} (n = {m['n']} {level}s)")
    body += ["<h2>Scores</h2>", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>"]
    body += ["<h2>Recall per class</h2>", _html_table(recall_table(result))]
    for level in ("clip", "window"):
        png = out / level / "confusion.png"
        if png.is_file():
            body += [f"<h2>Confusion matrix, {level} level</h2>", f"<figure>{_img(png.read_bytes(), level)}</figure>"]
    shown = clips[["row", "path", "label", "predicted", "face_tracks", "frames_with_face", "sampled_frames",
                   "windows", "miss_reason"]].copy()  # fmt: skip
    shown["path"] = shown["path"].map(lambda p: Path(p).name)
    body += ["<h2>Clips</h2>", '<div class="scroll">', _html_table(shown.fillna("")), "</div>"]
    misses = result["misses"]
    body.append("<h2>Clips without a prediction</h2>")
    items = "".join(f"<li>row {m['row']}: {esc(m['path'])}: {esc(str(m['reason']))}</li>" for m in misses)
    body.append(f"<ul>{items}</ul>" if misses else "<p>none: a face was found in every clip</p>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Expression evaluation</title>'
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def stream_summary(result: dict, model_name: str, model_version: str) -> dict:
    """One stream's line of the comparison: its model and clip/window UAR and WAR."""
    clip, window = result["clip"], result["window"]
    return {"model": model_name, "model_version": model_version, "clip_uar": clip["uar"], "clip_war": clip["war"],
            "window_uar": None if window is None else window["uar"], "clips": clip["n"]}  # fmt: skip


def summary_lines(result: dict) -> list[str]:
    """The scores as short text lines (CLI output); then each stream's clip-level UAR when there are several."""
    lines = []
    for level in ("clip", "window"):
        m = result[level]
        if m is None:
            lines.append(f"{level} level: no windows")
            continue
        recall = ", ".join(f"{c} {r:.2f}" for c, r in m["recall"].items() if r is not None)
        lines.append(f"{level} level: UAR {m['uar']:.3f}, WAR {m['war']:.3f} on {m['n']} {level}s; recall: {recall}")
    for m in result["misses"]:
        lines.append(f"no prediction for row {m['row']} ({Path(m['path']).name}): {m['reason']}")
    for stream, s in result.get("streams", {}).items():
        window = "-" if s["window_uar"] is None else f"{s['window_uar']:.3f}"
        lines.append(f"stream {stream} ({s['model']}, {s['model_version']}): clip UAR {s['clip_uar']:.3f}, "
                     f"WAR {s['clip_war']:.3f}; window UAR {window}")  # fmt: skip
    return lines
