import json
import logging

import pytest
import torch

from models import build_model
from models.registry import (
    EVENT,
    list_versions,
    load_model,
    promote,
    promoted,
    register,
)
from models.rules import TASK_CLASSES
from tests.tiny import TINY_AGDTNET

TINY = {**TINY_AGDTNET, "num_classes": 4}
LEARNER = list(TASK_CLASSES["learner_state"])


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("learner_state", "paper", **TINY).eval()


def register_tiny(store, seed: int = 0, **kwargs) -> str:
    args = dict(
        variant="paper",
        metrics={"val_uar": 0.4},
        data_fingerprint="sha256:abc",
        task="learner_state",
        classes=LEARNER,
    )
    return register(store, "learner_state", tiny_model(seed), **{**args, **kwargs})


@pytest.fixture(autouse=True)
def no_prefect_api(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def test_register_list_promote_load_round_trip(tmp_path):
    model = tiny_model(seed=3)
    version = register_tiny(tmp_path, seed=3)
    assert version == "v0001"
    (record,) = list_versions(tmp_path)
    assert record["name"] == "learner_state" and record["version"] == "v0001"
    assert record["classes"] == LEARNER and record["metrics"] == {"val_uar": 0.4}
    assert record["data_fingerprint"] == "sha256:abc" and record["code_version"]
    assert record["promoted"] is False and promoted(tmp_path, "learner_state") is None

    pointer = promote(tmp_path, "learner_state", version)
    assert pointer["task"] == "learner_state" and pointer["version"] == "v0001"
    current = promoted(tmp_path, "learner_state")
    assert (current["name"], current["version"], current["promoted"]) == ("learner_state", "v0001", True)
    assert promoted(tmp_path, "emotion") is None

    loaded = load_model(tmp_path, "learner_state", version)
    assert not loaded.training
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    config = json.loads((tmp_path / "models" / "learner_state" / "v0001" / "config.json").read_text())
    assert config["model"] == "learner_state" and config["variant"] == "paper"
    assert config["config"]["widths"] == [8, 16, 32, 64]


def test_versions_increase_and_promotion_moves(tmp_path):
    versions = [register_tiny(tmp_path, seed=s) for s in range(3)]
    assert versions == ["v0001", "v0002", "v0003"]
    assert [r["version"] for r in list_versions(tmp_path, "learner_state")] == versions
    promote(tmp_path, "learner_state", "v0003")
    promote(tmp_path, "learner_state", "v0002")
    assert promoted(tmp_path, "learner_state")["version"] == "v0002"
    assert [r["promoted"] for r in list_versions(tmp_path)] == [False, True, False]
    leftovers = [p.name for p in (tmp_path / "models" / "learner_state").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_unknown_version_model_and_task_are_clear_errors(tmp_path):
    register_tiny(tmp_path)
    with pytest.raises(ValueError, match=r"no version 'v0007'.*registered versions: v0001"):
        promote(tmp_path, "learner_state", "v0007")
    with pytest.raises(ValueError, match="valid models"):
        load_model(tmp_path, "resnet", "v0001")
    with pytest.raises(ValueError, match="valid tasks"):
        promoted(tmp_path, "posture")
    with pytest.raises(ValueError, match="classes of task 'emotion'"):
        register_tiny(tmp_path, task="emotion")
    with pytest.raises(TypeError, match="learner_state.Model"):
        register(tmp_path, "learner_state", torch.nn.Linear(2, 2), variant="paper", metrics={},
                 data_fingerprint="x", task="learner_state", classes=LEARNER)  # fmt: skip


def test_research_only_weights_are_labelled_when_loaded(tmp_path, caplog):
    plain = register_tiny(tmp_path)
    restricted = register_tiny(tmp_path, licence="research-only (trained on DAiSEE)")
    with caplog.at_level(logging.WARNING, logger="models.registry"):
        load_model(tmp_path, "learner_state", plain)
        assert not caplog.records
        load_model(tmp_path, "learner_state", restricted)
    (warning,) = caplog.records
    assert "research use only" in warning.getMessage() and "v0002" in warning.getMessage()
    assert list_versions(tmp_path)[1]["licence"] == "research-only (trained on DAiSEE)"


def test_promotion_event_is_emitted_only_with_a_prefect_api(tmp_path, monkeypatch):
    import prefect.events

    sent = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda event, resource: sent.append((event, resource)))
    version = register_tiny(tmp_path)
    promote(tmp_path, "learner_state", version)  # offline: nothing sent, nothing started, no error
    assert sent == []
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    promote(tmp_path, "learner_state", version)
    assert sent == [
        (
            EVENT,
            {
                "prefect.resource.id": "lessonlens.model.learner_state",
                "version": "v0001",
                "task": "learner_state",
                "store": str(tmp_path.resolve()),
            },
        )
    ]


def test_a_model_is_registered_and_promoted_only_for_a_task_whose_inputs_it_reads(tmp_path):
    """teacher_gesture reads body keypoints: trained on emotion labels it cannot serve the emotion task (face
    crops, no keypoints), and the face models cannot serve gestures; a version registered before this check
    is refused at promotion, before it could break every run."""
    from tests.tiny import TINY_GESTURE

    emotions, gestures = list(TASK_CLASSES["emotion"]), list(TASK_CLASSES["gesture"])
    args = dict(variant="paper", metrics={}, data_fingerprint="x")
    wrong = build_model("teacher_gesture", "paper", **{**TINY_GESTURE, "num_classes": len(emotions)})
    with pytest.raises(ValueError, match=r"teacher_gesture reads body keypoints, so it can predict gesture, not task"):
        register(tmp_path, "teacher_gesture", wrong, task="emotion", classes=emotions, **args)
    with pytest.raises(ValueError, match=r"learner_state reads face crops, so it can predict emotion or learner_state"):
        register_tiny(tmp_path, task="gesture", classes=gestures[:4])
    with pytest.raises(ValueError, match=r"'emotion_rules' is the AU rules' own stream; register learner_state for"):
        register_tiny(tmp_path, task="emotion_rules", classes=emotions)
    right = build_model("teacher_gesture", "paper", **{**TINY_GESTURE, "num_classes": len(gestures)})
    version = register(tmp_path, "teacher_gesture", right, task="gesture", classes=gestures, **args)
    config = tmp_path / "models" / "teacher_gesture" / version / "config.json"
    older = json.loads(config.read_text()) | {"task": "emotion", "classes": emotions[:6]}  # as registered before
    config.write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"teacher_gesture reads body keypoints"):
        promote(tmp_path, "teacher_gesture", version)
    assert promoted(tmp_path, "emotion") is None
