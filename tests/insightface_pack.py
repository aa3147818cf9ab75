"""A random-weight insightface model pack, written with ``onnx.helper`` for plumbing tests.

Three ONNX files shaped like those of a real pack (e.g. ``buffalo_l``), so insightface 2.1's
``ModelRouter`` routes them the same way:

- ``det_random.onnx``: SCRFD-shaped detector, input (1, 3, H, W) with free H and W, 9 outputs = 3 strides
  (8, 16, 32) x (scores (A, 1), box distances (A, 4), 5 keypoints (A, 10)), 2 anchors per cell, in
  (row, column, anchor) order, without a batch axis;
- ``2d106_random.onnx``: 192 x 192 input, (1, 212) output (106 points x 2);
- ``1k3d68_random.onnx``: 192 x 192 input, (1, 3309) output (1103 x 3, the last 68 are the landmarks).

Each head is a strided convolution (or global pooling and a dense layer) with random weights, squashed
by Sigmoid or Tanh so scores lie in [0, 1], box distances are positive and landmarks stay near the crop.
The weights are random: what these models find is noise. Only the file layout and tensor shapes are real.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
STRIDES = (8, 16, 32)
ANCHORS = 2


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...], scale: float) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def detector(path: Path, rng: np.random.Generator) -> None:
    """SCRFD-shaped: for each stride a conv with kernel = stride, then score, box and keypoint heads."""
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_1"))
    inits.append(numpy_helper.from_array(np.array([-1, 4], np.int64), "shape_4"))
    inits.append(numpy_helper.from_array(np.array([-1, 10], np.int64), "shape_10"))
    for stride in STRIDES:
        trunk = f"feat{stride}"
        inits.append(_weights(rng, f"w{stride}", (8, 3, stride, stride), 0.02 / stride))
        nodes.append(helper.make_node("Conv", ["input.1", f"w{stride}"], [trunk], strides=[stride, stride]))
        for head, channels, squash, shape in (
            ("score", ANCHORS, "Sigmoid", "shape_1"),
            ("bbox", ANCHORS * 4, "Sigmoid", "shape_4"),
            ("kps", ANCHORS * 10, "Tanh", "shape_10"),
        ):
            name = f"{head}_{stride}"
            inits.append(_weights(rng, f"w_{name}", (channels, 8, 1, 1), 0.5))
            nodes += [
                helper.make_node("Conv", [trunk, f"w_{name}"], [f"{name}_conv"]),
                helper.make_node(squash, [f"{name}_conv"], [f"{name}_act"]),
                helper.make_node("Transpose", [f"{name}_act"], [f"{name}_nhwc"], perm=[0, 2, 3, 1]),
                helper.make_node("Reshape", [f"{name}_nhwc", shape], [name]),
            ]
            width = {"score": 1, "bbox": 4, "kps": 10}[head]
            outputs[head].append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width]))
    graph = helper.make_graph(
        nodes,
        "random_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs["score"] + outputs["bbox"] + outputs["kps"],
        inits,
    )
    _save(graph, path)


def landmark_model(path: Path, outputs: int, rng: np.random.Generator) -> None:
    """192 x 192 input -> (1, outputs) in (-1, 1): conv, global average pool, dense, tanh."""
    nodes = [
        helper.make_node("Conv", ["data", "w_conv"], ["conv"], strides=[8, 8]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w_fc"], ["fc"]),
        helper.make_node("Tanh", ["fc"], ["fc1"]),
    ]
    inits = [_weights(rng, "w_conv", (16, 3, 8, 8), 0.01), _weights(rng, "w_fc", (16, outputs), 0.5)]
    graph = helper.make_graph(
        nodes,
        "random_landmarks",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, outputs])],
        inits,
    )
    _save(graph, path)


def write_random_pack(directory: Path, seed: int = 0) -> Path:
    """Write the three random models into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    detector(directory / "det_random.onnx", rng)
    landmark_model(directory / "2d106_random.onnx", 212, rng)
    landmark_model(directory / "1k3d68_random.onnx", 3309, rng)
    return directory
