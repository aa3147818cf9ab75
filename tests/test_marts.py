"""The marts over a generated store: grains, thresholds, model choice, gestures.

`write_lesson_store` writes a small store straight with pyarrow (no video, no models): 8 teacher
sessions in a 2 × 2 design (facial: happiness share 0.5 or 0.1; body: 12 or 3 gestures per minute), 4
teachers with 2 sessions each, plus one students' video that the analysis marts leave out. The other
test modules import it from here.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.layout import KEYPOINT_NAMES
from tasks.analyse import analysis, warehouse
from tasks.extract.action_units import AU_NAMES
from tasks.store import BODY_SCHEMA, FRAME_SCHEMA, Store, table_from_columns, write_table_atomic

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
LEARNER_STATES = ("boredom", "engagement", "confusion", "frustration")
SECONDS = 60  # length of every generated video
WINDOW_S = 2.0  # emotion window length
SHOULDER_PX = 100.0  # shoulder width of the generated person, pixels
STEP_PX = 80.0  # wrist displacement of a gesture step: 0.8 shoulder widths in 1 s


@dataclass(frozen=True)
class SessionSpec:
    """One generated teacher video: its session, teacher and what its predictions and body show."""

    session: str
    teacher: str
    happiness_share: float
    gestures_per_min: int


def design() -> list[SessionSpec]:
    """8 sessions, 2 per cell of facial (0.5 / 0.1 happiness) × body (12 / 3 gestures per minute)."""
    cells = [(0.5, 12), (0.5, 3), (0.1, 12), (0.1, 3)]
    return [
        SessionSpec(f"s{2 * c + k + 1:02d}", f"t{c + 1}", share, rate)
        for c, (share, rate) in enumerate(cells)
        for k in range(2)
    ]


def write_lesson_store(root: Path, specs: list[SessionSpec] | None = None) -> Store:
    """A store with videos, frames, body and predictions for ``specs`` (default `design`), plus a
    students' video."""
    specs = design() if specs is None else specs
    store = Store(root).ensure()
    rows = []
    for index, spec in enumerate(specs):
        video_id = f"v{index:02d}"
        rows.append(_video_row(video_id, spec.session, spec.teacher, "teacher"))
        _write_video_tables(store, video_id, spec.happiness_share, spec.gestures_per_min, seed=index)
    rows.append(_video_row("vstudents", specs[0].session, specs[0].teacher, "students"))
    _write_video_tables(store, "vstudents", 0.9, 30, seed=99)
    store.write_catalog("videos", pd.DataFrame(rows))
    return store


def _video_row(video_id: str, session: str, teacher: str, role: str) -> dict:
    return {
        "video_id": video_id,
        "path": f"{session}/{video_id}.mp4",
        "duration_s": float(SECONDS),
        "fps": 25.0,
        "n_frames": SECONDS * 25,
        "sampled_frames": SECONDS * 5,
        "frames_with_face": SECONDS * 4,
        "status": "ok",
        "course": "c1",
        "session": session,
        "teacher": teacher,
        "role": role,
        "lesson_type": "lecture",
    }


def _write_video_tables(store: Store, video_id: str, happiness: float, gestures_per_min: int, seed: int):
    rng = np.random.default_rng(seed)
    write_table_atomic(_frames(rng), store.partition("frames", video_id))
    write_table_atomic(_body(gestures_per_min), store.partition("body", video_id))
    predictions = store.root / "predictions"
    trained = _windows(EMOTIONS, happiness, "teacher-expression", rng)
    baseline = _windows(EMOTIONS, 1.0, "au-rules (rule baseline)", rng)
    learner = _windows(LEARNER_STATES, 0.0, "learner-state", rng)
    for task, version, table in (
        ("emotion", "2", trained),
        ("emotion", "rules-1", baseline),
        ("learner_state", "1", learner),
    ):
        path = predictions / f"task={task}" / f"model_version={version}" / f"video_id={video_id}"
        write_table_atomic(table, path / "part-0.parquet")


def _frames(rng: np.random.Generator) -> pa.Table:
    """Face 0 in every sampled frame (5 fps), face 1 in the first quarter: face 0 is the primary face."""
    times = np.arange(SECONDS * 5) / 5.0
    face_ids = np.r_[np.zeros(len(times)), np.ones(len(times) // 4)].astype(np.int32)
    stamps = np.r_[times, times[: len(times) // 4]]
    n = len(stamps)
    columns: dict[str, np.ndarray] = {
        field.name: np.zeros(n, dtype=field.type.to_pandas_dtype()) for field in FRAME_SCHEMA
    }
    columns.update(frame=np.round(stamps * 25).astype(np.int32), timestamp=stamps, face_id=face_ids)
    columns.update(confidence=np.full(n, 0.9, np.float32), success=np.ones(n, bool))
    for k, au in enumerate(AU_NAMES):
        columns[f"{au}_r"] = (k / 4 + rng.uniform(0, 0.5, n)).astype(np.float32)
    return table_from_columns(columns, FRAME_SCHEMA)


def _body(gestures_per_min: int) -> pa.Table:
    """One person at 1 fps; both wrists step by `STEP_PX` (moving) at ``gestures_per_min`` evenly spaced
    samples."""
    n = SECONDS + 1
    columns = {field.name: np.full(n, 0.9, np.float32) for field in BODY_SCHEMA}
    columns.update(frame=np.arange(n, dtype=np.int32) * 25, timestamp=np.arange(n, dtype=float))
    columns["person_id"] = np.zeros(n, np.int32)
    for name in KEYPOINT_NAMES:
        columns[f"{name}_x"] = np.full(n, 300.0, np.float32)
        columns[f"{name}_y"] = np.full(n, 200.0, np.float32)
    columns["left_shoulder_x"] = np.full(n, 300.0 - SHOULDER_PX / 2, np.float32)
    columns["right_shoulder_x"] = np.full(n, 300.0 + SHOULDER_PX / 2, np.float32)
    moving = np.zeros(n, bool)
    moving[np.arange(gestures_per_min) * (SECONDS // gestures_per_min) + 1] = True  # one-sample gestures
    for side in ("left", "right"):
        columns[f"{side}_wrist_y"] = (300.0 + STEP_PX * np.cumsum(moving)).astype(np.float32)
    return table_from_columns(columns, BODY_SCHEMA)


def _windows(classes: tuple[str, ...], first_share: float, model_name: str, rng) -> pa.Table:
    """2-s windows of faces 0 and 1. Face 0: the first ``first_share`` of its windows labelled happiness
    (classes[0] for learner states), the others the last class (neutral); face 1: all classes[0]."""
    n = int(SECONDS / WINDOW_S)
    happy = "happiness" if "happiness" in classes else classes[0]
    labels = [happy if w < round(first_share * n) else classes[-1] for w in range(n)] + [classes[0]] * n
    probs = rng.dirichlet(np.ones(len(classes)), size=2 * n).astype(np.float32)
    starts = np.tile(np.arange(n) * WINDOW_S, 2)
    table = {
        "face_id": pa.array(np.repeat([0, 1], n), pa.int32()),
        "window_index": pa.array(np.tile(np.arange(n), 2), pa.int32()),
        "start_time": pa.array(starts, pa.float64()),
        "end_time": pa.array(starts + WINDOW_S, pa.float64()),
        "n_frames": pa.array(np.full(2 * n, 10), pa.int32()),
        "n_owned": pa.array(np.full(2 * n, 10), pa.int32()),  # face 0: each 5-fps sample in one window
        "model_name": pa.array([model_name] * (2 * n), pa.string()),
        "label": pa.array(labels, pa.string()),
        "confidence": pa.array(probs.max(axis=1), pa.float32()),
    }
    table.update({f"p_{c}": pa.array(probs[:, k], pa.float32()) for k, c in enumerate(classes)})
    return pa.table(table)


@pytest.fixture
def lesson_store(tmp_path) -> Store:
    return write_lesson_store(tmp_path / "store")


def test_every_mart_file_states_grain_keys_and_depends_and_is_ordered():
    order = [m.name for m in warehouse.mart_files()]
    assert set(order) >= {"expression_windows", "video_summary", "teacher_summary", "session_analysis"}
    for position, mart in enumerate(warehouse.mart_files()):
        assert mart.grain.startswith("one row per"), mart.path
        assert all(dep in warehouse.STAGING_VIEWS or order.index(dep) < position for dep in mart.depends)
        text = mart.path.read_text()
        assert text.rstrip().endswith("select * from final"), mart.path
        assert _views_read(text) == set(mart.depends), mart.name


def _views_read(text: str) -> set[str]:
    """Names after ``from`` / ``join`` outside comments that are not CTEs of the file."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    ctes = set(re.findall(r"^([a-z_]+) as (?:materialized )?\($", code, flags=re.MULTILINE))
    return set(re.findall(r"\b(?:from|join)\s+([a-z_]+)\b", code)) - ctes


GESTURE_WINDOW = 5  # body samples (1 fps) per generated gesture window, windows back to back


def write_gesture_predictions(store: Store, video_id: str, expressive_share: float, version: str = "v0001") -> None:
    """Gesture predictions of person 0 by ``teacher_gesture <version>``: windows of `GESTURE_WINDOW` body samples
    ([0, 4] s, [5, 9] s, ... up to 59 s), the first ``expressive_share`` of them labelled 'beat', the others 'rest';
    the body sample at 60 s is in no window. So the expressive share of the covered samples is that fraction."""
    n = SECONDS // GESTURE_WINDOW
    starts = np.arange(n) * GESTURE_WINDOW
    labels = ["beat" if w < round(expressive_share * n) else "rest" for w in range(n)]
    classes = ("deictic", "iconic", "metaphoric", "beat", "writing", "rest")
    probs = np.full((n, len(classes)), 0.1, np.float32)
    for w, label in enumerate(labels):
        probs[w, classes.index(label)] = 0.5
    table = {
        "face_id": pa.array(np.zeros(n), pa.int32()),
        "window_index": pa.array(np.arange(n), pa.int32()),
        "start_time": pa.array(starts.astype(float), pa.float64()),
        "end_time": pa.array((starts + GESTURE_WINDOW - 1).astype(float), pa.float64()),
        "n_frames": pa.array(np.full(n, GESTURE_WINDOW), pa.int32()),
        "model_name": pa.array([f"teacher_gesture {version}"] * n, pa.string()),
        "label": pa.array(labels, pa.string()),
        "confidence": pa.array(np.full(n, 0.5), pa.float32()),
        **{f"p_{c}": pa.array(probs[:, k], pa.float32()) for k, c in enumerate(classes)},
    }
    write_table_atomic(pa.table(table), store.prediction_path("gesture", version, video_id))


def test_every_mart_has_unique_keys_on_a_generated_store(lesson_store):
    for index in range(len(design())):
        write_gesture_predictions(lesson_store, f"v{index:02d}", 0.5)
    con = warehouse.connect(lesson_store)
    for mart in warehouse.mart_files():
        keys = ", ".join(f'"{k}"' for k in mart.keys)
        any_null = " or ".join(f'"{k}" is null' for k in mart.keys)
        rows, distinct, null_keys = con.execute(
            f"select count(*), count(distinct ({keys})), count(*) filter (where {any_null}) from {mart.name}"
        ).fetchone()
        assert rows > 0, f"{mart.name} is empty"
        assert distinct == rows, f"{mart.name}: keys ({keys}) are not unique"
        assert null_keys == 0, f"{mart.name}: null keys"


def test_expression_windows_use_the_trained_model_and_the_video_metadata(lesson_store):
    con = warehouse.connect(lesson_store)
    models = con.execute("select distinct model_name, model_version from expression_windows").fetchall()
    assert models == [("teacher-expression", "2")]
    row = con.execute(
        "select session, teacher, role, count(*) from expression_windows where video_id = 'v00' group by all"
    ).fetchone()
    assert row == ("s01", "t1", "teacher", 2 * SECONDS / WINDOW_S)


def test_video_summary_measures_match_the_generated_data(lesson_store):
    con = warehouse.connect(lesson_store)
    summary = con.execute("select * from video_summary order by video_id").df().set_index("video_id")
    for index, spec in enumerate(design()):
        video = summary.loc[f"v{index:02d}"]
        assert video["happiness_share"] == pytest.approx(spec.happiness_share)
        assert video["gesture_rate"] == pytest.approx(spec.gestures_per_min)
        assert video["dominant_expression"] == ("happiness" if spec.happiness_share >= 0.5 else "neutral")
        assert video["primary_person_id"] == 0
        assert video["face_visible_s"] == pytest.approx(SECONDS * 4 / 5)
        assert video["expression_s"] == pytest.approx(SECONDS)
    au = summary.loc["v00", [f"{a}_r" for a in AU_NAMES]].to_numpy(float)
    assert np.all(np.diff(au) > 0)  # AU k has mean k/4 + 0.25 in the generated frames


def test_groups_follow_the_thresholds(lesson_store):
    con = warehouse.connect(lesson_store)
    groups = analysis.analysis_table(con).set_index("session_id")
    expected = {s.session: ("positive" if s.happiness_share > 0.25 else "neutral") for s in design()}
    assert groups["facial_group"].to_dict() == expected
    assert groups["body_group"].value_counts().to_dict() == {"expressive": 4, "still": 4}
    assert groups["teacher_id"].to_dict()["s01"] == "t1"  # the students' video adds nothing

    warehouse.set_thresholds(con, {"positive_happiness_share": 0.05, "expressive_gesture_rate": 2})
    groups = analysis.analysis_table(con)
    assert set(groups["facial_group"]) == {"positive"} and set(groups["body_group"]) == {"expressive"}

    warehouse.set_thresholds(con, {"gesture_min_speed": 1.0})  # the generated steps are 0.8 shoulder widths/s
    groups = analysis.analysis_table(con)
    assert set(groups["body_group"]) == {"still"} and set(groups["facial_group"]) == {"positive", "neutral"}

    teachers = analysis.analysis_table(warehouse.connect(lesson_store), "teacher_id")
    assert list(teachers["teacher_id"]) == ["t1", "t2", "t3", "t4"]
    assert list(zip(teachers["facial_group"], teachers["body_group"], strict=True)) == [
        ("positive", "expressive"),
        ("positive", "still"),
        ("neutral", "expressive"),
        ("neutral", "still"),
    ]


def test_thresholds_are_parsed_and_checked():
    assert warehouse.parse_thresholds(["positive_happiness_share=0.4"])["positive_happiness_share"] == 0.4
    assert warehouse.parse_thresholds(None) == {n: t.default for n, t in warehouse.THRESHOLDS.items()}
    with pytest.raises(ValueError, match="unknown threshold 'nope'.*positive_happiness_share"):
        warehouse.parse_thresholds(["nope=1"])
    with pytest.raises(ValueError, match="'abc' is not a number"):
        warehouse.parse_thresholds(["gesture_min_speed=abc"])
    with pytest.raises(ValueError, match="not name=value"):
        warehouse.parse_thresholds(["gesture_min_speed"])
    for name, threshold in warehouse.THRESHOLDS.items():  # the module docstring documents every default
        assert f"``{name}``" in warehouse.__doc__ and str(threshold.default) in warehouse.__doc__


def test_a_panning_camera_or_a_walking_teacher_is_not_a_gesture(tmp_path):
    """Wrist speed is measured relative to the shoulders: moving the whole body (or the camera) by far more
    than the gesture threshold per second counts no gesture; the same wrist steps on a still body do."""
    store = write_lesson_store(tmp_path / "store")
    path = store.partition("body", "v00")
    body = _body(6).to_pydict()
    for name in KEYPOINT_NAMES:  # the whole body drifts 150 px per second: 1.5 shoulder widths per second
        body[f"{name}_x"] = [x + 150.0 * t for x, t in zip(body[f"{name}_x"], body["timestamp"], strict=True)]
    for side in ("left", "right"):
        body[f"{side}_wrist_y"] = [300.0] * len(body["frame"])  # hands still relative to the shoulders
    write_table_atomic(table_from_columns(body, BODY_SCHEMA), path)
    con = warehouse.connect(store)
    (rate,) = con.execute("select gesture_rate from video_summary where video_id = 'v00'").fetchone()
    assert rate == 0
    write_table_atomic(_body(6), path)  # wrists stepping on a still body: 6 gestures per minute
    con = warehouse.connect(store)
    (rate,) = con.execute("select gesture_rate from video_summary where video_id = 'v00'").fetchone()
    assert rate == pytest.approx(6)


def test_expression_time_counts_each_sampled_frame_once(tmp_path):
    """Windows of 16 samples every 8 (the pipeline's, from tasks.predict.inference.plan_windows) overlap: summing their
    durations gave 18.0 s of expression in a 12.0-s video. Each sampled frame now counts once, with the label of
    the covering window whose centre is nearest (ties: the later window), so expression_s <= duration_s and
    expression_coverage is the share of the track's samples inside some window."""
    from tasks.predict.inference import plan_windows

    store = write_lesson_store(tmp_path / "store")
    fps, seconds = 5, 12.0
    n = int(seconds * fps)
    times = np.arange(n) / fps
    frames = _frames(np.random.default_rng(0)).slice(0, 0).to_pydict()
    columns = {name: np.zeros(n) for name in frames}
    columns.update(frame=np.arange(n) * 5, timestamp=times, face_id=np.zeros(n, int), success=np.ones(n, bool))
    write_table_atomic(table_from_columns(columns, FRAME_SCHEMA), store.partition("frames", "v00"))
    windows = plan_windows(np.zeros(n, int), np.arange(n) * 5, times, 16, 8)
    labels = ["happiness" if w.index % 2 == 0 else "neutral" for w in windows]
    table = _windows(EMOTIONS, 0.0, "teacher-expression", np.random.default_rng(1)).slice(0, len(windows))
    table = table.set_column(table.schema.get_field_index("start_time"), "start_time",
                             pa.array([w.start_time for w in windows], pa.float64()))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("end_time"), "end_time",
                             pa.array([w.end_time for w in windows], pa.float64()))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
    table = table.set_column(table.schema.get_field_index("window_index"), "window_index",
                             pa.array([w.index for w in windows], pa.int32()))  # fmt: skip
    table = table.set_column(
        table.schema.get_field_index("face_id"), "face_id", pa.array([0] * len(windows), pa.int32())
    )
    table = table.set_column(table.schema.get_field_index("n_owned"), "n_owned",
                             pa.array([w.owned for w in windows], pa.int32()))  # fmt: skip
    write_table_atomic(table, store.prediction_path("emotion", "2", "v00"))
    videos = store.read_catalog("videos")
    at = videos["video_id"] == "v00"
    videos.loc[at, ["duration_s", "sampled_frames"]] = [seconds, n]
    store.write_catalog("videos", videos)

    # the rule in Python, independently of the SQL: per sample, the covering window with the nearest centre
    label_of = {}
    for k in range(n):
        covering = [
            (abs(times[k] - (w.start_time + w.end_time) / 2), -w.start_time, lab)
            for w, lab in zip(windows, labels, strict=True)
            if w.start_time <= times[k] <= w.end_time
        ]
        if covering:
            label_of[k] = min(covering)[2]
    assert sum(w.end_time - w.start_time for w in windows) > seconds  # what the old sum of durations counted

    con = warehouse.connect(store)
    row = (
        con.execute(
            "select duration_s, expression_s, happiness_s, neutral_s, expression_coverage from video_summary "
            "where video_id = 'v00'"
        )
        .df()
        .iloc[0]
    )
    sample_s = seconds / n
    assert row["expression_s"] == pytest.approx(len(label_of) * sample_s, abs=1e-9)
    assert row["expression_s"] <= row["duration_s"] + 1e-9  # float sums of 0.2-s samples
    assert row["happiness_s"] == pytest.approx(sum(v == "happiness" for v in label_of.values()) * sample_s, abs=1e-9)
    assert row["neutral_s"] == pytest.approx(sum(v == "neutral" for v in label_of.values()) * sample_s, abs=1e-9)
    covered = len(set(np.concatenate([w.rows for w in windows]).tolist()))
    assert row["expression_coverage"] == pytest.approx(covered / n, abs=1e-12)
    per_video = con.execute("select video_id, duration_s, expression_s from video_summary").df()
    assert (per_video["expression_s"].fillna(0) <= per_video["duration_s"] + 1e-9).all(), per_video
    frames_once = con.execute(
        "select count(*), count(distinct (video_id, face_id, frame)) from expression_frames"
    ).fetchone()
    assert frames_once[0] == frames_once[1]
    # the per-frame form of the rule (expression_frames) and the windows' n_owned that video_summary sums agree
    per_frame = dict(
        con.execute("select label, count(*) from expression_frames where video_id = 'v00' group by all").fetchall()
    )
    assert per_frame == {lab: sum(v == lab for v in label_of.values()) for lab in set(label_of.values())}


def test_body_group_comes_from_the_gesture_model_where_it_predicted_else_from_the_wrist_rule(lesson_store):
    """Sessions s01-s04 (videos v00-v03) have gesture predictions: their body_group is the expressive-gesture
    share's (threshold expressive_gesture_share, 0.3) and body_measure names the model; s05-s08 keep the
    wrist-speed rule (12 or 3 gestures per minute) and say so."""
    shares = {"v00": 0.1, "v01": 0.5, "v02": 0.5, "v03": 0.1}  # s01 has 12 gestures/min by the rule: expressive
    for video_id, share in shares.items():
        write_gesture_predictions(lesson_store, video_id, share)
    con = warehouse.connect(lesson_store)
    sessions = analysis.analysis_table(con).set_index("session_id")
    for index, spec in enumerate(design()):
        row = sessions.loc[spec.session]
        video_id = f"v{index:02d}"
        if video_id in shares:
            n = SECONDS // GESTURE_WINDOW
            expected_share = round(shares[video_id] * n) / n  # covered samples: 60 of 61, each counted once
            assert row["expressive_gesture_share"] == pytest.approx(expected_share)
            assert row["body_measure"] == "gesture model teacher_gesture v0001"
            assert row["body_group"] == ("expressive" if expected_share >= 0.3 else "still")
        else:
            assert row["body_measure"] == "wrist-speed rule" and pd.isna(row["expressive_gesture_share"])
            assert row["body_group"] == ("expressive" if spec.gestures_per_min >= 6 else "still")
    assert sessions.loc["s01", "body_group"] == "still"  # the model overrides the rule's 'expressive'
    videos = con.execute("select video_id, body_measure from video_summary order by video_id").df()
    assert videos.set_index("video_id")["body_measure"].to_dict()["v04"] == "wrist-speed rule"
    warehouse.set_thresholds(con, {"expressive_gesture_share": 0.05})
    assert set(analysis.analysis_table(con).set_index("session_id").loc[["s01", "s04"], "body_group"]) == {"expressive"}
    teachers = analysis.analysis_table(con, "teacher_id").set_index("teacher_id")
    assert teachers.loc["t1", "body_measure"] == "gesture model teacher_gesture v0001"  # s01 and s02
    assert teachers.loc["t3", "body_measure"] == "wrist-speed rule"  # s05, s06: no gesture predictions
    expressive = set(con.execute("select label from gesture_samples where is_expressive").df()["label"])
    assert expressive == {"beat"}


def test_the_expressive_gesture_macro_matches_the_python_list(lesson_store):
    from models.rules import EXPRESSIVE_GESTURES, GESTURES

    con = warehouse.connect(lesson_store)
    flags = {g: con.execute("select is_expressive_gesture(?)", [g]).fetchone()[0] for g in GESTURES}
    assert {g for g, flag in flags.items() if flag} == set(EXPRESSIVE_GESTURES)
    assert con.execute("select is_expressive_gesture(null)").fetchone()[0] is None
