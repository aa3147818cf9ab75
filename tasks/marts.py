"""The marts of ``sql/marts`` as DuckDB views over a store, with user-settable thresholds.

Each ``sql/marts/<name>.sql`` defines view ``<name>`` from the staging views (``videos``, ``frames``,
``body``, ``predictions``) and other marts. Its header states ``-- grain:``, ``-- keys:`` and
``-- depends:``; `mart_files` orders the files so that every view is created after those it reads.

Thresholds are DuckDB variables (``set variable name = value``) that the marts read with
``getvariable('name')`` when they are queried, so changing one changes the marts at once:

==============================  =======  ===================================================================
name                            default  meaning
==============================  =======  ===================================================================
``positive_happiness_share``    0.25     facial group 'positive' when at least this share of the expression
                                         window time is labelled happiness, else 'neutral'
``expressive_gesture_rate``     6.0      body group 'expressive' at this many gestures per minute or more,
                                         else 'still'
``gesture_min_speed``           0.5      a body sample is moving when a wrist moved at least this many
                                         shoulder widths per second since the previous sample
``keypoint_min_visibility``     0.5      BlazePose visibility a wrist and both shoulders need to count
==============================  =======  ===================================================================
"""

import graphlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from tasks import query
from tasks.outcomes import LINK_COLUMNS, PRETEST, STUDENT_ID, load_outcomes
from tasks.store import Store

MARTS_DIR = Path(__file__).resolve().parents[1] / "sql" / "marts"
STAGING_VIEWS = ("videos", "frames", "body", "predictions")
ANALYSIS_MARTS = {"session_id": "session_analysis", "teacher_id": "teacher_analysis"}
GROUP_COLUMNS = ("facial_group", "body_group")
_HEADER = re.compile(r"^--\s*(grain|keys|depends):\s*(.*)$")


@dataclass(frozen=True)
class Threshold:
    """A DuckDB variable the marts read with ``getvariable``."""

    name: str
    default: float
    meaning: str


THRESHOLDS: dict[str, Threshold] = {
    t.name: t
    for t in (
        Threshold("positive_happiness_share", 0.25, "facial group 'positive' at this happiness share+"),
        Threshold("expressive_gesture_rate", 6.0, "body group 'expressive' at this many gestures/min+"),
        Threshold("gesture_min_speed", 0.5, "moving: wrist speed in shoulder widths per second, at least"),
        Threshold("keypoint_min_visibility", 0.5, "visibility a wrist and both shoulders need to count"),
    )
}


@dataclass(frozen=True)
class MartFile:
    """One mart: its view name, SQL file and the grain, keys and dependencies its header states."""

    name: str
    path: Path
    grain: str
    keys: tuple[str, ...]
    depends: tuple[str, ...]


def read_mart(path: Path) -> MartFile:
    """Parse the ``-- grain:``, ``-- keys:`` and ``-- depends:`` header lines of a mart file."""
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        match = _HEADER.match(line)
        if match:
            header[match.group(1)] = match.group(2).strip()
    missing = [k for k in ("grain", "keys", "depends") if not header.get(k)]
    if missing:
        raise ValueError(f"{path}: the header lacks {missing} (each mart states grain, keys and depends)")
    return MartFile(
        name=path.stem,
        path=path,
        grain=header["grain"],
        keys=_names(header["keys"]),
        depends=_names(header["depends"]),
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def mart_files(folder: Path = MARTS_DIR) -> list[MartFile]:
    """The marts of ``folder`` in creation order (every mart after the views it depends on)."""
    marts = {m.name: m for m in map(read_mart, sorted(folder.glob("*.sql")))}
    for mart in marts.values():
        unknown = [d for d in mart.depends if d not in marts and d not in STAGING_VIEWS]
        if unknown:
            raise ValueError(f"{mart.path}: depends on {unknown}, which are neither marts nor staging views")
    graph = {m.name: [d for d in m.depends if d in marts] for m in marts.values()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise ValueError(f"marts depend on each other in a cycle: {err.args[1]}") from err
    return [marts[name] for name in order]


def parse_thresholds(items: Iterable[str] | None) -> dict[str, float]:
    """``["name=value", ...]`` (the CLI's ``--threshold``) as a dict; names and numbers are checked."""
    parsed: dict[str, float] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"threshold {item!r} is not name=value")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"threshold {name.strip()!r}: {value!r} is not a number") from None
    return resolve_thresholds(parsed)


def resolve_thresholds(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every threshold: its default unless ``overrides`` sets it; unknown names, non-finite values raise."""
    values = {name: t.default for name, t in THRESHOLDS.items()}
    for name, value in (overrides or {}).items():
        if name not in THRESHOLDS:
            raise ValueError(f"unknown threshold {name!r}; valid: {sorted(THRESHOLDS)}")
        if not math.isfinite(float(value)):
            raise ValueError(f"threshold {name!r} must be a finite number, got {value!r}")
        values[name] = float(value)
    return values


def set_thresholds(con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float] | None = None) -> None:
    """Set every threshold variable on ``con`` (defaults for those not in ``thresholds``)."""
    for name, value in resolve_thresholds(thresholds).items():
        con.execute(f"set variable {name} = {value!r}::double")


def connect(store: Store | str, thresholds: Mapping[str, float] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the staging views, the threshold variables and every mart as a view."""
    con = query.connect(store)
    set_thresholds(con, thresholds)
    for mart in mart_files():
        con.execute(f"create or replace view {mart.name} as\n{mart.path.read_text()}")
    return con


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
