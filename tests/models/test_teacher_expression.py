import io
import math
from dataclasses import asdict, replace

import pytest
import torch

from models import build_model
from models.teacher_expression import (
    AU_ROIS,
    FACIAL_REGIONS,
    PARTS,
    VARIANTS,
    Config,
    Model,
    TemporalAttention,
    high_weight_mask,
    label_correction_loss,
    rank_regularization,
    relabel,
    weighted_logit_cross_entropy,
)
from tests.tiny import TINY_EXPRESSION

TINY = TINY_EXPRESSION
B, T, SIDE = 2, 3, 64


def tiny_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, 3, SIDE, SIDE, generator=g)
    landmarks = torch.rand(B, T, 68, 2, generator=g) * 40 + 12
    return x, landmarks


@pytest.mark.parametrize("variant", [v for v, c in VARIANTS.items() if c.label_correction])
def test_sample_weights_are_one_per_clip_in_0_1(variant):
    torch.manual_seed(0)
    logits, weights = Model(replace(VARIANTS[variant], **TINY)).forward_with_weights(*tiny_inputs())
    assert logits.shape == (B, 5) and weights.shape == (B,) and ((weights > 0) & (weights < 1)).all()


def test_feature_and_head_split():
    model = Model(Config(**TINY)).eval()
    x, landmarks = tiny_inputs()
    feats = model.forward_features(x, landmarks)
    assert feats.shape == (B, 3 * 4, 2, 2)  # 3 parts x lstm_channels, roi_size / 2
    assert model.forward_head(feats, pre_logits=True).shape == (B, model.num_features)
    assert torch.allclose(model.forward_head(feats), model(x, landmarks))


def test_input_validation():
    model = Model(Config(**TINY))
    x, landmarks = tiny_inputs()
    with pytest.raises(ValueError, match="num_frames"):
        model(x[:, :2], landmarks[:, :2])
    with pytest.raises(ValueError, match="landmarks"):
        model(x, landmarks[:, :, :5])
    with pytest.raises(ValueError, match="roi_rule"):
        Config(roi_rule="dlib")
    with pytest.raises(RuntimeError):
        Model(Config(**TINY, label_correction=False)).sample_weights(torch.zeros(1, 12))


def test_checkpoint_round_trip():
    cfg = Config(**TINY, roi_rule="facial_regions")
    model = Model(cfg).eval()
    buf = io.BytesIO()
    torch.save({"config": asdict(cfg), "state_dict": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    clone = Model(Config(**ckpt["config"])).eval()
    clone.load_state_dict(ckpt["state_dict"])
    assert clone.config == cfg
    x, landmarks = tiny_inputs()
    assert torch.equal(clone(x, landmarks), model(x, landmarks))


def test_factory_builds_variants():
    model = build_model("teacher_expression", "no_temporal_attention", **TINY)
    assert model.temporal_attention is None and model.config.num_classes == 5


def test_roi_tables():
    for table in (AU_ROIS, FACIAL_REGIONS):
        assert len(table) == 9
        assert {s.part for s in table} == set(PARTS)
        assert all(0 <= i < 68 for s in table for i in s.landmarks)
    assert len({s.group for s in AU_ROIS}) == 8  # 9 AU RoIs in 8 groups (§2.1)
    assert all(s.action_units and s.muscles for s in AU_ROIS)
    by_au = {au: s.name for s in AU_ROIS for au in s.action_units}
    assert by_au[6] == "cheeks" and by_au[12] == "lip_corners" and by_au[4] == "inner_brow"


def test_temporal_attention_weights_sum_to_one():
    att = TemporalAttention(channels=8, num_frames=3, reduction=4)
    g = torch.randn(2, 3, 8, 2, 2)
    g_hat, x = att(g)
    assert g_hat.shape == (2, 8, 2, 2)
    assert torch.allclose(x.sum(-1), torch.ones(2))
    assert torch.allclose(g_hat, (x[:, :, None, None, None] * g).sum(1))  # eq 5


def test_sample_weight_eq6():
    # x_u = sigmoid(Q5 C_u); Q5 = [1, -1, 0, ...], bias 0.
    # C_0 = [ln 3, 0, ...] -> sigmoid(ln 3) = 3 / (3 + 1) = 0.75
    # C_1 = [0, ln 3, ...] -> sigmoid(-ln 3) = 1 / (1 + 3) = 0.25
    model = Model(Config(**TINY))
    with torch.no_grad():
        model.importance.weight.zero_()
        model.importance.weight[0, :2] = torch.tensor([1.0, -1.0])
        model.importance.bias.zero_()
    c = torch.zeros(2, model.num_features)
    c[0, 0] = c[1, 1] = math.log(3)
    assert torch.allclose(model.sample_weights(c), torch.tensor([0.75, 0.25]))


def test_high_weight_mask():
    w = torch.tensor([0.3, 0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.5, 0.4, 0.95])
    # eta = 0.7 of 10 samples -> the 7 largest (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4) are high
    assert high_weight_mask(w, 0.7).tolist() == [
        False,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
    ]
    assert high_weight_mask(torch.tensor([0.1, 0.2]), 0.99).tolist() == [False, True]  # both groups kept
    assert high_weight_mask(torch.tensor([0.4]), 0.7).tolist() == [True]


def test_weighted_logit_cross_entropy_eq8():
    # sample 0: x = 1,   m = [ln 2, 0]   -> softmax [2/3, 1/3], label 0 -> -log(2/3) = ln 1.5
    # sample 1: x = 0.5, m = [2 ln 2, 0] -> x m = [ln 2, 0] -> [2/3, 1/3], label 1 -> -log(1/3) = ln 3
    # mean over V = 2: (ln 1.5 + ln 3) / 2 = ln(4.5) / 2 = 0.75204
    logits = torch.tensor([[math.log(2), 0.0], [2 * math.log(2), 0.0]])
    loss = weighted_logit_cross_entropy(logits, torch.tensor([0, 1]), torch.tensor([1.0, 0.5]))
    assert loss.item() == pytest.approx(math.log(4.5) / 2)


def test_rank_regularization_eq9():
    # high group (7 largest): 0.62 0.61 0.60 0.60 0.60 0.59 0.58 -> beta_G = 4.2 / 7 = 0.60
    # low group: 0.52 0.50 0.48 -> beta_M = 0.50; max(0, 0.15 - (0.60 - 0.50)) = 0.05
    w = torch.tensor([0.62, 0.5, 0.58, 0.6, 0.61, 0.52, 0.59, 0.6, 0.48, 0.6])
    assert rank_regularization(w, eta=0.7, margin=0.15).item() == pytest.approx(0.05)
    # groups far apart: beta_G - beta_M = 0.6 > 0.15 -> 0
    far = torch.tensor([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3, 0.3, 0.3])
    assert rank_regularization(far, eta=0.7, margin=0.15).item() == 0.0
    assert rank_regularization(torch.tensor([0.5]), eta=0.7, margin=0.15).item() == 0.0


def test_label_correction_loss_eq10():
    # V = 2, eta = 0.7 -> round(1.4) = 1 high (0.55), 1 low (0.50): M_EE = max(0, 0.15 - 0.05) = 0.10
    # zero logits -> weighted logits zero -> uniform over L = 2 -> M_QZR = ln 2
    # gamma = 0.5:  0.5 * 0.10 + 0.5 * ln 2 = 0.396574
    # gamma = 0.25: 0.25 * 0.10 + 0.75 * ln 2 = 0.544858
    logits, labels, w = torch.zeros(2, 2), torch.tensor([0, 1]), torch.tensor([0.55, 0.5])
    for gamma, expected in ((0.5, 0.05 + 0.5 * math.log(2)), (0.25, 0.025 + 0.75 * math.log(2))):
        loss = label_correction_loss(logits, labels, w, eta=0.7, margin=0.15, gamma=gamma)
        assert loss.item() == pytest.approx(expected)


def test_relabel_eq7():
    # 10 samples, 3 classes; weights fall with the index, so samples 7, 8, 9 are the low-weight group.
    # sample 0 (high): p = [0.90, 0.05, 0.05], label 2 -> O_MAX - O_label = 0.85 but high weight: keep 2
    # sample 7 (low):  p = [0.70, 0.20, 0.10], label 1 -> 0.70 - 0.20 = 0.50 > 0.2: relabel to 0
    # sample 8 (low):  p = [0.40, 0.35, 0.25], label 1 -> 0.40 - 0.35 = 0.05 <= 0.2: keep 1
    # sample 9 (low):  p = [0.10, 0.10, 0.80], label 2 -> 0.00: keep 2
    probs = torch.full((10, 3), 1 / 3)
    probs[0] = torch.tensor([0.90, 0.05, 0.05])
    probs[7] = torch.tensor([0.70, 0.20, 0.10])
    probs[8] = torch.tensor([0.40, 0.35, 0.25])
    probs[9] = torch.tensor([0.10, 0.10, 0.80])
    labels = torch.tensor([2, 0, 1, 2, 0, 1, 2, 1, 1, 2])
    weights = torch.linspace(0.9, 0.1, 10)
    new = relabel(probs.log(), labels, weights, eta=0.7, threshold=0.2)
    expected = labels.clone()
    expected[7] = 0
    assert new.tolist() == expected.tolist()
    # a threshold above every gap changes nothing
    assert relabel(probs.log(), labels, weights, eta=0.7, threshold=0.6).tolist() == labels.tolist()
