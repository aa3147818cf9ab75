"""Paper 1's analysis of a store: the marts' analysis table + student outcomes → ANCOVAs → report.

Design (paper 1, §4, Tables 6-8): one row per student; between-subject factors ``facial_group``
(positive / neutral) and ``body_group`` (expressive / still) of the student's session or teacher, with
their interaction; covariate ``pretest``. :func:`analyse_store` does the work as a plain function (the CLI
and the ``analyse`` flow call it).

Units of analysis. The factors are set per session or per teacher: the grouping levels are found, not
assumed (`store_levels`: the outcomes file's id columns and the store's manifest: sessions in teachers in
courses), and the unit of analysis is the highest level within which every factor is constant
(`tasks.analyse.nesting`); ``--link`` overrides it and the design says so. Each outcome gets the analysis to
read (`tasks.analyse.reading`: the mixed model with Satterthwaite df or the ANCOVA of unit means, chosen per
outcome from its units, effect sizes, intervals, assumption checks, one sentence), beside paper 1's
student-level ANCOVA, which is kept and labelled as the paper's.

Factors (``factors``): ``auto`` (default) uses each of facial_group and body_group that exists for at
least half of the units with students, and names the one it leaves out, with the units and the reason;
``facial``, ``body`` or ``both`` ask for those and fail (ValueError naming the column, the units and the
reason) when one is missing for most units. Units that lack a used factor are left out by name.
"""

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from tasks.analyse import warehouse
from tasks.analyse.nesting import Levels, detect_levels, nested_order, noun
from tasks.analyse.outcomes import LINK_COLUMNS, PRETEST, STUDENT_ID, load_outcomes
from tasks.analyse.reading import OutcomeAnalysis, analyse_outcome, holm
from tasks.analyse.report import ReportInputs, to_markdown, write_report
from tasks.analyse.stats import AncovaResult, read_table
from tasks.store import Store

ANALYSIS_MARTS = {"session_id": "session_analysis", "teacher_id": "teacher_analysis"}
GROUP_COLUMNS = ("facial_group", "body_group")
FACTOR_CHOICES = {"auto": GROUP_COLUMNS, "both": GROUP_COLUMNS, "facial": ("facial_group",), "body": ("body_group",)}
UNIT_NAMES = {"session_id": "sessions", "teacher_id": "teachers"}
PARAMETERS_FILE = "analysis.json"  # in each report folder: what produced it, so it can be redone


@dataclass(frozen=True)
class Design:
    """What the analysis stands on, stated before any test: the levels, the unit, units per cell."""

    link: str  # the outcomes file's id column that joins students to the store
    factors: list[str]
    levels: Levels
    cells: pd.DataFrame  # one row per cell: factor levels, units (of the analysis unit), students
    n_units: int
    n_students: int
    students_per_unit: dict[str, float]  # min, median, max
    notes: list[str]  # levels, factors left out, units left out, missing outcomes: column, units, reason

    @property
    def unit(self) -> str:
        return self.levels.unit or self.levels.levels[0]

    def to_dict(self) -> dict:
        return {
            "link": self.link,
            "factors": list(self.factors),
            **self.levels.to_dict(),
            "n_units": self.n_units,
            "n_students": self.n_students,
            "students_per_unit": self.students_per_unit,
            "cells": self.cells.to_dict("records"),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Analysis:
    """What `analyse_store` produced: the joined students, the design, per outcome the analysis to read and
    paper 1's student-level ANCOVA (``results``), and the report."""

    report: Path
    units: pd.DataFrame
    students: pd.DataFrame
    results: dict[str, AncovaResult]
    markdown: str
    design: Design
    outcomes: dict[str, OutcomeAnalysis]

    def to_dict(self) -> dict:
        """JSON-ready: the design, then per outcome the analysis to read and the student-level ANCOVA."""
        return {
            "report": str(self.report),
            "design": self.design.to_dict(),
            "outcomes": {dv: analysis.to_dict() for dv, analysis in self.outcomes.items()},
        }


def new_run_id() -> str:
    """A sortable, unique id for a report folder: UTC time plus a short random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def unit_list(ids: list[str]) -> str:
    """Unit ids for a message: all of them up to 6, else the first 3, '..', the last 2 and the count."""
    ids = sorted(map(str, ids))
    return ", ".join(ids) if len(ids) <= 6 else f"{', '.join(ids[:3])} .. {', '.join(ids[-2:])} ({len(ids)} units)"


def missing_reason(column: str, unit: pd.Series) -> str:
    """The likely reason why a unit of the analysis table has no ``column`` (facial_group or body_group)."""
    if column == "body_group":
        if pd.isna(unit.get("body_rows")) or unit.get("body_rows") == 0:
            return "no upper body visible: body_rows = 0 (no person found, or extracted with --body-fps 0)"
        if pd.isna(unit.get("body_s")) or unit.get("body_s") == 0:
            return "no wrist speed: wrists or shoulders below keypoint_min_visibility in every sample (body_s = 0)"
        return "gesture_rate is null"
    if column == "facial_group":
        if unit.get("face_rows") == 0:
            return "no face found: face_rows = 0"
        if pd.isna(unit.get("expression_s")) or unit.get("expression_s") == 0:
            return "no emotion windows of a primary face (expression_s is null: no face rows or no predictions)"
        return "happiness_share is null"
    return f"{column} is null"


def _missing_by_reason(units: pd.DataFrame, column: str, link: str) -> dict[str, list[str]]:
    by_reason: dict[str, list[str]] = {}
    for _, unit in units[units[column].isna()].iterrows():
        by_reason.setdefault(missing_reason(column, unit), []).append(str(unit[link]))
    return by_reason


def _missing_text(column: str, by_reason: dict[str, list[str]], noun: str) -> str:
    return "; ".join(f"{reason} in {noun} {unit_list(ids)}" for reason, ids in by_reason.items())


def choose_factors(
    units: pd.DataFrame, students: pd.DataFrame, link: str, factors: str = "auto"
) -> tuple[tuple[str, ...], pd.DataFrame, list[str]]:
    """The factors the data can carry, the students of the units that have them, and a note per decision.

    ``factors``: auto | facial | body | both (see the module docstring). Raises ValueError naming the
    column, the units that lack it and the likely reason when a requested factor is missing for most units,
    or when fewer than 2 units are left.
    """
    if factors not in FACTOR_CHOICES:
        raise ValueError(f"parameter factors: {factors!r} is not one of {', '.join(FACTOR_CHOICES)}")
    noun = UNIT_NAMES[link]
    linked = units[units[link].astype(str).isin(set(students[link]))]
    notes, chosen = [], []
    for column in FACTOR_CHOICES[factors]:
        by_reason = _missing_by_reason(linked, column, link)
        n_missing = sum(map(len, by_reason.values()))
        if n_missing * 2 > len(linked):
            text = f"{column} is missing for {n_missing} of {len(linked)} {noun} with students: " + _missing_text(
                column, by_reason, noun
            )
            if factors != "auto":
                raise ValueError(f"parameter factors: {text}")
            notes.append(f"{column} left out of the analysis: {text}")
            continue
        chosen.append(column)
    if not chosen:
        raise ValueError("parameter factors: no factor can be analysed; " + " | ".join(notes))
    lacking = {}
    for column in chosen:
        for reason, ids in _missing_by_reason(linked, column, link).items():
            notes.append(f"{noun} left out: {column} is missing: {reason} in {noun} {unit_list(ids)}")
            lacking.update(dict.fromkeys(ids))
    kept = students[~students[link].isin(lacking)].reset_index(drop=True)
    if "body_group" in chosen and "body_measure" in linked:
        used = linked[~linked[link].astype(str).isin(lacking)]
        measures = {m: list(g[link].astype(str)) for m, g in used.groupby("body_measure")}
        if len(measures) > 1:
            notes.append(
                "body_group is measured differently across "
                + noun
                + ": "
                + "; ".join(f"{m} in {noun} {unit_list(ids)}" for m, ids in measures.items())
                + " (reprocess after promoting the gesture model to measure every unit alike)"
            )
    if kept[link].nunique() < 2:
        raise ValueError(f"parameter factors: fewer than 2 {noun} with students have {chosen}; " + " | ".join(notes))
    return tuple(chosen), kept, notes


def outcome_notes(students: pd.DataFrame, outcomes: list[str], link: str) -> list[str]:
    """A note per outcome (or pretest) that some units lack entirely: the column, the units, the reason."""
    notes = []
    for column in [PRETEST, *outcomes]:
        empty = students.groupby(link)[column].apply(lambda v: v.isna().all())
        if empty.any():
            ids = list(empty[empty].index)
            notes.append(
                f"column {column!r} is empty for every student of {UNIT_NAMES[link]} {unit_list(ids)} "
                "(no value in the outcomes file): those students are left out of its analyses"
            )
    return notes


def store_levels(
    con: duckdb.DuckDBPyConnection, students: pd.DataFrame, link: str
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The grouping levels of the students, outermost first: the link column, the other id column (from the
    outcomes file; for sessions, else the store's manifest: the session's teacher) and the manifest's course,
    each kept when it nests (`tasks.analyse.nesting.nested_order`); returns the students with those columns
    and a note per level left out. The manifest is read upwards only (a session has one teacher, a teacher
    many sessions)."""
    manifest = con.execute(
        "select session as session_id, teacher as teacher_id, course from teacher_videos where teacher is not null"
    ).df()
    frame, notes = students.copy(), []
    other = "teacher_id" if link == "session_id" else "session_id"
    for column in ("teacher_id", "course") if link == "session_id" else ("course",):
        if column in frame.columns:
            continue
        pairs = manifest[[link, column]].dropna().drop_duplicates()
        single = pairs.groupby(link)[column].nunique() == 1
        if len(pairs) and (~single).any():
            several = list(single[~single].index)
            notes.append(
                f"{column} not used as a level: {noun(link)}s {unit_list(several)} have several in the manifest"
            )
        mapping = pairs[pairs[link].isin(single[single].index)].set_index(link)[column]
        frame[column] = frame[link].map(mapping)
    candidates = [c for c in (link, other, "course") if c in frame.columns and frame[c].notna().all()]
    chain, nesting_notes = nested_order(frame, candidates)
    return frame, chain, notes + nesting_notes


def describe_design(
    students: pd.DataFrame, link: str, factors: tuple[str, ...], levels: Levels, notes: list[str]
) -> Design:
    """Units (of the analysis unit) per cell, students per unit, the levels and the notes."""
    unit = levels.unit or levels.levels[0]
    sizes = students.groupby(unit).size()
    cells = (
        students.groupby(list(factors), dropna=False)
        .agg(units=(unit, "nunique"), students=(unit, "size"))
        .reset_index()
    )
    return Design(
        link=link,
        factors=list(factors),
        levels=levels,
        cells=cells,
        n_units=int(students[unit].nunique()),
        n_students=len(students),
        students_per_unit={"min": float(sizes.min()), "median": float(sizes.median()), "max": float(sizes.max())},
        notes=[*levels.notes, *notes],
    )


def run_outcome_analyses(
    students: pd.DataFrame, outcomes: list[str], design: Design, ss_type: int = 2
) -> dict[str, OutcomeAnalysis]:
    """The analysis to read of each outcome (`tasks.analyse.reading.analyse_outcome`), Holm across them."""
    analyses = {dv: analyse_outcome(students, dv, design.factors, [PRETEST], design.levels, ss_type) for dv in outcomes}
    holm(analyses, design.factors)
    return analyses


def detected_link(outcomes: str | Path) -> str:
    """The id column that joins the outcomes file to the store: session_id when it has one, else teacher_id."""
    columns = set(read_table(outcomes, dtype=str).columns.str.strip())
    return "session_id" if "session_id" in columns or "teacher_id" not in columns else "teacher_id"


def analyse_store(
    store: Store,
    outcomes: str | Path,
    report_dir: str | Path | None = None,
    link: str | None = None,
    ss_type: int = 2,
    thresholds: dict[str, float] | None = None,
    factors: str = "auto",
    emotion_stream: str = "emotion",
) -> Analysis:
    """Join the store's analysis table to the outcomes, state the design, run paper 1's student-level
    ANCOVAs and the unit-level analyses, and write the report.

    Args:
        store: the LessonLens store.
        outcomes: student outcomes file (schema: `tasks.analyse.outcomes`); its link ids must be in the store.
        report_dir: where to write; default ``<store>/reports/<run id>``.
        link: None (default): students join the store by ``session_id`` when the outcomes file has it (else
            ``teacher_id``) and the unit of analysis is detected; ``session_id`` or ``teacher_id``: join by it
            and analyse at that level (an override, which the design states when it departs from the
            detected unit).
        ss_type: 2 or 3.
        thresholds: overrides of `tasks.analyse.warehouse.THRESHOLDS`.
        factors: auto | facial | body | both (module docstring).
        emotion_stream: the emotion predictions the facial groups and the report read: ``emotion`` (the
            default stream) or ``emotion_rules`` (the AU rules).

    Raises:
        FileNotFoundError: no store or no outcomes file.
        ValueError: bad thresholds, link or ss_type, or an outcomes file that fails validation (naming
            row and column).
    """
    if ss_type not in (2, 3):
        raise ValueError(f"ss_type must be 2 or 3, got {ss_type!r}")
    values = warehouse.resolve_thresholds(thresholds)
    con = warehouse.connect(store, values, emotion_stream=emotion_stream)
    override, link = link, link or detected_link(outcomes)
    units = analysis_table(con, link)
    joined = join_outcomes(units, outcomes, link)
    chosen, students, notes = choose_factors(units, joined, link, factors)
    dvs = outcome_columns(joined)
    students, chain, level_notes = store_levels(con, students, link)
    levels = detect_levels(students, list(chosen), chain, override)
    design = describe_design(students, link, chosen, levels, level_notes + notes + outcome_notes(students, dvs, link))
    analyses = run_outcome_analyses(students, dvs, design, ss_type)
    results = {dv: analysis.student_level for dv, analysis in analyses.items()}
    staged = not report_dir and store.is_remote  # written on local disk, then uploaded into the store
    folder = Path(report_dir) if report_dir else store.reports_dir() / new_run_id()
    if staged:
        folder = Path(tempfile.mkdtemp(prefix="lessonlens-report-")) / folder.name
    facts = {
        "store": store.url,
        "outcomes": str(Path(outcomes).resolve()),
        "unit": f"{design.unit} ({design.n_units} with students; students joined by {link})",
        "students": str(len(students)),
        "design": f"{' × '.join(chosen)}, covariate pretest, sum-to-zero contrasts; the analysis to read per outcome "
        f"below; paper 1's student-level ANCOVA with type {ss_type} sums of squares",
        "body measure": ", ".join(sorted(set(units["body_measure"].dropna()))) if "body_measure" in units else "-",
        "thresholds": ", ".join(f"{k}={v:g}" for k, v in values.items()),
        "emotion stream": emotion_stream_fact(con, emotion_stream),
    }
    inputs = ReportInputs(
        title="LessonLens: teacher expression and student outcomes",
        facts=facts,
        units=units,
        results=results,
        windows=expression_timeline(con),
        au_means=au_means(con),
        design=design,
        outcomes=analyses,
    )
    path = write_report(folder, inputs)
    parameters = {"outcomes": facts["outcomes"], "link": override, "ss_type": ss_type, "thresholds": thresholds or {},
                  "factors": factors, "emotion_stream": emotion_stream}  # fmt: skip
    (folder / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2))
    if staged:
        store.write_report_index(folder, con.execute("select video_id from videos").df()["video_id"])
        path = store.upload_report(folder) / path.name
        shutil.rmtree(folder.parent)
    elif store.reports_dir() in path.resolve().parents:  # erasing a video it may show removes it
        store.write_report_index(folder, con.execute("select video_id from videos").df()["video_id"])
        store.apply_permissions(folder)
    return Analysis(path, units, students, results, to_markdown(inputs, []), design, analyses)


def emotion_stream_fact(con: duckdb.DuckDBPyConnection, stream: str) -> str:
    """``stream`` and the models whose windows it holds, e.g. ``emotion (face-api.js FaceExpressionNet ...)``."""
    models = con.execute("select distinct model_name from expression_windows order by 1").fetchall()
    return f"{stream} ({'; '.join(m for (m,) in models) or 'no windows'})"


def latest_parameters(store: Store) -> dict | None:
    """The parameters of the store's most recent analysis (from its report folder), or None."""
    found = sorted(store.reports_dir().glob(f"*/{PARAMETERS_FILE}"))
    return json.loads(found[-1].read_text()) if found else None


def analysis_table(con: duckdb.DuckDBPyConnection, link: str = "session_id") -> pd.DataFrame:
    """The ANCOVA units for ``link`` (one row per session or teacher) with their facial and body groups."""
    if link not in ANALYSIS_MARTS:
        raise ValueError(f"link must be one of {list(ANALYSIS_MARTS)}, got {link!r}")
    return con.execute(f"select * from {ANALYSIS_MARTS[link]} order by {link}").df()


def join_outcomes(units: pd.DataFrame, outcomes: str | Path, link: str = "session_id") -> pd.DataFrame:
    """Students (validated by `load_outcomes` against the units' ids) with their unit's measures and groups.

    Returns one row per student: the outcomes file's columns, then the unit's ``happiness_share``,
    ``gesture_rate``, ``facial_group`` and ``body_group``.
    """
    students = load_outcomes(outcomes, known_ids=[str(i) for i in units[link]], link=link)
    measures = units[[link, "happiness_share", "gesture_rate", *GROUP_COLUMNS]]
    clash = [c for c in measures.columns if c != link and c in students.columns]
    if clash:
        raise ValueError(
            f"{outcomes}: row 1 (header): column(s) {clash} have the names of the store's measures that the "
            "analysis adds to every student; rename them"
        )
    return students.merge(measures, on=link, how="left", validate="many_to_one")


def outcome_columns(students: pd.DataFrame) -> list[str]:
    """The outcome columns of a `join_outcomes` table: every outcomes-file column but ids and pretest."""
    skip = {STUDENT_ID, PRETEST, *LINK_COLUMNS, "happiness_share", "gesture_rate", *GROUP_COLUMNS}
    return [c for c in students.columns if c not in skip]


def expression_timeline(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The primary faces' emotion windows for the report: ``video`` (path), ``start_time``, ``end_time``, ``label``."""
    return con.execute(
        "select path as video, start_time, end_time, label from expression_windows "
        "where is_primary_face order by path, start_time"
    ).df()


def au_means(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Mean AU intensity of each video's primary face: ``video`` (path) and the ``AUxx_r`` columns."""
    return con.execute(
        "select path as video, columns('^AU\\d+_r$') from video_summary where primary_person_id is not null "
        "order by path"
    ).df()
