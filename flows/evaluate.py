"""Evaluations that run the pipeline: any expression predictor on the user's labelled clips
(:func:`evaluate_manifest`), or our AUs against an OpenFace CSV (:func:`evaluate_au_reference`).

Both run the clips through the ``nightly-corpus`` flow itself (real Prefect API, Dask cluster, decode →
faces → tracks → AUs → predictions), into a given store or a temporary one; the scoring is in
``tasks.analyse.evaluate``; ``lessonlens evaluate`` (``flows.cli``) calls them.
"""

import shutil
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import flows  # noqa: F401  (offline Prefect defaults)
from tasks.extract.video import ExtractParams


def _stderr(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


@contextmanager
def _store(store: str | Path | None):
    """The named store, or a temporary one removed afterwards."""
    if store is not None:
        yield Path(store).expanduser().resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="lessonlens-eval-store-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_pipeline(corpus: Path, store: Path, fps: float, workers: int | None) -> dict:
    """The ``nightly-corpus`` flow on ``corpus`` (a temporary Prefect API when none is configured)."""
    from flows.engine import prefect_api
    from flows.nightly_corpus import nightly_corpus

    with prefect_api():
        return nightly_corpus(corpus=str(corpus), store=str(store), fps=fps, workers=workers)


def evaluate_manifest(
    manifest: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    registry: str | Path | None = None,
    store: str | Path | None = None,
    fps: float | None = None,
    workers: int | None = None,
    stream: str = "emotion",
    progress=_stderr,
) -> dict:
    """Score the emotion streams on a labelled manifest (see ``tasks.analyse.evaluate``); returns the headline
    ``stream``'s result dict (``clip``, ``window``, ``misses``, ``faces``, the facts, and ``streams``: every
    stream's scores) and writes everything into ``out`` (each stream's pages in ``out/streams/<stream>``).

    ``model``: the ``emotion`` stream's predictor: promoted | VERSION | NAME:VERSION, read from ``registry``
    (default ``store``); ``rules`` is ``stream="emotion_rules"``.
    """
    from models import rules
    from tasks.analyse import evaluate as ev
    from tasks.predict.inference import current_version, emotion_stream
    from tasks.store import Store

    fps = ExtractParams.fps if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    if model == "rules":
        stream, model = "emotion_rules", None
    if stream not in ev.STREAMS:
        raise ValueError(f"--stream {stream!r} is not one of {', '.join(ev.STREAMS)}")
    items = ev.read_label_manifest(manifest)
    registry = registry if registry is not None else store
    record = ev.resolve_model(registry, model)
    out = Path(out)
    progress(f"{len(items)} labelled clips in {manifest}; headline stream {stream}; emotion: {ev.describe(record)}")
    clips, problems = ev.build_corpus(items, out / "clips", manifest, progress)
    if not clips:
        raise ValueError(f"{manifest}: no row gave a clip to analyse: " + "; ".join(problems.values()))
    with _store(store) as root:
        ev.prepare_store(root, registry, record)
        progress(f"running the pipeline on {len(clips)} clips at {fps:g} fps into {root} (this takes a while)")
        summary = run_pipeline(out / "clips", root, fps, workers)
        progress(f"pipeline: {summary['extracted']} extracted, {summary['skipped']} already done, "
                 f"{summary['failed']} failed, {summary['windows']} prediction windows (all tasks)")  # fmt: skip
        scored = {}
        for name in ev.STREAMS:
            clip_table, windows = ev.collect_predictions(items, clips, root, problems, name)
            now = emotion_stream(Store(root)) if name == "emotion" else None
            model_name = now["model_name"] if now else rules.MODEL_NAME
            scored[name] = (ev.score(clip_table, windows), clip_table, windows, model_name,
                            current_version(Store(root), name))  # fmt: skip
    streams = {name: ev.stream_summary(r, m, v) for name, (r, _, _, m, v) in scored.items()}
    result, clip_table, windows, model_name, model_version = scored[stream]
    facts = {
        "manifest": str(Path(manifest).resolve()),
        "model": model_name,
        "model_version": model_version,
        "task": stream,
        "fps": fps,
        "store": str(Path(store).resolve()) if store is not None else "temporary (removed)",
        "clips": len(items),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for name, (r, c, w, m, v) in scored.items():
        ev.write_evaluation(out / "streams" / name, r, c, w, {**facts, "model": m, "model_version": v, "task": name})
    html = ev.write_evaluation(out, {**result, "streams": streams}, clip_table, windows, facts)
    return {**facts, **result, "streams": streams, "report": str(html)}


def evaluate_au_reference(
    reference: str | Path,
    video: str | Path,
    out: str | Path,
    *,
    store: str | Path | None = None,
    fps: float | None = None,
    workers: int | None = None,
    progress=_stderr,
):
    """Our AUs of ``video`` (extracted by the pipeline) against an OpenFace CSV; writes au_agreement.csv/json
    into ``out`` and returns the table (see ``tasks.analyse.au_agreement``)."""
    from tasks.analyse import au_agreement as aus
    from tasks.analyse import evaluate as ev
    from tasks.extract.decode import VideoError, open_video

    fps = ExtractParams.fps if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    video = Path(video).resolve()
    if not video.is_file():
        raise FileNotFoundError(f"--video {video} does not exist")
    try:
        video_fps = float(open_video(video).get_avg_fps())
    except VideoError as exc:
        raise ValueError(f"--video {exc}") from exc
    table_ref = aus.read_openface(reference, video_fps)
    out = Path(out)
    corpus = out / "clips"
    corpus.mkdir(parents=True, exist_ok=True)
    link = corpus / f"video{video.suffix.lower()}"
    if link.is_symlink() and link.resolve() != video:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(video)
    ev.keep_only(corpus, {link})
    with _store(store) as root:
        progress(f"extracting our AUs of {video.name} at {fps:g} fps into {root}")
        run_pipeline(corpus, root, fps, workers)
        video_id = ev.content_id(video)
        if not ev.Store(root).has_partition("frames", video_id):
            raise ValueError(f"--video {video}: the pipeline could not extract it (see the failures above)")
        ours = aus.primary_face_aus(root, video_id)
    if ours.empty:
        raise ValueError(f"--video {video}: no face found, so no AUs to compare")
    tolerance = 0.5 / fps
    try:
        table = aus.au_agreement(ours, table_ref, tolerance)
    except ValueError as exc:
        raise ValueError(f"--au-reference {reference}: {exc}") from None
    facts = {"reference": str(Path(reference).resolve()), "video": str(video), "fps": fps,
             "tolerance_s": tolerance, "our_samples": len(ours)}  # fmt: skip
    aus.write_au_agreement(out, table, facts)
    return table
