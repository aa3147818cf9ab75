"""The default emotion stream: face-api.js's expression net on each sampled face's aligned crop, windows as the
rules'; the AU rules beside it (``emotion_rules``); the fallback without weights; existing stores recomputed once."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from flows.cli import main
from models import faceapi_package
from models.faceapi import load_expression_net
from models.layout import decode_jpeg
from models.rules import EMOTIONS, MODEL_NAME
from tasks.predict import inference
from tasks.predict.inference import current_version, emotion_stream, infer_videos, rules_version, stale_videos
from tasks.store import Store
from tests.test_inference import copy_video, extracted, no_prefect_api, read_predictions, set_path  # noqa: F401

P = [f"p_{c}" for c in EMOTIONS]


def stored_crop_probabilities(store: Store, video_id: str) -> np.ndarray:
    """The net's emotion probabilities (our class order) of each stored crop, in frame order."""
    crops = pq.read_table(store.partition("crops", video_id)).to_pandas().sort_values("frame")
    x = torch.from_numpy(np.stack([decode_jpeg(j) for j in crops["jpeg"]])).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        probs = torch.softmax(load_expression_net()(x), dim=1).numpy()
    names = [faceapi_package.EMOTION_NAMES[e] for e in faceapi_package.EXPRESSIONS]
    return probs[:, [names.index(c) for c in EMOTIONS]]


def test_the_net_labels_emotion_from_stored_crops_window_by_window(extracted, tmp_path):  # noqa: F811
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    set_path(store, "clip", str(tmp_path / "moved-away.mp4"))  # stored crops: nothing is decoded
    assert current_version(store, "emotion") == faceapi_package.MODEL_VERSION
    (done,) = infer_videos(store, ["clip"], "emotion", window=8, stride=4)
    assert (done.status, done.counts["windows"], done.info["model_name"]) == ("ok", 3, faceapi_package.MODEL_NAME)
    df = read_predictions(store, "emotion", faceapi_package.MODEL_VERSION, "clip")
    per_face = stored_crop_probabilities(store, "clip")  # 13 samples; windows 0-7, 4-11 and the tail 5-12
    expected = np.stack([per_face[0:8].mean(0), per_face[4:12].mean(0), per_face[5:13].mean(0)])
    np.testing.assert_allclose(df[P].to_numpy(), expected, atol=1e-5)
    assert df["label"].tolist() == [EMOTIONS[k] for k in expected.argmax(1)]
    assert stale_videos(store, "emotion") == []


def test_faces_are_batched_across_videos_with_the_same_results(extracted, tmp_path):  # noqa: F811
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    for video_id in "abc":
        copy_video(store, "clip", video_id, str(tmp_path / "clip.mp4"))
    predictor = inference.ExpressionNetPredictor(store, torch.device("cpu"), batch_faces=5)  # 39 faces, 8 batches
    videos = [inference.load_video_windows(store, v, predictor.columns, 4, 2) for v in "abc"]
    results = list(predictor.predict(videos))
    assert [v.video_id for v, _ in results] == list("abc")
    for _, probs in results[1:]:
        np.testing.assert_allclose(probs, results[0][1], atol=1e-5)
    (one,) = infer_videos(store, ["a"], "emotion", window=4, stride=2)
    np.testing.assert_allclose(read_predictions(store, "emotion", faceapi_package.MODEL_VERSION, "a")[P],
                               results[0][1], atol=1e-5)  # fmt: skip


def test_without_crops_the_video_is_decoded_and_aligned_again(extracted, tmp_path):  # noqa: F811
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    set_path(store, "clip", str(tmp_path / "clip.mp4"))
    infer_videos(store, ["clip"], "emotion", window=8, stride=4)
    stored = read_predictions(store, "emotion", faceapi_package.MODEL_VERSION, "clip")[P].to_numpy()
    store.partition("crops", "clip").unlink()
    (decoded,) = infer_videos(store, ["clip"], "emotion", window=8, stride=4)
    assert decoded.status == "ok"
    again = read_predictions(store, "emotion", faceapi_package.MODEL_VERSION, "clip")[P].to_numpy()
    np.testing.assert_allclose(again, stored, atol=0.02)  # JPEG q90 crops vs fresh ones
    set_path(store, "clip", str(tmp_path / "gone.mp4"))
    (failed,) = infer_videos(store, ["clip"], "emotion", window=8, stride=4)
    assert (failed.status, failed.reason) == ("failed", "missing_file")


def test_without_weights_the_rules_label_emotion_and_say_how_to_get_them(extracted, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv(faceapi_package.ENV_DIR, str(tmp_path / "no-weights"))
    store = Store(tmp_path / "store")
    shutil.copytree(extracted.root, store.root)
    stream = emotion_stream(store)
    assert stream["model_version"] == current_version(store, "emotion") == rules_version("emotion")
    assert "make setup" in stream["fallback"] and str(tmp_path / "no-weights") in stream["fallback"]
    assert "\n" not in stream["fallback"]
    (done,) = infer_videos(store, ["clip"], "emotion")
    assert done.status == "ok" and done.info["model_name"] == MODEL_NAME
    assert main(["status", "--store", str(store.root)]) == 0
    shown = capsys.readouterr().out
    assert f"emotion (default) now by {MODEL_NAME} ({rules_version('emotion')})" in shown
    assert "face expression weights not found at" in shown and "the AU rules label emotion meanwhile" in shown


def test_an_existing_store_is_recomputed_once_from_stored_crops(extracted, tmp_path, monkeypatch):  # noqa: F811
    """A store whose emotion windows the rules wrote (before the net) is stale once: the net recomputes them
    from the stored crops without the video; then nothing is stale. The rule stream is its own task."""
    store = Store(tmp_path)
    shutil.copytree(extracted.root, tmp_path, dirs_exist_ok=True)
    with monkeypatch.context() as before_the_net:
        before_the_net.setenv(faceapi_package.ENV_DIR, str(tmp_path / "none"))
        infer_videos(store, ["clip"], "emotion")
        assert stale_videos(store, "emotion") == []
    assert stale_videos(store, "emotion") == ["clip"] and stale_videos(store, "emotion_rules") == ["clip"]
    set_path(store, "clip", str(tmp_path / "moved-away.mp4"))
    for task in ("emotion", "emotion_rules"):
        (done,) = infer_videos(store, stale_videos(store, task), task)
        assert done.status == "ok"
    assert stale_videos(store, "emotion") == [] and stale_videos(store, "emotion_rules") == []
    for task, version in (("emotion", faceapi_package.MODEL_VERSION), ("emotion_rules", rules_version("emotion"))):
        kept = [p.name for p in (tmp_path / "predictions" / f"task={task}").iterdir()]
        assert kept == [f"model_version={version}"]  # the rules' old emotion windows were replaced


@pytest.mark.parametrize("task", ["emotion", "emotion_rules"])
def test_both_streams_have_the_emotion_classes(task):
    assert inference.source_table(task) == "frames"
    assert tuple(inference.TASK_CLASSES[task]) == EMOTIONS


def test_the_marts_read_the_stream_they_are_pointed_at(tmp_path):
    """expression_windows reads ``emotion`` by default and ``emotion_rules`` when told, and says which."""
    import pyarrow as pa

    from tasks.analyse import warehouse
    from tasks.store import write_table_atomic
    from tests.test_marts import write_lesson_store

    store = write_lesson_store(tmp_path)
    for video_id in store.video_ids():  # the rules' own stream beside the lesson store's emotion windows
        table = pq.read_table(store.prediction_path("emotion", "rules-1", video_id))
        labels = pa.array(["anger"] * table.num_rows)
        table = table.set_column(table.schema.get_field_index("label"), "label", labels)
        write_table_atomic(table, store.prediction_path("emotion_rules", "rules-1", video_id))
    default = warehouse.connect(store).sql("select distinct emotion_stream, model_version from expression_windows")
    assert default.fetchall() == [("emotion", "2")]  # the trained model's windows, as before
    con = warehouse.connect(store, emotion_stream="emotion_rules")
    rows = con.sql("select distinct emotion_stream, model_version, label from expression_windows").fetchall()
    assert rows == [("emotion_rules", "rules-1", "anger")]
    assert warehouse.run_query(store, "select count(*) from expression_windows", "emotion_rules").num_rows == 1
    with pytest.raises(ValueError, match="emotion stream 'rules' is not one of emotion, emotion_rules"):
        warehouse.connect(store, emotion_stream="rules")
