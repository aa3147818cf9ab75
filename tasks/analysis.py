"""Paper 1's analysis of a store: the marts' analysis table + student outcomes → one ANCOVA per outcome → report.

Design (paper 1, §4, Tables 6-8): one row per student; between-subject factors ``facial_group``
(positive / neutral) and ``body_group`` (expressive / still) of the student's session or teacher, with
their interaction; covariate ``pretest``. :func:`analyse_store` does the work as a plain function (the CLI
and the ``analyse`` flow call it).
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from tasks import warehouse
from tasks.outcomes import LINK_COLUMNS, PRETEST, STUDENT_ID, load_outcomes
from tasks.report import ReportInputs, to_markdown, write_report
from tasks.stats import AncovaResult, ancova
from tasks.store import Store

ANALYSIS_MARTS = {"session_id": "session_analysis", "teacher_id": "teacher_analysis"}
GROUP_COLUMNS = ("facial_group", "body_group")
PARAMETERS_FILE = "analysis.json"  # in each report folder: what produced it, so it can be redone


@dataclass(frozen=True)
class Analysis:
    """What `analyse_store` produced: the joined students, one ANCOVA per outcome and the report."""

    report: Path
    units: pd.DataFrame
    students: pd.DataFrame
    results: dict[str, AncovaResult]
    markdown: str


def new_run_id() -> str:
    """A sortable, unique id for a report folder: UTC time plus a short random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_ancovas(students: pd.DataFrame, outcomes: list[str], ss_type: int = 2) -> dict[str, AncovaResult]:
    """One ANCOVA per outcome: between ``facial_group`` × ``body_group``, covariate ``pretest``."""
    return {dv: ancova(students, dv, list(GROUP_COLUMNS), [PRETEST], ss_type) for dv in outcomes}


def analyse_store(
    store: Store,
    outcomes: str | Path,
    report_dir: str | Path | None = None,
    link: str = "session_id",
    ss_type: int = 2,
    thresholds: dict[str, float] | None = None,
) -> Analysis:
    """Join the store's analysis table to the outcomes, run the ANCOVAs and write the report.

    Args:
        store: the LessonLens store.
        outcomes: student outcomes file (schema: `tasks.outcomes`); its link ids must be in the store.
        report_dir: where to write; default ``<store>/reports/<run id>``.
        link: ``session_id`` or ``teacher_id``: which unit the students belong to.
        ss_type: 2 or 3.
        thresholds: overrides of `tasks.warehouse.THRESHOLDS`.

    Raises:
        FileNotFoundError: no store or no outcomes file.
        ValueError: bad thresholds, link or ss_type, or an outcomes file that fails validation (naming
            row and column).
    """
    if ss_type not in (2, 3):
        raise ValueError(f"ss_type must be 2 or 3, got {ss_type!r}")
    values = warehouse.resolve_thresholds(thresholds)
    con = warehouse.connect(store, values)
    units = analysis_table(con, link)
    students = join_outcomes(units, outcomes, link)
    results = run_ancovas(students, outcome_columns(students), ss_type)
    folder = Path(report_dir) if report_dir else store.reports_dir() / new_run_id()
    facts = {
        "store": str(store.root),
        "outcomes": str(Path(outcomes).resolve()),
        "unit": f"{link} ({len(units)} in the store, {students[link].nunique()} with students)",
        "students": str(len(students)),
        "design": "facial_group × body_group, covariate pretest, type "
        f"{ss_type} sums of squares, sum-to-zero contrasts",
        "thresholds": ", ".join(f"{k}={v:g}" for k, v in values.items()),
    }
    inputs = ReportInputs(
        title="LessonLens: teacher expression and student outcomes",
        facts=facts,
        units=units,
        results=results,
        windows=expression_timeline(con),
        au_means=au_means(con),
    )
    path = write_report(folder, inputs)
    parameters = {"outcomes": facts["outcomes"], "link": link, "ss_type": ss_type, "thresholds": thresholds or {}}
    (folder / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2))
    if store.reports_dir() in path.resolve().parents:  # erasing a video it may show removes it
        store.write_report_index(folder, con.execute("select video_id from videos").df()["video_id"])
        store.apply_permissions(folder)
    return Analysis(path, units, students, results, to_markdown(inputs, []))


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
        "select path as video, columns('^AU\\d+_r$') from video_summary where primary_face_id is not null order by path"
    ).df()
