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
    # 2 adjusted-means plots, timeline, AU heatmap; no Q-Q plot: 4 teachers in 4 cells leave no residual
    assert html.count('src="data:image/png;base64,') == 4 and "Q-Q plot" not in html
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


def test_ancova_command_with_clusters_reads_the_design_aware_analysis(tmp_path, capsys):
    """12 teachers x 2 sessions x 8 students, both factors set per teacher, sessions labelled 1 and 2 within
    every teacher, two outcomes in one call: --cluster teacher_id session_id finds the teacher as the unit
    (the session labels repeat across teachers: keyed by their teacher) and the ANCOVA of the 12 teacher
    means is read: 12 - 5 = 7 residual df, not the 192 students'; the clustering comes from the mixed model."""
    rng = np.random.default_rng(8)
    rows = []
    for t in range(12):
        teacher_effect = rng.normal(0, 0.6)
        for session in ("1", "2"):
            session_effect = rng.normal(0, 0.4)
            for _ in range(8):
                pretest = rng.normal(0, 1)
                rows.append({"teacher_id": f"t{t:02d}", "session_id": session, "pretest": pretest,
                             "facial": "pn"[t % 2], "body": "es"[(t // 2) % 2],
                             "y1": 0.5 * pretest + teacher_effect + session_effect + rng.normal(),
                             "y2": rng.normal()})  # fmt: skip
    path = tmp_path / "nested.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    args = ["ancova", "--data", str(path), "--dv", "y1", "y2", "--between", "facial", "body", "--covariate", "pretest"]
    assert main([*args, "--cluster", "teacher_id", "session_id", "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["design"]["unit"] == "teacher_id" and parsed["design"]["units_per_level"]["session_id"] == 24
    assert list(parsed["outcomes"]) == ["y1", "y2"]
    holm = []
    for dv in ("y1", "y2"):
        read, student = parsed["outcomes"][dv]["read"], parsed["outcomes"][dv]["student_level"]
        assert read["method"] == "unit-means ANCOVA" and read["unit"] == "teacher_id" and read["n_units"] == 12
        rows_ = {r["source"]: r for r in read["table"]}
        assert list(rows_) == ["pretest", "facial", "body", "facial:body"]
        facial = rows_["facial"]
        assert {"df", "df_den", "F", "p", "p_holm", "eta_p2", "eta_p2_low", "eta_p2_high"} <= set(facial)
        assert facial["df_den"] == 7 and read["sentence"].startswith(f"Read the ANCOVA of teacher means for {dv}")
        assert (read["clustering"]["icc"] > 0.1) if dv == "y1" else (read["clustering"]["icc"] < 0.05)
        assert facial["eta_p2_low"] <= facial["eta_p2"] <= facial["eta_p2_high"]
        assert facial["difference_low"] < facial["difference"] < facial["difference_high"]
        assert student["n_used"] == 192 and [r["source"] for r in student["table"]][-1] == "Residual"
        holm += [(r["p"], r["p_holm"]) for s, r in rows_.items() if s != "pretest"]
        assert rows_["pretest"]["p_holm"] is None  # covariates are not among the hypotheses
    ordered = sorted(holm)
    assert ordered[0][1] == pytest.approx(min(1, 6 * ordered[0][0]))  # Holm over 2 outcomes x 3 factor terms
    assert all(h >= p for p, h in holm)

    pd.DataFrame(rows).assign(session_id=lambda f: f["teacher_id"] + "-" + f["session_id"]).to_csv(path, index=False)
    assert main([*args, "--cluster", "session_id", "teacher_id"]) == 2  # the inner level listed first
    assert "cluster 'session_id' (24 ids) lies within 'teacher_id' (12 ids)" in capsys.readouterr().err


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


def test_analyse_finds_sessions_nested_in_teachers_and_analyses_teachers(study, tmp_path, capsys):
    """The generated store: 8 sessions, 2 per teacher, both factors set per teacher (the manifest links each
    session to its teacher). Detected: students in sessions in teachers; the teacher is the unit; 4 teachers
    in 4 cells leave no df, so nothing is tested and each outcome's sentence says so (the student-level ANCOVA
    finds p < 1e-6 for the facial group: 43 residual df that are not replications of it)."""
    store, outcomes = study
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--report", str(tmp_path / "r")]
    assert main([*args, "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    design_ = parsed["design"]
    assert design_["levels"][:2] == ["session_id", "teacher_id"] and design_["unit"] == "teacher_id"
    assert design_["detected_unit"] == "teacher_id" and design_["n_units"] == 4
    assert design_["constant_within"]["teacher_id"] == ["facial_group", "body_group"]
    assert any(n.startswith("sessions (8) lie within teachers") for n in design_["notes"])
    for dv, outcome in parsed["outcomes"].items():
        read = outcome["read"]
        assert read["sentence"].startswith(f"Nothing about facial_group, body_group can be tested for {dv}")
        assert read["unit"] == "teacher_id" and read["n_units"] == 4
        assert all(row["p"] is None for row in read["table"])
    student = parsed["outcomes"]["classroom_performance"]["student_level"]["table"]
    assert next(r["p"] for r in student if r["source"] == "facial_group") < 1e-6


def test_link_overrides_the_detected_unit_and_flags_student_level_p_as_optimistic(study, tmp_path, capsys):
    """8 sessions × 6 students with a shared session effect (sd 2 against a student sd of ~1.8 with the
    pretest), analysed per session because --link says so: the design says it overrides the detected teacher
    unit, the ANCOVA of session means is read (8 < 10 sessions) and the student-level p-values are flagged."""
    store, _ = study
    outcomes = tmp_path / "clustered.csv"
    students = clustered_outcomes(2.0)
    students.to_csv(outcomes, index=False)
    report = tmp_path / "report"
    args = ["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--report", str(report)]
    assert main([*args, "--link", "session_id", "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    design_ = parsed["design"]
    assert (design_["unit"], design_["detected_unit"], design_["n_units"]) == ("session_id", "teacher_id", 8)
    assert design_["notes"][0].startswith("the unit session_id is set by --link and overrides the detected unit")
    assert design_["students_per_unit"] == {"min": 6.0, "median": 6.0, "max": 6.0}
    assert [c["units"] for c in design_["cells"]] == [2, 2, 2, 2]
    read = parsed["outcomes"]["classroom_performance"]["read"]
    assert read["method"] == "unit-means ANCOVA" and "--link makes the 8 sessions the replications" in read["sentence"]
    assert read["clustering"]["optimistic"] is True and read["clustering"]["design_effect"] > 1.1
    # the analysis to read is the ANCOVA of the session means with the mean pretest as covariate
    means = students.merge(expected_groups(), on="session_id").groupby("session_id").agg(
        classroom_performance=("classroom_performance", "mean"), pretest=("pretest", "mean"),
        facial_group=("facial_group", "first"), body_group=("body_group", "first"),
    )  # fmt: skip
    expected = ancova(means, "classroom_performance", ["facial_group", "body_group"], ["pretest"], 2).table
    table = pd.DataFrame(read["table"])
    np.testing.assert_allclose(table["F"].astype(float), expected["F"][:4], rtol=1e-9)
    assert (table["df_den"] == 3).all()
    # its adjusted means and intervals come from that model: mean ± t(0.975, 3) se, se from the unit-level fit
    expected_means = ancova(means, "classroom_performance", ["facial_group", "body_group"], ["pretest"]).adjusted_means
    ci = pd.DataFrame(read["adjusted_means"])
    np.testing.assert_allclose(ci["se"], expected_means["se"], rtol=1e-9)
    np.testing.assert_allclose(ci["ci_high"] - ci["mean"], 3.182446305284263 * ci["se"], rtol=1e-9)
    student_p = {r["source"]: r["p"] for r in parsed["outcomes"]["classroom_performance"]["student_level"]["table"]}
    assert student_p["facial_group"] < table.set_index("source").loc["facial_group", "p"]  # 43 residual df against 3

    markdown = (report / "report.md").read_text()
    assert markdown.index("## Design") < markdown.index("## classroom_performance")
    assert "paper 1's student-level p-values below are optimistic" in markdown
    assert "Paper 1's analysis: student-level ANCOVA" in markdown and "![Q-Q plot of classroom_performance]" in markdown
    assert "adjusted mean" in markdown and "Holm p" in markdown
    assert (report / "read.csv").is_file() and json.loads((report / "design.json").read_text())["n_units"] == 8


def test_without_clustering_the_student_level_p_is_not_flagged(study, tmp_path, capsys):
    store, outcomes = study  # outcomes_frame: no session effect beyond the facial groups
    assert main(["analyse", "--store", str(store.root), "--outcomes", str(outcomes), "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["outcomes"]["classroom_performance"]["read"]["clustering"]["optimistic"] is False


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
    assert parsed["design"]["factors"] == ["facial_group"] and parsed["design"]["n_units"] == 4  # teachers
    (note,) = [n for n in parsed["design"]["notes"] if n.startswith("body_group left out")]
    assert "no upper body visible: body_rows = 0" in note and "s02, s03, s04 .. s07, s08 (7 units)" in note
    assert [r["source"] for r in parsed["outcomes"]["learning_motivation"]["read"]["table"]][:2] == [
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
    assert parsed["design"]["n_units"] == 4 and parsed["design"]["factors"] == ["facial_group", "body_group"]
    assert parsed["design"]["students_per_unit"]["min"] == 6  # teacher t2 keeps session s03 only
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


def test_each_outcome_gets_its_own_sentence_and_intervals_from_the_model_it_reads():
    """12 sessions: performance measured in all of them, motivation in 4 only (one per cell and a spare): each
    outcome's sentence counts its own sessions; the adjusted means and intervals are the session-means
    ANCOVA's (residual df 12 - 3), not the student-level ANCOVA's (72 - 3)."""
    from tasks.analyse.nesting import detect_levels
    from tasks.analyse.reading import analyse_outcome

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
    levels = detect_levels(students, ["facial_group"], ["session_id"])
    performance, motivation = (
        analyse_outcome(students, dv, ["facial_group"], ["pretest"], levels) for dv in ("performance", "motivation")
    )
    assert performance.sentence.startswith("Read the ANCOVA of session means for performance") and "12 sessions" in (
        performance.sentence
    )
    assert motivation.sentence.startswith("Read the ANCOVA of session means for motivation") and "4 sessions" in (
        motivation.sentence
    )
    row = performance.means.set_index("level").loc["positive"]
    student_se = performance.student_level.adjusted_means.set_index("level").loc["positive", "se"]
    assert row["se"] > 1.5 * student_se and row["df"] == 9 and row["n"] == 6
    assert row["ci_high"] - row["mean"] == pytest.approx(2.2621571627409915 * row["se"], rel=1e-9)  # t(0.975, 9)
    assert performance.clustering["icc"] > 0.2  # the session shift (sd 1) against a student sd of 1


def test_one_unit_per_cell_is_never_read_as_a_result():
    from tasks.analyse.nesting import detect_levels
    from tasks.analyse.reading import analyse_outcome

    students = pd.DataFrame({"student_id": [str(k) for k in range(8)], "session_id": ["s1"] * 4 + ["s2"] * 4,
                             "facial_group": ["neutral"] * 4 + ["positive"] * 4, "pretest": np.arange(8.0),
                             "y": [1.0, 2, 3, 4, 6, 7, 8, 9]})  # fmt: skip
    levels = detect_levels(students, ["facial_group"], ["session_id"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no residual df at the unit level: warned and NaN by design
        analysis = analyse_outcome(students, "y", ["facial_group"], ["pretest"], levels)
    assert analysis.sentence.startswith("Nothing about facial_group can be tested for y")
    assert analysis.table["p"].isna().all()
