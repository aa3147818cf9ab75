"""Paper 1's analysis of a store: the marts' analysis table + student outcomes → ANCOVAs → report.

Design (paper 1, §4, Tables 6-8): one row per student; between-subject factors ``facial_group``
(positive / neutral) and ``body_group`` (expressive / still) of the student's session or teacher, with
their interaction; covariate ``pretest``. :func:`analyse_store` does the work as a plain function (the CLI
and the ``analyse`` flow call it).

Units of analysis. The factors are set per session (or teacher): every student of a unit has the same
levels, so the units, not the students, are the independent replications of the design. Paper 1's
student-level ANCOVA is kept (labelled as the paper's analysis) and, beside it, the analysis a reviewer
asks for: a linear mixed model with a random intercept per unit (students nested in units;
`tasks.analyse.stats.mixed_model`) when at least ``MIN_UNITS_MIXED`` (10) units have students with a value of the
outcome (chosen per outcome), else the ANCOVA of unit means with the unit's mean pre-test as covariate
(with fewer than ~10 units the random intercept variance is poorly estimated and the mixed model's Wald
tests, which have no small-sample correction in statsmodels, are anti-conservative). :class:`Design`
states units per cell, students per unit, each outcome's ICC within units, and warns that the factors are
constant within units; a student-level p-value is flagged optimistic when the design effect
``1 + (n0 - 1) ICC`` of the outcome's residual ICC (units nested in the cells of the factors: the
clustering the factors leave) exceeds ``OPTIMISTIC_DESIGN_EFFECT`` (1.1).

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
from tasks.analyse.outcomes import LINK_COLUMNS, PRETEST, STUDENT_ID, load_outcomes
from tasks.analyse.report import ReportInputs, to_markdown, write_report
from tasks.analyse.stats import (
    AncovaResult,
    IccResult,
    MixedResult,
    ancova,
    constant_within,
    icc_oneway,
    mixed_model,
    unit_means,
)
from tasks.store import Store

ANALYSIS_MARTS = {"session_id": "session_analysis", "teacher_id": "teacher_analysis"}
GROUP_COLUMNS = ("facial_group", "body_group")
FACTOR_CHOICES = {"auto": GROUP_COLUMNS, "both": GROUP_COLUMNS, "facial": ("facial_group",), "body": ("body_group",)}
UNIT_NAMES = {"session_id": "sessions", "teacher_id": "teachers"}
MIN_UNITS_MIXED = 10  # from this many units with students on, the mixed model; below, the ANCOVA of unit means
OPTIMISTIC_DESIGN_EFFECT = 1.1  # a student-level p-value is flagged optimistic above this design effect
PARAMETERS_FILE = "analysis.json"  # in each report folder: what produced it, so it can be redone


@dataclass(frozen=True)
class UnitAnalysis:
    """The unit-level analysis of one outcome: a mixed model or the ANCOVA of unit means, and the ICC."""

    dv: str
    method: str  # "mixed model" | "unit-means ANCOVA"
    result: MixedResult | AncovaResult
    icc: IccResult  # of the outcome within units
    residual_icc: IccResult  # of the outcome minus its cell mean, within units: what the factors leave clustered
    optimistic: bool  # paper 1's student-level p-values of this outcome are optimistic

    def to_dict(self) -> dict:
        return {"method": self.method, "optimistic_student_level_p": self.optimistic, "icc": self.icc.to_dict(),
                "residual_icc": self.residual_icc.to_dict(), **self.result.to_dict()}  # fmt: skip


@dataclass(frozen=True)
class Design:
    """What the analysis stands on, stated before any test."""

    link: str
    factors: list[str]
    cells: pd.DataFrame  # one row per cell: factor levels, units, students
    n_units: int
    n_students: int
    students_per_unit: dict[str, float]  # min, median, max
    icc: dict[str, IccResult]
    constant_factors: list[str]  # factors constant within every unit
    method: str  # the unit-level analysis used
    notes: list[str]  # factors left out, units left out, missing outcomes: column, units, reason
    read: str  # one sentence: which analysis to read and why

    def to_dict(self) -> dict:
        return {
            "link": self.link,
            "factors": list(self.factors),
            "n_units": self.n_units,
            "n_students": self.n_students,
            "students_per_unit": self.students_per_unit,
            "cells": self.cells.to_dict("records"),
            "icc": {dv: r.to_dict() for dv, r in self.icc.items()},
            "constant_within_units": list(self.constant_factors),
            "unit_level_method": self.method,
            "notes": list(self.notes),
            "read": self.read,
        }


@dataclass(frozen=True)
class Analysis:
    """What `analyse_store` produced: the joined students, the design, one student-level ANCOVA (paper 1's)
    and one unit-level analysis per outcome, and the report."""

    report: Path
    units: pd.DataFrame
    students: pd.DataFrame
    results: dict[str, AncovaResult]
    markdown: str
    design: Design | None = None
    unit_results: dict[str, UnitAnalysis] | None = None

    def to_dict(self) -> dict:
        """JSON-ready: the design, then per outcome paper 1's ANCOVA and the unit-level analysis."""
        unit_results = self.unit_results or {}
        return {
            "report": str(self.report),
            "design": self.design.to_dict() if self.design else None,
            "outcomes": {
                dv: {
                    "student_level_ancova (paper 1)": r.to_dict(),
                    "unit_level": unit_results[dv].to_dict() if dv in unit_results else None,
                }
                for dv, r in self.results.items()
            },
        }


def new_run_id() -> str:
    """A sortable, unique id for a report folder: UTC time plus a short random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_ancovas(
    students: pd.DataFrame, outcomes: list[str], ss_type: int = 2, factors: tuple[str, ...] = GROUP_COLUMNS
) -> dict[str, AncovaResult]:
    """Paper 1's analysis: one student-level ANCOVA per outcome, between ``factors``, covariate ``pretest``."""
    return {dv: ancova(students, dv, list(factors), [PRETEST], ss_type) for dv in outcomes}


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


def describe_design(
    students: pd.DataFrame, link: str, factors: tuple[str, ...], outcomes: list[str], notes: list[str]
) -> Design:
    """Units per cell, students per unit, ICC per outcome, constant-within-unit factors, the unit-level method
    and the sentence saying which analysis to read."""
    noun = UNIT_NAMES[link]
    sizes = students.groupby(link).size()
    cells = (
        students.groupby(list(factors), dropna=False)
        .agg(units=(link, "nunique"), students=(link, "size"))
        .reset_index()
    )
    icc = {dv: icc_oneway(students, dv, link) for dv in outcomes}
    constant = [f for f, c in constant_within(students, list(factors), link).items() if c]
    n_units = int(students[link].nunique())
    method = "mixed model" if n_units >= MIN_UNITS_MIXED else "unit-means ANCOVA"
    residual = {dv: icc_oneway(students, dv, link, cells=list(factors)) for dv in outcomes}  # what factors leave
    deffs = [r.design_effect for r in residual.values() if pd.notna(r.design_effect)]
    iccs = [r.icc for r in residual.values() if pd.notna(r.icc)]
    worst = (
        f"residual ICCs within {noun} up to {max(iccs):.2f}, design effect up to {max(deffs):.1f}"
        if iccs
        else "residual ICCs not estimable"
    )
    optimistic = bool(deffs) and max(deffs) > OPTIMISTIC_DESIGN_EFFECT and bool(constant)
    if optimistic:
        verdict = f"has optimistic p-values here ({worst})."
    elif deffs:
        verdict = f"is close to it here only ({worst})."
    else:  # e.g. one unit per cell: the factors are confounded with the units
        verdict = f"cannot be checked against it here ({worst}): do not read its p-values as the unit-level result."
    what = (
        f"the linear mixed model (random intercept per {link})"
        if method == "mixed model"
        else f"the ANCOVA of {noun[:-1]} means (fewer than {MIN_UNITS_MIXED} {noun} for a mixed model)"
    )
    read = (
        f"Read {what}: {', '.join(constant) or 'the factors'} are set per {noun[:-1]}, so the {n_units} {noun}, "
        f"not the {len(students)} students, are the independent replications, and paper 1's student-level ANCOVA, "
        f"which counts every student as independent, " + verdict
    )
    if constant:
        notes = [
            f"{', '.join(constant)} constant within every {noun[:-1]}: these are {noun[:-1]}-level factors; "
            f"students are not independent replications of them",
            *notes,
        ]
    return Design(
        link=link,
        factors=list(factors),
        cells=cells,
        n_units=n_units,
        n_students=len(students),
        students_per_unit={"min": float(sizes.min()), "median": float(sizes.median()), "max": float(sizes.max())},
        icc=icc,
        constant_factors=constant,
        method=method,
        notes=notes,
        read=read,
    )


def run_unit_analyses(
    students: pd.DataFrame, outcomes: list[str], design: Design, ss_type: int = 2
) -> dict[str, UnitAnalysis]:
    """The unit-level analysis of each outcome with its ICC and the optimism flag: the mixed model when the
    outcome has values in at least ``MIN_UNITS_MIXED`` units (an outcome measured in fewer units than the
    design has gets the ANCOVA of unit means), else the ANCOVA of unit means."""
    factors, link = list(design.factors), design.link
    out = {}
    for dv in outcomes:
        measured = students.dropna(subset=[dv, PRETEST, *factors])[link].nunique()
        method = "mixed model" if measured >= MIN_UNITS_MIXED else "unit-means ANCOVA"
        if method == "mixed model":
            result = mixed_model(students, dv, factors, [PRETEST], link)
        else:
            result = ancova(unit_means(students, dv, factors, [PRETEST], link), dv, factors, [PRETEST], ss_type)
        residual_icc = icc_oneway(students, dv, link, cells=factors)  # the clustering the factors leave
        optimistic = bool(
            set(factors) <= set(design.constant_factors)
            and pd.notna(residual_icc.design_effect)
            and residual_icc.design_effect > OPTIMISTIC_DESIGN_EFFECT
        )
        out[dv] = UnitAnalysis(dv, method, result, design.icc[dv], residual_icc, optimistic)
    return out


def analyse_store(
    store: Store,
    outcomes: str | Path,
    report_dir: str | Path | None = None,
    link: str = "session_id",
    ss_type: int = 2,
    thresholds: dict[str, float] | None = None,
    factors: str = "auto",
) -> Analysis:
    """Join the store's analysis table to the outcomes, state the design, run paper 1's student-level
    ANCOVAs and the unit-level analyses, and write the report.

    Args:
        store: the LessonLens store.
        outcomes: student outcomes file (schema: `tasks.analyse.outcomes`); its link ids must be in the store.
        report_dir: where to write; default ``<store>/reports/<run id>``.
        link: ``session_id`` or ``teacher_id``: which unit the students belong to.
        ss_type: 2 or 3.
        thresholds: overrides of `tasks.analyse.warehouse.THRESHOLDS`.
        factors: auto | facial | body | both (module docstring).

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
    joined = join_outcomes(units, outcomes, link)
    chosen, students, notes = choose_factors(units, joined, link, factors)
    dvs = outcome_columns(joined)
    design = describe_design(students, link, chosen, dvs, notes + outcome_notes(students, dvs, link))
    results = run_ancovas(students, dvs, ss_type, chosen)
    unit_results = run_unit_analyses(students, dvs, design, ss_type)
    staged = not report_dir and store.is_remote  # written on local disk, then uploaded into the store
    folder = Path(report_dir) if report_dir else store.reports_dir() / new_run_id()
    if staged:
        folder = Path(tempfile.mkdtemp(prefix="lessonlens-report-")) / folder.name
    facts = {
        "store": store.url,
        "outcomes": str(Path(outcomes).resolve()),
        "unit": f"{link} ({len(units)} in the store, {students[link].nunique()} with students)",
        "students": str(len(students)),
        "design": f"{' × '.join(chosen)}, covariate pretest, type {ss_type} sums of squares, sum-to-zero contrasts",
        "body measure": ", ".join(sorted(set(units["body_measure"].dropna()))) if "body_measure" in units else "-",
        "thresholds": ", ".join(f"{k}={v:g}" for k, v in values.items()),
    }
    inputs = ReportInputs(
        title="LessonLens: teacher expression and student outcomes",
        facts=facts,
        units=units,
        results=results,
        windows=expression_timeline(con),
        au_means=au_means(con),
        design=design,
        unit_results=unit_results,
    )
    path = write_report(folder, inputs)
    parameters = {"outcomes": facts["outcomes"], "link": link, "ss_type": ss_type, "thresholds": thresholds or {},
                  "factors": factors}  # fmt: skip
    (folder / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2))
    if staged:
        store.write_report_index(folder, con.execute("select video_id from videos").df()["video_id"])
        path = store.upload_report(folder) / path.name
        shutil.rmtree(folder.parent)
    elif store.reports_dir() in path.resolve().parents:  # erasing a video it may show removes it
        store.write_report_index(folder, con.execute("select video_id from videos").df()["video_id"])
        store.apply_permissions(folder)
    return Analysis(path, units, students, results, to_markdown(inputs, []), design, unit_results)


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
        "select path as video, columns('^AU\\d+_r$') from video_summary where primary_face_id is not null order by path"
    ).df()
