import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from flows.engine import gpu_resources_available, infer_on_dask
from models import build_model
from models.layout import N_LANDMARKS
from models.registry import promote, register
from models.rules import TASK_CLASSES
from tasks.predict import inference
from tasks.predict.inference import infer_videos, plan_windows, rules_version, stale_videos
from tasks.store import FRAME_SCHEMA, Store, prediction_schema, table_from_columns, write_table_atomic
from tests.tiny import TINY_AGDTNET

SQL = Path(__file__).resolve().parents[1] / "sql" / "staging" / "predictions.sql"
TINY = {**TINY_AGDTNET, "num_classes": 4}


@pytest.fixture(autouse=True)
def no_prefect_api(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def write_frames(store: Store, video_id: str, tracks: dict[int, tuple[int, dict[str, float]]]) -> None:
    """A frames partition: per face_id, (number of 5 fps samples, AU intensities held constant)."""
    rows = []
    for face_id, (n, aus) in tracks.items():
        for k in range(n):
            row = {f.name: 0 for f in FRAME_SCHEMA}
            row.update(frame=6 * k, timestamp=0.2 * k, face_id=face_id, confidence=0.9, success=True, **aus)
            rows.append(row)
    columns = {f.name: [r[f.name] for r in rows] for f in FRAME_SCHEMA}
    write_table_atomic(table_from_columns(columns, FRAME_SCHEMA), store.partition("frames", video_id))


def read_predictions(store: Store, task: str, version: str, video_id: str) -> pd.DataFrame:
    return pq.read_table(store.prediction_path(task, version, video_id)).to_pandas()


def test_windows_are_per_track_with_a_short_track_kept_whole():
    face_id = np.array([1] * 40 + [0] * 5)
    frame = np.r_[np.arange(40)[::-1], np.arange(5)]  # unsorted input
    windows = plan_windows(face_id, frame, frame * 0.2, window=16, stride=8)
    assert [(w.face_id, w.index, len(w.rows)) for w in windows] == [(0, 0, 5)] + [(1, k, 16) for k in range(4)]
    third = windows[3]
    assert frame[third.rows].tolist() == list(range(16, 32))
    assert (third.start_time, third.end_time) == pytest.approx((3.2, 6.2))
    with pytest.raises(ValueError, match="stride"):
        plan_windows(face_id, frame, frame * 0.2, window=16, stride=0)


def test_the_last_window_reaches_the_end_of_every_track():
    """45 samples, window 16, stride 8: starts 0, 8, 16, 24 leave samples 40-44 out, so a fifth window
    covers samples 29-44; a track of exactly window + k * stride samples gets no extra window."""
    frame = np.arange(45)
    windows = plan_windows(np.zeros(45, int), frame, frame * 0.1, window=16, stride=8)
    assert [frame[w.rows][[0, -1]].tolist() for w in windows] == [[0, 15], [8, 23], [16, 31], [24, 39], [29, 44]]
    assert [w.index for w in windows] == [0, 1, 2, 3, 4]
    assert windows[-1].end_time == pytest.approx(4.4)
    assert len(plan_windows(np.zeros(40, int), frame[:40], frame[:40] * 0.1, window=16, stride=8)) == 4
    covered = np.zeros(45, bool)
    for w in windows:
        covered[w.rows] = True
    assert covered.all()
    # each sample owned by one window (nearest centre): samples 0-11 by the first (centre 0.75 s, next 1.55 s)
    assert sum(w.owned for w in windows) == 45 and windows[0].owned == 12


def test_rule_baseline_sees_a_brief_apex_at_the_end_of_a_short_clip():
    """A 0.8-s neutral-to-apex clip at 10 fps: 5 neutral samples, then the smile grows over 3 samples.
    One window over the whole track; its label is the apex's, not the onset's."""
    from models import rules

    au12 = np.array([0, 0, 0, 0, 0, 1.5, 3.0, 4.0])
    columns = {c: np.zeros(8) for c in rules.AU_COLUMNS} | {"AU12_r": au12, "AU06_r": au12 / 2}
    frame = np.arange(8)
    columns |= {"frame": frame, "timestamp": frame * 0.1, "face_id": np.zeros(8, int)}
    video = inference.VideoWindows("v", columns, plan_windows(columns["face_id"], frame, frame * 0.1, 16, 8))
    predictor = inference.RulePredictor("emotion")
    [(_, probs)] = list(predictor.predict([video]))
    assert probs.shape == (1, len(TASK_CLASSES["emotion"]))
    assert TASK_CLASSES["emotion"][int(probs[0].argmax())] == "happiness"


def test_rule_baseline_writes_one_row_per_face_window(tmp_path):
    store = Store(tmp_path)
    write_frames(store, "vid1", {0: (40, {"AU06_r": 4.0, "AU12_r": 4.5}), 1: (20, {}), 2: (5, {"AU04_r": 3.0})})
    write_frames(store, "empty", {})
    summaries = infer_videos(Store(tmp_path), ["vid1", "empty", "missing"], "emotion_rules")
    version = rules_version("emotion_rules")
    assert [(s.video_id, s.status, s.counts["windows"]) for s in summaries] == [
        ("vid1", "ok", 7),
        ("empty", "ok", 0),
        ("missing", "skipped", 0),
    ]
    assert summaries[0].info["model_version"] == version and version.startswith("rules-")
    assert "rule baseline" in summaries[0].info["model_name"]

    path = Store(tmp_path).prediction_path("emotion_rules", version, "vid1")
    assert path == tmp_path / "predictions" / "task=emotion_rules" / f"model_version={version}" / "video_id=vid1" / (
        "part-0.parquet"
    )
    schema = pq.read_schema(path)
    assert schema.remove_metadata() == prediction_schema("emotion_rules")
    assert not {"task", "model_version", "video_id"} & set(schema.names)
    assert schema.metadata[b"window"] == b"16" and schema.metadata[b"stride"] == b"8"
    df = read_predictions(store, "emotion_rules", version, "vid1")
    assert df.groupby("face_id").size().to_dict() == {0: 4, 1: 2, 2: 1}  # track 1: 20 samples, a tail window
    p = df[[f"p_{c}" for c in TASK_CLASSES["emotion"]]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert df.loc[df.face_id == 0, "label"].eq("happiness").all()
    assert df.loc[df.face_id == 1, "label"].eq("neutral").all()
    assert (df["confidence"] == p.max(axis=1)).all()
    assert df["model_name"].str.contains("rule baseline").all()
    assert df.loc[df.face_id == 2, "n_frames"].tolist() == [5]
    assert df.loc[df.face_id == 0, ["start_time", "end_time"]].to_numpy()[1].tolist() == pytest.approx([1.6, 4.6])

    empty = pq.read_table(Store(tmp_path).prediction_path("emotion_rules", version, "empty"))
    assert empty.num_rows == 0 and empty.schema.remove_metadata() == prediction_schema("emotion_rules")
    assert not Store(tmp_path).prediction_path("emotion_rules", version, "missing").parent.exists()


def test_stale_videos_follow_predictions_frames_and_promotion(tmp_path):
    store = Store(tmp_path)
    for video_id in ("a", "b"):
        write_frames(store, video_id, {0: (20, {})})
    assert stale_videos(Store(tmp_path), "learner_state") == ["a", "b"]
    infer_videos(Store(tmp_path), ["a"], "learner_state")
    assert stale_videos(Store(tmp_path), "learner_state") == ["b"]
    assert stale_videos(Store(tmp_path), "emotion") == ["a", "b"]
    earlier = store.partition("frames", "a").stat().st_mtime_ns - 10**9
    predictions = Store(tmp_path).prediction_path("learner_state", rules_version("learner_state"), "a")
    os.utime(predictions, ns=(earlier, earlier))  # the video was re-extracted after its predictions
    assert stale_videos(Store(tmp_path), "learner_state") == ["a", "b"]
    infer_videos(Store(tmp_path), ["a", "b"], "learner_state")
    assert stale_videos(Store(tmp_path), "learner_state") == []
    predictions = Store(tmp_path).prediction_path("learner_state", rules_version("learner_state"), "b")
    pq.write_table(pq.read_table(predictions).drop_columns(["n_owned"]), predictions)  # written before n_owned
    assert stale_videos(Store(tmp_path), "learner_state") == ["b"]
    infer_videos(Store(tmp_path), ["b"], "learner_state")
    promote(tmp_path, "learner_state", register_tiny(tmp_path))
    assert stale_videos(Store(tmp_path), "learner_state") == ["a", "b"]


def test_a_promoted_model_is_not_taken_for_another_model_with_the_same_version_number(tmp_path):
    """Versions are numbered per model name: learner_state v0001 and then teacher_expression v0001, both
    trained for the emotion task, are two models, and promoting the second makes every video stale."""
    from tests.tiny import TINY_EXPRESSION

    store = Store(tmp_path)
    write_frames(store, "a", {0: (20, {})})
    emotions = list(TASK_CLASSES["emotion"])
    versions = []
    for name, config in (("learner_state", TINY_AGDTNET), ("teacher_expression", TINY_EXPRESSION)):
        model = build_model(name, "paper", **{**config, "num_classes": len(emotions)})
        versions.append(register(tmp_path, name, model, variant="paper", metrics={}, data_fingerprint="test",
                                 task="emotion", classes=emotions))  # fmt: skip
    assert versions == ["v0001", "v0001"]
    infer_videos(store, ["a"], "emotion_rules")  # the rules' windows, filed below as learner_state's: no crops here
    windows = pq.read_table(store.prediction_path("emotion_rules", rules_version("emotion_rules"), "a"))
    promote(tmp_path, "learner_state", "v0001")
    assert inference.current_version(store, "emotion") == "learner_state-v0001"
    store.write_predictions(windows, "emotion", "learner_state-v0001", "a")
    assert stale_videos(store, "emotion") == []
    promote(tmp_path, "teacher_expression", "v0001")
    assert stale_videos(store, "emotion") == ["a"]


def test_rule_predictions_and_stale_checks_import_no_torch(tmp_path):
    """torch takes seconds to import: the rule stream and the stale checks of a no-op rerun (the expression
    net's too) must not pay for it; a model's predictor does."""
    store = Store(tmp_path)
    write_frames(store, "v", {0: (20, {"AU06_r": 4.0, "AU12_r": 4.0})})
    code = (
        "import sys; from tasks.predict.inference import infer_videos, stale_videos; from tasks.store import Store; "
        f"s = Store({str(tmp_path)!r}); assert stale_videos(s, 'emotion') == ['v']; "
        "r = infer_videos(s, ['v'], 'emotion_rules'); assert r[0].status == 'ok', r; "
        "assert stale_videos(s, 'emotion_rules') == []; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_staging_view_unions_tasks_with_their_own_columns(tmp_path):
    store = Store(tmp_path)
    write_frames(store, "v", {0: (16, {"AU06_r": 4.0, "AU12_r": 4.0})})
    infer_videos(Store(tmp_path), ["v"], "emotion_rules")
    infer_videos(Store(tmp_path), ["v"], "learner_state")
    con = duckdb.connect()
    con.execute(SQL.read_text().replace("${store}", str(store.root)))
    rows = con.sql(
        "select task, model_version, video_id, label, p_happiness, p_boredom from predictions order by task"
    ).fetchall()
    assert [(r[0], r[2]) for r in rows] == [("emotion_rules", "v"), ("learner_state", "v")]
    assert rows[0][1] == rules_version("emotion_rules") and rows[0][3] == "happiness"
    assert rows[0][5] is None and rows[1][4] is None  # each task has only its own classes
    types = dict(con.sql("select column_name, column_type from (describe predictions)").fetchall())
    assert types["video_id"] == types["task"] == types["model_version"] == "VARCHAR"


# registry models on a real clip -------------------------------------------------------------------------
def register_tiny(store_root, seed: int = 0) -> str:
    torch.manual_seed(seed)
    model = build_model("learner_state", "paper", **TINY)
    return register(store_root, "learner_state", model, variant="paper", metrics={}, data_fingerprint="test",
                    task="learner_state", classes=list(TASK_CLASSES["learner_state"])[::-1])  # fmt: skip


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, media_dir):
    """pyfeat_single_face.mp4 extracted at 5 fps (13 samples of one face: the grid and the last frame; crops
    kept), its catalog row."""
    from tasks.extract.discover import VideoRef
    from tasks.extract.video import ExtractParams, extract_chunk, extract_video

    root = tmp_path_factory.mktemp("store")
    store = Store(root).ensure()
    clip = root / "clip.mp4"
    shutil.copy(media_dir / "pyfeat_single_face.mp4", clip)
    ref = VideoRef("clip", str(clip), clip.stat().st_size, 0, {})
    params = ExtractParams(body_fps=0, keep_crops=True)
    result = extract_video(ref, params, store, lambda jobs: list(map(extract_chunk, jobs)))
    assert result.status == "ok" and result.counts["face_rows"] == 13
    store.upsert_catalog("videos", pd.DataFrame([{"video_id": "clip", "path": str(clip), "status": "ok"}]), "video_id")
    return store


def set_path(store: Store, video_id: str, path: str) -> None:
    store.upsert_catalog("videos", pd.DataFrame([{"video_id": video_id, "path": path, "status": "ok"}]), "video_id")


def copy_video(store: Store, source: str, target: str, path: str) -> None:
    for table in ("frames", "crops"):
        if store.has_partition(table, source):
            store.partition(table, target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(store.partition(table, source), store.partition(table, target))
    set_path(store, target, path)


def test_promoted_model_on_decoded_then_stored_crops(extracted, tmp_path):
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    clip = str(tmp_path / "clip.mp4")
    set_path(store, "clip", clip)
    stored_crops = store.partition("crops", "clip")
    aside = tmp_path / "crops-aside.parquet"
    stored_crops.rename(aside)  # first without the crops extraction kept: decode the video
    version = register_tiny(tmp_path)
    promote(tmp_path, "learner_state", version)

    (decoded,) = infer_videos(Store(tmp_path), ["clip"], "learner_state", window=8, stride=4)
    # 13 samples: windows at 0 and 4, and the tail window 5-12 that ends at the last sample
    key = f"learner_state-{version}"
    assert (decoded.status, decoded.counts["windows"], decoded.info["model_version"]) == ("ok", 3, key)
    df = read_predictions(store, "learner_state", f"learner_state-{version}", "clip")
    assert df["model_name"].eq("learner_state v0001").all() and df["window_index"].tolist() == [0, 1, 2]
    p = df[[f"p_{c}" for c in TASK_CLASSES["learner_state"]]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert df["label"].isin(TASK_CLASSES["learner_state"]).all() and df["n_frames"].eq(8).all()

    aside.rename(stored_crops)
    set_path(store, "clip", str(tmp_path / "moved-away.mp4"))  # stored crops: the video is not needed
    (stored,) = infer_videos(Store(tmp_path), ["clip"], "learner_state", window=8, stride=4)
    assert stored.status == "ok"
    again = read_predictions(store, "learner_state", f"learner_state-{version}", "clip")
    # stored JPEG crops vs crops decoded again: the same windows differ by <= 0.003 (measured), swapped ones more
    np.testing.assert_allclose(again[[f"p_{c}" for c in TASK_CLASSES["learner_state"]]].to_numpy(), p, atol=0.005)

    stored_crops.unlink()
    (failed,) = infer_videos(Store(tmp_path), ["clip"], "learner_state", window=8, stride=4)
    assert (failed.status, failed.reason) == ("failed", "missing_file")
    assert len(inference._MODELS) >= 1 and all(not m.training for m in inference._MODELS.values())


def test_windows_are_batched_across_videos_with_the_same_results(extracted, tmp_path):
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    clip = str(tmp_path / "clip.mp4")
    for video_id in ("a", "b", "c"):
        copy_video(store, "clip", video_id, clip)
    promote(tmp_path, "learner_state", register_tiny(tmp_path))
    summaries = infer_videos(Store(tmp_path), ["a", "b", "c"], "learner_state", window=4, stride=2, batch_windows=4)
    assert [s.counts["windows"] for s in summaries] == [6, 6, 6]  # 18 windows in batches of 4 span the videos
    key = "learner_state-v0001"
    results = [read_predictions(store, "learner_state", key, v).drop(columns="model_name") for v in "abc"]
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0], atol=1e-5)


def test_windows_get_the_crops_of_their_own_rows(tmp_path, monkeypatch):
    promote(tmp_path, "learner_state", register_tiny(tmp_path))
    predictor = inference.load_predictor(Store(tmp_path), "learner_state", "cpu")
    face_id = np.array([0, 1] * 10)  # two interleaved tracks, one row per face per frame
    frame = np.repeat(np.arange(10), 2)
    columns = {"face_id": face_id, "frame": frame, "timestamp": frame * 0.2}
    for i in range(N_LANDMARKS):
        columns[f"x_{i}"] = np.full(20, 50.0 + i % 7)
        columns[f"y_{i}"] = np.full(20, 60.0 + i % 5)
    video = inference.VideoWindows("v", columns, plan_windows(face_id, frame, frame * 0.2, 6, 3))

    def crops_by_row(store, video, needed, landmarks):  # crop pixel value = its row, so windows can be checked
        for f in sorted(set(frame[needed].tolist())):
            yield f, {int(r): np.full((112, 112, 3), r, np.uint8) for r in needed if frame[r] == f}

    monkeypatch.setattr(inference, "face_crops", crops_by_row)
    pending = list(predictor._clips(video))
    assert len(pending) == len(video.windows) == 6  # per track: starts 0, 3 and the tail window at 4
    for item in pending:
        rows = video.windows[item.window].rows
        picked = rows[np.linspace(0, len(rows) - 1, 4).round().astype(int)]
        assert item.crops[:, 0, 0, 0].tolist() == picked.tolist()
        assert item.landmarks.shape == (4, N_LANDMARKS, 2)


def test_logits_are_mapped_to_the_task_class_order(tmp_path):
    promote(tmp_path, "learner_state", register_tiny(tmp_path))  # registered with the classes reversed
    predictor = inference.load_predictor(Store(tmp_path), "learner_state", "cpu")
    predictor.model = lambda x: torch.arange(4.0).repeat(len(x), 1)  # logit k favours registered class k
    video = inference.VideoWindows("v", {}, [], probs=np.zeros((1, 4), np.float32))
    crops = np.zeros((4, 112, 112, 3), np.uint8)
    predictor._run([inference._Pending(video, 0, crops, np.zeros((4, N_LANDMARKS, 2), np.float32))])
    expected = torch.softmax(torch.arange(4.0).flip(0), dim=0).numpy()  # boredom was registered last
    np.testing.assert_allclose(video.probs[0], expected, rtol=1e-6)


def test_models_that_take_landmarks_get_them_in_resized_crop_pixels(extracted, tmp_path):
    from tasks.extract.crops import TEMPLATE

    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    set_path(store, "clip", str(tmp_path / "clip.mp4"))
    small = dict(num_frames=4, image_size=64, layers=(1, 1, 1, 1), base_width=4, roi_hidden=8, roi_channels=8,
                 part_channels=8, lstm_channels=8, se_reduction=4)  # fmt: skip
    model = build_model("teacher_expression", "paper", **small)
    version = register(tmp_path, "teacher_expression", model, variant="paper", metrics={}, data_fingerprint="test",
                       task="emotion", classes=list(TASK_CLASSES["emotion"]))  # fmt: skip
    promote(tmp_path, "teacher_expression", version)
    seen = []
    cached = inference.cached_model(Store(tmp_path), "teacher_expression", version, torch.device("cpu"))
    hook = cached.register_forward_pre_hook(lambda module, args: seen.append(args))
    try:
        (summary,) = infer_videos(Store(tmp_path), ["clip"], "emotion", window=8, stride=4, device="cpu")
    finally:
        hook.remove()
    assert (summary.status, summary.counts["windows"]) == ("ok", 3)
    ((x, landmarks),) = seen
    assert x.shape == (3, 4, 3, 64, 64) and landmarks.shape == (3, 4, N_LANDMARKS, 2)
    eyes = torch.stack([landmarks[..., 36:42, :].mean(-2), landmarks[..., 42:48, :].mean(-2)], dim=-2)
    torch.testing.assert_close(eyes, torch.tensor(TEMPLATE[:2] * 64 / 112).float().expand_as(eyes), atol=2.0, rtol=0)
    df = read_predictions(store, "emotion", f"teacher_expression-{version}", "clip")
    np.testing.assert_allclose(df[[f"p_{c}" for c in TASK_CLASSES["emotion"]]].sum(axis=1), 1.0, atol=1e-5)


def test_dask_batches_ask_for_a_gpu_only_when_workers_have_one(tmp_path):
    from distributed import Client, LocalCluster

    store = Store(tmp_path)
    for video_id in "abc":
        write_frames(store, video_id, {0: (16, {})})
    for resources, expected in (({"GPU": 1}, True), (None, False)):
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", resources=resources
            ) as cluster,  # fmt: skip
            Client(cluster) as client,
        ):
            assert gpu_resources_available(client) is expected
            summaries = infer_on_dask(client, Store(tmp_path), ["a", "b", "c", "a"], "emotion_rules", videos_per_task=2)
        assert [(s.video_id, s.status) for s in summaries] == [("a", "ok"), ("b", "ok"), ("c", "ok")]


@pytest.mark.requires_cuda
def test_cuda_bf16_path_matches_cpu(extracted, tmp_path):
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    set_path(store, "clip", str(tmp_path / "clip.mp4"))
    promote(tmp_path, "learner_state", register_tiny(tmp_path))
    columns = [f"p_{c}" for c in TASK_CLASSES["learner_state"]]
    (cpu,) = infer_videos(Store(tmp_path), ["clip"], "learner_state", window=8, stride=4, device="cpu")
    on_cpu = read_predictions(store, "learner_state", "learner_state-v0001", "clip")[columns].to_numpy()
    (gpu,) = infer_videos(Store(tmp_path), ["clip"], "learner_state", window=8, stride=4, device="auto")
    on_gpu = read_predictions(store, "learner_state", "learner_state-v0001", "clip")[columns].to_numpy()
    assert cpu.status == gpu.status == "ok"
    assert any(key[3].startswith("cuda") for key in inference._MODELS)
    np.testing.assert_allclose(on_gpu.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.03)  # bf16 autocast


# gestures: body samples, whole frames decoded from the video -------------------------------------------
def register_tiny_gesture(store_root, seed: int = 0) -> str:
    from tests.tiny import TINY_GESTURE

    torch.manual_seed(seed)
    classes = list(TASK_CLASSES["gesture"])
    model = build_model("teacher_gesture", "paper", **{**TINY_GESTURE, "num_classes": len(classes)})
    return register(store_root, "teacher_gesture", model, variant="paper", metrics={}, data_fingerprint="test",
                    task="gesture", classes=classes[::-1])  # fmt: skip


def write_body(store: Store, video_id: str, frames: list[int], fps: float, width: float, height: float) -> None:
    """A body partition of person 0 at the given decoder frames: keypoints spread over the frame, all visible."""
    from models.layout import KEYPOINT_NAMES
    from tasks.store import BODY_SCHEMA

    n = len(frames)
    rng = np.random.default_rng(0)
    columns = {"frame": frames, "timestamp": [f / fps for f in frames], "person_id": [0] * n, "confidence": [0.9] * n}
    for name in KEYPOINT_NAMES:
        columns[f"{name}_x"] = rng.uniform(0.2, 0.8, n) * width
        columns[f"{name}_y"] = rng.uniform(0.2, 0.8, n) * height
        columns[f"{name}_v"] = np.full(n, 0.9)
    write_table_atomic(table_from_columns(columns, BODY_SCHEMA), store.partition("body", video_id))


@pytest.fixture
def body_store(tmp_path, media_dir):
    """pyfeat_single_face.mp4 (72 frames at 30 fps, 640 x 360) with 12 body samples (every 6th frame)."""
    store = Store(tmp_path).ensure()
    clip = tmp_path / "clip.mp4"
    shutil.copy(media_dir / "pyfeat_single_face.mp4", clip)
    write_body(store, "clip", list(range(0, 72, 6)), 30.0, 640, 360)
    set_path(store, "clip", str(clip))
    return store


def test_gesture_is_skipped_until_a_model_is_promoted(body_store, caplog):
    assert inference.current_version(body_store, "gesture") is None and stale_videos(body_store, "gesture") == []
    with caplog.at_level("INFO", logger="tasks.predict.inference"):
        (result,) = infer_videos(body_store, ["clip"], "gesture")
    assert (result.status, result.reason) == ("skipped", "no_model")
    assert "gesture: no promoted model and no rule baseline" in caplog.text
    assert not (body_store.root / "predictions").exists()


def test_promoted_gesture_model_predicts_body_windows_and_a_new_version_replaces_them(body_store):
    from tasks.predict.prepare import letterbox

    version = register_tiny_gesture(body_store.root)
    promote(body_store.root, "teacher_gesture", version)
    assert stale_videos(body_store, "gesture") == ["clip"]  # from the body partition: no frames partition here
    seen = []
    cached = inference.cached_model(body_store, "teacher_gesture", version, torch.device("cpu"))
    hook = cached.register_forward_pre_hook(lambda module, args: seen.append(args))
    try:
        (result,) = infer_videos(body_store, ["clip"], "gesture", window=8, stride=4, device="cpu")
    finally:
        hook.remove()
    key = f"teacher_gesture-{version}"
    assert (result.status, result.counts["windows"], result.info["model_version"]) == ("ok", 2, key)
    df = read_predictions(body_store, "gesture", key, "clip")
    assert df["window_index"].tolist() == [0, 1] and df["face_id"].eq(0).all()  # face_id holds person_id
    assert df[["start_time", "end_time"]].to_numpy().ravel().tolist() == pytest.approx([0.0, 1.4, 0.8, 2.2])
    p = df[[f"p_{c}" for c in TASK_CLASSES["gesture"]]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert df["model_name"].eq(f"teacher_gesture {version}").all() and stale_videos(body_store, "gesture") == []

    ((x, keypoints),) = seen  # both windows in one batch: 3 frames each (TINY_GESTURE num_frames)
    assert x.shape == (2, 3, 3, 64, 64) and keypoints.shape == (2, 3, 33, 2)
    # the first window's first sample: frame 0, letterboxed 640 x 360 -> 64 x 64 (scale 0.1, 14 px bars on top)
    _, scale, offset = letterbox(np.zeros((360, 640, 3), np.uint8), 64)
    body = pq.read_table(body_store.partition("body", "clip")).to_pandas()
    expected = np.stack([body.loc[0, "nose_x"], body.loc[0, "nose_y"]]) * scale + offset
    np.testing.assert_allclose(keypoints[0, 0, 0].numpy(), expected, atol=1e-4)
    assert (scale, offset.tolist()) == (pytest.approx(0.1), [0.0, 14.0])

    newer = register_tiny_gesture(body_store.root, seed=1)
    promote(body_store.root, "teacher_gesture", newer)
    assert stale_videos(body_store, "gesture") == ["clip"]
    infer_videos(body_store, ["clip"], "gesture", window=8, stride=4, device="cpu")
    versions = sorted(p.name for p in (body_store.root / "predictions" / "task=gesture").iterdir())
    assert versions == [f"model_version=teacher_gesture-{newer}"]  # the older version's rows are gone
    replaced = read_predictions(body_store, "gesture", f"teacher_gesture-{newer}", "clip")
    assert not np.allclose(replaced[[f"p_{c}" for c in TASK_CLASSES["gesture"]]].to_numpy(), p)


def test_gesture_without_the_video_fails_naming_the_file(body_store, tmp_path):
    promote(body_store.root, "teacher_gesture", register_tiny_gesture(body_store.root))
    set_path(body_store, "clip", str(tmp_path / "moved-away.mp4"))
    (result,) = infer_videos(body_store, ["clip"], "gesture", window=8, stride=4, device="cpu")
    assert (result.status, result.reason) == ("failed", "missing_file") and "moved-away.mp4" in result.message


def test_forgetting_a_face_track_keeps_gesture_rows_of_the_body_person_with_the_same_number(tmp_path):
    """Gesture rows carry the body person_id in face_id: erasing face track 0 must not touch person 0's rows."""
    from tests.test_marts import write_gesture_predictions

    store = Store(tmp_path).ensure()
    write_frames(store, "v", {0: (16, {}), 1: (16, {})})
    infer_videos(store, ["v"], "emotion_rules")
    write_gesture_predictions(store, "v", 0.5)
    gesture = pq.read_table(store.prediction_path("gesture", "v0001", "v")).num_rows
    removed = store.forget_face("v", 0)
    assert removed["predictions_rows"] == 1  # the emotion window of face 0 only
    assert pq.read_table(store.prediction_path("gesture", "v0001", "v")).num_rows == gesture == 12
    assert read_predictions(store, "emotion_rules", rules_version("emotion_rules"), "v")["face_id"].tolist() == [1]
