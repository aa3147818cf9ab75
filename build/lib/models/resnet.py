"""ResNet18, written by hand, with slots for attention modules after its stages.

Paper: K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
§3.3 and Table 1 (the 18-layer column): a 7×7/2 stem convolution and 3×3/2 max pool, then four stages
of two BasicBlocks (two 3×3 convolutions and an identity shortcut, a 1×1/2 projection where the shape
changes, the paper's "option B") with widths 64, 128, 256, 512, global average pooling and a linear
classifier.

Attention slots: ``ResNet(stage_attention={2: m2, 3: m3})`` runs ``m2`` on the output of stage 2 and
``m3`` on the output of stage 3 (stages count from 1, as Block1-Block4 in the AGDTNet paper). A slot
module is called ``m(x, num_frames)`` with ``x`` of shape ``(B * T, C, H, W)`` and returns a tensor of
the same shape; ``num_frames`` (T) lets temporal attention (AGA) regroup the frames of each clip, and
per-frame modules (SE, CBAM) ignore it.

Departures from the paper:
1. Shortcuts that change shape are 1×1/2 projections with BN ("option B" of He et al. §3.3), not the
   zero-padded identity ("option A") used for the paper's own 18-layer results (its Table 2). Option B
   is what the common ImageNet ResNet18 uses and gives its 11.69 M parameters / 1.81 GMACs at 224².
2. Choices the paper leaves open: the stride sits on the first 3×3 convolution of a stage, BN follows
   every convolution, ReLU comes after the addition; weights start Kaiming-normal (fan-out mode, the
   paper's "[13]") and BN at weight 1 / bias 0.
3. No pretrained weights are shipped: the model starts from random initialisation. Loading weights
   is the caller's business (a state dict with this module's own key names).
4. ``num_classes=0`` (the default) builds no classifier, so the backbone can serve as a feature
   extractor; ``forward_head`` then returns the pooled features. The attention slots are an addition.
"""

from collections.abc import Mapping

from torch import Tensor, nn

RESNET18_LAYERS = (2, 2, 2, 2)
RESNET18_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a shortcut: ``y = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (and of the inner convolution).
        stride: stride of the first convolution; a 1×1 projection shortcut is used when the stride is
            not 1 or the channel count changes.
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C_in, H, W)
        returns : Tensor, shape = (N, C_out, H / stride, W / stride), rounded up
        """
        N, C, H, W = x.shape
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with BasicBlocks; ``ResNet()`` is ResNet18 (He et al. 2016, Table 1).

    Each block computes ``y = F(x, {W_i}) + W_s x`` (He et al., eq. 2), ``W_s`` the identity unless the
    shape changes.

    Args:
        layers: number of BasicBlocks in each of the four stages.
        widths: output channels of each stage.
        in_channels: channels of the input images.
        num_classes: size of the linear classifier; 0 builds none (features only).
        stage_attention: module to run after stage ``i`` (1-based), called as ``m(x, num_frames)``.
    """

    def __init__(
        self,
        *,
        layers: tuple[int, ...] = RESNET18_LAYERS,
        widths: tuple[int, ...] = RESNET18_WIDTHS,
        in_channels: int = 3,
        num_classes: int = 0,
        stage_attention: Mapping[int, nn.Module] | None = None,
    ):
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have the same length")
        stage_attention = dict(stage_attention or {})
        bad = sorted(set(stage_attention) - set(range(1, len(layers) + 1)))
        if bad:
            raise ValueError(f"stage_attention keys {bad} are not stages 1..{len(layers)}")
        self.widths = tuple(widths)
        self.num_features = widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_ch = widths[0]
        for i, (depth, width) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_channels=in_ch, out_channels=width, stride=stride))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.stage_attention = nn.ModuleDict({str(k): m for k, m in sorted(stage_attention.items())})
        self.fc: nn.Module = nn.Linear(widths[-1], num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor, num_frames: int = 1) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W), N = B * T frames of B clips of ``num_frames`` frames each
        returns : Tensor, shape = (N, widths[-1], ceil(H / 32), ceil(W / 32))
        """
        N, C, H, W = x.shape
        if N % num_frames:
            raise ValueError(f"batch of {N} frames is not a whole number of {num_frames}-frame clips")
        x = self.stem(x)  # (N, widths[0], H / 4, W / 4)
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)  # (N, widths[i - 1], H / 2^(i + 1), W / 2^(i + 1))
            if str(i) in self.stage_attention:
                x = self.stage_attention[str(i)](x, num_frames)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """
        x : Tensor, shape = (N, C, h, w), the output of ``forward_features``
        returns : Tensor, shape = (N, C) if ``pre_logits`` or no classifier, else (N, num_classes)
        """
        N, C, h, w = x.shape
        x = x.mean(dim=(2, 3))  # (N, C)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor, num_frames: int = 1) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)
        returns : Tensor, shape = (N, num_classes), or (N, widths[-1]) when num_classes == 0
        """
        N, C, H, W = x.shape
        return self.forward_head(self.forward_features(x, num_frames))


def resnet18(**kwargs) -> ResNet:
    """ResNet18 (He et al. 2016, Table 1); keyword arguments go to ``ResNet``."""
    return ResNet(layers=RESNET18_LAYERS, widths=RESNET18_WIDTHS, **kwargs)


def stage_sizes(image_size: int, num_stages: int = 4) -> list[int]:
    """Side of each stage's output for a square ``image_size`` input (112: 28, 14, 7, 4)."""
    size = image_size
    size = (size + 1) // 2  # 7×7/2 convolution, padding 3
    size = (size + 1) // 2  # 3×3/2 max pool, padding 1
    sizes = [size]
    for _ in range(num_stages - 1):
        size = (size + 1) // 2  # 3×3/2 convolution, padding 1
        sizes.append(size)
    return sizes


__all__ = ["BasicBlock", "ResNet", "resnet18", "stage_sizes", "RESNET18_LAYERS", "RESNET18_WIDTHS"]
