"""The ``analyse`` flow: marts → analysis table + student outcomes → one ANCOVA per outcome → report.

`analyse_store` does the work as a plain function (the CLI calls it directly, without a Prefect API);
the flow `analyse` wraps it and publishes the ANCOVA tables and the Markdown report as Prefect artifacts.

Design (paper 1, §4, Tables 6-8): one row per student; between-subject factors ``facial_group``
(positive / neutral) and ``body_group`` (expressive / still) of the student's session or teacher, with
their interaction; covariate ``pretest``.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

import flows  # noqa: F401  (offline Prefect defaults)
from tasks import marts
from tasks.outcomes import PRETEST
from tasks.report import ReportInputs, formatted_paper_table, to_markdown, write_report
from tasks.stats import AncovaResult, ancova
from tasks.store import Store

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
    return {dv: ancova(students, dv, list(marts.GROUP_COLUMNS), [PRETEST], ss_type) for dv in outcomes}


def analyse_store(
    store: str | Path,
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
        thresholds: overrides of `tasks.marts.THRESHOLDS`.

    Raises:
        FileNotFoundError: no store or no outcomes file.
        ValueError: bad thresholds, link or ss_type, or an outcomes file that fails validation (naming
            row and column).
    """
    if ss_type not in (2, 3):
        raise ValueError(f"ss_type must be 2 or 3, got {ss_type!r}")
    store = Store(store)
    values = marts.resolve_thresholds(thresholds)
    con = marts.connect(store, values)
    units = marts.analysis_table(con, link)
    students = marts.join_outcomes(units, outcomes, link)
    results = run_ancovas(students, marts.outcome_columns(students), ss_type)
    folder = Path(report_dir) if report_dir else store.root / "reports" / new_run_id()
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
        windows=marts.expression_timeline(con),
        au_means=marts.au_means(con),
    )
    path = write_report(folder, inputs)
    parameters = {"outcomes": facts["outcomes"], "link": link, "ss_type": ss_type, "thresholds": thresholds or {}}
    (folder / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2))
    return Analysis(path, units, students, results, to_markdown(inputs, []))


def latest_parameters(store: str | Path) -> dict | None:
    """The parameters of the store's most recent analysis (from its report folder), or None."""
    found = sorted(Path(store).glob(f"reports/*/{PARAMETERS_FILE}"))
    return json.loads(found[-1].read_text()) if found else None


def publish_artifacts(analysis: Analysis) -> None:
    """Each outcome's ANCOVA table and the Markdown report as Prefect artifacts of the current flow run."""
    for dv, result in analysis.results.items():
        key = "ancova-" + "".join(c if c.isalnum() else "-" for c in dv.lower())
        create_table_artifact(
            table=formatted_paper_table(result).to_dict(orient="records"),
            key=key,
            description=f"ANCOVA of {dv} (n = {result.n_used}); report: {analysis.report}",
        )
    create_markdown_artifact(markdown=analysis.markdown, key="analysis-report", description=str(analysis.report))


@flow(name="analyse")
def analyse(
    store: str,
    outcomes: str,
    report_dir: str | None = None,
    link: str = "session_id",
    ss_type: int = 2,
    thresholds: dict[str, float] | None = None,
) -> str:
    """Analyse a store against student outcomes (see `analyse_store`); returns the report's HTML path."""
    analysis = analyse_store(store, outcomes, report_dir, link, ss_type, thresholds)
    publish_artifacts(analysis)
    get_run_logger().info("%d ANCOVAs; report %s", len(analysis.results), analysis.report)
    return str(analysis.report)
