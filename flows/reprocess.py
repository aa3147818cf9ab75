"""The ``reprocess`` flow: recompute predictions made by an older model version, from the stored crops.

Triggered by the event ``lessonlens.model.registered`` (a version was promoted) through the deployment
``reprocess-after-retraining``, and weekly as a safety net. Only inference runs: decoding and face
extraction are not repeated for videos whose aligned crops are in the store (``crops`` table); videos
extracted with ``--no-crops`` are decoded again for their crops, and the run says how many. Gesture
predictions (a promoted ``teacher_gesture``) read the stored body keypoints and decode the body-sampled
frames from the video again (the store keeps no whole frames; ``tasks.predict.inference``).
"""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger

import flows  # noqa: F401  (offline Prefect defaults)
from flows.nightly_corpus import publish_artifacts, run_inference
from models.rules import TASK_CLASSES
from tasks.store import Store


def validate_reprocess(store: str, task: str | None, storage_options: dict | None = None) -> tuple[Store, list[str]]:
    try:
        st = Store(store, storage_options)
    except ValueError as exc:
        raise ValueError(f"parameter store: {exc}") from exc
    if not st.catalog_path("videos").is_file():
        raise ValueError(f"parameter store: {store} has no extracted videos (run nightly-corpus first)")
    if task not in (None, "", *TASK_CLASSES):
        raise ValueError(f"parameter task: {task!r} is not one of {', '.join(TASK_CLASSES)}")
    return st.ensure(), [task] if task else list(TASK_CLASSES)


@flow(name="reprocess")
def reprocess(
    store: str, task: str | None = None, dask_address: str | None = None, workers: int | None = None,
    storage_options: dict | None = None,
) -> dict:  # fmt: skip
    """Recompute the stale predictions of ``task`` (every task when empty) in ``store`` (a folder or an
    object-storage URL opened with ``storage_options``) on Dask."""
    from flows.engine import task_runner

    st, tasks = validate_reprocess(store, task, storage_options)
    run_id = uuid.uuid4().hex[:12]
    with st.writer_lock(f"reprocess run {run_id}"):
        infer = reprocess_predictions.with_options(task_runner=task_runner(dask_address, workers))
        return infer(st.url, tasks, run_id, st.storage_options)


def refresh_report(st: Store, logger) -> Path | None:
    """Redo the store's latest analysis (same outcomes file and settings) over the new predictions.

    The marts are views over the Parquet files, so they are current as soon as the predictions are; the
    report is a file, rewritten here into a new report folder. Returns its path, or None when the store
    has no earlier analysis or its outcomes file is gone (logged).
    """
    from tasks.analyse.analysis import analyse_store, latest_parameters

    parameters = latest_parameters(st)
    if parameters is None:
        return None
    if not Path(parameters["outcomes"]).is_file():
        logger.warning("report not refreshed: outcomes file %s of the last analysis is gone", parameters["outcomes"])
        return None
    analysis = analyse_store(st, **parameters)
    logger.info("report refreshed: %s", analysis.report)
    return analysis.report


@flow(name="reprocess-predictions")
def reprocess_predictions(store: str, tasks: list[str], run_id: str, storage_options: dict | None = None) -> dict:
    """The body of ``reprocess`` (which holds the store lock)."""
    from tasks.predict.inference import BODY_TASKS, stale_videos

    logger = get_run_logger()
    st = Store(store, storage_options)
    started = datetime.now(UTC)
    stale = {t: stale_videos(st, t) for t in tasks}
    videos = sorted({v for ids in stale.values() for v in ids})
    face_videos = {v for t, ids in stale.items() if t not in BODY_TASKS for v in ids}
    without_crops = [v for v in sorted(face_videos) if not st.has_partition("crops", v)]
    body_videos = sorted({v for t, ids in stale.items() if t in BODY_TASKS for v in ids})
    logger.info(
        "%d videos with stale predictions (%s); %d have no stored crops and are decoded again; %d are decoded "
        "for the gesture model's frames (body samples only)",
        len(videos), ", ".join(f"{t}: {len(ids)}" for t, ids in stale.items()), len(without_crops), len(body_videos),
    )  # fmt: skip
    windows, failures = run_inference(st, tasks, run_id, logger)
    report = refresh_report(st, logger) if windows else None
    counts = {"found": len(videos), "skipped": 0, "extracted": 0, "failed": len(failures), "frames": 0}
    counts.update(windows=windows, decoded_again=len(set(without_crops) | set(body_videos)),
                  report=str(report) if report else "-")  # fmt: skip
    st.append_run(run_id, started, json.dumps({"reprocess": tasks}), {"found": len(videos), "failed": len(failures)})
    st.compact_catalogs()  # the run's failures and runs fragments into their catalog files
    publish_artifacts(st, counts, failures, run_id, title="reprocess")
    logger.info("reprocess %s: %s", run_id, counts)
    return {"run_id": run_id, **counts}
