"""face-api.js's nets from the weights of ``@vladmandic/face-api``: the TF.js reader, parity with the package's
own JavaScript (fixture written by ``tests/fixtures/faceapi/parity.mjs``; no node needed here), setup."""

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import faceapi, faceapi_package

FIXTURE = Path(__file__).parents[1] / "fixtures" / "faceapi"


def fixture_faces() -> list[tuple[str, np.ndarray]]:
    index = json.loads((FIXTURE / "faces.json").read_text())
    data = gzip.decompress((FIXTURE / "faces.rgb.gz").read_bytes())
    faces, offset = [], 0
    for face in index:
        shape = (face["height"], face["width"], 3)
        size = int(np.prod(shape))
        faces.append((face["name"], np.frombuffer(data, np.uint8, size, offset).reshape(shape)))
        offset += size
    assert offset == len(data)
    return faces


def test_parity_with_face_api_js():
    """Our torch port gives face-api.js's probabilities (tfjs 4.22 CPU backend under node) to 1e-4."""
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert tuple(expected["labels"]) == faceapi_package.EXPRESSIONS
    faces = fixture_faces()
    assert [n for n, _ in faces] == [f["name"] for f in expected["faces"]] and len(faces) >= 8
    assert any(f.shape[0] != f.shape[1] for _, f in faces) and any(f.shape[0] > 200 for _, f in faces)
    net = faceapi.load_expression_net()
    with torch.inference_mode():
        ours = torch.softmax(net(faceapi.prepare([f for _, f in faces])), dim=1).numpy()
    reference = np.array([f["probabilities"] for f in expected["faces"]])
    assert np.abs(ours - reference).max() <= 1e-4
    assert len(set(reference.argmax(axis=1))) >= 3  # the faces are not all read alike


def _manifest(tmp_path: Path, weights: list[dict], shards: list[bytes]) -> Path:
    for k, shard in enumerate(shards):
        (tmp_path / f"m.bin{k}").write_bytes(shard)
    manifest = tmp_path / "m-weights_manifest.json"
    manifest.write_text(json.dumps([{"paths": [f"m.bin{k}" for k in range(len(shards))], "weights": weights}]))
    return manifest


def test_read_tfjs_weights_dequantises_across_shards(tmp_path):
    q = np.array([0, 1, 255, 7, 8, 9], np.uint8)
    bias = np.array([0.5, -2.0], np.float32)
    half = np.array([1.5, -0.25], np.float16)
    data = q.tobytes() + bias.tobytes() + half.tobytes()
    weights = [
        {"name": "a/filters", "shape": [2, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "a/bias", "shape": [2], "dtype": "float32"},
        {"name": "h", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
    ]  # fmt: skip
    out = faceapi_package.read_tfjs_weights(_manifest(tmp_path, weights, [data[:5], data[5:]]))
    assert out["a/filters"].dtype == np.float32 and out["a/filters"].shape == (2, 3)
    np.testing.assert_allclose(out["a/filters"].ravel(), q * 0.5 - 1.0)
    np.testing.assert_array_equal(out["a/bias"], bias)
    np.testing.assert_array_equal(out["h"], half.astype(np.float32))


def test_read_tfjs_weights_refuses_short_long_and_unknown(tmp_path):
    spec = [{"name": "w", "shape": [4], "dtype": "float32"}]
    with pytest.raises(ValueError, match="shards end inside w"):
        faceapi_package.read_tfjs_weights(_manifest(tmp_path, spec, [b"\0" * 12]))
    with pytest.raises(ValueError, match="4 bytes of the shards are not in the manifest"):
        faceapi_package.read_tfjs_weights(_manifest(tmp_path, spec, [b"\0" * 20]))
    with pytest.raises(ValueError, match="has dtype 'complex64'"):
        complex_spec = [{"name": "c", "shape": [1], "dtype": "complex64"}]
        faceapi_package.read_tfjs_weights(_manifest(tmp_path, complex_spec, [b""]))
    (tmp_path / "m.bin0").unlink()
    with pytest.raises(FileNotFoundError, match="m.bin0 does not exist"):
        faceapi_package.read_tfjs_weights(tmp_path / "m-weights_manifest.json")


def test_same_padding_matches_tensorflow_for_stride_two():
    """TensorFlow pads an even input's stride-2 3 × 3 convolution at the bottom/right only."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    padded = faceapi.same_pad(x, 3, 2)
    assert padded.shape == (1, 1, 5, 5)
    assert torch.equal(padded[0, 0, :4, :4], x[0, 0]) and padded[0, 0, 4].abs().sum() == 0
    assert faceapi.same_pad(x, 3, 1).shape == (1, 1, 6, 6)


def test_prepare_pads_to_a_centred_square_then_resizes():
    face = np.full((10, 7, 3), 200, np.uint8)  # 3 columns short: 1 before, 2 after (Math.round(1.5) = 2)
    x = faceapi.prepare([face], size=10)
    assert x.shape == (1, 3, 10, 10)
    assert (x[0, :, :, 0] == 0).all() and (x[0, :, :, 1:8] == 200).all() and (x[0, :, :, 8:] == 0).all()
    assert faceapi.prepare([np.zeros((224, 224, 3), np.uint8)]).shape == (1, 3, 112, 112)


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_install_keeps_only_the_model_files_of_a_verified_tarball(tmp_path, monkeypatch):
    spec = json.dumps([{"paths": ["x.bin"], "weights": [{"name": "w", "shape": [1], "dtype": "float32"}]}])
    files = {"package/README.md": b"readme", "package/model/tiny_face_detector_model.bin": b"other"}
    for model in faceapi_package.KEPT_MODELS:
        spec_m = spec.replace("x.bin", f"{model}.bin").encode()
        files |= {f"package/model/{model}-weights_manifest.json": spec_m, f"package/model/{model}.bin": b"\0" * 4}
    data = _tarball(files)
    tarball = tmp_path / "face-api.tgz"
    tarball.write_bytes(data)
    with pytest.raises(ValueError, match="is not the pinned"):
        faceapi_package.install(tmp_path / "cache", tarball)
    assert not (tmp_path / "cache").exists()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    monkeypatch.setattr(faceapi_package, "INTEGRITY", integrity)
    monkeypatch.setenv(faceapi_package.ENV_DIR, str(tmp_path / "cache"))
    folder = faceapi_package.install(tarball=tarball)
    assert folder == tmp_path / "cache"
    assert sorted(p.name for p in folder.iterdir()) == sorted(n.removeprefix("package/model/") for n in files if
                                                              n.startswith("package/model/face_"))  # fmt: skip
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(faceapi_package.WeightsMissing, match="make setup"):
        faceapi.load_expression_net(tmp_path)


def test_net_contract_gradients_and_info_inputs():
    net = faceapi.FaceExpressionNet()
    (x,) = faceapi.example_inputs(net.config, batch_size=2)
    logits = net(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert net.forward_head(net.forward_features(x), pre_logits=True).shape == (2, 256)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
