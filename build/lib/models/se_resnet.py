"""SE-ResNet-50 written by hand, usable stage by stage.

Paper: J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507),
§3 (squeeze: global average pooling, eq 2; excitation: two FC layers with reduction ratio r, ReLU then
sigmoid, eq 3; scale, eq 4) and §4 / Table 1 (SE-ResNet-50: ResNet-50 bottlenecks [3, 4, 6, 3] with
an SE block on the residual branch before the identity addition, r = 16). The teacher models use
stages 1-3 as a "global feature network" and stage 4 alone as a RoI fine-grained network, so the stem,
each stage and the trunk are separate modules.

Departures from the paper:
1. The stride of a downsampling bottleneck sits on its 3x3 convolution ("ResNet v1.5") instead of the
   first 1x1 convolution; it keeps more spatial information for the same cost and is the common
   modern choice.
2. No classifier (global pool + FC-1000): the teacher models add their own heads.
3. Widths and block counts are configurable (``base_width`` 64 and ``layers`` (3, 4, 6, 3) at paper
   size) so tests can build tiny networks.
4. No ImageNet weights are loaded: none are shipped with the project; load a checkpoint yourself.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

EXPANSION = 4


def stage_channels(base_width: int, stage: int) -> int:
    """Output channels of stage ``stage`` (1-4): ``base_width * 2**(stage - 1) * 4``."""
    return base_width * 2 ** (stage - 1) * EXPANSION


class SqueezeExcite(nn.Module):
    """Channel gate ``x * sigmoid(W2 relu(W1 mean_hw(x)))`` (Hu et al. eqs 2-4)."""

    def __init__(self, *, channels: int, reduction: int = 16):
        """
        Args:
            channels: input and output channels.
            reduction: ratio r of the bottleneck of the two FC layers.
        """
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        s = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class SEBottleneck(nn.Module):
    """``relu(shortcut(x) + SE(conv1x1 -> conv3x3 -> conv1x1 (x)))`` with BatchNorm after each conv."""

    def __init__(self, *, in_channels: int, width: int, stride: int = 1, se_reduction: int = 16):
        """
        Args:
            in_channels: channels of the input.
            width: channels of the 3x3 convolution; the block outputs ``4 * width``.
            stride: spatial stride (on the 3x3 convolution and the projection shortcut).
            se_reduction: reduction ratio of the SE block.
        """
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.se = SqueezeExcite(channels=out_channels, reduction=se_reduction)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.se(self.bn3(self.conv3(y)))  # (N, 4 * width, H / stride, W / stride)
        return torch.relu(y + self.shortcut(x))


def make_stage(
    *, stage: int, blocks: int, base_width: int = 64, se_reduction: int = 16, stride: int | None = None
) -> nn.Sequential:
    """SE-ResNet stage ``stage`` (1-4) of ``blocks`` bottlenecks.

    Args:
        stage: 1-4; fixes the width (``base_width * 2**(stage - 1)``) and the input channels.
        blocks: number of bottlenecks.
        base_width: width of stage 1 (64 in SE-ResNet-50).
        se_reduction: SE reduction ratio.
        stride: stride of the first block; default 1 for stage 1 and 2 otherwise.
    """
    width = base_width * 2 ** (stage - 1)
    in_channels = base_width if stage == 1 else stage_channels(base_width, stage - 1)
    first_stride = (1 if stage == 1 else 2) if stride is None else stride
    layers = []
    for i in range(blocks):
        layers.append(
            SEBottleneck(
                in_channels=in_channels if i == 0 else width * EXPANSION,
                width=width,
                stride=first_stride if i == 0 else 1,
                se_reduction=se_reduction,
            )
        )
    return nn.Sequential(*layers)


class SEResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) followed by the first ``num_stages`` SE-Res stages.

    With ``num_stages=3`` this is the "first three modules of SE-ResNet-50" used as a global feature
    network (output stride 16, ``stage_channels(base_width, 3)`` = 1024 channels at paper size).
    """

    def __init__(
        self,
        *,
        layers: Sequence[int] = (3, 4, 6, 3),
        base_width: int = 64,
        se_reduction: int = 16,
        in_channels: int = 3,
        num_stages: int = 4,
    ):
        """
        Args:
            layers: bottlenecks per stage (SE-ResNet-50: (3, 4, 6, 3)).
            base_width: width of stage 1.
            se_reduction: SE reduction ratio r.
            in_channels: image channels.
            num_stages: how many stages to build (1-4).
        """
        super().__init__()
        if not 1 <= num_stages <= len(layers):
            raise ValueError(f"num_stages must be in 1..{len(layers)}, got {num_stages}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.stages = nn.ModuleList(
            make_stage(stage=s + 1, blocks=layers[s], base_width=base_width, se_reduction=se_reduction)
            for s in range(num_stages)
        )
        self.out_channels = stage_channels(base_width, num_stages)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)

        Returns the feature map of the last built stage, shape (N, out_channels, H / 2**(num_stages+1), ...).
        """
        N, C, H, W = x.shape
        x = self.stem(x)  # (N, base_width, H / 4, W / 4)
        for stage in self.stages:
            x = stage(x)
        return x
