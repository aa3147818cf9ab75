"""tasks.analyse.outcomes.load_outcomes: schema validation, with row (header = row 1) and column in every error."""

import numpy as np
import pandas as pd
import pytest

from tasks.analyse.outcomes import load_outcomes

HEADER = "student_id,session_id,pretest,positive_emotion,learning_motivation"
GOOD = [
    "007,S1,3.5,4,2.5",  # row 2
    "s2,S2,,5,3",  # row 3
    "s3,S1,2,3,1",  # row 4
]


def _csv(tmp_path, lines: list[str], header: str = HEADER):
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_loads_valid_csv_with_text_ids_and_missing_values(tmp_path):
    frame = load_outcomes(_csv(tmp_path, GOOD), known_ids={"S1", "S2"})
    assert list(frame.columns) == HEADER.split(",")
    assert frame["student_id"].tolist() == ["007", "s2", "s3"]
    assert frame["pretest"].dtype == np.float64
    assert np.isnan(frame.loc[1, "pretest"])
    assert frame["learning_motivation"].tolist() == [2.5, 3.0, 1.0]


def test_extra_numeric_column_is_an_outcome_and_teacher_link_works(tmp_path):
    path = _csv(tmp_path, ["a,T1,1,2", "b,T2,3,4"], header="student_id,teacher_id,pretest,attention")
    frame = load_outcomes(path, known_ids={"T1", "T2"}, link="teacher_id")
    assert frame["attention"].tolist() == [2.0, 4.0]
    assert frame["teacher_id"].tolist() == ["T1", "T2"]


def test_loads_parquet(tmp_path):
    path = tmp_path / "outcomes.parquet"
    pd.DataFrame({"student_id": [11, 12], "session_id": ["S1", "S1"], "pretest": [1.0, 2.0], "x": [3, 4]}).to_parquet(
        path
    )
    frame = load_outcomes(path, known_ids={"S1"})
    assert frame["student_id"].tolist() == ["11", "12"]
    assert frame["x"].tolist() == [3.0, 4.0]


def test_missing_required_column_names_header_row_and_column(tmp_path):
    path = _csv(tmp_path, ["a,S1,4"], header="student_id,session_id,positive_emotion")
    with pytest.raises(ValueError, match=r"row 1 \(header\) lacks required column\(s\) \['pretest'\]"):
        load_outcomes(path)


def test_missing_link_column_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"row 1 \(header\) lacks required column\(s\) \['teacher_id'\]"):
        load_outcomes(_csv(tmp_path, GOOD), link="teacher_id")


def test_no_outcome_column(tmp_path):
    path = _csv(tmp_path, ["a,S1,4"], header="student_id,session_id,pretest")
    with pytest.raises(ValueError, match=r"row 1 \(header\) has no outcome column besides 'pretest'"):
        load_outcomes(path)


def test_duplicate_student_id_names_both_rows(tmp_path):
    path = _csv(tmp_path, [*GOOD, "s2,S1,1,1,1"])
    with pytest.raises(ValueError, match=r"row 5, column 'student_id': duplicate id 's2' \(first on row 3\)"):
        load_outcomes(path)


def test_non_numeric_value_names_row_and_column(tmp_path):
    path = _csv(tmp_path, [*GOOD[:2], "s3,S1,2,high,1"])
    with pytest.raises(ValueError, match=r"row 4, column 'positive_emotion': 'high' is not a finite number"):
        load_outcomes(path)


def test_row_numbers_count_blank_lines(tmp_path):
    path = _csv(tmp_path, [GOOD[0], "", "s3,S1,2.5.1,3,1"])
    with pytest.raises(ValueError, match=r"row 4, column 'pretest': '2.5.1' is not a finite number"):
        load_outcomes(path)


def test_infinite_value_is_rejected(tmp_path):
    path = _csv(tmp_path, [*GOOD[:2], "s3,S1,inf,3,1"])
    with pytest.raises(ValueError, match=r"row 4, column 'pretest': 'inf' is not a finite number"):
        load_outcomes(path)


def test_non_numeric_parquet_value_names_row_and_column(tmp_path):
    path = tmp_path / "outcomes.parquet"
    frame = pd.DataFrame({"student_id": ["a", "b"], "session_id": ["S1", "S1"], "pretest": ["1", "n/a?"], "x": [1, 2]})
    frame.to_parquet(path)
    with pytest.raises(ValueError, match=r"row 3, column 'pretest': 'n/a\?' is not a finite number"):
        load_outcomes(path)


def test_empty_id_names_row_and_column(tmp_path):
    path = _csv(tmp_path, [GOOD[0], "s2,,1,1,1"])
    with pytest.raises(ValueError, match=r"row 3, column 'session_id': the id is empty"):
        load_outcomes(path)


def test_unknown_link_id_names_row_and_value(tmp_path):
    path = _csv(tmp_path, [*GOOD, "s4,S9,1,1,1", "s5,S8,1,1,1"])
    with pytest.raises(ValueError, match=r"row 5, column 'session_id': 'S9' is not a known session_id \(1 more"):
        load_outcomes(path, known_ids={"S1", "S2"})


def test_bad_arguments(tmp_path):
    path = _csv(tmp_path, GOOD)
    with pytest.raises(ValueError, match="link must be one of"):
        load_outcomes(path, link="class_id")
    with pytest.raises(TypeError, match="known_ids must be a collection of strings"):
        load_outcomes(path, known_ids="S1")
    with pytest.raises(FileNotFoundError):
        load_outcomes(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("header", "lines", "message"),
    [
        (",student_id,session_id,pretest,x", ["0,a,S1,1,2"], r"row 1 \(header\): column 1 has no name"),
        ("student_id,session_id,pretest,x,x", ["a,S1,1,2,3"], r"row 1 \(header\): column 5 repeats the name 'x'"),
        (HEADER, [GOOD[0], "s2,S2,1,5"], r"row 3: 4 fields, the header has 5"),
    ],
)
def test_what_pandas_would_mend_silently_is_an_error(tmp_path, header, lines, message):
    """A blank first header (a file written with its row index), a repeated column, a row short of a field:
    read as-is they would become an outcome 'Unnamed: 0', an outcome 'x.1', a missing value."""
    with pytest.raises(ValueError, match=message):
        load_outcomes(_csv(tmp_path, lines, header=header))
