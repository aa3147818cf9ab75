"""Pretrained nets of face-api.js, read from the weights the npm package ``@vladmandic/face-api`` ships (MIT).

Weights. ``@vladmandic/face-api`` 1.7.15 (MIT licence, a maintained fork of face-api.js by Vincent Mühler,
also MIT) carries face-api.js's trained nets as TensorFlow.js weight files in ``model/``. ``.ci/setup.sh``
runs ``python -m models.faceapi`` once: it fetches the package tarball (``npm pack``), checks it against the
pinned :data:`INTEGRITY` and keeps only the files of :data:`KEPT_MODELS` in :func:`weights_dir`
(``$LESSONLENS_FACE_API_DIR``, default ``~/.cache/lessonlens/face-api-1.7.15``). Nothing is downloaded at
run time: without the files :func:`load_expression_net` raises :class:`WeightsMissing`, whose message says
how to get them.

TensorFlow.js weights (:func:`read_tfjs_weights`): ``<model>-weights_manifest.json`` is a list of groups;
each group's ``paths`` are binary shards read one after the other, and its ``weights`` entries (``name``,
``shape``, ``dtype``, optional ``quantization`` {``dtype``, ``scale``, ``min``}) lie in that byte stream in
order. uint8/uint16-quantised values are ``q * scale + min``; float16-quantised ones are half floats.

FaceExpressionNet (face-api.js ``faceExpressionNet``; no paper: the authors say it was trained on "a variety
of images from publicly available datasets as well as images scraped from the web"; no accuracy is
published). Input: a face crop zero-padded to a square (centred), resized bilinearly to 112 × 112, minus
the mean RGB (122.782, 117.001, 104.298), divided by 255. Features: four dense blocks of four convolutions
each; block ``k``'s first convolution halves the resolution (112 → 56 → 28 → 14 → 7), and its output
``o1`` feeds every later convolution of the block (densely connected)::

    o2 = c2(o1),  o3 = c3(relu(o1 + o2)),  o4 = c4(relu(o1 + o2 + o3)),  out = relu(o1 + o2 + o3 + o4)

with ``o1 = relu(c1(x))``; ``c1`` of block 0 is a plain 3 × 3 convolution on RGB, every other convolution
a depthwise-separable one (3 × 3 depthwise, 1 × 1 pointwise, bias). Then a 7 × 7 average pool, a fully
connected 256 → 7 layer and a softmax over :data:`EXPRESSIONS`. Padding is TensorFlow's ``same``: for the
stride-2 convolutions on even sizes that is one row/column at the bottom/right only, not PyTorch's symmetric
``padding=1``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
LICENCE = "MIT"
# `npm view @vladmandic/face-api@1.7.15 dist.integrity`: SHA-512 of the package tarball
INTEGRITY = "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
KEPT_MODELS = ("face_expression_model", "face_recognition_model")  # the files setup keeps from model/
ENV_DIR = "LESSONLENS_FACE_API_DIR"
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")  # the net's output order
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 112
SETUP_HINT = f"run `make setup` (or `python -m models.faceapi`) to fetch {PACKAGE} {VERSION} from the npm registry"


class WeightsMissing(FileNotFoundError):
    """The weights are not in :func:`weights_dir`; the message says how to fetch them."""


def weights_dir() -> Path:
    """Where the kept model files are: ``$LESSONLENS_FACE_API_DIR``, else ``~/.cache/lessonlens/face-api-<v>``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lessonlens" / f"face-api-{VERSION}"


# TensorFlow.js weights ----------------------------------------------------------------------------------
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTISED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_tfjs_weights(manifest: str | os.PathLike) -> dict[str, Tensor]:
    """Every tensor of a TensorFlow.js ``*-weights_manifest.json`` and its shards (beside it), by name.

    Quantised tensors come back dequantised as float32. A shard missing, shorter or longer than its
    weights, or a dtype this reader does not know raises ValueError / FileNotFoundError naming the file.
    """
    manifest = Path(manifest)
    try:
        groups = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{manifest}: not a readable TensorFlow.js weights manifest ({err})") from err
    tensors: dict[str, Tensor] = {}
    for group in groups:
        shards = [manifest.parent / p for p in group["paths"]]
        for shard in shards:
            if not shard.is_file():
                raise FileNotFoundError(f"{manifest}: shard {shard} does not exist")
        data = b"".join(shard.read_bytes() for shard in shards)
        offset = 0
        for spec in group["weights"]:
            name, shape, quant = spec["name"], tuple(spec["shape"]), spec.get("quantization")
            stored = _QUANTISED.get(quant["dtype"]) if quant else _DTYPES.get(spec["dtype"])
            if stored is None:
                raise ValueError(f"{manifest}: {name} has dtype {quant['dtype'] if quant else spec['dtype']!r}")
            count = int(np.prod(shape, dtype=np.int64))
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise ValueError(f"{manifest}: shards end inside {name} ({len(data)} bytes, need {offset + size})")
            values = np.frombuffer(data, dtype=stored, count=count, offset=offset).reshape(shape)
            offset += size
            if quant and quant["dtype"] != "float16":
                values = values.astype(np.float64) * quant["scale"] + quant["min"]
            tensors[name] = torch.from_numpy(np.ascontiguousarray(values.astype(_DTYPES[spec["dtype"]])))
        if offset != len(data):
            raise ValueError(f"{manifest}: {len(data) - offset} bytes of the shards are not in the manifest")
    return tensors


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
    """Depthwise 3 × 3 (no bias), pointwise 1 × 1 with bias, TensorFlow ``same`` padding."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(same_pad(x, 3, self.stride)))


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

    def load_tfjs(self, weights: dict[str, Tensor]) -> FaceExpressionNet:
        """Copy face-api.js's tensors (names ``dense<k>/conv<i>/...``, ``fc/...``) into this module."""
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
    """FaceExpressionNet with face-api.js's weights (MIT, ``@vladmandic/face-api``) from ``folder`` (default
    :func:`weights_dir`), in eval mode; :class:`WeightsMissing` when they are not there."""
    manifest = Path(folder or weights_dir()) / "face_expression_model-weights_manifest.json"
    if not manifest.is_file():
        raise WeightsMissing(f"face expression weights not found at {manifest}: {SETUP_HINT}")
    return FaceExpressionNet().load_tfjs(read_tfjs_weights(manifest)).eval()


def example_inputs(config: Config, batch_size: int = 1) -> tuple[Tensor, ...]:
    return (torch.rand(batch_size, 3, config.image_size, config.image_size) * 255,)


# setup: fetch once, verify, keep the model files ---------------------------------------------------------
def check_integrity(data: bytes, integrity: str) -> None:
    """ValueError unless ``data`` has the npm ``sha512-<base64>`` integrity ``integrity``."""
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise ValueError(f"{PACKAGE} {VERSION}: tarball integrity {algorithm}-{digest} is not the pinned {integrity}")


def extract_models(data: bytes, folder: Path) -> list[Path]:
    """Keep ``package/model/<name>*`` of the tarball ``data`` for each of :data:`KEPT_MODELS` in ``folder``
    (written to a temporary folder and renamed into place, so a crash leaves no half-filled cache)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix("package/model/")
                if member.isfile() and name != member.name and "/" not in name and name.startswith(KEPT_MODELS):
                    (staged / name).write_bytes(archive.extractfile(member).read())
        for model in KEPT_MODELS:
            read_tfjs_weights(staged / f"{model}-weights_manifest.json")  # complete and readable
        if folder.exists():
            shutil.rmtree(folder)
        staged.rename(folder)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return sorted(folder.iterdir())


def fetch_tarball() -> bytes:
    """The package tarball: ``npm pack`` where npm exists, else HTTPS from the registry that
    ``$NPM_CONFIG_REGISTRY`` names (npm's own variable for it)."""
    spec = f"{PACKAGE}@{VERSION}"
    if shutil.which("npm"):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", spec, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            (tarball,) = Path(tmp).glob("*.tgz")
            return tarball.read_bytes()
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or os.environ.get("npm_config_registry")
    if not registry:
        raise RuntimeError("no npm here: install npm, or set NPM_CONFIG_REGISTRY to the npm registry's URL")
    url = f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE.split('/')[1]}-{VERSION}.tgz"
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def install(folder: Path | None = None, tarball: Path | None = None) -> Path:
    """Fetch (or read ``tarball``), verify and keep the model files in ``folder`` (default :func:`weights_dir`);
    does nothing when they are already there."""
    folder = Path(folder or weights_dir())
    if all((folder / f"{m}-weights_manifest.json").is_file() for m in KEPT_MODELS) and tarball is None:
        return folder
    data = Path(tarball).read_bytes() if tarball else fetch_tarball()
    check_integrity(data, INTEGRITY)
    extract_models(data, folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.faceapi", description=f"fetch {PACKAGE} {VERSION}'s nets")
    parser.add_argument("--dir", type=Path, default=None, help=f"where to keep them (default ${ENV_DIR} or the cache)")
    parser.add_argument("--tarball", type=Path, default=None, help="a local copy of the package tarball (npm pack)")
    args = parser.parse_args(argv)
    try:
        folder = install(args.dir, args.tarball)
    except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as err:
        print(f"face-api weights: {err}", file=sys.stderr)
        return 2
    print(f"face-api weights ({PACKAGE} {VERSION}, {LICENCE}) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
