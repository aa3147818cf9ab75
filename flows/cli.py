"""``lessonlens``: run the corpus flow, query the store, inspect models.

Exit codes: 0 success; 1 the run finished but some videos failed (see ``failures``); 2 bad arguments
or input (the message names the parameter or file); 3 another run is writing the same store; 4 an
unexpected error (a bug: one line on stderr, the traceback in a file it names).
"""

import argparse
import json
import os
import sys
import tempfile
import traceback
import warnings
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import flows  # noqa: F401  (offline Prefect defaults)
from models.rules import EMOTION_STREAMS
from tasks.store import Store, location, parse_storage_options

STREAM_HELP = (
    "emotion predictions the expression marts read: emotion (default: a promoted model, else face-api.js's "
    "expression net) or emotion_rules (the AU rules)"
)


def _store(args: argparse.Namespace) -> Store:
    """The store of ``--store`` (a folder or an object-storage URL) opened with the ``--storage-option`` items."""
    return Store(args.store, parse_storage_options(args.storage_option))


def _run(args: argparse.Namespace) -> int:
    from flows.engine import console_progress, run_services
    from flows.nightly_corpus import extract_params, nightly_corpus, run_if_nothing_to_do, validate_parameters
    from tasks.extract.video import chunks_ahead

    options = parse_storage_options(args.storage_option)
    try:
        corpus = str(location(args.corpus, options, what="corpus"))
    except ValueError as exc:
        raise UsageError(f"parameter corpus: {exc}") from exc
    store = validate_parameters(
        corpus, args.store, args.face_backend, args.face_model_dir, args.au_model_dir, args.workers,
        args.dask_address, args.crops_retention_days, args.store_group_readable, options, args.link_people,
    )  # fmt: skip
    try:
        params = extract_params(
            args.fps, args.chunk_seconds, args.face_backend, args.face_model_dir, args.body_fps, args.au_model_dir,
            not args.no_crops, args.descriptor_seconds,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(f"parameters: {exc}") from exc
    store.check_not_busy()
    # held from the look for work to the flow's end: the first chunks write into the store before the flow starts,
    # and the flow's own writer_lock takes this one over (hand_over), so the store is never unlocked in between
    with store.writer_lock("nightly-corpus run (lessonlens run starting)", hand_over=True):
        store.remove_temporary_files()
        # nothing new, changed or stale (discovery and the stale checks are cheap): no Prefect API, no Dask cluster
        summary, to_extract = run_if_nothing_to_do(
            corpus, store, params, args.retry_failed, args.keep_student_crops,
            args.crops_retention_days, args.link_people,
        )  # fmt: skip
        if summary is not None:
            print(f"nothing to do: run {summary['run_id']} recorded without starting Prefect or a Dask cluster")
        else:
            # the Prefect API and the local Dask cluster start side by side, the workers loading their models and
            # extracting the first chunks meanwhile; the flow then runs on that cluster (its address in place of
            # --workers)
            services = run_services(args.dask_address, args.workers, params, partial(chunks_ahead, to_extract, store))
            with services as dask_address, console_progress(sys.stdout.isatty()):
                summary = nightly_corpus(
                    corpus=corpus,
                    store=store.url,
                    fps=args.fps,
                    face_backend=args.face_backend,
                    face_model_dir=args.face_model_dir,
                    au_model_dir=args.au_model_dir,
                    body_fps=args.body_fps,
                    chunk_seconds=args.chunk_seconds,
                    keep_crops=not args.no_crops,
                    descriptor_seconds=args.descriptor_seconds,
                    retry_failed=args.retry_failed,
                    dask_address=dask_address,
                    keep_student_crops=args.keep_student_crops,
                    crops_retention_days=args.crops_retention_days,
                    store_group_readable=args.store_group_readable,
                    storage_options=options or None,
                    link_people=args.link_people,
                )
    print(
        f"{summary['found']} videos: {summary['extracted']} extracted, {summary['skipped']} already done, "
        f"{summary['failed']} failed; {summary['windows']} prediction windows; store {store.url}"
    )
    if "people" in summary:
        print(f"{summary['people']} persons in {summary['linked']} linked videos (people table, person_key)")
    if summary["replaced"]:
        print(f"{summary['replaced']} videos' earlier results removed: their files now hold other content")
    if summary["known_failed"]:
        print(f"{summary['known_failed']} files failed in an earlier run and were not tried again (--retry-failed)")
    if summary["failed"]:
        print(f'see failures: lessonlens query --store {args.store} "select * from failures"')
    return 1 if summary["failed"] else 0


TABLE_ROWS = 200  # rows the table format shows; the others are counted, never held


def write_result(batches, fmt: str, out=None, max_rows: int = TABLE_ROWS) -> None:
    """Write a result given as Arrow record batches to ``out`` (stdout) as it arrives: CSV (text cells that a
    spreadsheet would run as formulas neutralised, ``tasks.store.csv_safe``) or one JSON array of records (one
    a line), batch by batch; or a table of the first ``max_rows`` rows (control characters escaped) and a note of how
    many rows were left out."""
    import pandas as pd

    from tasks.store import csv_safe, shown

    out = out or sys.stdout
    if fmt in ("csv", "json"):
        started = False
        for batch in batches:
            frame = batch.to_pandas()
            if fmt == "csv":
                if not started or len(frame):
                    out.write(csv_safe(frame).to_csv(index=False, header=not started))
            elif len(frame):
                records = frame.to_json(orient="records", date_format="iso", lines=True).rstrip("\n")
                out.write(("[" if not started else ",\n") + records.replace("\n", ",\n"))
            started = started or fmt == "csv" or len(frame) > 0
        if fmt == "json":
            out.write("]\n" if started else "[]\n")
        return
    shown_rows, left_out, parts = 0, 0, []
    for batch in batches:
        keep = batch.slice(0, max(0, max_rows - shown_rows))
        parts.append(keep.to_pandas())
        shown_rows += keep.num_rows
        left_out += batch.num_rows - keep.num_rows
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    frame = frame.rename(columns=shown)
    for i in range(frame.shape[1]):
        if pd.api.types.is_object_dtype(frame.iloc[:, i]) or pd.api.types.is_string_dtype(frame.iloc[:, i]):
            frame.isetitem(i, frame.iloc[:, i].map(lambda v: v if v is None else shown(v)))
    with pd.option_context("display.max_rows", max_rows + 1, "display.max_columns", 50, "display.width", 200):
        out.write((frame.to_string(index=False) if len(frame) else "(no rows)") + "\n")
    if left_out:
        out.write(f"({left_out} more rows not shown: use --format csv or json for all of them)\n")


def _print_table(table, fmt: str) -> None:
    write_result(table.to_batches(), fmt)


def _query(args: argparse.Namespace) -> int:
    import duckdb

    from tasks.analyse.warehouse import QUERY_ATTEMPTS, file_vanished, open_query, query_batches, run_interruptible

    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"parameter --timeout: must be a number of seconds > 0, got {args.timeout}")
    for attempt in range(1, QUERY_ATTEMPTS + 1):
        con, statements = open_query(_store(args), args.sql, args.memory_limit, args.emotion_stream)
        written: list[int] = []  # a run removed a file the views listed before any row was written: read again
        write = partial(write_result, _counted(query_batches(con, statements), written), args.format)
        try:
            run_interruptible(con, write, args.timeout)
            return 0
        except duckdb.OutOfMemoryException as exc:
            limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
            raise UsageError(f"parameter --memory-limit: the query needs more than {limit} ({exc})") from exc
        except duckdb.IOException as exc:
            if written or not file_vanished(exc) or attempt == QUERY_ATTEMPTS:
                raise
    return 0


def _counted(batches, rows: list[int]):
    """``batches``, appending each one's row count to ``rows`` as it passes."""
    for batch in batches:
        rows.append(batch.num_rows)
        yield batch


def _status(args: argparse.Namespace) -> int:
    from tasks.analyse.warehouse import run_query

    store = _store(args)
    sections = {
        "videos": "select status, count(*) as videos, sum(sampled_frames) as frames, "
        "sum(face_rows) as face_rows, sum(body_rows) as body_rows from videos group by status order by status",
        "last run": "select run_id, started_at, finished_at, videos_found, videos_skipped, videos_extracted, "
        "videos_failed, frames_analysed from runs order by started_at desc limit 1",
        "failures of the last run": "select path, stage, reason, message from failures "
        "where run_id = (select run_id from runs order by started_at desc limit 1)",
        "known-bad files (not tried again until --retry-failed)": "select v.path, f.stage, f.reason, f.message "
        "from videos v join failures f on f.video_id = v.video_id and f.run_id = v.run_id "
        "where v.status = 'failed' order by v.path",
    }
    for title, sql in sections.items():
        print(f"== {title}")
        _print_table(run_query(store, sql), "table")
    _status_streams(store)
    _status_personal_data(store)
    return 0


def _status_streams(store: Store) -> None:
    from tasks.analyse.warehouse import run_query
    from tasks.predict.inference import current_version, emotion_stream

    now = emotion_stream(store)
    print(f"== prediction streams\nemotion (default) now by {now['model_name']} ({now['model_version']})")
    if now["fallback"]:
        print(f"  {now['fallback']}")
    print(f"emotion_rules now by the AU rules ({current_version(store, 'emotion_rules')})")
    stored = run_query(store, "select task, model_version, any_value(model_name) as model_name, "
                       "count(distinct video_id) as videos from predictions group by all order by all")  # fmt: skip
    _print_table(stored, "table")


def _status_personal_data(store: Store) -> None:
    from tasks.predict.privacy import crop_holdings

    crops = crop_holdings(store)
    print("== face crops")
    age = "-" if crops["oldest_days"] is None else f"{crops['oldest_days']:.1f} days"
    print(f"{crops['videos']} videos, {crops['bytes']} bytes ({crops['bytes'] / 1e6:.1f} MB); oldest crop: {age}")
    faces = sum(len(ids) for ids in store.erased_face_tracks().values())
    print(f"== erasures in force\n{len(store.erased_videos())} videos, {faces} face tracks")


def _forget(args: argparse.Namespace) -> int:
    from tasks.predict.privacy import check_video_id, forget, path_names, video_ids_for_path
    from tasks.store import shown

    store = _store(args)
    if not store.root.is_dir():
        raise UsageError(f"parameter --store: {args.store} is not a store")
    for name, value in (("--face-id", args.face_id), ("--person-id", args.person_id)):
        if value is not None and value < 0:
            raise UsageError(f"parameter {name}: must be >= 0, got {value}")
    store.ensure(group_readable=args.store_group_readable)
    with store.writer_lock("lessonlens forget"):
        ids = [check_video_id(args.video_id)] if args.video_id else video_ids_for_path(store, args.path)
        if args.path and not args.undo and args.face_id is None and args.person_id is None:  # rows naming the file
            named = store.forget_paths(path_names(args.path))
            if any(named.values()):
                print(f"{shown(args.path)}: removed failures rows {named['failures_rows']}, "
                      f"runs' corpus {named['runs_corpus']}")  # fmt: skip
        for done in forget(store, ids, args.face_id, args.undo, args.person_id):
            what = done["video_id"] + ("" if args.face_id is None else f" face track {args.face_id}")
            what += "" if args.person_id is None else f" person {args.person_id}"
            if args.undo:
                state = "erasure undone: later runs may extract it again" if done["undone"] else "was not erased"
                print(f"{what}: {state}")
                continue
            counts = {k: v for k, v in done.items() if k not in {"video_id", "scope", "erasure_recorded"} and v}
            removed = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing left to remove"
            recorded = "erasure recorded" if done["erasure_recorded"] else "already erased"
            hint = ""
            if done["erasure_recorded"] and not counts:  # a mistyped id would look like a done erasure
                hint = " (the store has no such video: check the id; the erasure holds if it is ever added)"
            print(f"{what}: {recorded}; removed: {removed}{hint}")
    return 0


DEMO_EMOTION_STREAM = "emotion_rules"  # what the demo's made-up outcomes were made from (see _demo)


def _demo(args: argparse.Namespace) -> int:
    from tasks.analyse.analysis import analyse_store
    from tasks.analyse.report import formatted_paper_table
    from tasks.analyse.warehouse import run_query
    from tasks.synthetic.media import DEMO_CLIPS, make_demo_corpus, write_demo_outcomes

    clips = make_demo_corpus(Path(args.corpus))
    print(f"demo corpus: {len(clips)} clips made from face photos shipped in pip packages, in {args.corpus}")
    run_args = build_parser().parse_args(["run", args.corpus, "--store", args.store])
    run_args.workers = args.workers
    code = _run(run_args)
    from tasks.predict.inference import emotion_stream

    print(f"\nper video (expressions by {emotion_stream(Store(args.store))['model_name']}):")
    summary = run_query(
        Store(args.store),
        "select regexp_extract(v.path, '[^/]+$') as video, v.sampled_frames as frames, v.face_tracks as faces, "
        "round(s.face_visible_s, 1) as face_s, s.dominant_expression as expression, "
        "round(s.happiness_share, 2) as happiness, round(s.AU12_r, 2) as AU12_r, "
        "round(s.gesture_rate, 1) as gestures_per_min "
        "from videos v join video_summary s using (video_id) order by video",
    )
    _print_table(summary, "table")
    print(f'\nquery it yourself: lessonlens query --store {args.store} "select * from frames limit 5"')
    sessions = {f"s{i + 1:02d}": clip[5] for i, clip in enumerate(DEMO_CLIPS) if clip[4] == "teacher"}
    outcomes = write_demo_outcomes(Path(args.corpus) / "SYNTHETIC_outcomes.csv", sessions)
    print(f"\nanalysis of made-up student outcomes ({outcomes}: synthetic, no real students):")
    # The made-up outcomes follow whether a teacher's face changes into a smile (the astronaut smiles mid-clip,
    # the Hanks portrait smiles throughout, unchanged): the AU-rule stream measures that change from each
    # person's own neutral level, the expression net the face as it is (both portraits read as happiness).
    print(f"(grouped by the {DEMO_EMOTION_STREAM} stream: the outcomes were made from smiles relative to each face)")
    with warnings.catch_warnings(record=True) as caught:  # the report explains them; one line each here
        warnings.simplefilter("always")
        analysis = analyse_store(Store(args.store), outcomes, emotion_stream=DEMO_EMOTION_STREAM)
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"note: {message}")
    for dv, result in analysis.results.items():
        print(f"== {dv} (n = {result.n_used})")
        print(formatted_paper_table(result).to_string(index=False))
    print(f"\nreport: {analysis.report}")
    return code


def _serve(args: argparse.Namespace) -> int:
    from flows.serve import serve_deployments

    options = parse_storage_options(args.storage_option)
    serve_deployments(
        store=Store(args.store, options).url,
        corpus=str(location(args.corpus, options, what="corpus")) if args.corpus else None,
        cron=args.cron,
        reprocess_cron=args.reprocess_cron,
        dask_address=args.dask_address,
        workers=args.workers,
        au_model_dir=str(Path(args.au_model_dir).resolve()) if args.au_model_dir else None,
        keep_student_crops=args.keep_student_crops,
        crops_retention_days=args.crops_retention_days,
        store_group_readable=args.store_group_readable,
        storage_options=options or None,
    )
    return 0


def _models_info(args: argparse.Namespace) -> int:
    from models.info import collect, format_table

    rows = collect(latency=not args.no_latency)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _analyse(args: argparse.Namespace) -> int:
    from tasks.analyse.analysis import analyse_store
    from tasks.analyse.report import design_lines
    from tasks.analyse.warehouse import parse_thresholds

    thresholds = parse_thresholds(args.threshold)
    analysis = analyse_store(
        _store(args), args.outcomes, args.report, args.link, args.ss_type, thresholds, args.factors, args.emotion_stream
    )
    if args.format == "json":
        print(json.dumps(analysis.to_dict(), indent=2, default=str))
        return 0
    print("== design")
    print("\n".join(design_lines(analysis.design)))
    _print_outcomes(analysis.outcomes)
    print(f"report: {analysis.report}")
    return 0


def _print_outcomes(outcomes: dict) -> None:
    """Per outcome: the sentence, the analysis to read with its adjusted means, then paper 1's ANCOVA."""
    from tasks.analyse.report import formatted_paper_table
    from tasks.analyse.wording import assumptions_sentence, model_label, read_means, read_table
    from tasks.store import shown

    for dv, analysis in outcomes.items():
        print(f"== {shown(dv)}: {analysis.sentence}")
        print(f"-- analysis to read: {model_label(analysis)}")
        print(read_table(analysis).to_string(index=False))
        print(read_means(analysis).to_string(index=False))
        print(assumptions_sentence(analysis))
        print(f"-- paper 1's student-level ANCOVA (n = {analysis.student_level.n_used})")
        print(formatted_paper_table(analysis.student_level).to_string(index=False))


def _ancova(args: argparse.Namespace) -> int:
    from tasks.analyse.stats import ancova, read_table

    data = read_table(args.data)
    try:
        if args.cluster:
            return _clustered_ancova(data, args)
        results = {dv: ancova(data, dv, args.between, args.covariate, args.ss_type) for dv in args.dv}
    except TypeError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        only = len(results) == 1
        as_dicts = {dv: r.to_dict() for dv, r in results.items()}
        print(json.dumps(next(iter(as_dicts.values())) if only else {"outcomes": as_dicts}, indent=2))
        return 0
    for dv, result in results.items():
        if args.format == "csv":
            sys.stdout.write(result.table.assign(outcome=dv).to_csv(index=False) if len(results) > 1
                             else result.table.to_csv(index=False))  # fmt: skip
            continue
        print(f"== ANCOVA of {dv} (type {result.ss_type} SS; n = {result.n_used}, {result.n_dropped} dropped)")
        print(result.table.to_string(index=False))
        print("== adjusted means")
        print(result.adjusted_means.to_string(index=False))
        print("== homogeneity of regression slopes")
        print(result.slopes.to_string(index=False))
    return 0


def _clustered_ancova(data, args: argparse.Namespace) -> int:
    """``lessonlens ancova --cluster``: the design-aware analysis (tasks.analyse) of every ``--dv``."""
    from tasks.analyse.nesting import detect_levels, unit_keys
    from tasks.analyse.reading import analyse_outcome, holm

    if args.format == "csv":
        raise UsageError("--format csv prints one student-level table; with --cluster use --format json or table")
    levels = detect_levels(data, args.between, args.cluster)
    keyed = data.assign(**unit_keys(data, args.cluster))
    analyses = {dv: analyse_outcome(keyed, dv, args.between, args.covariate, levels, args.ss_type) for dv in args.dv}
    holm(analyses, args.between)
    if args.format == "json":
        document = {"design": levels.to_dict(), "outcomes": {dv: a.to_dict() for dv, a in analyses.items()}}
        print(json.dumps(document, indent=2, default=str))
        return 0
    print("== design: " + "; ".join([f"levels {' in '.join(levels.levels)}", f"unit {levels.unit}", *levels.notes]))
    _print_outcomes(analyses)
    return 0


# training, evaluation and the registry ----------------------------------------------------------------
def parse_overrides(items: list[str] | None) -> dict:
    """``["depth=1", "widths=[8,16,32,64]"]`` → {"depth": 1, "widths": [8, 16, 32, 64]} (values are JSON)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"override {item!r}: value is not JSON ({exc.msg})") from exc
    return out


def dataset_options(kind: str, args: argparse.Namespace) -> dict:
    """Adapter options of dataset ``kind`` from the CLI arguments."""
    if kind == "daisee":
        return {"task": args.daisee_task, "state": args.daisee_state, "seed": args.seed}
    if kind == "dfew":
        return {"fold": args.fold}
    return {}


def _train(args: argparse.Namespace) -> int:
    """``lessonlens train --dataset KIND PATH --model NAME ...``: train, print the metrics, maybe register."""
    import logging

    from tasks.predict.training import TrainingRun, run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    given = {k: getattr(args, k) for k in TRAINING_DEFAULTS if getattr(args, k) is not None}  # else TrainingRun's
    run = TrainingRun(
        args.dataset, args.path, args.model, device=args.device, store=args.store, out_dir=args.out,
        register=args.register, resume=args.resume, dataset_options=dataset_options(args.dataset, args),
        overrides=parse_overrides(args.override), seed=args.seed, **given,
    )  # fmt: skip
    result, version = run_training(run)
    metrics = result.metrics
    if "war" in metrics:
        print(f"{metrics['split']}: WAR {metrics['war']:.4f}, UAR {metrics['uar']:.4f} on {metrics['n']} clips")
    print(f"outputs: {result.out_dir}")
    if version:
        print(f"registered {args.model} {version} in {args.store}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """``lessonlens evaluate``: any expression predictor on labelled clips (``--manifest``), our AUs against
    an OpenFace CSV (``--au-reference --video``), or a registered version on a training dataset."""
    from flows.evaluate import evaluate_au_reference, evaluate_manifest
    from tasks.analyse import evaluate as ev

    if args.manifest and args.au_reference:
        raise UsageError("give either --manifest or --au-reference, not both")
    if args.manifest or args.au_reference:
        clash = [f"--{k}" for k in ("dataset", "path", "version") if getattr(args, k, None)]
        if clash:
            raise UsageError(
                f"{', '.join(clash)} belong to the training-dataset form; not with --manifest/--au-reference"
            )
    if args.manifest:
        out = args.out or (Path(args.store) / "evaluations" / Path(args.manifest).stem if args.store
                           else Path(f"evaluation-{Path(args.manifest).stem}"))  # fmt: skip
        result = evaluate_manifest(args.manifest, out, model=args.model, registry=args.registry, store=args.store,
                                   fps=args.fps, workers=args.workers, stream=args.stream)  # fmt: skip
        print(f"{result['model']} ({result['model_version']}) on {result['clips']} clips of {args.manifest}:")
        for line in ev.summary_lines(result):
            print(f"  {line}")
        print(f"report: {result['report']}")
        return 0
    if args.au_reference:
        if not args.video:
            raise UsageError("--au-reference needs --video (the video the OpenFace CSV was made from)")
        out = Path(args.out or f"au-agreement-{Path(args.video).stem}")
        table = evaluate_au_reference(args.au_reference, args.video, out, store=args.store, fps=args.fps,
                                      workers=args.workers)  # fmt: skip
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"written: {out / 'au_agreement.csv'}, {out / 'au_agreement.json'}")
        return 0
    return _evaluate_version(args)


def _evaluate_version(args: argparse.Namespace) -> int:
    """``lessonlens evaluate --store S --model NAME --version V --dataset KIND PATH``: metrics of a version."""
    from models import available_models
    from tasks.predict.training import evaluate_version

    missing = [
        k.upper() if k == "path" else f"--{k}"
        for k in ("dataset", "path", "store", "model", "version")
        if not getattr(args, k, None)
    ]
    if missing:
        raise UsageError(
            "give --manifest (your labelled clips), --au-reference with --video, or a registered version on a "
            f"training dataset (--dataset KIND PATH --store --model --version; missing: {', '.join(missing)})"
        )
    if args.model not in available_models():
        raise UsageError(f"--model {args.model!r}: valid models are {', '.join(available_models())}")
    metrics, out = evaluate_version(
        args.store, args.model, args.version, args.dataset, args.path, split=args.split, device=args.device,
        out_dir=args.out, dataset_options=dataset_options(args.dataset, args),
    )  # fmt: skip
    print(f"{args.model} {args.version} on {args.dataset} {args.split}: WAR {metrics['war']:.4f}, "
          f"UAR {metrics['uar']:.4f} ({metrics['n']} clips); {out}")  # fmt: skip
    return 0


def _models_register(args: argparse.Namespace) -> int:
    """``lessonlens models register --store S --checkpoint DIR``: register the last epoch of a training run."""
    from models.train import register_checkpoint

    name, version = register_checkpoint(_store(args).root, args.checkpoint, task=args.task, licence=args.licence)
    print(f"registered {name} {version} in {args.store}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    """``lessonlens models list --store S [--model NAME] [--json]``: registered versions."""
    from models.registry import list_versions

    records = list_versions(_store(args).root, args.model)
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    if not records:
        print("(no registered models)")
    for r in records:
        metrics = r["metrics"]
        score = f"WAR {metrics['war']:.3f} UAR {metrics['uar']:.3f}" if "war" in metrics else "no metrics"
        mark = " (promoted)" if r["promoted"] else ""
        print(f"{r['name']} {r['version']}{mark}: task {r['task']}, variant {r['variant']}, {score}, "
              f"registered {r['registered_at']}, licence {r['licence']}")  # fmt: skip
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    """``lessonlens models promote --store S --model NAME --version V``: make it its task's model."""
    from models.registry import promote

    pointer = promote(_store(args).root, args.model, args.version)
    print(f"promoted {args.model} {args.version} for task {pointer['task']}")
    return 0


CRASH = 4  # exit code of an unexpected error


class UsageError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lessonlens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="extract per-frame features of a video corpus into a store")
    run.add_argument(
        "corpus",
        help="folder of videos (recursively), or an object-storage URL (s3://BUCKET/PREFIX/), optionally "
        "with manifest.csv",
    )
    _add_run_options(run)
    run.set_defaults(func=_run)

    query = sub.add_parser("query", help="read-only SQL over the store's views")
    _add_store_option(query)
    query.add_argument("sql", help="views: videos, frames, body, failures, runs")
    query.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help=f"table: the first {TABLE_ROWS} rows; csv, json: every row, streamed",
    )
    query.add_argument(
        "--timeout", type=float, default=300, help="stop the query after this many seconds (default %(default)s)"
    )
    query.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB memory limit, e.g. 2GB (default: a quarter of this machine's memory); a query that needs "
        "more stops with an error",
    )
    query.add_argument("--emotion-stream", choices=EMOTION_STREAMS, default="emotion", help=STREAM_HELP)
    query.set_defaults(func=_query)

    status = sub.add_parser("status", help="what the store holds and how the last run went")
    _add_store_option(status)
    status.set_defaults(func=_status)

    demo = sub.add_parser("demo", help="generate a demo corpus and run the pipeline on it")
    demo.add_argument("--corpus", default="demo-corpus")
    demo.add_argument("--store", default="demo-store")
    demo.add_argument("--workers", type=int, default=None)
    demo.set_defaults(func=_demo)

    serve = sub.add_parser("serve", help="serve the nightly-corpus and reprocess-after-retraining deployments")
    _add_store_option(serve, "default store of both deployments")
    serve.add_argument("--corpus", default=None, help="default corpus of nightly-corpus")
    serve.add_argument("--cron", default="0 2 * * *", help="nightly-corpus schedule (default 02:00 daily)")
    serve.add_argument("--reprocess-cron", default="0 3 * * 0", help="weekly safety run of reprocess")
    serve.add_argument("--dask-address", default=None, help="run the flows on an existing Dask scheduler")
    serve.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    serve.add_argument("--au-model-dir", default=None, help="an ONNX AU model for nightly-corpus (see run)")
    _add_privacy_options(serve)
    serve.set_defaults(func=_serve)

    forget = sub.add_parser("forget", help="erase a video or one face track from the store, for good")
    _add_store_option(forget)
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--video-id", help="the video's id (videos table)")
    which.add_argument("--path", help="the video file (its content hash, and the paths the catalog records)")
    forget.add_argument("--face-id", type=int, default=None, help="erase only this face track of the video")
    forget.add_argument(
        "--person-id", type=int, default=None, help="erase only this person of the video (tracks and body)"
    )
    forget.add_argument("--undo", action="store_true", help="let later runs extract it again (restores nothing)")
    forget.add_argument("--store-group-readable", action=argparse.BooleanOptionalAction, default=None)
    forget.set_defaults(func=_forget)

    models = sub.add_parser("models", help="the papers' models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    info = models_sub.add_parser("info", help="parameters, GFLOPs per clip and CPU latency of every variant")
    info.add_argument("--json", action="store_true")
    info.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    info.set_defaults(func=_models_info)

    analyse = sub.add_parser("analyse", help="ANCOVA of student outcomes by teacher expression groups, with a report")
    _add_store_option(analyse)
    analyse.add_argument(
        "--outcomes", required=True, help="student outcomes .csv/.parquet (see tasks/analyse/outcomes.py)"
    )
    analyse.add_argument("--report", default=None, help="report folder (default <store>/reports/<run id>)")
    analyse.add_argument(
        "--link",
        choices=["session_id", "teacher_id"],
        default=None,
        help="the unit of analysis (default: detected from the data and the manifest: the highest level within "
        "which the factors are constant); students join the store by session_id when the outcomes have it",
    )
    analyse.add_argument("--ss-type", type=int, choices=[2, 3], default=2)
    analyse.add_argument(
        "--factors",
        choices=["auto", "facial", "body", "both"],
        default="auto",
        help="auto (default): facial and body where each exists for most units; the others fail when missing",
    )
    analyse.add_argument("--format", choices=["table", "json"], default="table", help="json: design and every table")
    analyse.add_argument("--emotion-stream", choices=EMOTION_STREAMS, default="emotion", help=STREAM_HELP)
    analyse.add_argument(
        "--threshold",
        action="append",
        metavar="NAME=VALUE",
        help="set a mart threshold (repeatable; names and defaults in tasks/analyse/warehouse.py)",
    )
    analyse.set_defaults(func=_analyse)

    ancova = sub.add_parser("ancova", help="ANCOVA of any table (.csv or .parquet), design-aware with --cluster")
    ancova.add_argument("--data", required=True)
    ancova.add_argument("--dv", nargs="+", required=True, help="dependent variable column(s)")
    ancova.add_argument("--between", nargs="+", required=True, help="factor columns (all interactions)")
    ancova.add_argument("--covariate", nargs="+", required=True, help="covariate columns")
    ancova.add_argument("--ss-type", type=int, choices=[2, 3], default=2)
    ancova.add_argument(
        "--cluster",
        nargs="+",
        default=None,
        metavar="LEVEL",
        help="grouping columns, outermost first (e.g. teacher_id session_id): the unit of analysis is detected, "
        "and each outcome's JSON has the analysis to read ('read') beside the student-level ANCOVA",
    )
    ancova.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="csv: the ANCOVA table only; json: every table",
    )
    ancova.set_defaults(func=_ancova)
    _add_training_commands(sub, models_sub)
    return parser


# options of ``train`` that take tasks.predict.training.TrainingRun's defaults when left out (not imported to build the
# parser: tasks.predict.training imports torch, ~1.4 s of every command)
TRAINING_DEFAULTS = ("variant", "epochs", "fps", "batch_size")
DEFAULT_OF_RUN = "default: tasks.predict.training.TrainingRun's"


def _add_training_commands(sub, models_sub) -> None:
    """``train``, ``evaluate`` and ``models register|list|promote``."""
    from models import available_models

    def dataset_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
        parser.add_argument("--dataset", required=required, choices=["daisee", "dfew", "manifest"])
        parser.add_argument(
            "path",
            nargs=None if required else "?",
            help="dataset root (DAiSEE, DFEW) or manifest CSV (path,label,split)",
        )
        parser.add_argument("--fold", type=int, choices=range(1, 6), default=1, help="DFEW fold")
        parser.add_argument("--daisee-task", choices=["state", "level"], default="state")
        parser.add_argument(
            "--daisee-state", choices=["boredom", "engagement", "confusion", "frustration"], default="engagement"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--out", default=None, help="output folder")

    train = sub.add_parser("train", help="train a paper model on a labelled dataset (optionally register it)")
    dataset_args(train)
    train.add_argument("--model", required=True, choices=available_models())
    train.add_argument("--variant", help=DEFAULT_OF_RUN)
    train.add_argument("--epochs", type=int, help=DEFAULT_OF_RUN)
    train.add_argument("--store", default=None, help="store to cache clips in and register the model into")
    train.add_argument("--register", action="store_true")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    train.add_argument("--override", action="append", default=None, help="config field KEY=JSON (repeatable)")
    train.add_argument("--fps", type=float, help=DEFAULT_OF_RUN)
    train.add_argument("--batch-size", type=int, help=DEFAULT_OF_RUN)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="UAR, WAR, recall, confusion matrix of a version on a dataset, or "
        "of any predictor on your labelled clips (--manifest); AUs vs OpenFace (--au-reference)",
    )
    dataset_args(evaluate, required=False)  # the dataset form's required options are checked by the handler
    evaluate.add_argument("--store", default=None, help="dataset form: the registry; --manifest: store to extract into")
    evaluate.add_argument(
        "--model",
        default=None,
        help=f"dataset form: {', '.join(available_models())}; "
        "--manifest: the emotion stream's rules | promoted | VERSION | NAME:VERSION (default: what the pipeline "
        "uses; rules = --stream emotion_rules)",
    )
    evaluate.add_argument("--stream", choices=EMOTION_STREAMS, default="emotion",
                          help="--manifest: the headline stream (both are scored)")  # fmt: skip
    evaluate.add_argument("--version", default=None)
    evaluate.add_argument("--split", choices=["train", "validation", "test"], default="test")
    evaluate.add_argument("--manifest", default=None, help="labelled clips: CSV path,label[,start,end]")
    evaluate.add_argument("--au-reference", default=None, help="OpenFace CSV of --video: AU agreement")
    evaluate.add_argument("--video", default=None, help="the video of --au-reference")
    evaluate.add_argument("--registry", default=None, help="store to read --model versions from (default --store)")
    evaluate.add_argument("--fps", type=float, default=None, help="face sampling rate (default: the pipeline's)")
    evaluate.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    evaluate.set_defaults(func=_evaluate)

    register = models_sub.add_parser("register", help="register a training run's checkpoint")
    _add_store_option(register)
    register.add_argument("--checkpoint", required=True, help="the --out folder of lessonlens train")
    register.add_argument("--task", choices=["emotion", "learner_state", "gesture"], default=None)
    register.add_argument("--licence", default=None, help="e.g. research-only (DAiSEE/DFEW-trained weights)")
    register.set_defaults(func=_models_register)

    listing = models_sub.add_parser("list", help="registered versions")
    _add_store_option(listing)
    listing.add_argument("--model", default=None)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_models_list)

    promote = models_sub.add_parser("promote", help="make a version its task's model (emits the Prefect event)")
    _add_store_option(promote)
    promote.add_argument("--model", required=True)
    promote.add_argument("--version", required=True)
    promote.set_defaults(func=_models_promote)


def _add_store_option(parser: argparse.ArgumentParser, help: str = "store folder or URL") -> None:
    parser.add_argument("--store", required=True, help=f"{help}: a folder, or s3://BUCKET/PREFIX, gs://..., az://...")
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec option of an object store, e.g. endpoint_url=http://host:9000 (repeatable; also used for a "
        "corpus URL); credentials come from the environment (AWS_ACCESS_KEY_ID ...), never from options",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_store_option(parser, "output store, created if needed")
    from tasks.extract.video import ExtractParams

    parser.add_argument("--fps", type=float, default=ExtractParams.fps, help="face sampling rate (default %(default)s)")
    parser.add_argument(
        "--body-fps",
        type=float,
        default=ExtractParams.body_fps,
        help="body keypoint rate, 0 = off (default %(default)s)",
    )
    parser.add_argument(
        "--descriptor-seconds",
        type=float,
        default=ExtractParams.descriptor_seconds,
        help="face descriptors (to link a video's face tracks into persons) on one frame per this many seconds; "
        "0 = none, each track is its own person (default %(default)s)",
    )
    parser.add_argument(
        "--link-people",
        action="store_true",
        help="link persons across the videos of each manifest course into one person_key (people table); "
        "keeps face descriptors, which are biometric data (README, Personal data)",
    )
    parser.add_argument(
        "--chunk-seconds", type=int, default=ExtractParams.chunk_seconds, help="seconds of video per Dask task"
    )
    parser.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    parser.add_argument("--dask-address", default=None, help="use an existing Dask scheduler")
    parser.add_argument("--face-backend", default=ExtractParams.face_backend, help="mediapipe (default) or insightface")
    parser.add_argument("--face-model-dir", default=None, help="model pack directory (insightface only)")
    parser.add_argument(
        "--au-model-dir", default=None, help="an ONNX AU model (au_model.onnx + au_model.json); default: geometric AUs"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="try again files that failed before with the same content"
    )
    parser.add_argument(
        "--no-crops",
        action="store_true",
        help="do not keep aligned face crops (~4.5 kB per face per sampled frame); reprocessing after "
        "retraining then decodes the videos again",
    )
    _add_privacy_options(parser)


def _add_privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-student-crops",
        action="store_true",
        help="also keep face crops of videos whose manifest role is not teacher (e.g. students)",
    )
    from tasks.predict.privacy import DEFAULT_CROPS_RETENTION_DAYS

    parser.add_argument(
        "--crops-retention-days",
        type=int,
        default=DEFAULT_CROPS_RETENTION_DAYS,
        metavar="N",
        help="delete face crops older than N days once their predictions by the current models exist "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--store-group-readable",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make the store readable by its folders' group (0o750/0o640), or not (owner only, 0o700/0o600, "
        "the default); remembered by the store",
    )


INTERRUPTED = 130  # exit code after Ctrl-C, as a shell reports a process ended by SIGINT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback
        print(f"lessonlens {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


def _main(args: argparse.Namespace) -> int:
    import duckdb

    from tasks.analyse.warehouse import QueryStopped
    from tasks.store import StoreBusy, shown

    try:
        return args.func(args)
    except BrokenPipeError:  # the reader stopped reading (`lessonlens query ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or Python's exit flush fails on it again
        return 0
    except StoreBusy as exc:
        print(f"lessonlens {args.command}: {shown(exc)}", file=sys.stderr)
        return 3
    except (UsageError, FileNotFoundError, PermissionError, ValueError, QueryStopped, duckdb.Error) as exc:
        message = shown(" ".join(str(exc).split()))  # one line, whatever the error text holds
        print(f"lessonlens {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so in one line, keep the traceback in a file
        from tasks.extract.decode import first_line

        # owner only (0o600: it may hold paths), a new file of its own (mkstemp), never one someone made before
        prefix = f"lessonlens-crash-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}-"
        fd, log = tempfile.mkstemp(prefix=prefix, suffix=".log")
        with os.fdopen(fd, "w", errors="backslashreplace") as fh:
            fh.write("".join(traceback.format_exception(exc)))
        print(
            f"lessonlens {args.command}: unexpected error ({type(exc).__name__}: {shown(first_line(exc))}); "
            f"the traceback is in {log}",
            file=sys.stderr,
        )
        return CRASH


if __name__ == "__main__":
    sys.exit(main())
