import pytest
import torch

from models import build_model, info, model_module
from tests.tiny import TINY_AGDTNET

TINY = TINY_AGDTNET


def test_measure_tiny_config_row():
    row = info.measure("learner_state", "paper", latency=True, runs=2, **TINY)
    assert tuple(row) == info.COLUMNS == ("model", "variant", "params", "gflops", "input", "latency_ms")
    model = build_model("learner_state", "paper", **TINY)
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert row["input"] == "1x4x3x32x32"
    assert row["gflops"] > 0 and row["latency_ms"] > 0
    assert info.measure("learner_state", "tformer", latency=False, **TINY)["latency_ms"] is None


def test_count_gflops_is_multiply_accumulates():
    # a 3->4 linear layer on 5 vectors: 5·3·4 = 60 multiply-adds
    assert info.count_gflops(torch.nn.Linear(3, 4, bias=False), (torch.randn(5, 3),)) == 60 / 1e9


def test_format_table_and_errors():
    rows = [info.measure("learner_state", v, latency=False, **TINY) for v in ("paper", "tformer")]
    table = info.format_table(rows)
    assert "learner_state" in table and "tformer" in table and "multiply-accumulates" in table
    with pytest.raises(ValueError, match="valid models"):
        info.collect(["nope"], latency=False)
    with pytest.raises(ValueError, match="valid variants"):
        info.measure("learner_state", "nope")


def test_meta_count_equals_real_forward_count():
    model = build_model("learner_state", "paper", **TINY).eval()
    (x,) = info.example_inputs("learner_state", model.config)
    row = info.measure("learner_state", "paper", latency=False, **TINY)
    assert row["gflops"] == info.count_gflops(model, (x,))


def test_paper_agdtnet_row():
    # Paper §4.5.4: 19.10 M parameters, 5.98 GFLOPs. Parameters match (+0.6 %); the MAC count cannot:
    # ResNet18 alone costs 16 × 0.485 = 7.76 GMACs on 16 frames of 112² (see models/learner_state.py).
    row = info.measure("learner_state", "paper", latency=False)
    assert row["input"] == "1x16x3x112x112"
    assert row["params"] == pytest.approx(19.10e6, rel=0.05)
    assert row["gflops"] == pytest.approx(8.46, abs=0.01)


def test_missing_model_module_is_skipped(monkeypatch):
    import models

    monkeypatch.setitem(models._MODULES, "ghost", "models.ghost_not_written_yet")
    with pytest.warns(UserWarning, match="ghost"):
        assert info.collect(["ghost"], latency=False) == []


@pytest.mark.parametrize("name, points", [("teacher_expression", 68), ("teacher_gesture", 33)])
def test_point_inputs_are_faked_for_teacher_models(name, points):
    module = model_module(name)
    config = module.VARIANTS["paper"]
    x, pts = info.example_inputs(name, config)
    assert x.shape == (1, config.num_frames, 3, config.image_size, config.image_size)
    assert pts.shape == (1, config.num_frames, points, 2)
    assert (pts > 0).all() and (pts < config.image_size).all()


def test_pretrained_nets_have_rows_without_weights():
    """The pretrained expression and recognition nets are measured like the papers' models (random weights: no
    files needed)."""
    expression, recognition = info.collect(["face_expression", "face_recognition"], latency=False)
    assert expression["variant"] == "pretrained" and expression["input"] == "1x3x112x112"
    assert 300_000 < expression["params"] < 350_000 and 0.01 < expression["gflops"] < 0.2
    # dlib's ResNet-29 metric net as face-api.js ships it: 6.4 MB of weights quantised to one byte each
    assert recognition["variant"] == "pretrained" and recognition["input"] == "1x3x150x150"
    assert 5_500_000 < recognition["params"] < 5_700_000 and 0.2 < recognition["gflops"] < 0.4, recognition
    with pytest.raises(ValueError, match="valid: face_expression"):
        info.measure_pretrained("nope")
