import io
from dataclasses import asdict

import pytest
import torch

from models import build_model
from models.teacher_gesture import (
    BODY_REGIONS,
    Config,
    DisentangledAttentionLayer,
    Model,
    RegionalLayer,
)
from tests.tiny import TINY_GESTURE

TINY = TINY_GESTURE
B, T, SIDE = 2, 3, 64


def tiny_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, 3, SIDE, SIDE, generator=g)
    keypoints = torch.rand(B, T, 33, 2, generator=g) * 48 + 8
    return x, keypoints


def test_feature_and_head_split():
    model = Model(Config(**TINY)).eval()
    x, keypoints = tiny_inputs()
    feats = model.forward_features(x, keypoints)
    assert feats.shape == (B, T, len(BODY_REGIONS), 8)
    assert model.forward_head(feats, pre_logits=True).shape == (B, 8)
    assert torch.allclose(model.forward_head(feats), model(x, keypoints))


def test_input_validation():
    model = Model(Config(**TINY))
    x, keypoints = tiny_inputs()
    with pytest.raises(ValueError, match="num_frames"):
        model(x[:, :2], keypoints[:, :2])
    with pytest.raises(ValueError, match="keypoints"):
        model(x, keypoints[:, :, :17])
    with pytest.raises(ValueError, match="patch grid"):
        RegionalLayer(channels=2, grid=4)(torch.zeros(2, 2, 3, 3))


def test_checkpoint_round_trip():
    cfg = Config(**TINY, regional_layer=False)
    model = Model(cfg).eval()
    buf = io.BytesIO()
    torch.save({"config": asdict(cfg), "state_dict": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    clone = Model(Config(**ckpt["config"])).eval()
    clone.load_state_dict(ckpt["state_dict"])
    assert clone.config == cfg
    x, keypoints = tiny_inputs()
    assert torch.equal(clone(x, keypoints), model(x, keypoints))


def test_factory_builds_variants():
    model = build_model("teacher_gesture", "no_disentanglement", **TINY)
    assert model.disentangle is None and model.regional is not None


def test_regional_layer_is_local():
    # a patch's output depends only on that patch: changing the top-left patch leaves the others intact
    layer = RegionalLayer(channels=2, grid=2).eval()
    x = torch.randn(1, 2, 4, 4)
    y = x.clone()
    y[..., :2, :2] += 1
    out_x, out_y = layer(x), layer(y)
    assert torch.equal(out_x[..., 2:, :], out_y[..., 2:, :]) and torch.equal(out_x[..., :2, 2:], out_y[..., :2, 2:])
    assert not torch.equal(out_x[..., :2, :2], out_y[..., :2, :2])


def test_attention_maps_hand_computed():
    # Z = d = 2, delta = psi = identity, so a map entry is tanh(mean of dot products / sqrt(2)).
    # frame 1: v1 = (1, 0), v2 = (0, 0); frame 2: v1 = (1, 0), v2 = (0, 2)
    # spatial, per frame: [[1, 0], [0, 0]] and [[1, 0], [0, 4]] -> mean over S = 2: [[1, 0], [0, 2]]
    #   tanh([[1, 0], [0, 2]] / sqrt 2) = [[0.608859, 0], [0, 0.888385]]
    # temporal, per region: v1 [[1, 1], [1, 1]], v2 [[0, 0], [0, 4]] -> mean over V = 2: [[.5, .5], [.5, 2.5]]
    #   tanh(. / sqrt 2) = [[0.339523, 0.339523], [0.339523, 0.943364]]
    layer = DisentangledAttentionLayer(channels=2, attention_dim=2)
    with torch.no_grad():
        for lin in (layer.spatial_delta, layer.spatial_psi, layer.temporal_delta, layer.temporal_psi):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    a = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 2.0]]]])  # (B=1, S=2, V=2, Z=2)
    spatial = torch.tensor([[0.608859, 0.0], [0.0, 0.888385]])
    temporal = torch.tensor([[0.339523, 0.339523], [0.339523, 0.943364]])
    assert torch.allclose(layer.spatial_map(a)[0], spatial, atol=1e-6)
    assert torch.allclose(layer.temporal_map(a)[0], temporal, atol=1e-6)


def test_region_boxes_follow_keypoints():
    model = Model(Config(**TINY))
    kp = torch.full((1, 33, 2), 32.0)
    kp[0, 11], kp[0, 12] = torch.tensor([40.0, 30.0]), torch.tensor([24.0, 30.0])  # shoulder width 16 px
    kp[0, [15, 17, 19, 21]] = torch.tensor([50.0, 50.0])  # left hand collapsed to a point
    boxes = model.region_boxes(kp, (64, 64))
    left_hand = boxes[0, 1]
    # min_size 0.4 shoulder widths = 6.4 px around the point
    assert torch.allclose(left_hand, torch.tensor([46.8, 46.8, 53.2, 53.2]))
