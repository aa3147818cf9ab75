"""face-api.js's FaceExpressionNet in PyTorch, with the MIT weights of the npm package ``@vladmandic/face-api``.

The weights are read from the files setup keeps (``models.faceapi_package``: pinned package, cache, TF.js
reader); :func:`load_expression_net` raises ``WeightsMissing`` with the way to get them when they are absent.

FaceExpressionNet (face-api.js ``faceExpressionNet``; no paper: the authors say it was trained on "a variety
of images from publicly available datasets as well as images scraped from the web"; no accuracy is
published). Input: a face crop zero-padded to a square (centred), resized bilinearly to 112 × 112 with
TensorFlow's legacy resize (no half-pixel shift), minus the mean RGB (122.782, 117.001, 104.298), divided by
255. Features: four dense blocks of four convolutions each; block ``k``'s first convolution halves the
resolution (112 → 56 → 28 → 14 → 7), and its output ``o1`` feeds every later convolution of the block
(densely connected)::

    o2 = c2(o1),  o3 = c3(relu(o1 + o2)),  o4 = c4(relu(o1 + o2 + o3)),  out = relu(o1 + o2 + o3 + o4)

with ``o1 = relu(c1(x))``; ``c1`` of block 0 is a plain 3 × 3 convolution on RGB, every other convolution
a depthwise-separable one (3 × 3 depthwise, 1 × 1 pointwise, bias). Then a 7 × 7 average pool, a fully
connected 256 → 7 layer and a softmax over :data:`EXPRESSIONS`. Padding is TensorFlow's ``same``: for the
stride-2 convolutions on even sizes that is one row/column at the bottom/right only, not PyTorch's symmetric
``padding=1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.faceapi_package import (
    EXPRESSION_MANIFEST,
    EXPRESSIONS,
    SETUP_HINT,
    WeightsMissing,
    read_tfjs_weights,
    weights_dir,
)

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 112


def conv_weight(tfjs: Tensor) -> Tensor:
    """TensorFlow's HWIO convolution filter as PyTorch's OIHW."""
    return tfjs.permute(3, 2, 0, 1).contiguous()


def depthwise_weight(tfjs: Tensor) -> Tensor:
    """TensorFlow's depthwise filter (H, W, C, 1) as PyTorch's grouped (C, 1, H, W)."""
    return tfjs.permute(2, 3, 0, 1).contiguous()


def same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow ``same`` padding: the extra row/column of an odd total goes at the bottom/right."""
    H, W = x.shape[-2:]
    pad_h = max((-(-H // stride) - 1) * stride + kernel - H, 0)
    pad_w = max((-(-W // stride) - 1) * stride + kernel - W, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


# the expression net -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """FaceExpressionNet as face-api.js ships it."""

    channels: tuple[int, ...] = (32, 64, 128, 256)  # per dense block
    num_classes: int = len(EXPRESSIONS)
    image_size: int = INPUT_SIZE


class SeparableConv(nn.Module):
    """Depthwise 3 × 3 (no bias), pointwise 1 × 1 with bias, TensorFlow ``same`` padding (at stride 1 that is
    PyTorch's symmetric padding, done inside the convolution; at stride 2 :func:`same_pad`)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        padding = 1 if stride == 1 else 0
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, padding, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x if self.stride == 1 else same_pad(x, 3, self.stride)))


class PlainConv(nn.Conv2d):
    """The first block's 3 × 3 stride-2 convolution on RGB, TensorFlow ``same`` padding."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, 2)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(same_pad(x, 3, 2))


class DenseBlock(nn.Module):
    """Four convolutions, the first halving the resolution, each fed the sum of the ones before it."""

    def __init__(self, in_channels: int, out_channels: int, first: bool):
        super().__init__()
        self.conv0 = PlainConv(in_channels, out_channels) if first else SeparableConv(in_channels, out_channels, 2)
        self.conv1 = SeparableConv(out_channels, out_channels, 1)
        self.conv2 = SeparableConv(out_channels, out_channels, 1)
        self.conv3 = SeparableConv(out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + out2 + out3))
        return F.relu(out1 + out2 + out3 + out4)


class FaceExpressionNet(nn.Module):
    """face-api.js's expression classifier (module docstring): ``softmax(fc(avgpool(dense3(...dense0(x)))))``."""

    def __init__(self, config: Config = Config()):
        super().__init__()
        self.config = config
        widths = (3, *config.channels)
        self.blocks = nn.ModuleList(DenseBlock(widths[i], widths[i + 1], first=i == 0) for i in range(len(widths) - 1))
        self.fc = nn.Linear(config.channels[-1], config.num_classes)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, x: Tensor) -> Tensor:
        """x : Tensor, shape = (B, 3, 112, 112), RGB in 0..255 → (B, 256) pooled features."""
        B, C, H, W = x.shape
        x = (x - self.mean) / 255.0
        for block in self.blocks:
            x = block(x)  # (B, C_k, H / 2^k, W / 2^k)
        return x.mean(dim=(2, 3))  # the 7 × 7 average pool: (B, 256)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        return features if pre_logits else self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        """x : Tensor, shape = (B, 3, 112, 112), RGB 0..255 (see :func:`prepare`) → logits (B, 7)."""
        return self.forward_head(self.forward_features(x))

    def load_tfjs(self, arrays: dict[str, np.ndarray]) -> FaceExpressionNet:
        """Copy face-api.js's tensors (names ``dense<k>/conv<i>/...``, ``fc/...``) into this module."""
        weights = {name: torch.from_numpy(a) for name, a in arrays.items()}
        state = {}
        for k in range(len(self.blocks)):
            for i in range(4):
                tf, ours = f"dense{k}/conv{i}", f"blocks.{k}.conv{i}"
                if f"{tf}/filters" in weights:
                    state[f"{ours}.weight"] = conv_weight(weights[f"{tf}/filters"])
                    state[f"{ours}.bias"] = weights[f"{tf}/bias"]
                else:
                    state[f"{ours}.depthwise.weight"] = depthwise_weight(weights[f"{tf}/depthwise_filter"])
                    state[f"{ours}.pointwise.weight"] = conv_weight(weights[f"{tf}/pointwise_filter"])
                    state[f"{ours}.pointwise.bias"] = weights[f"{tf}/bias"]
        state["fc.weight"] = weights["fc/weights"].t().contiguous()
        state["fc.bias"] = weights["fc/bias"]
        self.load_state_dict(state)
        return self


def resize_bilinear(x: Tensor, size: int) -> Tensor:
    """TensorFlow's ``resizeBilinear(x, size, alignCorners=false, halfPixelCenters=false)`` of x (C, H, W):
    output pixel ``i`` samples input ``i * H / size`` (no half-pixel shift, unlike PyTorch's interpolate)."""
    C, H, W = x.shape

    def taps(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        src = torch.arange(size, dtype=torch.float64) * (n_in / size)
        low = src.floor().long().clamp(max=n_in - 1)
        return low, (low + 1).clamp(max=n_in - 1), (src - low).float()

    y0, y1, fy = taps(H)
    x0, x1, fx = taps(W)
    rows = x[:, y0] + (x[:, y1] - x[:, y0]) * fy.view(1, -1, 1)  # (C, size, W)
    return rows[:, :, x0] + (rows[:, :, x1] - rows[:, :, x0]) * fx  # (C, size, size)


def prepare(faces: list[np.ndarray], size: int = INPUT_SIZE) -> Tensor:
    """Face crops (H, W, 3) uint8 RGB of any size → (B, 3, size, size) float RGB 0..255, as face-api.js makes
    its input: zero-padded to a centred square, then :func:`resize_bilinear` (TensorFlow's legacy resize)."""
    out = []
    for face in faces:
        x = torch.from_numpy(np.array(face, dtype=np.float32)).permute(2, 0, 1)  # (3, H, W)
        _, H, W = x.shape
        if H != W:
            diff = abs(H - W)
            after = round(diff * 0.5 + 1e-9)  # JavaScript's Math.round: halves go up
            before = diff - after
            x = F.pad(x, (before, after, 0, 0) if H > W else (0, 0, before, after))
        if x.shape[-1] != size:
            x = resize_bilinear(x, size)
        out.append(x)
    return torch.stack(out)


def load_expression_net(folder: str | os.PathLike | None = None) -> FaceExpressionNet:
    """FaceExpressionNet with face-api.js's weights (MIT licence, ``@vladmandic/face-api``) from ``folder``
    (default ``weights_dir()``), in eval mode; ``WeightsMissing`` when they are not there."""
    manifest = Path(folder or weights_dir()) / EXPRESSION_MANIFEST
    if not manifest.is_file():
        raise WeightsMissing(f"face expression weights not found at {manifest}: {SETUP_HINT}")
    return FaceExpressionNet().load_tfjs(read_tfjs_weights(manifest)).eval()


def example_inputs(config: Config, batch_size: int = 1) -> tuple[Tensor, ...]:
    return (torch.rand(batch_size, 3, config.image_size, config.image_size) * 255,)
