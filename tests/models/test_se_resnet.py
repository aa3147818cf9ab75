import torch

from models.roi_align import boxes_from_points, roi_align
from models.se_resnet import SEResNet, make_stage, stage_channels


def test_trunk_shapes_and_backward():
    net = SEResNet(layers=(1, 1, 1, 1), base_width=4, num_stages=3)
    x = torch.randn(2, 3, 32, 32)
    y = net(x)
    assert y.shape == (2, stage_channels(4, 3), 2, 2) == (2, 64, 2, 2)
    stage4 = make_stage(stage=4, blocks=1, base_width=4)
    z = stage4(y)
    assert z.shape == (2, 128, 1, 1)
    z.sum().backward()
    assert all(p.grad is not None for p in [*net.parameters(), *stage4.parameters()])


def test_paper_size_parameter_count():
    # SE-ResNet-50 has 28.09M parameters with its 2048 -> 1000 FC (2,049,000 parameters): 26.04M without.
    n = sum(p.numel() for p in SEResNet().parameters())
    assert n == 26_039_024


def test_roi_align_averages_bins():
    # feature value = column index; a feature cell j covers input pixels [4j, 4j + 4) (64 px image,
    # 16 cells). Box x in [8, 24) px = feature x in [2, 6): bin 0 covers [2, 4), its mean position is 3,
    # which is 2.5 in cell-index units (cell j is centred at j + 0.5); bin 1 gives 4.5.
    f = torch.arange(16.0).repeat(16, 1)[None, None]
    box = torch.tensor([[[8.0, 8.0, 24.0, 40.0]]])
    out = roi_align(f, box, image_size=(64, 64), output_size=2)
    assert torch.allclose(out, torch.tensor([2.5, 4.5]).expand(1, 1, 1, 2, 2))


def test_boxes_from_points_pad_min_size_and_clamp():
    pts = torch.tensor([[[10.0, 10.0], [20.0, 30.0], [60.0, 5.0]]])
    pads = torch.tensor([[0.1, 0.0, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0]])
    boxes = boxes_from_points(
        pts,
        [(0, 1), (2,)],
        pads,
        scale=torch.tensor([10.0]),
        image_size=(40, 64),
        min_size=torch.tensor([0.0, 1.0]),
    )
    # box 0: x 10..20 padded by 1 px each side; box 1: a point grown to 10 px, clamped to the image
    assert torch.allclose(boxes, torch.tensor([[[9.0, 10.0, 21.0, 30.0], [55.0, 0.0, 64.0, 10.0]]]))
