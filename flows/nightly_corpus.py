"""The ``nightly-corpus`` flow: discover → extract (Dask) → publish, resumable and idempotent.

Prefect tasks stay coarse: one for discovery (in the flow process) and one per video, which runs on a
Dask worker and fans the video's chunks out over the cluster with ``worker_client`` (a Prefect task
per chunk costs ~0.2 s each here: PLATFORM.md). Only paths and small summaries cross task boundaries.
The catalog is written by the flow process alone, after each video, so a crash loses at most the
videos in flight, whose finished chunks are reused by the next run.
"""

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.futures import as_completed

import flows  # noqa: F401  (offline Prefect defaults)
from flows.engine import map_on_cluster, report_progress
from models.rules import TASK_CLASSES
from tasks.extract.discover import MANIFEST_COLUMNS, VideoRef, discover
from tasks.extract.identity import descriptors_missing
from tasks.extract.video import ExtractParams, extract_chunk, extract_video
from tasks.predict.privacy import DEFAULT_CROPS_RETENTION_DAYS
from tasks.store import StepResult, Store, location, path_text, shown


@task(name="discover")
def discover_task(corpus: str, store: Store) -> tuple[list[VideoRef], int, list[tuple[str, str]]]:
    """The corpus' videos to consider, how many files were left out because their video was erased, and the
    files that could not be read (path, message).

    Erased videos are dropped after hashing and before the ``files`` cache is written: their paths are never
    kept (``tasks.predict.privacy``)."""
    refs, files, unreadable = discover(corpus, store.read_catalog("files"), store.storage_options)
    erased = store.erased_videos()
    store.upsert_catalog("files", files[~files["video_id"].isin(erased)], key="path")
    unique: dict[str, VideoRef] = {}
    for ref in refs:
        if ref.video_id not in erased:
            unique.setdefault(ref.video_id, ref)  # a copy of a video is analysed once
    return list(unique.values()), sum(ref.video_id in erased for ref in refs), unreadable


def retire_superseded(store: Store) -> int:
    """Remove the results of the videos whose file now holds other content (``Store.superseded_videos``), so
    that a file replaced in place is counted once, by its new content; returns how many. Call once the new
    content is extracted (or has failed): until then the old results stay."""
    superseded = sorted(store.superseded_videos())
    for video_id in superseded:
        store.remove_results(video_id)
    return len(superseded)


@task(name="retention")
def retention_task(store: Store, days: int) -> int:
    """Delete the crops older than ``days`` whose predictions by the current models exist
    (``tasks.predict.privacy``)."""
    from tasks.predict.privacy import expire_crops

    return len(expire_crops(store, days))


@task(name="link-people")
def link_people_task(store: Store, refs: list[VideoRef]) -> dict[str, int]:
    """Persons across the videos of each course (``tasks.extract.linking``): describe, link, ``people``."""
    from tasks.extract.linking import link_people

    return link_people(store, {ref.video_id: ref.path for ref in refs})


@task(name="infer", task_run_name="infer {task_name}")
def infer_task(store: Store, task_name: str, video_ids: list[str]) -> list[StepResult]:
    """Predictions of ``task_name`` for ``video_ids``, batched across videos over the cluster's workers."""
    from distributed import worker_client

    from flows.engine import infer_on_dask

    with worker_client() as client:
        return infer_on_dask(client, store, video_ids, task_name)


def run_inference(st: Store, tasks: list[str], run_id: str, logger) -> tuple[int, list[dict]]:
    """The inference stage: predictions of each of ``tasks`` for every video whose predictions are stale
    (missing, made by another model version than the one inference uses now, or older than the frames).

    Returns the number of windows predicted and the failure rows it recorded (stage ``infer``).
    """
    from tasks.predict.inference import current_version, emotion_stream, stale_videos

    windows, failures = 0, []
    for task_name in tasks:
        if task_name == "emotion" and (fallback := emotion_stream(st)["fallback"]):
            logger.warning("emotion: %s", fallback)
        if current_version(st, task_name) is None:
            logger.info("%s: no promoted model and no rule baseline: skipped (the marts' body_group uses the "
                        "wrist-speed rule, sql/marts/wrist_motion.sql)", task_name)  # fmt: skip
            continue
        todo = stale_videos(st, task_name)
        if not todo:
            continue
        results = infer_task.submit(st, task_name, todo).result()
        windows += sum(r.counts["windows"] for r in results)
        failures += st.record_failures(results, run_id)
        done = [r for r in results if r.status == "ok"]
        if done:
            logger.info(
                "%s: %d windows in %d videos by %s (%s)", task_name, sum(r.counts["windows"] for r in done),
                len(done), done[0].info["model_name"], done[0].info["model_version"],
            )  # fmt: skip
    return windows, failures


@task(name="extract-video", task_run_name="extract {ref.video_id}")
def extract_video_task(ref: VideoRef, params: ExtractParams, store: Store) -> StepResult:
    return extract_video(ref, params, store, lambda jobs: map_on_cluster(extract_chunk, jobs, [j.key for j in jobs]))


def done_ids(catalog: pd.DataFrame, params: dict[str, ExtractParams], store: Store) -> set[str]:
    """Videos already extracted with exactly their parameters (``params``: by video id) whose partition is in
    place."""
    ok = catalog[catalog["status"] == "ok"]
    return {
        v for v, used in zip(ok["video_id"], ok["params"], strict=True)
        if v in params and isinstance(used, str) and used == params[v].to_json() and store.has_partition("frames", v)
    }  # fmt: skip


def known_failed_ids(catalog: pd.DataFrame, params: ExtractParams) -> set[str]:
    """Videos (by content) that failed extraction with the same extractor version: the same bytes would fail
    again, so they are not probed again unless the run asks to retry them."""
    failed = catalog[(catalog["status"] == "failed") & catalog["params"].notna()]
    return {
        v
        for v, p in zip(failed["video_id"], failed["params"], strict=True)
        if json.loads(p)["version"] == params.version
    }


def refresh_rows(catalog: pd.DataFrame, refs: list[VideoRef]) -> pd.DataFrame:
    """Catalog rows of skipped videos with their current path and manifest metadata."""
    by_id = {r.video_id: r for r in refs}
    rows = catalog[catalog["video_id"].isin(by_id)].copy()
    rows["path"] = rows["video_id"].map(lambda v: path_text(by_id[v].path))
    for column in MANIFEST_COLUMNS:
        rows[column] = rows["video_id"].map(lambda v, c=column: by_id[v].meta.get(c))
    return rows


def run_if_nothing_to_do(
    corpus: str, st: Store, params: ExtractParams, retry_failed: bool = False, keep_student_crops: bool = False,
    crops_retention_days: int | None = None, link_people: bool = False,
) -> tuple[dict | None, list[tuple[VideoRef, ExtractParams]]]:  # fmt: skip
    """A run with nothing to extract or predict, done in this process without Prefect or Dask: its summary;
    otherwise None and the videos the flow will extract, with their parameters, in the order it submits them.

    Nothing to do: every video of ``corpus`` is extracted with its parameters, failed before (unless
    ``retry_failed``) or is held by an erasure, and no predictions are stale. Then it does what the flow
    would: the ``files`` cache, catalog rows of renamed files and manifest edits (only rows that changed),
    the linking of persons across videos (``link_people``), crop retention and the ``runs`` row, and returns
    the flow's counts. Otherwise only the ``files`` cache
    is written (the flow then finds every hash in it). Call under the writer lock.
    """
    from tasks.predict.privacy import video_params

    started = datetime.now(UTC)
    refs, n_erased, unreadable = discover_task.fn(corpus, st)
    plan = {r.video_id: video_params(params, r.meta, keep_student_crops) for r in refs}
    catalog = st.read_catalog("videos")
    done = done_ids(catalog, plan, st) | set(st.erased_face_tracks())
    known_bad = set() if retry_failed else known_failed_ids(catalog, params)
    to_extract = [(r, plan[r.video_id]) for r in refs if r.video_id not in done | known_bad]
    if unreadable or to_extract:
        return None, to_extract  # the flow extracts, and records the unreadable files as failures
    from tasks.predict.inference import stale_videos  # only once nothing is left to extract
    from tasks.predict.privacy import expire_crops

    if any(stale_videos(st, t) for t in TASK_CLASSES):
        return None, []
    skipped = [r for r in refs if r.video_id in done]
    rows = refresh_rows(catalog, skipped)  # rows keep their catalog index
    columns = ["path", *MANIFEST_COLUMNS]
    now, then = ([tuple(None if pd.isna(v) else v for v in row) for row in df[columns].itertuples(index=False)]
                 for df in (rows, catalog.loc[rows.index]))  # fmt: skip
    st.record_catalog("videos", rows[[a != b for a, b in zip(now, then, strict=True)]])
    known = sum(r.video_id in known_bad for r in refs)
    counts = {"found": len(refs), "skipped": len(skipped), "known_failed": known, "extracted": 0, "failed": 0,
              "frames": 0, "erased": n_erased, "windows": 0, "crops_expired": 0,
              "replaced": retire_superseded(st)}  # fmt: skip
    if link_people:
        counts.update(link_people_task.fn(st, skipped))
    if crops_retention_days is not None:
        counts["crops_expired"] = len(expire_crops(st, crops_retention_days))
    run_id = uuid.uuid4().hex[:12]
    st.append_run(run_id, started, params.to_json(), counts, corpus=corpus)
    st.compact_catalogs()
    return {"run_id": run_id, **counts}, []


def extract_params(
    fps: float, chunk_seconds: int, face_backend: str, face_model_dir: str | None, body_fps: float,
    au_model_dir: str | None, keep_crops: bool, descriptor_seconds: float = ExtractParams.descriptor_seconds,
) -> ExtractParams:  # fmt: skip
    """The extraction parameters of a run (the flow and the CLI's no-work check build them here, alike);
    ValueError naming the bad one. Without the face-recognition weights (setup fetches them) descriptors are
    off, with a warning saying how to get them: each face track is then its own person."""
    if descriptor_seconds and (why := descriptors_missing()):
        logging.getLogger("lessonlens").warning("%s; each face track is its own person meanwhile", why)
        descriptor_seconds = 0.0
    options = (("model_dir", str(Path(face_model_dir).resolve())),) if face_model_dir else ()
    return ExtractParams(
        fps=fps, chunk_seconds=chunk_seconds, face_backend=face_backend, face_options=options, body_fps=body_fps,
        au_model_dir=au_model_dir, keep_crops=keep_crops, descriptor_seconds=descriptor_seconds,
    )  # fmt: skip


def validate_parameters(
    corpus: str,
    store: str,
    face_backend: str = ExtractParams.face_backend,
    face_model_dir: str | None = None,
    au_model_dir: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    crops_retention_days: int | None = None,
    store_group_readable: bool | None = None,
    storage_options: dict | None = None,
    link_people: bool = False,
) -> Store:
    """Fail the run at once, naming the parameter, before any work starts (the CLI calls it too).

    ``corpus`` and ``store`` are folders or object-storage URLs (``tasks.store.location``), both opened with
    ``storage_options``."""
    from tasks.extract.action_units import load_au_estimator
    from tasks.extract.faces import FACE_BACKENDS
    from tasks.predict.privacy import check_retention

    check_retention(crops_retention_days)
    if link_people and (why := descriptors_missing()):
        raise ValueError(f"parameter link_people: {why}")

    try:
        found = location(corpus, storage_options, what="corpus").exists()
    except (ValueError, OSError) as exc:
        raise ValueError(f"parameter corpus: {exc}") from exc
    if not found:
        raise ValueError(f"parameter corpus: {corpus} does not exist")
    if face_backend not in FACE_BACKENDS:
        raise ValueError(f"parameter face_backend: {face_backend!r} is not one of {', '.join(FACE_BACKENDS)}")
    if face_backend == "insightface" and face_model_dir is None:
        raise ValueError("parameter face_model_dir: the insightface backend needs its model pack directory")
    if face_backend != "insightface" and face_model_dir is not None:
        raise ValueError(f"parameter face_model_dir: the {face_backend} backend takes no model directory")
    if face_model_dir is not None and not any(Path(face_model_dir).glob("*.onnx")):
        raise ValueError(f"parameter face_model_dir: {face_model_dir} is not a directory holding .onnx files")
    if au_model_dir is not None:
        try:
            load_au_estimator(au_model_dir)
        except (OSError, ValueError) as exc:
            raise ValueError(f"parameter au_model_dir: {exc}") from exc
    if workers is not None and workers < 1:
        raise ValueError(f"parameter workers: must be >= 1, got {workers}")
    if workers and dask_address:
        raise ValueError("parameter workers: applies to the local cluster only; omit it with dask_address")
    try:
        return Store(store, storage_options).ensure(group_readable=store_group_readable)
    except (ValueError, PermissionError) as exc:
        raise ValueError(f"parameter store: {exc}") from exc


def publish_artifacts(
    st: Store, counts: dict, failures: list[dict], run_id: str, title: str = "nightly-corpus"
) -> None:
    """Counts per stage, model versions used and the run's failures, in the Prefect UI next to the flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from tasks.predict.inference import current_version

    rows = "".join(f"| {name} | {value} |\n" for name, value in counts.items())
    versions = "".join(f"| {t} | {current_version(st, t) or 'none: skipped'} |\n" for t in TASK_CLASSES)
    create_markdown_artifact(
        key=f"{title}-summary",
        markdown=(
            f"### {title} run `{run_id}`\n\n| count | value |\n|---|---|\n{rows}\n"
            f"| task | model version used |\n|---|---|\n{versions}"
        ),
        description="counts per stage and model versions",
    )
    if failures:
        table = [{k: f[k] for k in ("path", "stage", "reason", "message")} for f in failures]
        create_table_artifact(key=f"{title}-failures", table=table, description="videos that failed")


@flow(name="nightly-corpus")
def nightly_corpus(
    corpus: str,
    store: str,
    fps: float = ExtractParams.fps,
    face_backend: str = ExtractParams.face_backend,
    face_model_dir: str | None = None,
    body_fps: float = ExtractParams.body_fps,
    chunk_seconds: int = ExtractParams.chunk_seconds,
    au_model_dir: str | None = ExtractParams.au_model_dir,
    keep_crops: bool = ExtractParams.keep_crops,
    descriptor_seconds: float = ExtractParams.descriptor_seconds,
    retry_failed: bool = False,
    dask_address: str | None = None,
    workers: int | None = None,
    keep_student_crops: bool = False,
    crops_retention_days: int | None = DEFAULT_CROPS_RETENTION_DAYS,
    store_group_readable: bool | None = None,
    storage_options: dict | None = None,
    link_people: bool = False,
) -> dict:
    """Extract per-frame features of every new or changed video in ``corpus`` into ``store``.

    ``corpus`` and ``store`` are folders or object-storage URLs (``s3://bucket/prefix``), opened with
    ``storage_options`` (fsspec options such as ``endpoint_url``; credentials come from the environment).

    The work runs in the subflow ``extract-corpus`` on a Dask cluster: the scheduler at ``dask_address``,
    or a new LocalCluster of ``workers`` processes (default: one per core). One run at a time may write a
    store; a second one fails at once naming the run that holds it.

    Files that failed before with the same content and extractor version are not tried again (counted as
    ``known_failed``) unless ``retry_failed``.

    Personal data (``tasks.predict.privacy``): crops are kept (``keep_crops``) for videos whose manifest role is
    ``teacher`` or unset, and for other roles (``students``) only with ``keep_student_crops``; erased videos
    are skipped; ``crops_retention_days`` (None: keep them) deletes crops older than that once their predictions
    by the current models exist; ``store_group_readable`` sets the store's permission policy (None: keep it).

    A file that cannot be read is a failure (reason ``unreadable``) and the rest of the corpus goes on; a file
    replaced in place by other content has its old results removed once the new content is extracted.

    Returns counts: found, skipped (already extracted with the same parameters, or held by a face-track
    erasure), known_failed, erased (files skipped because their video was erased), extracted, failed (unreadable
    files included), frames (analysed), windows, crops_expired, replaced (videos whose results were removed
    because their file now holds other content), with ``link_people`` described, linked and people
    (``tasks.extract.linking.link_people``), and the run id.
    """
    from flows.engine import task_runner

    st = validate_parameters(
        corpus, store, face_backend, face_model_dir, au_model_dir, workers, dask_address, crops_retention_days,
        store_group_readable, storage_options, link_people,
    )  # fmt: skip
    try:
        params = extract_params(
            fps, chunk_seconds, face_backend, face_model_dir, body_fps, au_model_dir, keep_crops, descriptor_seconds
        )
        runner = task_runner(dask_address, workers)
    except ValueError as exc:
        raise ValueError(f"parameters: {exc}") from exc
    run_id = uuid.uuid4().hex[:12]
    with st.writer_lock(f"nightly-corpus run {run_id}"):
        if removed := st.remove_temporary_files():
            get_run_logger().warning("removed %d temporary files left by an interrupted run", removed)
        extract = extract_corpus.with_options(task_runner=runner)
        return extract(
            str(location(corpus, storage_options, what="corpus")), st.url, params, run_id, retry_failed,
            keep_student_crops, crops_retention_days, st.storage_options, link_people,
        )  # fmt: skip


@flow(name="extract-corpus")
def extract_corpus(
    corpus: str, store: str, params: ExtractParams, run_id: str, retry_failed: bool = False,
    keep_student_crops: bool = False, crops_retention_days: int | None = None, storage_options: dict | None = None,
    link_people: bool = False,
) -> dict:  # fmt: skip
    """Discover, extract on Dask, record: the body of ``nightly-corpus`` (which holds the store lock)."""
    return _extract_corpus(
        corpus, Store(store, storage_options), params, run_id, get_run_logger(), retry_failed, keep_student_crops,
        crops_retention_days, link_people,
    )  # fmt: skip


def _extract_corpus(
    corpus: str, st: Store, params: ExtractParams, run_id: str, logger, retry_failed: bool = False,
    keep_student_crops: bool = False, crops_retention_days: int | None = None, link_people: bool = False,
) -> dict:  # fmt: skip
    from prefect.runtime import flow_run

    from tasks.predict.privacy import video_params

    started = datetime.now(UTC)
    refs, n_erased, unreadable = discover_task(corpus, st)
    plan = {r.video_id: video_params(params, r.meta, keep_student_crops) for r in refs}
    catalog = st.read_catalog("videos")
    held = set(st.erased_face_tracks())  # a new extraction would bring an erased face track back
    done = done_ids(catalog, plan, st)
    known_bad = set() if retry_failed else known_failed_ids(catalog, params)
    todo = [r for r in refs if r.video_id not in done | held | known_bad]
    skipped = [r for r in refs if r.video_id in done or r.video_id in held]
    # renamed or moved files and manifest edits update the catalog without re-extraction
    st.upsert_catalog("videos", refresh_rows(catalog, skipped), key="video_id")
    known = [r for r in refs if r.video_id in known_bad]
    logger.info(
        "%d videos in %s: %d already extracted, %d failed before (not retried), %d to extract (fps=%s, backend=%s)",
        len(refs), shown(corpus), len(skipped), len(known), len(todo), params.fps, params.face_backend,
    )  # fmt: skip
    if n_erased:
        logger.info("%d files skipped: their videos were erased (lessonlens forget)", n_erased)
    counts = {"found": len(refs) + len(unreadable), "skipped": len(skipped), "known_failed": len(known),
              "extracted": 0, "failed": len(unreadable), "frames": 0, "erased": n_erased}  # fmt: skip
    meta = {r.video_id: {"size_bytes": r.size_bytes, **r.meta} for r in todo}
    unread = [StepResult(None, path, "extract").fail("discover", "unreadable", message) for path, message in unreadable]
    failures: list[dict] = st.record_failures(unread, run_id)  # read again by every run until readable
    for result in unread:
        logger.error("%s: not analysed: %s", shown(result.path), shown(result.message))
    clock = time.perf_counter()
    report_progress(0, len(todo), 0)
    futures = {extract_video_task.submit(ref, plan[ref.video_id], st): ref for ref in todo}
    for n_done, future in enumerate(as_completed(list(futures)), start=1):
        ref = futures[future]
        try:
            result = future.result()
        except Exception as exc:  # a bug or a crashed worker: record it, keep the corpus going
            result = StepResult(ref.video_id, ref.path, "extract").fail(
                "extract", "internal_error", f"{type(exc).__name__}: {exc}"
            )
        st.record_video(result, meta[ref.video_id], plan[ref.video_id].to_json(), run_id)
        failures += st.record_failures([result], run_id)  # a failed video, or warnings of an extracted one
        prefix = f"[{n_done}/{len(todo)}] {shown(ref.path)}"
        if result.status == "ok":
            counts["extracted"] += 1
            counts["frames"] += result.counts["sampled_frames"]
            logger.info(
                "%s: %d frames, %d face rows in %d tracks, %d body rows (%.1f s)", prefix,
                *(result.counts[k] for k in ("sampled_frames", "face_rows", "face_tracks", "body_rows")),
                result.seconds,
            )  # fmt: skip
        else:
            counts["failed"] += 1
            logger.error("%s failed at %s (%s): %s", prefix, result.stage, result.reason, shown(result.message))
        report_progress(n_done, len(todo), counts["frames"])
        rate = counts["frames"] / max(time.perf_counter() - clock, 1e-9)
        logger.info("progress: %d/%d videos, %d frames, %.1f frames/s", n_done, len(todo), counts["frames"], rate)
    counts["replaced"] = retire_superseded(st)
    if counts["replaced"]:
        logger.info("%d videos' results removed: their files now hold other content (extracted above)",
                    counts["replaced"])  # fmt: skip
    counts["windows"], infer_failures = run_inference(st, list(TASK_CLASSES), run_id, logger)
    failures += infer_failures
    counts["failed"] += len({f["video_id"] for f in infer_failures})  # a video without predictions failed too
    if link_people:
        counts.update(link_people_task(st, refs))
        logger.info("people: %d persons in %d linked videos (%d described now)", counts["people"],
                    counts["linked"], counts["described"])  # fmt: skip
    counts["crops_expired"] = 0
    if crops_retention_days is not None:
        counts["crops_expired"] = retention_task(st, crops_retention_days)
        logger.info("retention: crops of %d videos older than %d days deleted", counts["crops_expired"],
                    crops_retention_days)  # fmt: skip
    flow_run_id = str(flow_run.id) if flow_run.id else None
    st.append_run(run_id, started, params.to_json(), counts, corpus=str(corpus), flow_run_id=flow_run_id)
    st.compact_catalogs()  # the run's fragments (videos, failures, runs) into their catalog files
    publish_artifacts(st, counts, failures, run_id)
    logger.info("run %s: %s", run_id, counts)
    return {"run_id": run_id, **counts}
