"""Gestures end to end: a nightly run with a promoted teacher_gesture model writes gesture predictions, the
marts take body_group from them, and reprocessing after a newer version is promoted replaces them."""

import shutil

import pytest
import torch

from flows.cli import main
from models import build_model
from models.registry import promote, register
from models.rules import TASK_CLASSES
from tasks.analyse.warehouse import run_query
from tasks.store import Store
from tests.tiny import TINY_GESTURE

pytestmark = pytest.mark.slow


def register_gesture(store, seed: int) -> str:
    torch.manual_seed(seed)
    classes = list(TASK_CLASSES["gesture"])
    model = build_model("teacher_gesture", "paper", **{**TINY_GESTURE, "num_classes": len(classes)})
    return register(store, "teacher_gesture", model, variant="paper", metrics={}, data_fingerprint="test",
                    task="gesture", classes=classes)  # fmt: skip


def q(store, sql):
    return run_query(Store(store), sql).to_pylist()


def test_nightly_run_predicts_gestures_and_reprocess_replaces_them(tmp_path, media_dir, prefect_api):
    from flows.reprocess import reprocess

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(media_dir / "pyfeat_WolfgangLanger_Pexels.mp4", corpus / "wolfgang.mp4")  # 19.7 s, one person
    (corpus / "manifest.csv").write_text("path,session,teacher,role\nwolfgang.mp4,s1,t1,teacher\n")
    store = tmp_path / "store"
    Store(store).ensure()
    first = register_gesture(store, seed=0)
    promote(store, "teacher_gesture", first, notify=False)

    args = ["run", str(corpus), "--store", str(store), "--fps", "2", "--body-fps", "2", "--workers", "1"]
    assert main(args) == 0
    (body,) = q(store, "select count(*) as n from body")
    rows = q(
        store, "select model_version, model_name, count(*) as n from predictions where task = 'gesture' group by all"
    )
    assert body["n"] >= 16 and rows == [
        {"model_version": f"teacher_gesture-{first}", "model_name": f"teacher_gesture {first}", "n": rows[0]["n"]}
    ]
    # windows of 16 body samples every 8, and a last one ending at the last sample when the stride missed it
    assert rows[0]["n"] == (body["n"] - 16) // 8 + 1 + ((body["n"] - 16) % 8 > 0)
    (video,) = q(store, "select body_measure, expressive_gesture_share from video_summary")
    assert video["body_measure"] == f"gesture model teacher_gesture {first}"
    assert 0 <= video["expressive_gesture_share"] <= 1
    emotion = q(store, "select distinct model_version from predictions where task = 'emotion'")

    second = register_gesture(store, seed=1)
    promote(store, "teacher_gesture", second, notify=False)
    counts = reprocess(str(store), task="gesture", workers=1)
    assert counts["windows"] == rows[0]["n"] and counts["failed"] == 0
    after = q(store, "select distinct model_version from predictions where task = 'gesture'")
    assert after == [{"model_version": f"teacher_gesture-{second}"}]  # the older version's predictions were replaced
    assert q(store, "select distinct model_version from predictions where task = 'emotion'") == emotion
    (video,) = q(store, "select body_measure from video_summary")
    assert video["body_measure"] == f"gesture model teacher_gesture {second}"
