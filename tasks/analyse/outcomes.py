"""Student outcomes: the per-student measures that paper 1 (§4, Tables 6-8) analyses by ANCOVA.

Schema (a ``.csv`` or ``.parquet`` file, one row per student):

============================  ======  ==========================================================
column                        type    meaning
============================  ======  ==========================================================
``student_id``                text    required; unique in the file
``session_id``/``teacher_id``  text    the link column named by ``link`` is required; it joins the
                                      student to an analysed lesson (session) or teacher
``pretest``                   number  required; pre-test score, the ANCOVA covariate
outcome columns               number  at least one, e.g. ``classroom_performance``,
                                      ``evaluation_feedback``, ``positive_emotion``,
                                      ``negative_emotion``, ``learning_motivation``; every column
                                      other than the id columns is read as a numeric outcome
============================  ======  ==========================================================

Ids are text (CSV cells are read as text, so ``007`` stays ``007``; surrounding spaces are removed).
Empty numeric cells (and pandas' default NA markers such as ``NA``) are missing values, kept as NaN;
`tasks.analyse.stats.ancova` drops them listwise. Lines that are entirely empty are skipped.

Row numbers in error messages count lines of the file with the header as row 1, so the first student
is row 2 (one record per line; Parquet files use the same numbering over their rows).
"""

from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.analyse.stats import read_table

STUDENT_ID = "student_id"
LINK_COLUMNS = ("session_id", "teacher_id")
PRETEST = "pretest"
OUTCOMES = (
    "classroom_performance",
    "evaluation_feedback",
    "positive_emotion",
    "negative_emotion",
    "learning_motivation",
)
FIRST_DATA_ROW = 2  # the header is row 1


def load_outcomes(path: str | Path, known_ids: Collection[str] | None = None, link: str = "session_id") -> pd.DataFrame:
    """Read and validate a student-outcomes file (schema in the module docstring).

    Args:
        path: ``.csv`` or ``.parquet`` file.
        known_ids: the valid values of the link column (e.g. the analysed session ids); None skips the check.
        link: the link column, ``"session_id"`` or ``"teacher_id"``.

    Returns:
        One row per student: the id columns as text, then ``pretest`` and the outcomes as float64, in
        file order, with a fresh index.

    Raises:
        TypeError: ``known_ids`` is a string or holds non-strings.
        ValueError: naming the row (header = row 1) and column: unknown ``link``, a missing required
            column, no outcome column, an empty or duplicate id, a non-numeric or infinite value, or a link
            id not in ``known_ids``.
    """
    if link not in LINK_COLUMNS:
        raise ValueError(f"link must be one of {list(LINK_COLUMNS)}, got {link!r}")
    if known_ids is not None and (isinstance(known_ids, str) or not all(isinstance(i, str) for i in known_ids)):
        raise TypeError(f"known_ids must be a collection of strings, got {known_ids!r}")
    frame = read_table(path, dtype=str)
    frame.index = pd.RangeIndex(FIRST_DATA_ROW, FIRST_DATA_ROW + len(frame), name="row")
    frame = frame[frame.notna().any(axis=1)]
    id_columns = [STUDENT_ID, *(c for c in LINK_COLUMNS if c in frame.columns)]
    value_columns = [c for c in frame.columns if c not in id_columns]
    _check_header(frame, link, value_columns, path)
    ids = pd.DataFrame({c: _ids(frame[c], path) for c in id_columns})
    _check_unique(ids[STUDENT_ID], path)
    if known_ids is not None:
        _check_known(ids[link], set(known_ids), path)
    values = pd.DataFrame({c: _numbers(frame[c], path) for c in value_columns})
    return pd.concat([ids, values], axis=1).reset_index(drop=True)


def _check_header(frame: pd.DataFrame, link: str, value_columns: list[str], path) -> None:
    missing = [c for c in (STUDENT_ID, link, PRETEST) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: row 1 (header) lacks required column(s) {missing}; found {list(frame.columns)}")
    if value_columns == [PRETEST]:
        raise ValueError(
            f"{path}: row 1 (header) has no outcome column besides {PRETEST!r}; expected e.g. {list(OUTCOMES)}"
        )


def _cell(path, row: int, column: str) -> str:
    return f"{path}: row {row}, column {column!r}"


def _ids(column: pd.Series, path) -> pd.Series:
    text = column.astype("string").str.strip()
    empty = text.fillna("") == ""
    if empty.any():
        raise ValueError(f"{_cell(path, empty.idxmax(), column.name)}: the id is empty")
    return text.astype(str)


def _check_unique(ids: pd.Series, path) -> None:
    repeated = ids[ids.duplicated(keep=False)]
    if not repeated.empty:
        value = repeated.iloc[0]
        rows = list(repeated.index[repeated == value])
        raise ValueError(f"{_cell(path, rows[1], ids.name)}: duplicate id {value!r} (first on row {rows[0]})")


def _check_known(ids: pd.Series, known: set[str], path) -> None:
    unknown = ~ids.isin(known)
    if unknown.any():
        row = unknown.idxmax()
        others = int(unknown.sum()) - 1
        more = f" ({others} more unknown)" if others else ""
        raise ValueError(f"{_cell(path, row, ids.name)}: {ids.loc[row]!r} is not a known {ids.name}{more}")


def _numbers(column: pd.Series, path) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype(float)
        bad = np.isinf(values)
    else:
        text = column.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").astype(float)
        bad = (text.notna() & values.isna()) | np.isinf(values)
    if bad.any():
        row = bad.idxmax()
        others = int(bad.sum()) - 1
        more = f" ({others} more in this column)" if others else ""
        raise ValueError(f"{_cell(path, row, column.name)}: {column.loc[row]!r} is not a finite number{more}")
    return values
