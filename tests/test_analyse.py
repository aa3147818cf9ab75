"""`lessonlens analyse` and `lessonlens ancova` end to end on a generated store and outcomes file."""

import json
import logging
import warnings
from io import StringIO

import numpy as np
import pandas as pd
import pytest

import flows.analyse
from flows.cli import main
from tasks.analyse.stats import SingleLevelWarning, ancova
from tests.test_marts import design, write_lesson_store

STUDENTS_PER_SESSION = 6
FACIAL_EFFECT = 5.0  # points added to classroom_performance in sessions with a positive facial group


def outcomes_frame(seed: int = 7) -> pd.DataFrame:
    """Students of the generated sessions: performance = 10 + 0.3 pretest + 5 (positive face) + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for spec in design():
        for k in range(STUDENTS_PER_SESSION):
            pretest = round(float(rng.normal(50, 5)), 2)
            positive = spec.happiness_share > 0.25
            rows.append(
                {
                    "student_id": f"{spec.session}-{k}",
                    "session_id": spec.session,
                    "teacher_id": spec.teacher,
                    "pretest": pretest,
                    "classroom_performance": round(10 + 0.3 * pretest + FACIAL_EFFECT * positive + rng.normal(), 3),
                    "learning_motivation": round(float(rng.normal(3, 1)), 3),
                }
            )
    return pd.DataFrame(rows)


def expected_groups() -> pd.DataFrame:
    """The generated sessions' groups at the default thresholds, from the design (not from the marts)."""
    return pd.DataFrame(
        {
            "session_id": [s.session for s in design()],
            "facial_group": ["positive" if s.happiness_share > 0.25 else "neutral" for s in design()],
            "body_group": ["expressive" if s.gestures_per_min >= 6 else "still" for s in design()],
        }
    )


@pytest.fixture
def study(tmp_path):
    store = write_lesson_store(tmp_path / "store")
    outcomes = tmp_path / "outcomes.csv"
    outcomes_frame().to_csv(outcomes, index=False)
    return store, outcomes


def test_analyse_writes_paper_tables_and_a_self_contained_report(study, tmp_path, capsys):
    store, outcomes = study
    report = tmp_path / "report"
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "Facial expression × Body expression" in printed and str(report / "report.html") in printed

    joined = outcomes_frame().merge(expected_groups(), on="session_id")
    tables = pd.read_csv(report / "ancova.csv")
    html = (report / "report.html").read_text()
    for dv in ("classroom_performance", "learning_motivation"):
        expected = ancova(joined, dv, ["facial_group", "body_group"], ["pretest"], 2).table
        written = tables[tables["outcome"] == dv].reset_index(drop=True)
        assert list(written["source"]) == list(expected["source"])
        for column in ("ss", "df", "ms", "F", "p", "np2"):
            np.testing.assert_allclose(written[column], expected[column], rtol=1e-9, equal_nan=True)
        assert f"<h2>{dv}</h2>" in html
        facial = expected.set_index("source").loc["facial_group"]
        assert f"<td>{facial['F']:.2f}</td>" in html and f"<td>{facial['ms']:.2f}</td>" in html
    facial = tables.set_index(["outcome", "source"]).loc[("classroom_performance", "facial_group")]
    assert facial["p"] < 1e-6 and facial["np2"] > 0.5  # the generated effect is found

    means = pd.read_csv(report / "adjusted_means.csv")
    assert {"outcome", "factor", "level", "mean", "se", "n"} <= set(means.columns)
    assert html.count('src="data:image/png;base64,') == 4  # 2 adjusted-means plots, timeline, AU heatmap
    assert "http://" not in html and "https://" not in html
    for heading in ("Groups", "Expression timeline", "AU heatmap"):
        assert f"<h2>{heading}</h2>" in html
    markdown = (report / "report.md").read_text()
    assert "| Facial expression | 1 |" in markdown
    assert (report / "adjusted_means_classroom-performance.png").read_bytes().startswith(b"\x89PNG")


def test_default_report_folder_is_under_the_store_and_teacher_link_works(study, capsys):
    store, outcomes = study
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--link", "teacher_id"]) == 0
    (report,) = (store.root / "reports").iterdir()
    units = pd.read_csv(report / "units.csv")
    assert list(units["teacher_id"]) == ["t1", "t2", "t3", "t4"]
    assert (report / "report.html").is_file()


def test_threshold_option_changes_the_groups(study, tmp_path):
    store, outcomes = study
    report = tmp_path / "report"
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--report", str(report)]
    with pytest.warns(SingleLevelWarning, match="body_group"):
        assert main([*args, "--threshold", "expressive_gesture_rate=20"]) == 0
    assert set(pd.read_csv(report / "units.csv")["body_group"]) == {"still"}
    assert main([*args, "--threshold", "nope=1"]) == 2


def test_unknown_session_in_outcomes_exits_2_naming_row_and_column(study, tmp_path, capsys):
    store, _ = study
    students = outcomes_frame()
    students.loc[3, "session_id"] = "s99"
    outcomes = tmp_path / "bad.csv"
    students.to_csv(outcomes, index=False)
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes)]) == 2
    error = capsys.readouterr().err
    assert "row 5" in error and "'session_id'" in error and "'s99'" in error
    assert not (store.root / "reports").exists()


def test_the_flow_publishes_the_tables_as_artifacts(study, tmp_path, monkeypatch):
    store, outcomes = study
    tables, markdowns = [], []
    monkeypatch.setattr(flows.analyse, "create_table_artifact", lambda **kw: tables.append(kw))
    monkeypatch.setattr(flows.analyse, "create_markdown_artifact", lambda **kw: markdowns.append(kw))
    monkeypatch.setattr(flows.analyse, "get_run_logger", lambda: logging.getLogger("test"))
    path = flows.analyse.analyse.fn(str(store.root), str(outcomes), str(tmp_path / "report"))
    assert path.endswith("report.html")
    assert [t["key"] for t in tables] == ["ancova-classroom-performance", "ancova-learning-motivation"]
    assert tables[0]["table"][1]["Effect"] == "Facial expression"
    assert markdowns[0]["key"] == "analysis-report" and "| Effect |" in markdowns[0]["markdown"]


def test_ancova_command_prints_the_table_in_every_format(tmp_path, capsys):
    data = outcomes_frame().merge(expected_groups(), on="session_id")
    path = tmp_path / "data.csv"
    data.to_csv(path, index=False)
    base = ["ancova", "--data", str(path), "--dv", "classroom_performance"]
    base += ["--between", "facial_group", "body_group", "--covariate", "pretest", "--ss-type", "3"]
    expected = ancova(data, "classroom_performance", ["facial_group", "body_group"], ["pretest"], 3)

    assert main([*base, "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["ss_type"] == 3 and parsed["n_used"] == len(data)
    assert [row["source"] for row in parsed["table"]] == list(expected.table["source"])
    assert parsed["table"][1]["F"] == pytest.approx(expected.table["F"][1], rel=1e-12)

    assert main([*base, "--format", "csv"]) == 0
    table = pd.read_csv(StringIO(capsys.readouterr().out))
    np.testing.assert_allclose(table["ss"], expected.table["ss"], rtol=1e-9)

    assert main(base) == 0
    out = capsys.readouterr().out
    assert "facial_group:body_group" in out and "adjusted means" in out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = ["ancova", "--data", str(path), "--dv", "student_id"]
        assert main([*args, "--between", "facial_group", "--covariate", "pretest"]) == 2
    assert "must be numeric" in capsys.readouterr().err


def test_reprocessing_redoes_the_latest_analysis_with_its_settings(study):
    from flows.reprocess import refresh_report

    store, outcomes = study
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--link", "teacher_id"]
    assert main(args) == 0
    (first,) = (store.root / "reports").iterdir()
    refreshed = refresh_report(store, logging.getLogger("test"))
    assert refreshed.parent != first and refreshed.is_file()
    assert json.loads((refreshed.parent / "analysis.json").read_text())["link"] == "teacher_id"
    pd.testing.assert_frame_equal(pd.read_csv(refreshed.parent / "ancova.csv"), pd.read_csv(first / "ancova.csv"))
    outcomes.unlink()
    assert refresh_report(store, logging.getLogger("test")) is None  # gone: nothing to redo, said in the log


def clustered_outcomes(session_sd: float, seed: int = 11) -> pd.DataFrame:
    """`outcomes_frame` plus a session random effect (sd ``session_sd``) in classroom_performance: students of
    a session share it, as students taught together do."""
    rng = np.random.default_rng(seed)
    students = outcomes_frame()
    shift = {s.session: rng.normal(0, session_sd) for s in design()}
    students["classroom_performance"] += students["session_id"].map(shift)
    return students


def test_analyse_states_the_design_and_flags_student_level_p_as_optimistic(study, tmp_path, capsys):
    """8 sessions × 6 students, factors set per session, outcomes sharing a session effect (sd 2 against a
    student sd of ~1.8 with the pretest): the design comes first, the unit-means ANCOVA is run (8 < 10
    sessions) and the report says to read it, flagging the student-level p-values as optimistic."""
    store, _ = study
    outcomes = tmp_path / "clustered.csv"
    students = clustered_outcomes(2.0)
    students.to_csv(outcomes, index=False)
    report = tmp_path / "report"
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--report", str(report)]
    assert main([*args, "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    design_ = parsed["design"]
    assert (design_["n_units"], design_["n_students"], design_["unit_level_method"]) == (8, 48, "unit-means ANCOVA")
    assert design_["students_per_unit"] == {"min": 6.0, "median": 6.0, "max": 6.0}
    assert [c["units"] for c in design_["cells"]] == [2, 2, 2, 2]
    assert design_["constant_within_units"] == ["facial_group", "body_group"]
    assert design_["read"].startswith("Read the ANCOVA of session means") and "optimistic" in design_["read"]
    performance = parsed["outcomes"]["classroom_performance"]
    assert performance["unit_level"]["optimistic_student_level_p"] is True
    assert performance["unit_level"]["residual_icc"]["design_effect"] > 1.1  # 0.24 residual ICC, 8 sessions
    # the unit-level analysis is the ANCOVA of the session means with the mean pretest as covariate
    means = students.merge(expected_groups(), on="session_id").groupby("session_id").agg(
        classroom_performance=("classroom_performance", "mean"), pretest=("pretest", "mean"),
        facial_group=("facial_group", "first"), body_group=("body_group", "first"),
    )  # fmt: skip
    expected = ancova(means, "classroom_performance", ["facial_group", "body_group"], ["pretest"], 2).table
    unit_table = pd.DataFrame(performance["unit_level"]["table"])
    np.testing.assert_allclose(unit_table["F"].astype(float), expected["F"], rtol=1e-9, equal_nan=True)
    student_p = {r["source"]: r["p"] for r in performance["student_level_ancova (paper 1)"]["table"]}
    unit_p = dict(zip(unit_table["source"], unit_table["p"], strict=True))
    assert student_p["facial_group"] < unit_p["facial_group"]  # 43 residual df against 3

    markdown = (report / "report.md").read_text()
    assert markdown.index("## Design") < markdown.index("## classroom_performance")
    assert "the student-level p-values above are optimistic" in markdown
    assert "Paper 1's analysis: student-level ANCOVA" in markdown
    assert (report / "unit_level.csv").is_file() and json.loads((report / "design.json").read_text())["n_units"] == 8


def test_without_clustering_the_student_level_p_is_not_flagged(study, tmp_path, capsys):
    store, outcomes = study  # outcomes_frame: no session effect beyond the facial groups
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["outcomes"]["classroom_performance"]["unit_level"]["optimistic_student_level_p"] is False


def test_a_factor_missing_for_most_units_is_named_with_units_and_reason(tmp_path, capsys):
    """Sessions s02..s08 have no body keypoints (body_rows = 0): auto leaves body_group out and says so; asking
    for it fails with exit 2 naming the column, the sessions and the reason; never a silent one-unit analysis."""
    store = write_lesson_store(tmp_path / "store")
    videos = store.read_catalog("videos")
    no_body = videos["video_id"].isin([f"v{i:02d}" for i in range(1, 8)])
    videos["body_rows"] = np.where(no_body, 0, 61)
    store.write_catalog("videos", videos)
    for i in range(1, 8):
        store.partition("body", f"v{i:02d}").unlink()
    outcomes = tmp_path / "outcomes.csv"
    outcomes_frame().to_csv(outcomes, index=False)
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes)]

    assert main([*args, "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["design"]["factors"] == ["facial_group"] and parsed["design"]["n_units"] == 8
    (note,) = [n for n in parsed["design"]["notes"] if n.startswith("body_group left out")]
    assert "no upper body visible: body_rows = 0" in note and "s02, s03, s04 .. s07, s08 (7 units)" in note
    assert [r["source"] for r in parsed["outcomes"]["learning_motivation"]["unit_level"]["table"]][:2] == [
        "pretest", "facial_group"
    ]  # fmt: skip

    for factors in ("both", "body"):
        assert main([*args, "--factors", factors]) == 2
        error = capsys.readouterr().err
        assert "body_group is missing for 7 of 8 sessions" in error and "body_rows = 0" in error and "s08" in error


def test_a_unit_without_a_factor_is_left_out_by_name(tmp_path, capsys):
    store = write_lesson_store(tmp_path / "store")
    videos = store.read_catalog("videos")
    videos["body_rows"] = np.where(videos["video_id"] == "v03", 0, 61)
    store.write_catalog("videos", videos)
    store.partition("body", "v03").unlink()
    outcomes = tmp_path / "outcomes.csv"
    outcomes_frame().to_csv(outcomes, index=False)
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["design"]["n_units"] == 7 and parsed["design"]["factors"] == ["facial_group", "body_group"]
    assert any("body_group is missing" in n and "in sessions s04" in n for n in parsed["design"]["notes"])


def test_listwise_deletion_error_names_the_missing_columns():
    data = pd.DataFrame({"y": [1.0, 2.0], "g": ["a", "b"], "pretest": [np.nan, np.nan]})
    with pytest.raises(ValueError, match=r"'pretest' missing in 2 of 2 rows"):
        ancova(data, "y", "g", "pretest")


def test_units_measured_by_different_body_measures_are_named(study, tmp_path, capsys):
    from tests.test_marts import write_gesture_predictions

    store, outcomes = study
    write_gesture_predictions(store, "v00", 0.5)  # session s01 only: the gesture model
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--format", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["design"]["notes"]
    (note,) = [n for n in notes if n.startswith("body_group is measured differently")]
    assert "gesture model teacher_gesture v0001 in sessions s01" in note
    assert "wrist-speed rule in sessions s02, s03, s04 .. s07, s08 (7 units)" in note


@pytest.mark.parametrize("column", ["facial_group", "happiness_share"])
def test_an_outcome_named_like_a_store_measure_is_refused(study, tmp_path, capsys, column):
    store, _ = study
    outcomes = tmp_path / "named.csv"
    outcomes_frame().assign(**{column: 1.0}).to_csv(outcomes, index=False)
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes)]) == 2
    error = capsys.readouterr().err
    assert "named.csv: row 1 (header)" in error and f"['{column}']" in error and "rename them" in error


def test_each_outcome_gets_the_mixed_model_only_when_it_is_measured_in_enough_units():
    """12 sessions: performance measured in all of them, motivation in 4 only (one per cell and a spare):
    a mixed model on 4 units cannot separate the session variance, so motivation gets the ANCOVA of means."""
    from tasks.analyse.analysis import describe_design, run_unit_analyses

    rng = np.random.default_rng(5)
    rows = []
    for unit in range(12):
        shift = rng.normal(0, 1)
        for k in range(6):
            pretest = rng.normal(50, 5)
            rows.append({"student_id": f"{unit}-{k}", "session_id": f"s{unit:02d}", "pretest": pretest,
                         "facial_group": ["neutral", "positive"][unit % 2],
                         "performance": 0.3 * pretest + 2 * (unit % 2) + shift + rng.normal(),
                         "motivation": rng.normal(3, 1) if unit < 4 else np.nan})  # fmt: skip
    students = pd.DataFrame(rows)
    design_ = describe_design(students, "session_id", ("facial_group",), ["performance", "motivation"], [])
    assert design_.method == "mixed model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence notes
        unit = run_unit_analyses(students, ["performance", "motivation"], design_)
    assert (unit["performance"].method, unit["motivation"].method) == ("mixed model", "unit-means ANCOVA")


def test_one_unit_per_cell_is_never_read_as_close_to_the_unit_level_result():
    from tasks.analyse.analysis import describe_design

    students = pd.DataFrame({"student_id": [str(k) for k in range(8)], "session_id": ["s1"] * 4 + ["s2"] * 4,
                             "facial_group": ["neutral"] * 4 + ["positive"] * 4, "pretest": np.arange(8.0),
                             "y": [1.0, 2, 3, 4, 6, 7, 8, 9]})  # fmt: skip
    read = describe_design(students, "session_id", ("facial_group",), ["y"], []).read
    assert "residual ICCs not estimable" in read and "close to it" not in read
    assert "cannot be checked against it here" in read
