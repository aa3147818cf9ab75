"""The npm package ``@vladmandic/face-api`` (MIT) whose weights our face-api.js nets read; no torch here.

``@vladmandic/face-api`` 1.7.15 (MIT licence, a maintained fork of face-api.js by Vincent Mühler, also MIT)
carries face-api.js's trained nets as TensorFlow.js weight files in ``model/``. ``.ci/setup.sh`` runs
``python -m models.faceapi_package`` once: it fetches the package tarball (``npm pack``; without npm, over HTTPS
from the registry ``$NPM_CONFIG_REGISTRY`` names), checks it against the pinned :data:`INTEGRITY` and keeps only
the files of :data:`KEPT_MODELS` in :func:`weights_dir` (``$LESSONLENS_FACE_API_DIR``, default
``~/.cache/lessonlens/face-api-1.7.15``). Nothing is downloaded at run time: without the files the nets'
loaders raise :class:`WeightsMissing`, whose message says how to get them.

TensorFlow.js weights (:func:`read_tfjs_weights`): ``<model>-weights_manifest.json`` is a list of groups;
each group's ``paths`` are binary shards read one after the other, and its ``weights`` entries (``name``,
``shape``, ``dtype``, optional ``quantization`` {``dtype``, ``scale``, ``min``}) lie in that byte stream in
order. uint8/uint16-quantised values are ``q * scale + min``; float16-quantised ones are half floats.
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
from pathlib import Path

import numpy as np

from models.files import cache_dir

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
LICENCE = "MIT"
# `npm view @vladmandic/face-api@1.7.15 dist.integrity`: SHA-512 of the package tarball
INTEGRITY = "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
KEPT_MODELS = ("face_expression_model", "face_recognition_model")  # the files setup keeps from model/
ENV_DIR = "LESSONLENS_FACE_API_DIR"
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")  # expression net's outputs
# the net's classes as the emotion task's (models.rules.EMOTIONS)
EMOTION_NAMES = {"neutral": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger", "fearful": "fear",
                 "disgusted": "disgust", "surprised": "surprise"}  # fmt: skip
MODEL_NAME = f"face-api.js FaceExpressionNet ({PACKAGE} {VERSION}, MIT)"
MODEL_VERSION = f"face_expression-face-api-{VERSION}"  # the model_version of its predictions
EXPRESSION_MANIFEST = "face_expression_model-weights_manifest.json"
RECOGNITION_MANIFEST = "face_recognition_model-weights_manifest.json"
SETUP_HINT = (
    f"run `make setup` (or `python -m models.faceapi_package`) to fetch {PACKAGE} {VERSION} from the npm registry"
)


class WeightsMissing(FileNotFoundError):
    """The weights are not in :func:`weights_dir`; the message says how to fetch them."""


def weights_dir() -> Path:
    """Where the kept model files are: ``$LESSONLENS_FACE_API_DIR``, else ``~/.cache/lessonlens/face-api-<v>``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    return cache_dir() / f"face-api-{VERSION}"


def weights_missing(manifest: str, what: str) -> str | None:
    """One line saying that the ``what`` weights (``manifest``, a file name of :data:`KEPT_MODELS`) are not in
    :func:`weights_dir` and how to get them, or None when they are there."""
    folder = weights_dir()
    return None if (folder / manifest).is_file() else f"{what} weights not found at {folder}: {SETUP_HINT}"


def recognition_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The part of ``image`` (H, W, 3) face-api.js feeds its recognition net for a face with 68 ``landmarks``
    (pixels): their bounding box enlarged by 20 % (10 % each side), clipped to the image."""
    (x1, y1), (x2, y2) = landmarks.min(axis=0), landmarks.max(axis=0)
    dx, dy = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
    H, W = image.shape[:2]
    left, top = int(max(x1 - dx, 0)), int(max(y1 - dy, 0))
    right, bottom = int(min(np.ceil(x2 + dx), W)), int(min(np.ceil(y2 + dy), H))
    return np.ascontiguousarray(image[top:bottom, left:right])


# TensorFlow.js weights ----------------------------------------------------------------------------------
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTISED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_tfjs_weights(manifest: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a TensorFlow.js ``*-weights_manifest.json`` and its shards (beside it), by name.

    Quantised tensors come back dequantised as float32 arrays (``torch.from_numpy`` makes tensors of them). A
    shard missing, shorter or longer than its weights, or a dtype this reader does not know raises ValueError /
    FileNotFoundError naming the file.
    """
    manifest = Path(manifest)
    try:
        groups = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{manifest}: not a readable TensorFlow.js weights manifest ({err})") from err
    tensors: dict[str, np.ndarray] = {}
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
            tensors[name] = np.ascontiguousarray(values.astype(_DTYPES[spec["dtype"]]))
        if offset != len(data):
            raise ValueError(f"{manifest}: {len(data) - offset} bytes of the shards are not in the manifest")
    return tensors


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

    parser = argparse.ArgumentParser(
        prog="python -m models.faceapi_package", description=f"fetch {PACKAGE} {VERSION}'s nets"
    )
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
