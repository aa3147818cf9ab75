import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.resnet import ResNet, resnet18, stage_sizes

TINY = dict(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16))


def test_resnet18_matches_published_size_and_cost():
    # torchvision's resnet18 (same architecture, 1000 classes): 11,689,512 parameters, 1.814 GMACs at 224².
    model = resnet18(num_classes=1000).eval()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() / 2 == pytest.approx(1.814e9, rel=1e-3)


def test_stage_sizes_match_feature_maps():
    assert stage_sizes(112) == [28, 14, 7, 4]
    assert stage_sizes(224) == [56, 28, 14, 7]
    seen = {}

    class Record(nn.Module):
        def __init__(self, stage):
            super().__init__()
            self.stage = stage

        def forward(self, x, num_frames):
            seen[self.stage] = (tuple(x.shape), num_frames)
            return x

    model = ResNet(**TINY, stage_attention={s: Record(s) for s in (1, 2, 3, 4)})
    out = model.forward_features(torch.randn(6, 3, 40, 40), num_frames=3)
    sizes = stage_sizes(40)
    assert seen == {s: ((6, TINY["widths"][s - 1], sizes[s - 1], sizes[s - 1]), 3) for s in (1, 2, 3, 4)}
    assert out.shape == (6, 16, sizes[3], sizes[3])


def test_forward_head_shapes_and_gradients():
    torch.manual_seed(0)
    model = ResNet(**TINY, num_classes=5)
    x = torch.randn(4, 3, 32, 32)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (4, 16)
    out = model(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert ResNet(**TINY)(x).shape == (4, 16)  # no classifier: pooled features


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="stages 1..4"):
        ResNet(**TINY, stage_attention={5: nn.Identity()})
    with pytest.raises(ValueError, match="same length"):
        ResNet(layers=(1, 1), widths=(4, 8, 16))
    with pytest.raises(ValueError, match="whole number"):
        ResNet(**TINY).forward_features(torch.randn(5, 3, 32, 32), num_frames=2)
