"""``lessonlens evaluate``: a registered version on a training dataset (``flows.train.evaluate_main``),
any expression predictor on the user's labelled clips (``--manifest``), or our AUs against an OpenFace
CSV (``--au-reference``).

The two new evaluations run the clips through the ``nightly-corpus`` flow itself (real Prefect API, Dask
cluster, decode → faces → tracks → AUs → predictions), into the store named by ``--store`` or a temporary
one; the scoring is in ``tasks.evaluate``.
"""

import argparse
import inspect
import shutil
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import flows  # noqa: F401  (offline Prefect defaults)


def _stderr(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


def pipeline_fps() -> float:
    """The ``fps`` default of the ``nightly-corpus`` flow (what ``lessonlens run`` samples at)."""
    from flows.nightly_corpus import nightly_corpus

    return float(inspect.signature(nightly_corpus.fn).parameters["fps"].default)


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
    progress=_stderr,
) -> dict:
    """Score an expression predictor on a labelled manifest (see ``tasks.evaluate``); returns the result
    dict (``clip``, ``window``, ``misses``, ``faces`` and the facts) and writes everything into ``out``.

    ``model``: rules | promoted | VERSION | NAME:VERSION, read from ``registry`` (default ``store``).
    """
    from tasks import evaluate as ev

    fps = pipeline_fps() if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    items = ev.read_label_manifest(manifest)
    registry = registry if registry is not None else store
    record = ev.resolve_model(registry, model)
    out = Path(out)
    progress(f"{len(items)} labelled clips in {manifest}; predictor: {ev.describe(record)}")
    clips = ev.build_corpus(items, out / "clips", manifest, progress)
    with _store(store) as root:
        ev.prepare_store(root, registry, record)
        progress(f"running the pipeline on {len(clips)} clips at {fps:g} fps into {root} (this takes a while)")
        summary = run_pipeline(out / "clips", root, fps, workers)
        progress(f"pipeline: {summary['extracted']} extracted, {summary['skipped']} already done, "
                 f"{summary['failed']} failed, {summary['windows']} prediction windows (all tasks)")  # fmt: skip
        clip_table, windows = ev.collect_predictions(items, clips, root)
        model_version = _version(root)
    result = ev.score(clip_table, windows)
    facts = {
        "manifest": str(Path(manifest).resolve()),
        "model": ev.describe(record),
        "model_version": model_version,
        "task": ev.TASK,
        "fps": fps,
        "store": str(Path(store).resolve()) if store is not None else "temporary (removed)",
        "clips": len(items),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    html = ev.write_evaluation(out, result, clip_table, windows, facts)
    return {**facts, **result, "report": str(html)}


def _version(store: Path) -> str:
    from tasks.evaluate import TASK
    from tasks.inference import current_version
    from tasks.store import Store

    return current_version(Store(store), TASK)


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
    into ``out`` and returns the table (see ``tasks.evaluate.au_agreement``)."""
    from tasks import evaluate as ev
    from tasks.decode import VideoError, open_video

    fps = pipeline_fps() if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    video = Path(video).resolve()
    if not video.is_file():
        raise FileNotFoundError(f"--video {video} does not exist")
    try:
        video_fps = float(open_video(video).get_avg_fps())
    except VideoError as exc:
        raise ValueError(f"--video {exc}") from exc
    table_ref = ev.read_openface(reference, video_fps)
    out = Path(out)
    corpus = out / "clips"
    corpus.mkdir(parents=True, exist_ok=True)
    link = corpus / f"video{video.suffix.lower()}"
    if link.is_symlink() and link.resolve() != video:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(video)
    with _store(store) as root:
        progress(f"extracting our AUs of {video.name} at {fps:g} fps into {root}")
        run_pipeline(corpus, root, fps, workers)
        video_id = ev.content_id(video)
        if not ev.Store(root).has_partition("frames", video_id):
            raise ValueError(f"--video {video}: the pipeline could not extract it (see the failures above)")
        ours = ev.primary_face_aus(root, video_id)
    if ours.empty:
        raise ValueError(f"--video {video}: no face found, so no AUs to compare")
    tolerance = 0.5 / fps
    table = ev.au_agreement(ours, table_ref, tolerance)
    facts = {"reference": str(Path(reference).resolve()), "video": str(video), "fps": fps,
             "tolerance_s": tolerance, "our_samples": len(ours)}  # fmt: skip
    ev.write_au_agreement(out, table, facts)
    return table


# ------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the two new evaluations (``--out``, ``--store`` and ``--model`` are shared)."""
    parser.add_argument("--manifest", default=None, help="labelled clips: CSV path,label[,start,end]")
    parser.add_argument("--au-reference", default=None, help="OpenFace CSV of --video: AU agreement")
    parser.add_argument("--video", default=None, help="the video of --au-reference")
    parser.add_argument("--registry", default=None, help="store to read --model versions from (default --store)")
    parser.add_argument("--fps", type=float, default=None, help="face sampling rate (default: the pipeline's)")
    parser.add_argument("--workers", type=int, default=None, help="local Dask worker processes")


def evaluate_main(args: argparse.Namespace) -> int:
    """Dispatch ``lessonlens evaluate`` on its options; the training-dataset form is unchanged."""
    from tasks import evaluate as ev

    if args.manifest and args.au_reference:
        raise ValueError("give either --manifest or --au-reference, not both")
    if args.manifest or args.au_reference:
        clash = [f"--{k}" for k in ("dataset", "path", "version") if getattr(args, k, None)]
        if clash:
            raise ValueError(
                f"{', '.join(clash)} belong to the training-dataset form; not with --manifest/--au-reference"
            )
    if args.manifest:
        out = args.out or (Path(args.store) / "evaluations" / Path(args.manifest).stem if args.store
                           else Path(f"evaluation-{Path(args.manifest).stem}"))  # fmt: skip
        result = evaluate_manifest(args.manifest, out, model=args.model, registry=args.registry, store=args.store,
                                   fps=args.fps, workers=args.workers)  # fmt: skip
        print(f"{result['model']} ({result['model_version']}) on {result['clips']} clips of {args.manifest}:")
        for line in ev.summary_lines(result):
            print(f"  {line}")
        print(f"report: {result['report']}")
        return 0
    if args.au_reference:
        if not args.video:
            raise ValueError("--au-reference needs --video (the video the OpenFace CSV was made from)")
        out = Path(args.out or f"au-agreement-{Path(args.video).stem}")
        table = evaluate_au_reference(args.au_reference, args.video, out, store=args.store, fps=args.fps,
                                      workers=args.workers)  # fmt: skip
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"written: {out / 'au_agreement.csv'}, {out / 'au_agreement.json'}")
        return 0
    missing = [
        k.upper() if k == "path" else f"--{k}"
        for k in ("dataset", "path", "store", "model", "version")
        if not getattr(args, k, None)
    ]
    if missing:
        raise ValueError(
            "give --manifest (your labelled clips), --au-reference with --video, or a registered version on a "
            f"training dataset (--dataset KIND PATH --store --model --version; missing: {', '.join(missing)})"
        )
    from models import available_models

    if args.model not in available_models():
        raise ValueError(f"--model {args.model!r}: valid models are {', '.join(available_models())}")
    from flows.train import evaluate_main as evaluate_registered_main

    return evaluate_registered_main(args)
